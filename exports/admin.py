from __future__ import annotations

from django.contrib import admin

from exports.models import ExportRequest


@admin.register(ExportRequest)
class ExportRequestAdmin(admin.ModelAdmin):
    """The export API's audit trail: read-only for every staff member who may view it."""

    list_display = ("started_at", "api_key", "dataset", "format", "row_count", "status", "http_status", "finished_at")
    list_filter = ("dataset", "format", "status")
    search_fields = ("api_key__prefix", "api_key__name", "last_cursor")
    list_select_related = ("api_key",)
    date_hierarchy = "started_at"
    fields = (
        "api_key",
        "dataset",
        "format",
        "filters",
        "row_count",
        "last_cursor",
        "status",
        "http_status",
        "error",
        "started_at",
        "finished_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
