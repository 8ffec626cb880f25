"""Metrics now belong to usage (``usage.0004_metric_from_billing``): billing's foreign keys point at
``usage.Metric`` and billing forgets the models. State only: the tables, their rows and the foreign key
constraints (still to ``billing_metric``) stay as they are."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0009_invoice_void_write_off_permissions'),
        ('usage', '0004_metric_from_billing'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='invoiceline',
                    name='metric',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='usage.metric'),
                ),
                migrations.AlterField(
                    model_name='plancharge',
                    name='metric',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='charges', to='usage.metric'),
                ),
                migrations.AlterField(
                    model_name='historicalplancharge',
                    name='metric',
                    field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='usage.metric'),
                ),
                migrations.DeleteModel(
                    name='HistoricalMetric',
                ),
                migrations.DeleteModel(
                    name='Metric',
                ),
            ],
            database_operations=[],
        ),
    ]
