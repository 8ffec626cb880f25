from django.contrib import admin

from common.admin_utils import ServiceAdmin, money_column, truncated
from disputes.models import Dispute


@admin.register(Dispute)
class DisputeAdmin(ServiceAdmin):
    list_display = ("public_id", "account", "subject_short", "amount_shown", "state", "assigned_to", "opened_at")
    list_filter = ("state", "currency")
    search_fields = ("public_id", "subject", "account__public_id", "account__name")
    autocomplete_fields = ("account",)
    list_select_related = ("account", "assigned_to")
    readonly_fields = (
        "public_id",
        "account",
        "subject",
        "description",
        "amount_shown",
        "state",
        "opened_at",
        "closed_at",
    )
    fields = (
        "public_id",
        "account",
        "subject",
        "description",
        "amount_shown",
        "state",
        "assigned_to",
        "resolution_note",
        "opened_at",
        "closed_at",
    )
    amount_shown = money_column("amount", "Amount disputed")

    @admin.display(description="Subject", ordering="subject")
    def subject_short(self, dispute):
        return truncated(dispute.subject, 40)

    def has_add_permission(self, request):
        return False  # customers open disputes from the portal; the workflow arrives with credit notes
