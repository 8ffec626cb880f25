from django.contrib import admin

from usage.models import ClosedPeriod, UsageEvent, UsageRollup


class ReadOnlyAdmin(admin.ModelAdmin):
    """Usage is append-only and written by the ingest path alone: staff read it, never edit it."""

    show_full_result_count = False  # no COUNT(*) over large tables on every page

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyAdmin):
    list_display = (
        "transaction_id",
        "account",
        "tenant",
        "metric",
        "quantity",
        "timestamp",
        "partner",
        "billing_month",
        "is_late",
        "received_at",
    )
    list_filter = ("metric", "is_late", "billing_month")
    search_fields = ("=transaction_id", "=account__public_id", "=tenant__public_id")
    list_select_related = ("account", "tenant", "metric", "partner")
    date_hierarchy = "timestamp"
    # The invoice line admin links here with these filters ("events billed by this line").
    LINE_LOOKUPS = {"account__id__exact", "metric__id__exact", "timestamp__gte", "timestamp__lt"}

    def lookup_allowed(self, lookup, value, request=None):
        return lookup in self.LINE_LOOKUPS or super().lookup_allowed(lookup, value, request)


@admin.register(UsageRollup)
class UsageRollupAdmin(ReadOnlyAdmin):
    list_display = (
        "hour",
        "account",
        "tenant",
        "metric",
        "partner",
        "billing_month",
        "quantity_sum",
        "event_count",
        "gauge_last_value",
    )
    list_filter = ("metric", "billing_month")
    search_fields = ("=account__public_id", "=tenant__public_id")
    list_select_related = ("account", "tenant", "metric", "partner")


@admin.register(ClosedPeriod)
class ClosedPeriodAdmin(ReadOnlyAdmin):
    list_display = ("account", "month", "closed_at")
    search_fields = ("=account__public_id",)
    list_select_related = ("account",)
