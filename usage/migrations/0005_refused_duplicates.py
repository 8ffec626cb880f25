"""Refused duplicates: a tally, per account, tenant, metric and hour, of the events ingestion refused because
their transaction id was already stored or repeated in the batch (dispute evidence; never billed). The staff
groups are synced so that billing staff may view it, as every usage table."""

import django.db.models.deletion
from django.db import migrations, models

from accounts.permissions import staff_groups_sync


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0014_staff_groups_disputes"),
        ("tenants", "0001_initial"),
        ("usage", "0004_metric_from_billing"),
    ]

    operations = [
        migrations.CreateModel(
            name="RefusedDuplicate",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "hour",
                    models.DateTimeField(
                        help_text="Start of the hour (UTC) of the refused events' timestamps, as sent."
                    ),
                ),
                ("count", models.BigIntegerField(default=0, help_text="Events refused as duplicates in this hour.")),
                (
                    "quantity_sum",
                    models.DecimalField(
                        decimal_places=8,
                        default=0,
                        help_text="Sum of the quantities the refused events reported (not billed).",
                        max_digits=38,
                    ),
                ),
                ("first_refused_at", models.DateTimeField(help_text="When the first of them was refused.")),
                ("last_refused_at", models.DateTimeField(help_text="When the last of them was refused.")),
                (
                    "account",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="accounts.account",
                    ),
                ),
                (
                    "metric",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="usage.metric",
                    ),
                ),
                (
                    "tenant",
                    models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="tenants.tenant",
                    ),
                ),
            ],
            options={
                "verbose_name": "refused duplicate",
                "indexes": [models.Index(fields=["account", "metric", "hour"], name="usage_refused_hour")],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("account", "tenant", "metric", "hour"),
                        name="usage_refused_duplicate_bucket",
                        nulls_distinct=False,
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("count__gt", 0)), name="usage_refused_duplicate_count_positive"
                    ),
                ],
            },
        ),
        migrations.RunPython(staff_groups_sync, migrations.RunPython.noop),
    ]
