"""Metrics move from billing to usage (metering owns the metric catalogue). State only: the tables keep their
names (``billing_metric``, ``billing_historicalmetric``) and every row stays where it is.

The content types of both models move with them, so permissions, the staff groups' grants and admin log
entries carry over (``billing.view_metric`` becomes ``usage.view_metric``)."""

import django.core.validators
import django.db.models.deletion
import simple_history.models
from django.conf import settings
from django.db import migrations, models

METRIC_MODELS = ("metric", "historicalmetric")


def _move_content_types(apps, schema_editor, *, old_app, new_app):
    ContentType = apps.get_model("contenttypes", "ContentType")
    content_types = ContentType.objects.using(schema_editor.connection.alias)
    for model in METRIC_MODELS:
        # As Django's own model renames do: should a content type of the new name already exist (created by a
        # post_migrate run before this migration), the old one is left for ``remove_stale_contenttypes``.
        if not content_types.filter(app_label=new_app, model=model).exists():
            content_types.filter(app_label=old_app, model=model).update(app_label=new_app)
    ContentType.objects.clear_cache()


def content_types_to_usage(apps, schema_editor):
    _move_content_types(apps, schema_editor, old_app="billing", new_app="usage")


def content_types_to_billing(apps, schema_editor):
    _move_content_types(apps, schema_editor, old_app="usage", new_app="billing")


class Migration(migrations.Migration):

    dependencies = [
        ('usage', '0003_drop_redundant_fk_indexes'),
        ('contenttypes', '0002_remove_content_type_name'),
        # After the staff groups' last sync, so a fresh database grants billing.*_metric first and then
        # moves those permissions here, as an existing one does.
        ('accounts', '0010_staff_groups_hide_internal_tables'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='HistoricalMetric',
                    fields=[
                        ('id', models.BigIntegerField(auto_created=True, blank=True, db_index=True, verbose_name='ID')),
                        ('code', models.CharField(db_index=True, help_text="Code used by events' 'metric' field.", max_length=63, validators=[django.core.validators.RegexValidator('^[a-z][a-z0-9_]{0,62}$', 'Use lower-case letters, digits and _ , starting with a letter.')])),
                        ('name', models.CharField(max_length=120)),
                        ('description', models.TextField(blank=True)),
                        ('unit', models.CharField(help_text="Unit of the reported quantity, e.g. 'request', 'GB'.", max_length=32)),
                        ('source', models.CharField(choices=[('events', 'Usage events'), ('tenants', 'Active tenants (from tenant lifecycle)'), ('partners', 'Active master partners (from partner lifecycle)')], default='events', max_length=16)),
                        ('aggregation', models.CharField(choices=[('sum', 'Sum of quantities'), ('count', 'Count of events'), ('unique_count', 'Unique count of a property'), ('max', 'Maximum quantity'), ('time_weighted', 'Time-weighted gauge (e.g. GB held × hours)')], help_text="How a period's events become one quantity. Time-weighted reads each event's quantity as the new gauge level from its timestamp on, giving unit-hours.", max_length=16)),
                        ('aggregation_property', models.CharField(blank=True, help_text='For unique counts: the event property counted, e.g. user_id or feature.', max_length=63, validators=[django.core.validators.RegexValidator('^[a-z][a-z0-9_]{0,62}$', 'Use lower-case letters, digits and _ , starting with a letter.')])),
                        ('billing_unit', models.CharField(choices=[('per_unit', 'per 1'), ('per_thousand', 'per 1,000'), ('per_gb_month', 'per GB-month'), ('per_user_month', 'per user-month'), ('per_feature_month', 'per feature-month'), ('per_tenant_month', 'per tenant-month'), ('per_partner_month', 'per partner-month')], help_text='What one price unit is. GB-months are GB-hours divided by the hours in the period.', max_length=24)),
                        ('is_active', models.BooleanField(default=True)),
                        ('created_at', models.DateTimeField(blank=True, editable=False)),
                        ('history_id', models.AutoField(primary_key=True, serialize=False)),
                        ('history_date', models.DateTimeField(db_index=True)),
                        ('history_change_reason', models.TextField(null=True)),
                        ('history_type', models.CharField(choices=[('+', 'Created'), ('~', 'Changed'), ('-', 'Deleted')], max_length=1)),
                        ('history_user', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'verbose_name': 'historical metric',
                        'verbose_name_plural': 'historical metrics',
                        'db_table': 'billing_historicalmetric',
                        'ordering': ('-history_date', '-history_id'),
                        'get_latest_by': ('history_date', 'history_id'),
                    },
                    bases=(simple_history.models.HistoricalChanges, models.Model),
                ),
                migrations.CreateModel(
                    name='Metric',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('code', models.CharField(help_text="Code used by events' 'metric' field.", max_length=63, unique=True, validators=[django.core.validators.RegexValidator('^[a-z][a-z0-9_]{0,62}$', 'Use lower-case letters, digits and _ , starting with a letter.')])),
                        ('name', models.CharField(max_length=120)),
                        ('description', models.TextField(blank=True)),
                        ('unit', models.CharField(help_text="Unit of the reported quantity, e.g. 'request', 'GB'.", max_length=32)),
                        ('source', models.CharField(choices=[('events', 'Usage events'), ('tenants', 'Active tenants (from tenant lifecycle)'), ('partners', 'Active master partners (from partner lifecycle)')], default='events', max_length=16)),
                        ('aggregation', models.CharField(choices=[('sum', 'Sum of quantities'), ('count', 'Count of events'), ('unique_count', 'Unique count of a property'), ('max', 'Maximum quantity'), ('time_weighted', 'Time-weighted gauge (e.g. GB held × hours)')], help_text="How a period's events become one quantity. Time-weighted reads each event's quantity as the new gauge level from its timestamp on, giving unit-hours.", max_length=16)),
                        ('aggregation_property', models.CharField(blank=True, help_text='For unique counts: the event property counted, e.g. user_id or feature.', max_length=63, validators=[django.core.validators.RegexValidator('^[a-z][a-z0-9_]{0,62}$', 'Use lower-case letters, digits and _ , starting with a letter.')])),
                        ('billing_unit', models.CharField(choices=[('per_unit', 'per 1'), ('per_thousand', 'per 1,000'), ('per_gb_month', 'per GB-month'), ('per_user_month', 'per user-month'), ('per_feature_month', 'per feature-month'), ('per_tenant_month', 'per tenant-month'), ('per_partner_month', 'per partner-month')], help_text='What one price unit is. GB-months are GB-hours divided by the hours in the period.', max_length=24)),
                        ('is_active', models.BooleanField(default=True)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                    ],
                    options={
                        'db_table': 'billing_metric',
                        'ordering': ['code'],
                        'constraints': [models.CheckConstraint(condition=models.Q(models.Q(('aggregation', 'unique_count'), ('source', 'events'), _negated=True), models.Q(('aggregation_property', ''), _negated=True), _connector='OR'), name='metric_unique_count_has_property', violation_error_message='A unique count over events needs the property it counts.'), models.CheckConstraint(condition=models.Q(('aggregation', 'unique_count'), ('aggregation_property', ''), _connector='OR'), name='metric_property_only_for_unique_count', violation_error_message='Only unique counts take an aggregation property.'), models.CheckConstraint(condition=models.Q(('source', 'events'), models.Q(('aggregation', 'unique_count'), ('aggregation_property', '')), _connector='OR'), name='metric_lifecycle_sources_count_unique', violation_error_message='Tenant and partner metrics count unique active resources.')],
                    },
                ),
                migrations.AlterField(
                    model_name='usageevent',
                    name='metric',
                    field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='usage.metric'),
                ),
                migrations.AlterField(
                    model_name='usagerollup',
                    name='metric',
                    field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='usage.metric'),
                ),
                migrations.AlterField(
                    model_name='usageuniquevalue',
                    name='metric',
                    field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='usage.metric'),
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_types_to_usage, content_types_to_billing),
    ]
