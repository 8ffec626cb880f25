from django.contrib import admin

from common.admin_utils import ServiceAdmin
from disputes.models import Dispute


@admin.register(Dispute)
class DisputeAdmin(ServiceAdmin):
    list_display = ("public_id", "account", "subject", "amount", "currency", "status", "assigned_to", "opened_at")
    list_filter = ("status", "currency")
    search_fields = ("public_id", "subject", "account__public_id", "account__name")
    autocomplete_fields = ("account",)
    list_select_related = ("account", "assigned_to")
    readonly_fields = (
        "public_id",
        "account",
        "subject",
        "description",
        "amount",
        "currency",
        "status",
        "opened_at",
        "closed_at",
    )

    def has_add_permission(self, request):
        return False  # customers open disputes from the portal; the workflow arrives with credit notes
