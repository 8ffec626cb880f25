from django.contrib import admin

from common.admin_utils import ServiceAdmin, adopt, changed_data, quantity_column, truncated
from usage.models import ClosedPeriod, Metric, UsageEvent, UsageRollup
from usage.services import METRIC_EDITABLE_FIELDS, metric_create, metric_update


@admin.register(Metric)
class MetricAdmin(ServiceAdmin):
    list_display = (
        "code",
        "name",
        "unit",
        "source",
        "aggregation",
        "aggregation_property",
        "billing_unit",
        "is_active",
    )
    list_filter = ("source", "aggregation", "billing_unit", "is_active")
    search_fields = ("code", "name")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ("created_at",)
        return ("code", "source", "aggregation", "aggregation_property", "billing_unit", "created_at")

    def has_delete_permission(self, request, obj=None):
        return False  # events refer to metrics by id for ever; retire a metric by deactivating it

    def save_model(self, request, obj, form, change):
        if change:
            saved = metric_update(
                metric=Metric.objects.get(pk=obj.pk),
                data=changed_data(form, METRIC_EDITABLE_FIELDS),
                actor=request.user,
            )
        else:
            data = form.cleaned_data
            saved = metric_create(
                code=data["code"],
                name=data["name"],
                unit=data["unit"],
                aggregation=data["aggregation"],
                billing_unit=data["billing_unit"],
                source=data["source"],
                aggregation_property=data["aggregation_property"],
                description=data["description"],
                actor=request.user,
            )
        adopt(obj, saved)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Usage is append-only and written by the ingest path alone: staff read it, never edit it. Lists show
    accounts and tenants by their public ids, so they fit a 1366 px screen; each row's page has the rest."""

    show_full_result_count = False  # no COUNT(*) over large tables on every page

    @admin.display(description="Account", ordering="account_id")
    def account_id_shown(self, row):
        return row.account.public_id

    @admin.display(description="Tenant", ordering="tenant_id")
    def tenant_id_shown(self, row):
        return truncated(row.tenant.public_id, 24) if row.tenant_id else "–"

    @admin.display(description="Metric", ordering="metric_id")
    def metric_code(self, row):
        return row.metric.code

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyAdmin):
    list_display = (
        "transaction",
        "account_id_shown",
        "tenant_id_shown",
        "metric_code",
        "quantity_shown",
        "timestamp",
        "month",
        "is_late",
    )
    list_display_links = ("transaction",)
    list_filter = ("metric", "is_late", "billing_month")
    quantity_shown = quantity_column("quantity")
    search_fields = ("=transaction_id", "=account__public_id", "=tenant__public_id")
    list_select_related = ("account", "tenant", "metric")
    date_hierarchy = "timestamp"
    # The invoice line admin links here with these filters ("events billed by this line").
    LINE_LOOKUPS = {"account__id__exact", "metric__id__exact", "timestamp__gte", "timestamp__lt"}

    def lookup_allowed(self, lookup, value, request=None):
        return lookup in self.LINE_LOOKUPS or super().lookup_allowed(lookup, value, request)

    @admin.display(description="Billed in", ordering="billing_month")
    def month(self, event):
        return f"{event.billing_month:%Y-%m}"

    @admin.display(description="Transaction id", ordering="transaction_id")
    def transaction(self, event):
        return truncated(event.transaction_id, 24)


@admin.register(UsageRollup)
class UsageRollupAdmin(ReadOnlyAdmin):
    list_display = (
        "hour",
        "account_id_shown",
        "tenant_id_shown",
        "metric_code",
        "billing_month",
        "quantity_sum_shown",
        "event_count",
        "gauge_last_shown",
    )
    quantity_sum_shown = quantity_column("quantity_sum", "Quantity")
    gauge_last_shown = quantity_column("gauge_last_value", "Last gauge value")
    list_filter = ("metric", "billing_month")
    search_fields = ("=account__public_id", "=tenant__public_id")
    list_select_related = ("account", "tenant", "metric")


@admin.register(ClosedPeriod)
class ClosedPeriodAdmin(ReadOnlyAdmin):
    list_display = ("account", "month", "closed_at")
    search_fields = ("=account__public_id",)
    list_select_related = ("account",)
