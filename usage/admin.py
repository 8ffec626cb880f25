import csv
from collections.abc import Iterator
from decimal import Decimal

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Sum
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.urls import path, reverse

from common.admin_utils import ServiceAdmin, adopt, changed_data, quantity_column, truncated
from common.formats import decimal_string, iso_utc
from common.money import QUANTITY_DECIMAL_PLACES, format_quantity
from usage.models import ClosedPeriod, Metric, RefusedDuplicate, UsageEvent, UsageRollup
from usage.services import METRIC_EDITABLE_FIELDS, metric_create, metric_update

# Query parameters of the event list that neither filter nor search it.
NOT_FILTERS = {"p", "o", "e", "_to_field", "_popup"}
EXPORT_CHUNK = 2000
QUANTITY_QUANTUM = Decimal(1).scaleb(-QUANTITY_DECIMAL_PLACES)
EXPORT_HEADER = [
    "transaction_id",
    "account",
    "tenant",
    "partner",
    "metric",
    "timestamp",
    "quantity",
    "received_at",
    "billing_month",
    "late",
]


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


class _Echo:
    """csv.writer's file: hands each formatted line back instead of storing it."""

    def write(self, value: str) -> str:
        return value


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyAdmin):
    """Events, read-only. Above the list: the filtered set's event count and quantity per metric (one grouped
    query, only once the list is filtered: the whole table is too big to add up on every page); beside the
    filters, "Export CSV" streams the filtered set."""

    change_list_template = "admin/usage/usageevent/change_list.html"
    list_display = (
        "transaction",
        "account_id_shown",
        "tenant_id_shown",
        "partner_shown",
        "metric_code",
        "quantity_shown",
        "timestamp_shown",
        "received_shown",
        "month",
    )
    list_display_links = ("transaction",)
    list_filter = ("metric", "is_late", "billing_month")
    quantity_shown = quantity_column("quantity")
    search_fields = ("=transaction_id", "=account__public_id", "=tenant__public_id")
    list_select_related = ("account", "tenant", "metric", "partner")
    date_hierarchy = "timestamp"
    # The invoice line admin links here with these filters ("events billed by this line").
    LINE_LOOKUPS = {"account__id__exact", "metric__id__exact", "timestamp__gte", "timestamp__lt"}

    def lookup_allowed(self, lookup, value, request=None):
        return lookup in self.LINE_LOOKUPS or super().lookup_allowed(lookup, value, request)

    @admin.display(description="Billed in", ordering="billing_month")
    def month(self, event):
        return f"{event.billing_month:%Y-%m}" + (" (late)" if event.is_late else "")

    @admin.display(description="Transaction id", ordering="transaction_id")
    def transaction(self, event):
        return truncated(event.transaction_id, 18)

    @admin.display(description="Tenant", ordering="tenant_id")
    def tenant_id_shown(self, row):
        return truncated(row.tenant.public_id, 16)

    @admin.display(description="Partner", ordering="partner_id")
    def partner_shown(self, event):
        return truncated(event.partner.public_id, 14) if event.partner_id else "–"

    @admin.display(description="Timestamp", ordering="timestamp")
    def timestamp_shown(self, event):
        return _utc(event.timestamp)

    @admin.display(description="Received", ordering="received_at")
    def received_shown(self, event):
        return _utc(event.received_at)

    def get_urls(self):
        return [
            path(
                "export.csv",
                self.admin_site.admin_view(self.export_csv_view),
                name="usage_usageevent_export",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context=extra_context)
        context = getattr(response, "context_data", None)
        if context is not None and "cl" in context:
            query = request.GET.urlencode()
            context["export_url"] = reverse("admin:usage_usageevent_export") + (f"?{query}" if query else "")
            context["event_totals"] = event_totals(context["cl"].queryset) if _filtered(request) else None
        return response

    def export_csv_view(self, request):
        """The filtered list as CSV (same query string as the list), streamed in chunks: constant memory."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            queryset = self.get_changelist_instance(request).get_queryset(request)
        except IncorrectLookupParameters:
            return HttpResponseBadRequest("These filters do not apply to events.")
        rows = queryset.values_list(
            "transaction_id",
            "account__public_id",
            "tenant__public_id",
            "partner__public_id",
            "metric__code",
            "timestamp",
            "quantity",
            "received_at",
            "billing_month",
            "is_late",
        )
        writer = csv.writer(_Echo())

        def lines() -> Iterator[str]:
            yield writer.writerow(EXPORT_HEADER)
            for txn, account, tenant, partner, metric, at, quantity, received, month, late in rows.iterator(
                chunk_size=EXPORT_CHUNK
            ):
                yield writer.writerow(
                    [
                        txn,
                        account,
                        tenant,
                        partner or "",
                        metric,
                        iso_utc(at),
                        decimal_string(quantity),
                        iso_utc(received),
                        f"{month:%Y-%m}",
                        "yes" if late else "no",
                    ]
                )

        response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="usage-events.csv"'
        return response


def _utc(moment) -> str:
    """To the minute, so the list fits a laptop screen; the event's page and the CSV keep every digit."""
    return f"{moment:%Y-%m-%d %H:%M}"


def _filtered(request) -> bool:
    return any(key not in NOT_FILTERS for key in request.GET)


def event_totals(queryset) -> dict:
    """Events and quantity of ``queryset`` per metric, in one grouped query: ``{"events": n, "metrics":
    [{"code", "unit", "events", "quantity"}, ...]}`` (quantities of different metrics are never added)."""
    rows = list(
        queryset.order_by()
        .values("metric__code", "metric__unit")
        .annotate(events=Count("id"), quantity=Sum("quantity"))
        .order_by("metric__code")
    )
    metrics = [
        {
            "code": row["metric__code"],
            "unit": row["metric__unit"],
            "events": format_quantity(row["events"]),
            # Rounded to the stored places: SQLite (the demo) sums decimals as floats.
            "quantity": format_quantity(Decimal(row["quantity"] or 0).quantize(QUANTITY_QUANTUM)),
        }
        for row in rows
    ]
    return {"events": format_quantity(sum(row["events"] for row in rows)), "metrics": metrics}


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


@admin.register(RefusedDuplicate)
class RefusedDuplicateAdmin(ReadOnlyAdmin):
    """Events refused at ingestion as duplicates, per hour of their timestamps: never stored, never billed."""

    list_display = (
        "hour",
        "account_id_shown",
        "tenant_id_shown",
        "metric_code",
        "count",
        "quantity_sum_shown",
        "first_refused_at",
        "last_refused_at",
    )
    quantity_sum_shown = quantity_column("quantity_sum", "Quantity sent")
    list_filter = ("metric",)
    search_fields = ("=account__public_id", "=tenant__public_id")
    list_select_related = ("account", "tenant", "metric")
    date_hierarchy = "hour"
