from django.contrib import admin
from django.http import HttpRequest

from common.models import Counter, OutboxEvent


@admin.register(Counter)
class CounterAdmin(admin.ModelAdmin):
    """Read-only: numbers are handed out by services only, never edited by hand."""

    list_display = ("name", "value")
    search_fields = ("name",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Counter | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Counter | None = None) -> bool:
        return False


@admin.register(OutboxEvent)
class OutboxEventAdmin(admin.ModelAdmin):
    """Domain events recorded in the outbox by services (read-only here)."""

    list_display = ("type", "account", "created_at", "delivered_at", "attempts")
    list_filter = ("type", ("delivered_at", admin.EmptyFieldListFilter))
    search_fields = ("=account__public_id", "type", "dedup_key")
    list_select_related = ("account",)
    readonly_fields = ("type", "account", "payload", "dedup_key", "created_at", "delivered_at", "attempts")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: OutboxEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: OutboxEvent | None = None) -> bool:
        return False
