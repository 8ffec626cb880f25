"""Admin for invoices, credit notes and billing runs.

Invoices are written by the billing run only: staff read them, hold or release drafts, finalize, void,
and follow every line to the events it billed. Invoices and credit notes are read-only here (their pages
offer no Save: every change is an action that calls a service), in the services and, once issued, in the
database.
"""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from billing.admin.documents import DocumentAdminMixin
from billing.admin.emails import EmailDeliveryInline, InvoiceEmailsAdminMixin
from billing.admin.payments import InvoicePaymentsMixin
from billing.forms_credit import CreditForm, VoidCreditNoteForm
from billing.models import BillingRun, BillingRunItem, CreditNote, CreditNoteLine, Invoice, InvoiceLine
from billing.services.credit_notes import (
    PERM_VOID_CREDIT_NOTE,
    credit_note_issue,
    credit_note_void,
    credit_note_voidable,
)
from billing.services.invoices import (
    PERM_VOID_ISSUED,
    PERM_WRITE_OFF,
    invoice_finalize,
    invoice_hold,
    invoice_mark_uncollectible,
    invoice_release,
    invoice_void,
)
from billing.tasks import period_close_task
from common.admin_utils import (
    ServiceAdmin,
    format_datetime,
    money_column,
    quantity_column,
    run_action,
    truncated,
)
from common.errors import BillingError
from common.money import format_money
from common.periods import Period

PERM_ADD_CREDIT_NOTE = "billing.add_creditnote"
ERR_PREVIEW_CHANGED = "The credit's figures are as shown now: check them, then issue the credit note."


def _money(amount, currency) -> str:
    return format_money(amount, currency)


def account_documents_links(account) -> str:
    """The account's page, then its invoices and credit notes (filtered lists)."""
    query = urlencode({"account__id__exact": account.pk})
    return format_html(
        '<a href="{}">{}</a> · <a href="{}">all its invoices</a> · <a href="{}">its credit notes</a>',
        reverse("admin:accounts_account_change", args=[account.pk]),
        account,
        reverse("admin:billing_invoice_changelist") + "?" + query,
        reverse("admin:billing_creditnote_changelist") + "?" + query,
    )


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    extra = 0
    can_delete = False
    fields = (
        "position",
        "kind",
        "description",
        "span",
        "quantity_shown",
        "included_shown",
        "billable_shown",
        "amount_shown",
        "events",
    )
    readonly_fields = fields

    quantity_shown = quantity_column("quantity")
    included_shown = quantity_column("included")
    billable_shown = quantity_column("billable")
    amount_shown = money_column("amount", currency_field="invoice__currency")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("invoice")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Covers")
    def span(self, line):
        invoice = line.invoice
        if (line.period_start, line.period_end) == (invoice.period_start, invoice.period_end):
            return "the whole period"
        return f"{format_datetime(line.period_start)} – {format_datetime(line.period_end)}"

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


def _snapshot_rows(snapshot: dict) -> list[tuple[str, str]]:
    account = snapshot.get("account", {})
    seller = snapshot.get("seller", {})
    tenants, partners = snapshot.get("tenants", {}), snapshot.get("partners", {})

    def names(mapping: dict) -> str:
        shown = ", ".join(f"{name} ({key})" for key, name in list(mapping.items())[:5])
        return f"{len(mapping)}: {shown}" + (", …" if len(mapping) > 5 else "") if mapping else "none"

    return [
        ("Account", f"{account.get('name', '')} ({account.get('id', '')})"),
        ("Legal name", account.get("legal_name") or "–"),
        ("Billing e-mails", ", ".join(account.get("billing_emails", [])) or "–"),
        ("Tax id, country", f"{account.get('tax_id') or '–'}, {account.get('tax_country') or '–'}"),
        ("Time zone", account.get("timezone") or "–"),
        ("Plans", ", ".join(snapshot.get("plans", [])) or "–"),
        ("Metrics", ", ".join(snapshot.get("metrics", {}).values()) or "–"),
        ("Tenants", names(tenants)),
        ("Master partners", names(partners)),
        ("Seller", ", ".join(filter(None, [seller.get("name"), seller.get("tax_id"), seller.get("email")])) or "–"),
    ]


@admin.register(Invoice)
class InvoiceAdmin(DocumentAdminMixin, InvoiceEmailsAdminMixin, InvoicePaymentsMixin, ServiceAdmin):
    document_kind = "invoice"
    # Fits a 1366 px screen: the number links to the page; held drafts say so in their status.
    list_display = (
        "number_or_draft",
        "account_name",
        "month",
        "status_shown",
        "total_display",
        "due_display",
        "due_date",
        "pdf_status",
    )
    list_display_links = ("number_or_draft",)
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
    fieldsets = (
        (None, {"fields": ("number", "account_link", "status", "period", "billing_run")}),
        (
            "Amounts",
            {
                "fields": (
                    "subtotal_display",
                    "discount_display",
                    "tax_display",
                    "total_display",
                    "paid_display",
                    "credited_display",
                    "due_display",
                    "credit_notes_list",
                )
            },
        ),
        ("Review", {"fields": ("held", "hold_reason", "review_until", "anomaly_list")}),
        ("Dates", {"fields": ("created_at", "finalized_at", "due_at", "paid_at", "voided_at")}),
        ("PDF and e-mail", {"fields": ("pdf_link", "pdf_status", "pdf_rendered_at", "pdf_size", "outbox_events_list")}),
        ("Issued with (names as they were at finalization)", {"fields": ("snapshot_table",), "classes": ("collapse",)}),
    )

    subtotal_display = money_column("subtotal")
    discount_display = money_column("discount_total", "Discounts (included above)")
    total_display = money_column("total")
    paid_display = money_column("amount_paid", "Paid")
    credited_display = money_column("amount_credited", "Credited")
    due_display = money_column("amount_due", "Due")

    def get_fieldsets(self, request, obj=None):
        fieldsets = []
        for name, options in self.fieldsets:
            if name == "Review" and obj is not None and obj.is_locked:
                continue  # holds and anomalies matter while a draft is in review
            fields = options["fields"]
            if not request.user.has_perm("common.view_outboxevent"):
                fields = tuple("outbox_events_text" if f == "outbox_events_list" else f for f in fields)
            fieldsets.append((name, {**options, "fields": fields}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        # Written by the billing run; changed only through the actions.
        return [name for _, options in self.get_fieldsets(request, obj) for name in options["fields"]]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # The page of an invoice offers no Save (every field is read-only); the list's actions, which call
        # the services, need the model's change permission.
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Invoice", ordering="number")
    def number_or_draft(self, invoice):
        return invoice.number or f"Draft #{invoice.pk}"

    @admin.display(description="Account", ordering="account__name")
    def account_name(self, invoice):
        return truncated(invoice.account.name, 26)

    @admin.display(description="Month", ordering="period_start")
    def month(self, invoice):
        return f"{invoice.period_start:%Y-%m}"

    @admin.display(description="Status", ordering="status")
    def status_shown(self, invoice):
        return invoice.get_status_display() + (" (held)" if invoice.held else "")

    @admin.display(description="Due date", ordering="due_at")
    def due_date(self, invoice):
        return f"{invoice.due_at:%Y-%m-%d}" if invoice.due_at else None

    @admin.display(description="Account")
    def account_link(self, invoice):
        return account_documents_links(invoice.account)

    @admin.display(description="Period")
    def period(self, invoice):
        last_day = Period(invoice.period_start, invoice.period_end).last_day  # the end is exclusive
        return f"{invoice.period_start:%Y-%m} ({invoice.period_start:%Y-%m-%d} – {last_day:%Y-%m-%d}, UTC)"

    @admin.display(description="Tax")
    def tax_display(self, invoice):
        if invoice.tax_reverse_charge:
            return f"{_money(invoice.tax, invoice.currency)} (reverse charge)"
        return f"{_money(invoice.tax, invoice.currency)} at {invoice.tax_rate.normalize():f} %"

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
            '<div><a href="{}">{}</a> {}{}</div>',
            (
                (
                    reverse("admin:billing_creditnote_change", args=[n.pk]),
                    n.number,
                    _money(n.total, n.currency),
                    " (void)" if n.status == CreditNote.Status.VOID else "",
                )
                for n in notes
            ),
        )

    @admin.display(description="Snapshot")
    def snapshot_table(self, invoice):
        if not invoice.snapshot:
            return "none yet (taken at finalization)"
        rows = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", _snapshot_rows(invoice.snapshot))
        return format_html('<table class="snapshot" id="snapshot"><tbody>{}</tbody></table>', rows)

    # "Issue credit note" (Finance admin): the invoice's page has the button, the view previews and issues.

    change_form_template = "admin/billing/invoice_change_form.html"

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and request.user.has_perm(PERM_ADD_CREDIT_NOTE) and invoice_is_creditable(obj):
            context["issue_credit_note_url"] = reverse("admin:billing_invoice_credit", args=[obj.pk])
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/credit/", view(self.credit_note_issue_view), name="billing_invoice_credit"),
            *super().get_urls(),
        ]

    def credit_note_issue_view(self, request, object_id: str):
        """Two steps: *Preview* shows the credit's subtotal, tax, total and what is left to credit on the invoice;
        *Issue credit note* issues it (``credit_note_issue``) and opens the note. A refused credit stays on the
        form with the service's message where it was typed, and nothing is written."""
        if not request.user.has_perm(PERM_ADD_CREDIT_NOTE):
            raise PermissionDenied
        invoice = (
            Invoice.objects.select_related("account").filter(pk=object_id).first() if object_id.isdigit() else None
        )
        if invoice is None:
            raise Http404
        form = CreditForm(request.POST if request.method == "POST" else None, invoice=invoice)
        preview = None
        if request.method == "POST":
            preview = form.preview()
            # Issued only as previewed: figures that changed meanwhile (another credit, a payment) are shown again.
            confirmed = preview is not None and request.POST.get("previewed_total") == str(preview.total)
            if "_issue" in request.POST and preview is not None and not confirmed:
                self.message_user(request, ERR_PREVIEW_CHANGED, messages.WARNING)
            elif "_issue" in request.POST and confirmed:
                try:
                    note = credit_note_issue(
                        invoice=invoice,
                        lines=form.credit_lines(),
                        reason=form.cleaned_data["reason"],
                        excess_to=form.cleaned_data["excess_to"],
                        actor=request.user,
                    )
                except BillingError as exc:
                    form.add_service_error(exc)
                    preview = None
                else:
                    self.message_user(request, self._issued_message(note), messages.SUCCESS)
                    return HttpResponseRedirect(reverse("admin:billing_creditnote_change", args=[note.pk]))
        currency = invoice.currency
        return TemplateResponse(
            request,
            "admin/billing/credit_note_issue.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": f"Issue a credit note on {invoice.number}",
                "invoice": invoice,
                "form": form,
                "preview": None
                if preview is None
                else {
                    "subtotal": format_money(preview.subtotal, currency),
                    "tax": format_money(preview.tax, currency),
                    "total": format_money(preview.total, currency),
                    "left_to_credit": format_money(preview.left_to_credit, currency),
                    "released": format_money(preview.released, currency) if preview.released else "",
                    "total_raw": str(preview.total),
                },
                "invoice_total": format_money(invoice.total, currency),
                "invoice_credited": format_money(invoice.amount_credited, currency),
                "invoice_due": format_money(invoice.amount_due, currency),
                "invoice_left": format_money(invoice.total - invoice.amount_credited, currency),
                "back_url": reverse("admin:billing_invoice_change", args=[invoice.pk]),
            },
        )

    @staticmethod
    def _issued_message(note: CreditNote) -> str:
        text = f"Issued {note.number}: {format_money(note.total, note.currency)} credited on {note.invoice.number}"
        if note.released:
            where = "refunded" if note.excess_to == "refund" else "added to the credit balance"
            text += f"; {format_money(note.released, note.currency)} already paid {where}"
        return text + "."

    def has_void_issued_permission(self, request):
        return request.user.has_perm(PERM_VOID_ISSUED)

    def has_write_off_permission(self, request):
        return request.user.has_perm(PERM_WRITE_OFF)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if "void_action" in actions:  # voids drafts too: one void action is enough
            actions.pop("void_draft_action", None)
        return actions

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


def invoice_is_creditable(invoice: Invoice) -> bool:
    """Issued (finalized or paid) with something left to credit."""
    return invoice.status in (Invoice.Status.FINALIZED, Invoice.Status.PAID) and invoice.amount_credited < invoice.total


class CreditNoteLineInline(admin.TabularInline):
    model = CreditNoteLine
    extra = 0
    can_delete = False
    fields = ("invoice_line", "description", "amount_shown")
    readonly_fields = fields

    amount_shown = money_column("amount", currency_field="credit_note__currency")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("credit_note", "invoice_line")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(CreditNote)
class CreditNoteAdmin(DocumentAdminMixin, ServiceAdmin):
    document_kind = "credit_note"
    actions = ("rerender_pdf_action",)
    list_display = ("number", "invoice", "account_name", "status", "total_display", "issued_at")
    list_display_links = ("number",)
    list_filter = ("status", "currency")
    search_fields = ("=number", "=invoice__number", "=account__public_id")
    list_select_related = ("invoice", "account")
    inlines = [CreditNoteLineInline]
    readonly_fields = (
        "number",
        "invoice",
        "account_link",
        "status",
        "reason",
        "subtotal_display",
        "tax_display",
        "total_display",
        "released_display",
        "excess_to",
        "issued_at",
        "created_by",
        "voided_at",
        "void_reason",
        "pdf_link",
        "pdf_status",
        "pdf_rendered_at",
        "pdf_size",
    )
    fields = readonly_fields

    subtotal_display = money_column("subtotal")
    tax_display = money_column("tax")
    total_display = money_column("total")
    released_display = money_column("released", "Released from payments")
    change_form_template = "admin/billing/creditnote_change_form.html"

    def has_add_permission(self, request):
        return False  # issued from a dispute or the invoice's "Issue credit note" (credit_note_issue)

    def get_fields(self, request, obj=None):
        fields = list(self.fields)
        if obj is not None and obj.status != CreditNote.Status.VOID:
            fields = [f for f in fields if f not in ("voided_at", "void_reason")]
        return fields

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and request.user.has_perm(PERM_VOID_CREDIT_NOTE) and credit_note_voidable(obj):
            context["void_credit_note_url"] = reverse("admin:billing_creditnote_void", args=[obj.pk])
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/void/", view(self.void_view), name="billing_creditnote_void"),
            *super().get_urls(),
        ]

    def void_view(self, request, object_id: str):
        """The note's "Void credit note" page (``billing.void_credit_note``): a reason, then ``credit_note_void``."""
        if not request.user.has_perm(PERM_VOID_CREDIT_NOTE):
            raise PermissionDenied
        note = (
            CreditNote.objects.select_related("invoice", "account").filter(pk=object_id).first()
            if object_id.isdigit()
            else None
        )
        if note is None:
            raise Http404
        form = VoidCreditNoteForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                credit_note_void(credit_note=note, reason=form.cleaned_data["reason"], actor=request.user)
            except BillingError as exc:
                form.add_service_error(exc)
            else:
                note.invoice.refresh_from_db()
                self.message_user(
                    request,
                    f"Voided {note.number}: {note.invoice.number} owes "
                    f"{format_money(note.invoice.amount_due, note.currency)} again.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:billing_creditnote_change", args=[note.pk]))
        return TemplateResponse(
            request,
            "admin/billing/credit_note_void.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": f"Void credit note {note.number}",
                "credit_note": note,
                "form": form,
                "voidable": credit_note_voidable(note),
                "total": format_money(note.total, note.currency),
                "amount_due": format_money(note.invoice.amount_due, note.currency),
                "amount_due_after": format_money(note.invoice.amount_due + note.total, note.currency),
                "back_url": reverse("admin:billing_creditnote_change", args=[note.pk]),
            },
        )

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request)  # issued: read-only; actions stay

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Account", ordering="account__name")
    def account_name(self, note):
        return truncated(note.account.name, 26)

    @admin.display(description="Account")
    def account_link(self, note):
        return account_documents_links(note.account)


class BillingRunItemInline(admin.TabularInline):
    model = BillingRunItem
    verbose_name_plural = "Accounts failed, pending or flagged for review (the others were invoiced)"
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
        "accounts_in_book",
        "not_billed",
        "totals",
        "started_at",
        "finished_at",
    )
    fields = readonly_fields
    inlines = [BillingRunItemInline]
    actions = ("resume_action",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # A run's page is a report: nothing on it is edited (the list's Resume action needs the permission).
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Accounts done / total")
    def progress(self, run):
        return run.progress

    @admin.display(description="Accounts on the books not in this run")
    def not_billed(self, run):
        if run.accounts_in_book is None:
            return "– (a run of chosen accounts)"
        if not run.not_in_run:
            return "none: every account on the books is in this run"
        return format_html_join(
            mark_safe("<br>"),
            "{}: {} ({})",
            (
                (group["count"], group["reason"], ", ".join(group["accounts"]) + (" …" if more else ""))
                for group in run.not_in_run
                for more in [group["count"] > len(group["accounts"])]
            ),
        )

    @admin.display(description="Invoiced")
    def totals(self, run):
        return (
            ", ".join(format_money(Decimal(amount), currency) for currency, amount in sorted(run.amount_total.items()))
            or "–"
        )

    @admin.action(description="Resume selected runs (bill accounts still pending or failed)", permissions=["change"])
    def resume_action(self, request, queryset):
        for run in queryset.filter(dry_run=False):
            period_close_task.delay(f"{run.month:%Y-%m}")
            self.message_user(request, f"{run}: resuming.", messages.SUCCESS)
