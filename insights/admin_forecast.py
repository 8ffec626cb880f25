"""Admin: forecasts. Staff read the daily forecasts of each account's running month (``insights.services_forecast``
records them) with the actual bill once the month is invoiced and the error. Read-only: the rows are written by the
daily task only, never added, changed or deleted here."""

from __future__ import annotations

from django.contrib import admin

from common.admin_utils import money_column
from common.money import format_money
from insights.models import Forecast


@admin.register(Forecast)
class ForecastAdmin(admin.ModelAdmin):
    list_display = ("account", "month_label", "made_on", "expected_display", "range_display", "actual_display", "error")
    list_filter = ("month",)
    search_fields = ("account__name", "account__public_id")
    date_hierarchy = "made_on"
    list_select_related = ("account",)
    ordering = ("account__name", "-month", "-made_on")
    fields = (
        "account",
        "month",
        "made_on",
        "currency",
        "expected",
        "low",
        "high",
        "actual",
        "error",
        "made_at",
    )
    readonly_fields = fields

    expected_display = money_column("expected")
    actual_display = money_column("actual", "Actual (invoice subtotal)")

    @admin.display(description="Month", ordering="month")
    def month_label(self, obj: Forecast) -> str:
        return f"{obj.month:%Y-%m}"

    @admin.display(description="Range")
    def range_display(self, obj: Forecast) -> str:
        return f"{format_money(obj.low, obj.currency)} – {format_money(obj.high, obj.currency)}"

    @admin.display(description="Error (actual − expected)")
    def error(self, obj: Forecast) -> str:
        if obj.actual is None:
            return "–"
        error = obj.actual - obj.expected
        percent = f" ({error * 100 / obj.actual:.2f} %)" if obj.actual else ""
        held = "in range" if obj.low <= obj.actual <= obj.high else "outside the range"
        return f"{format_money(error, obj.currency)}{percent}, {held}"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
