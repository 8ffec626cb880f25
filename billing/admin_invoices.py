"""Admin for invoices, credit notes and billing runs.

Invoices are written by the billing run only: staff read them, hold or release drafts, finalize, void,
and follow every line to the events it billed. Finalized invoices are read-only here, in the services
and in the database.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from billing.admin_documents import DocumentAdminMixin
from billing.admin_emails import EmailDeliveryInline, InvoiceEmailsAdminMixin
from billing.models import BillingRun, BillingRunItem, CreditNote, CreditNoteLine, Invoice, InvoiceLine
from billing.services.invoices import (
    PERM_VOID_ISSUED,
    PERM_WRITE_OFF,
    invoice_finalize,
    invoice_hold,
    invoice_mark_uncollectible,
    invoice_release,
    invoice_void,
)
from common.admin_utils import ServiceAdmin, run_action
from common.money import format_money


def _money(amount, currency) -> str:
    return format_money(amount, currency)


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    extra = 0
    can_delete = False
    fields = ("position", "kind", "description", "span", "quantity", "included", "billable", "amount", "events")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Covers")
    def span(self, line):
        return f"{line.period_start:%Y-%m-%d %H:%M} – {line.period_end:%Y-%m-%d %H:%M} UTC"

    @admin.display(description="Billed events")
    def events(self, line):
        if line.metric_id is None:
            return "–"
        query = {
            "account__id__exact": line.invoice.account_id,
            "metric__id__exact": line.metric_id,
            "billing_month": line.invoice.period_start.date().isoformat(),
            "is_late__exact": "1" if line.kind == InvoiceLine.Kind.LATE_USAGE else "0",
        }
        if line.kind != InvoiceLine.Kind.LATE_USAGE:
            query["timestamp__gte"] = line.period_start.strftime("%Y-%m-%d %H:%M:%S")
            query["timestamp__lt"] = line.period_end.strftime("%Y-%m-%d %H:%M:%S")
        url = reverse("admin:usage_usageevent_changelist") + "?" + urlencode(query)
        ids = ", ".join(line.transaction_ids[:5]) + (" …" if len(line.transaction_ids) > 5 else "")
        return format_html('<a href="{}">list events</a>{}', url, f" ({ids})" if ids else "")


@admin.register(Invoice)
class InvoiceAdmin(DocumentAdminMixin, InvoiceEmailsAdminMixin, ServiceAdmin):
    document_kind = "invoice"
    list_display = (
        "__str__",
        "account",
        "month",
        "status",
        "total_display",
        "due_display",
        "held",
        "finalized_at",
        "pdf_status",
    )
    list_filter = ("status", "held", "period_start", "currency")
    search_fields = ("=number", "=account__public_id", "account__name")
    list_select_related = ("account", "document")
    date_hierarchy = "period_start"
    inlines = [InvoiceLineInline, EmailDeliveryInline]
    actions = (
        "finalize_action",
        "hold_action",
        "release_action",
        "void_draft_action",
        "void_action",
        "uncollectible_action",
        "rerender_pdf_action",
        "resend_email_action",
    )
    fields = (
        "number",
        "account",
        "status",
        "pdf_link",
        "pdf_status",
        "pdf_rendered_at",
        "pdf_size",
        "period_start",
        "period_end",
        "currency",
        "subtotal",
        "discount_total",
        "tax_rate",
        "tax_reverse_charge",
        "tax",
        "total",
        "amount_paid",
        "amount_credited",
        "amount_due",
        "held",
        "hold_reason",
        "review_until",
        "anomaly_list",
        "credit_notes_list",
        "billing_run",
        "created_at",
        "finalized_at",
        "due_at",
        "paid_at",
        "voided_at",
        "snapshot",
    )
    fields += ("outbox_events_list",)

    def get_readonly_fields(self, request, obj=None):
        return self.fields  # written by the billing run; changed only through the actions

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Month", ordering="period_start")
    def month(self, invoice):
        return f"{invoice.period_start:%Y-%m}"

    @admin.display(description="Total", ordering="total")
    def total_display(self, invoice):
        return _money(invoice.total, invoice.currency)

    @admin.display(description="Due", ordering="amount_due")
    def due_display(self, invoice):
        return _money(invoice.amount_due, invoice.currency)

    @admin.display(description="Anomalies to review")
    def anomaly_list(self, invoice):
        if not invoice.anomalies:
            return "none"
        return format_html_join("", "<div>{}</div>", ((a,) for a in invoice.anomalies))

    @admin.display(description="Credit notes")
    def credit_notes_list(self, invoice):
        notes = list(invoice.credit_notes.all())
        if not notes:
            return "none"
        return format_html_join(
            "",
            '<div><a href="{}">{}</a> {}</div>',
            (
                (reverse("admin:billing_creditnote_change", args=[n.pk]), n.number, _money(n.total, n.currency))
                for n in notes
            ),
        )

    @admin.action(description="Finalize selected drafts now", permissions=["change"])
    def finalize_action(self, request, queryset):
        run_action(
            self,
            request,
            queryset,
            lambda inv, actor: invoice_finalize(invoice=inv, actor=actor),
            "{count} invoice(s) finalized.",
        )

    @admin.action(description="Hold selected drafts (no automatic finalization)", permissions=["change"])
    def hold_action(self, request, queryset):
        run_action(
            self,
            request,
            queryset,
            lambda inv, actor: invoice_hold(invoice=inv, reason=f"held by {request.user}", actor=actor),
            "{count} invoice(s) held.",
        )

    @admin.action(description="Release selected held drafts", permissions=["change"])
    def release_action(self, request, queryset):
        run_action(
            self,
            request,
            queryset,
            lambda inv, actor: invoice_release(invoice=inv, actor=actor),
            "{count} invoice(s) released.",
        )

    def has_void_issued_permission(self, request):
        return request.user.has_perm(PERM_VOID_ISSUED)

    def has_write_off_permission(self, request):
        return request.user.has_perm(PERM_WRITE_OFF)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if "void_action" in actions:  # voids drafts too: one void action is enough
            actions.pop("void_draft_action", None)
        return actions

    @admin.action(description="Void selected drafts", permissions=["change"])
    def void_draft_action(self, request, queryset):
        self.void_action(request, queryset)

    @admin.action(description="Void selected invoices (drafts or unpaid finalized)", permissions=["void_issued"])
    def void_action(self, request, queryset):
        run_action(
            self,
            request,
            queryset,
            lambda inv, actor: invoice_void(invoice=inv, reason=f"voided by {request.user}", actor=actor),
            "{count} invoice(s) voided.",
        )

    @admin.action(description="Write off selected unpaid invoices (uncollectible)", permissions=["write_off"])
    def uncollectible_action(self, request, queryset):
        run_action(
            self,
            request,
            queryset,
            lambda inv, actor: invoice_mark_uncollectible(invoice=inv, reason=f"by {request.user}", actor=actor),
            "{count} invoice(s) written off.",
        )


class CreditNoteLineInline(admin.TabularInline):
    model = CreditNoteLine
    extra = 0
    can_delete = False
    fields = ("invoice_line", "description", "amount")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(CreditNote)
class CreditNoteAdmin(DocumentAdminMixin, ServiceAdmin):
    document_kind = "credit_note"
    actions = ("rerender_pdf_action",)
    list_display = ("number", "invoice", "account", "status", "total", "currency", "issued_at")
    list_filter = ("status", "currency")
    search_fields = ("=number", "=invoice__number", "=account__public_id")
    list_select_related = ("invoice", "account")
    inlines = [CreditNoteLineInline]
    readonly_fields = (
        "number",
        "invoice",
        "account",
        "status",
        "currency",
        "reason",
        "subtotal",
        "tax",
        "total",
        "issued_at",
        "created_by",
        "pdf_link",
        "pdf_status",
        "pdf_rendered_at",
        "pdf_size",
    )
    fields = readonly_fields

    def has_add_permission(self, request):
        return False  # issued from a dispute or by the credit_note_issue service

    def has_delete_permission(self, request, obj=None):
        return False


class BillingRunItemInline(admin.TabularInline):
    model = BillingRunItem
    extra = 0
    can_delete = False
    fields = ("account", "status", "invoice", "total", "anomalies", "error", "attempts")
    readonly_fields = fields
    ordering = ("-status", "account_id")  # failed and pending first

    def has_add_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).exclude(status=BillingRunItem.Status.DONE, anomalies=[])


@admin.register(BillingRun)
class BillingRunAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "status",
        "progress",
        "accounts_failed",
        "invoices_created",
        "totals",
        "started_at",
        "finished_at",
    )
    list_filter = ("status", "dry_run")
    readonly_fields = (
        "month",
        "dry_run",
        "status",
        "trigger",
        "progress",
        "accounts_total",
        "accounts_done",
        "accounts_failed",
        "invoices_created",
        "totals",
        "started_at",
        "finished_at",
    )
    fields = readonly_fields
    inlines = [BillingRunItemInline]
    actions = ("resume_action",)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Accounts done / total")
    def progress(self, run):
        return run.progress

    @admin.display(description="Invoiced")
    def totals(self, run):
        return ", ".join(f"{amount} {currency}" for currency, amount in sorted(run.amount_total.items())) or "–"

    @admin.action(description="Resume selected runs (bill accounts still pending or failed)", permissions=["change"])
    def resume_action(self, request, queryset):
        from billing.tasks import period_close_task

        for run in queryset.filter(dry_run=False):
            period_close_task.delay(f"{run.month:%Y-%m}")
            self.message_user(request, f"{run}: resuming.", messages.SUCCESS)
