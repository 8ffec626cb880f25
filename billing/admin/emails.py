"""Admin for invoice e-mails: each invoice's deliveries and the outbox events about it, a resend action
for staff, and the list of all deliveries with a retry for failed ones. Read-only: rows are written by
the services in ``billing/services/emails.py``."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from billing.models import EmailDelivery, Invoice
from billing.services.emails.queueing import email_resend, email_retry
from common.admin_utils import format_datetime, run_action, truncated
from common.models import OutboxEvent


def _recipients(delivery: EmailDelivery) -> str:
    return ", ".join(delivery.recipients or [])


class EmailDeliveryInline(admin.TabularInline):
    """The e-mails sent (or not) about one invoice, newest first."""

    model = EmailDelivery
    fk_name = "invoice"
    verbose_name_plural = "E-mail deliveries"
    extra = 0
    can_delete = False
    fields = (
        "kind",
        "credit_note",
        "to",
        "status",
        "attempts",
        "last_error",
        "queued_at",
        "next_attempt_at",
        "sent_at",
        "requested_by",
    )
    readonly_fields = fields
    ordering = ("-queued_at", "-id")

    def get_queryset(self, request):
        # Each row shows its credit note, the staff member who asked for it, and its title (which names the invoice).
        return super().get_queryset(request).select_related("invoice", "credit_note", "requested_by")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Recipients")
    def to(self, delivery):
        return _recipients(delivery)


class InvoiceEmailsAdminMixin:
    """What the invoice page shows and does about e-mails (mixed into ``InvoiceAdmin``)."""

    @staticmethod
    def _outbox_events(invoice: Invoice) -> list[tuple[int, str, str, str]]:
        if not invoice.number:
            return []
        events = OutboxEvent.objects.filter(
            account_id=invoice.account_id, payload__data__invoice_number=invoice.number
        ).order_by("created_at", "id")
        return [
            (
                event.pk,
                event.type,
                format_datetime(event.created_at),
                f"delivered {format_datetime(event.delivered_at)}" if event.delivered_at else "not delivered yet",
            )
            for event in events
        ]

    @admin.display(description="Outbox events")
    def outbox_events_list(self, invoice: Invoice):
        """With links to the outbox table, for staff who may see it (Finance admin)."""
        rows = [
            (reverse("admin:common_outboxevent_change", args=[pk]), *rest) for pk, *rest in self._outbox_events(invoice)
        ]
        return format_html_join("", '<div><a href="{}">{}</a> {} ({})</div>', rows) if rows else "none"

    @admin.display(description="Outbox events")
    def outbox_events_text(self, invoice: Invoice):
        """The same events without links: the outbox table is internal (hidden from billing staff)."""
        rows = [rest for _, *rest in self._outbox_events(invoice)]
        return format_html_join("", "<div>{} {} ({})</div>", rows) if rows else "none"

    @admin.action(description="Resend invoice e-mail", permissions=["change"])
    def resend_email_action(self, request, queryset):
        run_action(
            self,
            request,
            queryset,
            lambda invoice, actor: email_resend(invoice=invoice, actor=actor),
            "{count} invoice e-mail(s) queued.",
        )


@admin.register(EmailDelivery)
class EmailDeliveryAdmin(admin.ModelAdmin):
    list_display = (
        "invoice_link",
        "account_shown",
        "kind",
        "to_short",
        "status",
        "attempts",
        "error_short",
        "queued_at",
    )
    list_filter = ("status", "kind")
    search_fields = (
        "=invoice__number",
        "=invoice__account__public_id",
        "invoice__account__name",
        "=account__public_id",
        "account__name",
    )
    list_select_related = ("invoice", "invoice__account", "account")
    date_hierarchy = "queued_at"
    actions = ("retry_action",)
    fields = (
        "invoice",
        "account",
        "credit_note",
        "kind",
        "to",
        "subject",
        "status",
        "attempts",
        "last_error",
        "dedup_key",
        "requested_by",
        "queued_at",
        "next_attempt_at",
        "sent_at",
        "message_id",
    )
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_retry_permission(self, request):
        # Whoever may work invoices may send their e-mails again.
        return request.user.has_perm("billing.change_invoice")

    @admin.display(description="Invoice", ordering="invoice__number")
    def invoice_link(self, delivery):
        if delivery.invoice_id is None:
            return "–"
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:billing_invoice_change", args=[delivery.invoice_id]), delivery.invoice
        )

    @admin.display(description="Account", ordering="invoice__account__name")
    def account_shown(self, delivery):
        return delivery.invoice.account if delivery.invoice_id else delivery.account

    @admin.display(description="Recipients")
    def to(self, delivery):
        return _recipients(delivery)

    @admin.display(description="Recipients")
    def to_short(self, delivery):
        return truncated(_recipients(delivery), 26)

    @admin.display(description="Last error")
    def error_short(self, delivery):
        return truncated(delivery.last_error, 24) if delivery.last_error else "–"

    @admin.action(description="Retry failed deliveries", permissions=["retry"])
    def retry_action(self, request, queryset):
        run_action(
            self,
            request,
            queryset.filter(status=EmailDelivery.Status.FAILED),
            lambda delivery, actor: email_retry(delivery=delivery, actor=actor),
            "{count} delivery(ies) queued again.",
        )
