"""Reconciliation in the admin: the month's report (figures per currency and provider, and its issues), resolving
an issue, importing a bank statement and matching or ignoring its lines.

Billing staff see all of it; reconciling, resolving, importing and matching are Finance admin's
(``billing.change_reconciliationissue``, ``billing.add_payment``), checked here and again by the services.
Both lists are read-only: every change is a form that calls a service.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from accounts.models import Account
from billing.models import BankStatementLine, Invoice, ReconciliationIssue
from billing.services.bank_statements import (
    ERR_TOO_LARGE,
    MAX_STATEMENT_BYTES,
    bank_statement_import,
    bank_statement_line_ignore,
    bank_statement_line_match,
)
from billing.services.payments import PERM_RECORD
from billing.services.reconciliation import (
    PERM_RESOLVE,
    ReconciliationFigures,
    reconciliation_figures,
    reconciliation_issue_resolve,
    reconciliation_run,
)
from common import clock
from common.admin_utils import format_datetime, money_column, run_action, truncated
from common.errors import BillingError
from common.money import CURRENCY_CHOICES, DEFAULT_CURRENCY, format_money
from common.periods import month_containing, next_month, parse_month, previous_month

FORM_TEMPLATE = "admin/billing/reconciliation/form.html"
ERR_MONTH = "Expected a month as YYYY-MM, got “{value}”: showing this month."
ERR_ONE_LINE = "Choose one line to match at a time."
ERR_NO_INVOICE = "There is no invoice {number}."
ERR_NO_ACCOUNT = "There is no account {public_id}."
ERR_INVOICE_OR_ACCOUNT = "Give the invoice number or the account id, not both."


def _money(amount, currency: str) -> str:
    return format_money(amount, currency)


class ResolveForm(forms.Form):
    resolution = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="How the mismatch was settled (e.g. “payment recorded by hand, pay_000123”).",
    )


class StatementImportForm(forms.Form):
    file = forms.FileField(
        help_text="CSV with the columns date (YYYY-MM-DD), amount (1234.50), reference and optionally currency; "
        "a header row naming them may come first."
    )
    currency = forms.ChoiceField(
        choices=CURRENCY_CHOICES, initial=DEFAULT_CURRENCY, help_text="The currency of lines that name none."
    )

    def clean_file(self):
        file = self.cleaned_data["file"]
        if file.size > MAX_STATEMENT_BYTES:
            raise forms.ValidationError(ERR_TOO_LARGE.format(limit=MAX_STATEMENT_BYTES // (1024 * 1024)))
        return file


class StatementMatchForm(forms.Form):
    invoice_number = forms.CharField(
        required=False, max_length=32, help_text="The invoice the money pays (INV-2026-000123)."
    )
    account = forms.CharField(
        required=False,
        max_length=32,
        help_text="Or the account it came from (acc_000001): its open invoices are paid oldest first.",
    )
    note = forms.CharField(required=False, max_length=300, widget=forms.Textarea(attrs={"rows": 2, "cols": 60}))

    def clean(self):
        data = super().clean()
        number, public_id = data.get("invoice_number", "").strip(), data.get("account", "").strip()
        if number and public_id:
            raise forms.ValidationError(ERR_INVOICE_OR_ACCOUNT)
        data["invoice"] = data["account_obj"] = None
        if number:
            data["invoice"] = Invoice.objects.filter(number__iexact=number).first()
            if data["invoice"] is None:
                self.add_error("invoice_number", ERR_NO_INVOICE.format(number=number))
        elif public_id:
            data["account_obj"] = Account.objects.filter(public_id=public_id).first()
            if data["account_obj"] is None:
                self.add_error("account", ERR_NO_ACCOUNT.format(public_id=public_id))
        return data


class IgnoreForm(forms.Form):
    note = forms.CharField(
        max_length=300,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Why the line is no customer's payment (e.g. “interest credited by the bank”).",
    )


def _form_page(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    *,
    title: str,
    form: forms.Form,
    submit: str,
    intro: str = "",
    rows: list[str] | None = None,
    selected: list[Any] | None = None,
    action: str = "",
    multipart: bool = False,
) -> TemplateResponse:
    context = {
        **modeladmin.admin_site.each_context(request),
        "opts": modeladmin.model._meta,
        "title": title,
        "form": form,
        "submit": submit,
        "intro": intro,
        "rows": rows or [],
        "selected": selected or [],
        "action": action,
        "multipart": multipart,
        "changelist_url": reverse(
            f"admin:{modeladmin.model._meta.app_label}_{modeladmin.model._meta.model_name}_changelist"
        ),
    }
    return TemplateResponse(request, FORM_TEMPLATE, context)


@admin.register(ReconciliationIssue)
class ReconciliationIssueAdmin(admin.ModelAdmin):
    change_list_template = "admin/billing/reconciliation/issue_changelist.html"
    list_display = ("kind", "month_shown", "description_shown", "amount_shown", "status", "detected_at", "resolved")
    list_filter = ("status", "kind", "month")
    search_fields = ("=external_id", "=invoice__number", "=payment__public_id", "=account__public_id", "description")
    list_select_related = ("resolved_by",)
    actions = ("resolve_action",)
    fields = (
        "kind",
        "status",
        "month_shown",
        "description",
        "amount_shown",
        "account",
        "invoice",
        "payment",
        "external_id",
        "detected_at",
        "resolved_at",
        "resolved_by",
        "resolution",
        "key",
    )
    readonly_fields = fields

    amount_shown = money_column("amount", "Amount")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # No Save on an issue's page; resolving (the list's action and the report's links) needs the permission.
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Month", ordering="month")
    def month_shown(self, issue):
        return f"{issue.month:%Y-%m}"

    @admin.display(description="Description")
    def description_shown(self, issue):
        return truncated(issue.description, 70)

    @admin.display(description="Resolved")
    def resolved(self, issue):
        if issue.status != ReconciliationIssue.Status.RESOLVED:
            return "–"
        return f"{format_datetime(issue.resolved_at)} by {issue.resolved_by or 'the system'}"

    def get_urls(self):
        return [
            path("report/", self.admin_site.admin_view(self.report_view), name="billing_reconciliationissue_report"),
            path(
                "<int:issue_id>/resolve/",
                self.admin_site.admin_view(self.resolve_view),
                name="billing_reconciliationissue_resolve",
            ),
            *super().get_urls(),
        ]

    def _can_resolve(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERM_RESOLVE)

    def report_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        now = clock.now()
        text = request.GET.get("month") or request.POST.get("month") or ""
        period = month_containing(now)
        if text:
            try:
                period = parse_month(text)
            except ValueError:
                self.message_user(request, ERR_MONTH.format(value=text), messages.WARNING)
        if request.method == "POST":
            if not self._can_resolve(request):
                raise PermissionDenied
            try:
                summary = reconciliation_run(period=period, now=now, actor=request.user)
            except BillingError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"{period.label} reconciled: {summary.found} mismatch(es) found, {summary.new} new, "
                    f"{summary.closed} no longer found; {summary.open} open.",
                    messages.SUCCESS,
                )
            return HttpResponseRedirect(f"{request.path}?month={period.label}")
        figures = reconciliation_figures(period=period)
        issues = ReconciliationIssue.objects.filter(month=period.start.date()).select_related(
            "resolved_by", "invoice", "payment"
        )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Reconciliation of {period.label}",
            "month": period.label,
            "previous": previous_month(period).label,
            "next": next_month(period).label,
            "tables": _report_tables(figures),
            "issues": [self._issue_row(request, issue) for issue in issues],
            "open_count": sum(1 for i in issues if i.status == ReconciliationIssue.Status.OPEN),
            "can_reconcile": self._can_resolve(request),
            "can_import": request.user.has_perm(PERM_RECORD),
        }
        return TemplateResponse(request, "admin/billing/reconciliation/report.html", context)

    def _issue_row(self, request: HttpRequest, issue: ReconciliationIssue) -> dict[str, Any]:
        resolve_url = ""
        if issue.status == ReconciliationIssue.Status.OPEN and self._can_resolve(request):
            resolve_url = reverse("admin:billing_reconciliationissue_resolve", args=[issue.pk])
        return {
            "issue": issue,
            "amount": _money(issue.amount, issue.currency) if issue.amount is not None and issue.currency else "–",
            "detected": format_datetime(issue.detected_at),
            "resolved": self.resolved(issue),
            "resolve_url": resolve_url,
            "url": reverse("admin:billing_reconciliationissue_change", args=[issue.pk]),
        }

    def resolve_view(self, request: HttpRequest, issue_id: int) -> HttpResponse:
        if not self._can_resolve(request):
            raise PermissionDenied
        issue = ReconciliationIssue.objects.filter(pk=issue_id).first()
        if issue is None:
            raise Http404
        report = reverse("admin:billing_reconciliationissue_report") + f"?month={issue.month:%Y-%m}"
        form = ResolveForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                reconciliation_issue_resolve(
                    issue=issue, resolution=form.cleaned_data["resolution"], actor=request.user
                )
            except BillingError as exc:
                form.add_error("resolution", exc.message)
            else:
                self.message_user(request, f"Resolved: {issue.description}", messages.SUCCESS)
                return HttpResponseRedirect(report)
        return _form_page(
            self,
            request,
            title="Resolve a reconciliation issue",
            form=form,
            submit="Resolve",
            intro=issue.description,
        )

    @admin.action(description="Resolve selected issues…", permissions=["change"])
    def resolve_action(self, request, queryset):
        issues = list(queryset.filter(status=ReconciliationIssue.Status.OPEN))
        form = ResolveForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            resolution = form.cleaned_data["resolution"]
            run_action(
                self,
                request,
                issues,
                lambda issue, **kw: reconciliation_issue_resolve(issue=issue, resolution=resolution, **kw),
                "{count} issue(s) resolved.",
            )
            return None
        if not issues:
            self.message_user(request, "None of the selected issues is open.", messages.WARNING)
            return None
        return _form_page(
            self,
            request,
            title="Resolve reconciliation issues",
            form=form,
            submit="Resolve",
            rows=[issue.description for issue in issues],
            selected=[issue.pk for issue in issues],
            action="resolve_action",
        )


def _table(element_id: str, title: str, header: list[str], rows: list[list[Any]], empty: str) -> dict[str, Any]:
    return {"id": element_id, "title": title, "header": header, "rows": rows, "empty": empty}


def _report_tables(figures: ReconciliationFigures) -> list[dict[str, Any]]:
    return [
        _table(
            "invoices",
            "Invoices issued",
            ["Currency", "Invoices", "Total", "Paid", "Credited", "Due now", "Voided"],
            [
                [
                    f.currency,
                    f.count,
                    _money(f.total, f.currency),
                    _money(f.paid, f.currency),
                    _money(f.credited, f.currency),
                    _money(f.due, f.currency),
                    f.voided,
                ]
                for f in figures.invoices
            ],
            "No invoice was issued.",
        ),
        _table(
            "payments",
            "Payments received",
            ["Provider", "Currency", "Payments", "Amount"],
            [[f.provider_label, f.currency, f.count, _money(f.amount, f.currency)] for f in figures.payments],
            "No payment was received.",
        ),
        _table(
            "refunds",
            "Refunds",
            ["Currency", "Refunds", "Amount"],
            [[f.currency, f.count, _money(f.amount, f.currency)] for f in figures.refunds],
            "Nothing was refunded.",
        ),
        _table(
            "credit-notes",
            "Credit notes issued",
            ["Currency", "Credit notes", "Total"],
            [[f.currency, f.count, _money(f.amount, f.currency)] for f in figures.credit_notes],
            "No credit note was issued.",
        ),
        _table(
            "balance",
            "Credit balance",
            ["Currency", "Opening", "Received", "Applied to invoices", "Refunded", "Closing"],
            [
                [
                    m.currency,
                    _money(m.opening, m.currency),
                    _money(m.received, m.currency),
                    _money(m.applied, m.currency),
                    _money(m.refunded, m.currency),
                    _money(m.closing, m.currency),
                ]
                for m in figures.balance
            ],
            "No credit balance moved.",
        ),
        _table(
            "stripe",
            "Stripe: charges synced from Stripe against Stripe payments in the ledger",
            ["Currency", "Charges", "Charged", "Payments", "Recorded"],
            _stripe_rows(figures),
            "No Stripe charge or payment.",
        ),
        _table(
            "stripe-balance",
            "Stripe balance transactions",
            ["Currency", "Type", "Transactions", "Amount", "Fees", "Net"],
            [
                [
                    f.currency,
                    f.type,
                    f.count,
                    _money(f.amount, f.currency),
                    _money(f.fee, f.currency),
                    _money(f.net, f.currency),
                ]
                for f in figures.stripe_balance
            ],
            "No Stripe balance transaction.",
        ),
        _table(
            "statement-lines",
            "Bank statement lines",
            ["Currency", "Status", "Lines", "Amount"],
            [[f.currency, f.status_label, f.count, _money(f.amount, f.currency)] for f in figures.statement_lines],
            "No bank statement line is dated in the month.",
        ),
    ]


def _stripe_rows(figures: ReconciliationFigures) -> list[list[Any]]:
    charges = {f.currency: f for f in figures.stripe_charges}
    payments = {f.currency: f for f in figures.stripe_payments}
    rows = []
    for currency in sorted(set(charges) | set(payments)):
        charge, payment = charges.get(currency), payments.get(currency)
        rows.append(
            [
                currency,
                charge.count if charge else 0,
                _money(charge.amount if charge else 0, currency),
                payment.count if payment else 0,
                _money(payment.amount if payment else 0, currency),
            ]
        )
    return rows


@admin.register(BankStatementLine)
class BankStatementLineAdmin(admin.ModelAdmin):
    change_list_template = "admin/billing/reconciliation/statement_changelist.html"
    list_display = ("booked_on", "amount_shown", "reference_shown", "status", "payment", "note_shown", "staff_links")
    list_filter = ("status", "currency", "booked_on")
    search_fields = ("reference", "=payment__public_id")
    list_select_related = ("payment",)
    actions = ("match_action", "ignore_action")
    fields = (
        "booked_on",
        "amount_shown",
        "reference",
        "status",
        "payment",
        "note",
        "imported_at",
        "imported_by",
        "line_key",
    )
    readonly_fields = fields

    amount_shown = money_column("amount", "Amount")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # lines change only through matching or ignoring (Finance admin)

    def has_delete_permission(self, request, obj=None):
        return False

    def has_record_permission(self, request):
        return request.user.has_perm(PERM_RECORD)

    @admin.display(description="Reference")
    def reference_shown(self, line):
        return truncated(line.reference, 40)

    @admin.display(description="Note")
    def note_shown(self, line):
        return truncated(line.note, 40)

    @admin.display(description="")
    def staff_links(self, line):
        if line.status != BankStatementLine.Status.UNMATCHED:
            return ""
        return format_html(
            '<a href="{}">Match…</a> · <a href="{}">Ignore…</a>',
            reverse("admin:billing_bankstatementline_match", args=[line.pk]),
            reverse("admin:billing_bankstatementline_ignore", args=[line.pk]),
        )

    def get_list_display(self, request):
        shown = super().get_list_display(request)
        return shown if self.has_record_permission(request) else tuple(f for f in shown if f != "staff_links")

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_import": self.has_record_permission(request)}
        return super().changelist_view(request, extra_context)

    def get_urls(self):
        return [
            path("import/", self.admin_site.admin_view(self.import_view), name="billing_bankstatementline_import"),
            path(
                "<int:line_id>/match/",
                self.admin_site.admin_view(self.match_view),
                name="billing_bankstatementline_match",
            ),
            path(
                "<int:line_id>/ignore/",
                self.admin_site.admin_view(self.ignore_view),
                name="billing_bankstatementline_ignore",
            ),
            *super().get_urls(),
        ]

    def _changelist(self) -> str:
        return reverse("admin:billing_bankstatementline_changelist")

    def _line(self, request: HttpRequest, line_id: int) -> BankStatementLine:
        if not self.has_record_permission(request):
            raise PermissionDenied
        line = BankStatementLine.objects.filter(pk=line_id).first()
        if line is None:
            raise Http404
        return line

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_record_permission(request):
            raise PermissionDenied
        form = StatementImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                outcome = bank_statement_import(
                    content=form.cleaned_data["file"].read(),
                    currency=form.cleaned_data["currency"],
                    actor=request.user,
                )
            except BillingError as exc:
                form.add_error("file" if exc.field == "file" else None, exc.message)
            else:
                self.message_user(request, outcome.message, messages.SUCCESS)
                return HttpResponseRedirect(self._changelist())
        return _form_page(
            self,
            request,
            title="Import a bank statement",
            form=form,
            submit="Import",
            intro="Each credit whose reference names an invoice number and whose amount is, to the cent, what is "
            "due on that invoice (or its total) is recorded as a bank transfer; the other lines wait here to be "
            "matched by hand. Importing the same statement again records nothing twice.",
            multipart=True,
        )

    def match_view(self, request: HttpRequest, line_id: int) -> HttpResponse:
        line = self._line(request, line_id)
        form = StatementMatchForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                line = bank_statement_line_match(
                    line=line,
                    invoice=data["invoice"],
                    account=data["account_obj"],
                    note=data["note"],
                    actor=request.user,
                )
            except BillingError as exc:
                form.add_error(None, exc.message)
            else:
                self.message_user(request, f"{line}: {line.note} ({line.payment})", messages.SUCCESS)
                return HttpResponseRedirect(self._changelist())
        candidates = Invoice.objects.filter(
            status=Invoice.Status.FINALIZED, currency=line.currency, amount_due=line.amount
        ).select_related("account")[:10]
        return _form_page(
            self,
            request,
            title="Match a bank statement line",
            form=form,
            submit="Record the payment",
            intro=f"{line.booked_on:%Y-%m-%d}, {_money(line.amount, line.currency)}, “{line.reference}”. {line.note}",
            rows=[f"{i.number}: {i.account}, {_money(i.amount_due, i.currency)} due" for i in candidates],
        )

    def ignore_view(self, request: HttpRequest, line_id: int) -> HttpResponse:
        line = self._line(request, line_id)
        form = IgnoreForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                bank_statement_line_ignore(line=line, note=form.cleaned_data["note"], actor=request.user)
            except BillingError as exc:
                form.add_error(None, exc.message)
            else:
                self.message_user(request, f"{line}: ignored.", messages.SUCCESS)
                return HttpResponseRedirect(self._changelist())
        return _form_page(
            self,
            request,
            title="Ignore a bank statement line",
            form=form,
            submit="Ignore the line",
            intro=f"{line.booked_on:%Y-%m-%d}, {_money(line.amount, line.currency)}, “{line.reference}”.",
        )

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not self.has_record_permission(request):
            actions.pop("match_action", None)
            actions.pop("ignore_action", None)
        return actions

    @admin.action(description="Match to invoice…")
    def match_action(self, request, queryset):
        lines = list(queryset[:2])
        if len(lines) != 1:
            self.message_user(request, ERR_ONE_LINE, messages.ERROR)
            return None
        return HttpResponseRedirect(reverse("admin:billing_bankstatementline_match", args=[lines[0].pk]))

    @admin.action(description="Ignore…")
    def ignore_action(self, request, queryset):
        lines = list(queryset.filter(status=BankStatementLine.Status.UNMATCHED))
        form = IgnoreForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            note = form.cleaned_data["note"]
            run_action(
                self,
                request,
                lines,
                lambda line, **kw: bank_statement_line_ignore(line=line, note=note, **kw),
                "{count} line(s) ignored.",
            )
            return None
        if not lines:
            self.message_user(request, "None of the selected lines is waiting for staff.", messages.WARNING)
            return None
        return _form_page(
            self,
            request,
            title="Ignore bank statement lines",
            form=form,
            submit="Ignore the lines",
            rows=[str(line) for line in lines],
            selected=[line.pk for line in lines],
            action="ignore_action",
        )
