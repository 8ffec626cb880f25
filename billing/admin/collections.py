"""Dunning in the admin: where collection of every invoice stands (state, attempts made, the next attempt,
the last failure or dispute) and staff's actions on it. Pause, resume and retry now are billing staff's and
Finance admin's (``billing.change_collection``); writing the invoice off is Finance admin's
(``billing.write_off_invoice``). Every action goes through ``billing.services.collection``."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Q, Sum

from billing.models import Collection, Invoice, Payment
from billing.services.collection import (
    collection_pause,
    collection_resume,
    collection_retry_now,
    collection_write_off,
)
from common.admin_utils import ServiceAdmin, format_datetime, run_action
from common.money import format_money

PERM_WRITE_OFF = "billing.write_off_invoice"


class OpenInvoiceFilter(admin.SimpleListFilter):
    title = "invoice"
    parameter_name = "open"

    def lookups(self, request, model_admin):
        return (("yes", "Open (money due)"), ("no", "Settled or written off"))

    def queryset(self, request, queryset):
        is_open = Q(invoice__status=Invoice.Status.FINALIZED, invoice__amount_due__gt=0)
        if self.value() == "yes":
            return queryset.filter(is_open)
        if self.value() == "no":
            return queryset.exclude(is_open)
        return queryset


class DisputedFilter(admin.SimpleListFilter):
    title = "disputed"
    parameter_name = "disputed"

    def lookups(self, request, model_admin):
        return (("yes", "A payment is disputed"),)

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(invoice__collection_payments__disputed_amount__gt=0).distinct()
        return queryset


@admin.register(Collection)
class CollectionAdmin(ServiceAdmin):
    list_display = (
        "invoice_number",
        "account",
        "state",
        "amount_due",
        "attempts",
        "next_attempt",
        "last_attempt",
        "last_failure",
        "disputed",
    )
    list_filter = ("state", OpenInvoiceFilter, DisputedFilter)
    list_select_related = ("invoice", "account")
    search_fields = ("invoice__number", "account__name", "account__public_id")
    ordering = ("next_attempt_at", "-invoice__finalized_at")
    actions = ("pause_action", "resume_action", "retry_action", "write_off_action")
    fields = (
        "invoice",
        "account",
        "state",
        "attempts",
        "next_attempt_at",
        "first_failed_at",
        "last_attempt_at",
        "last_failure",
        "payments",
    )
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_write_off_permission(self, request):
        return request.user.has_perm(PERM_WRITE_OFF)

    @admin.display(description="Invoice", ordering="invoice__number")
    def invoice_number(self, collection):
        return collection.invoice.number

    @admin.display(description="Amount due", ordering="invoice__amount_due")
    def amount_due(self, collection):
        return format_money(collection.invoice.amount_due, collection.invoice.currency)

    @admin.display(description="Next attempt", ordering="next_attempt_at")
    def next_attempt(self, collection):
        return format_datetime(collection.next_attempt_at) or "–"

    @admin.display(description="Last attempt", ordering="last_attempt_at")
    def last_attempt(self, collection):
        return format_datetime(collection.last_attempt_at) or "–"

    @admin.display(description="Disputed")
    def disputed(self, collection):
        total = Payment.objects.filter(invoice=collection.invoice).aggregate(t=Sum("disputed_amount"))["t"]
        return format_money(total, collection.invoice.currency) if total else "–"

    @admin.display(description="Attempts and payments")
    def payments(self, collection):
        rows = Payment.objects.filter(invoice=collection.invoice).order_by("attempt", "pk")
        lines = [
            f"{p.public_id} attempt {p.attempt or '–'}: {p.get_status_display().lower()}"
            f"{' (' + (p.failure_message or p.failure_code) + ')' if p.failure_code or p.failure_message else ''}"
            f"{', disputed ' + format_money(p.disputed_amount, p.currency) if p.disputed_amount else ''}"
            for p in rows
        ]
        return "; ".join(lines) or "–"

    @admin.action(description="Pause automatic collection", permissions=["change"])
    def pause_action(self, request, queryset):
        run_action(
            self, request, queryset, lambda c, actor: collection_pause(collection=c, actor=actor), "{count} paused."
        )

    @admin.action(description="Resume automatic collection", permissions=["change"])
    def resume_action(self, request, queryset):
        run_action(
            self, request, queryset, lambda c, actor: collection_resume(collection=c, actor=actor), "{count} resumed."
        )

    @admin.action(description="Retry the payment now", permissions=["change"])
    def retry_action(self, request, queryset):
        run_action(
            self,
            request,
            queryset,
            lambda c, actor: collection_retry_now(collection=c, actor=actor),
            "{count} attempt(s) queued.",
        )

    @admin.action(description="Write off the invoice (uncollectible)", permissions=["write_off"])
    def write_off_action(self, request, queryset):
        run_action(
            self,
            request,
            queryset,
            lambda c, actor: collection_write_off(
                collection=c, reason=f"collection given up by {request.user}", actor=actor
            ),
            "{count} invoice(s) written off.",
        )
