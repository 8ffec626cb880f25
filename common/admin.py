from django.contrib import admin

from common.models import Counter


@admin.register(Counter)
class CounterAdmin(admin.ModelAdmin):
    """Read-only: numbers are handed out by services only, never edited by hand."""

    list_display = ("name", "value")
    search_fields = ("name",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
