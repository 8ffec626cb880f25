"""Payments in the admin: the ledger's list and read-only pages, and the three things staff do by hand.

- **Record payment** (``billing.add_payment``): a bank transfer, check or other payment of an account, from
  the account's page or an invoice's (which it then settles first); ``payment_record`` applies it.
- **Refund balance** (``billing.refund_payment``): give back part or all of an account's credit balance,
  from the account's page (``account_balance_refund``).
- **Reverse payment** (``billing.refund_payment``): undo a wrongly recorded payment, from its page
  (``payment_reverse``); the invoices it paid owe that money again.

Payments, their allocations and refunds are append-only: no page here edits or deletes one, and the
generic "Add payment" form does not exist. The pages above are forms that call the services; a
``BillingError`` is shown on the form, where the offending value was typed, and nothing is written.
Users without the permission see no button and get 403 for the page.
"""

from __future__ import annotations

from decimal import Decimal

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Case, DecimalField, F, OuterRef, Subquery, Sum, Value, When
from django.db.models.functions import Coalesce
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from accounts.models import Account
from billing.admin.subscriptions import BillingAccountAdmin
from billing.forms_payments import RecordPaymentForm, RefundBalanceForm, ReversePaymentForm
from billing.models import Invoice, Payment, PaymentAllocation, Refund
from billing.selectors import credit_balance, open_invoices, payment_unapplied
from billing.services.payments import PERM_RECORD, PERM_REFUND, account_balance_refund, payment_record, payment_reverse
from common import clock
from common.admin_utils import ServiceAdmin, format_datetime, money_column, truncated
from common.errors import BillingError
from common.money import AMOUNT_DECIMAL_PLACES, AMOUNT_MAX_DIGITS, format_money, minor_unit, round_money

ZERO = Decimal(0)
MONEY = DecimalField(max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES)


def _invoice_link(invoice: Invoice) -> str:
    return format_html(
        '<a href="{}">{}</a>',
        reverse("admin:billing_invoice_change", args=[invoice.pk]),
        invoice.number or f"Draft #{invoice.pk}",
    )


def _payment_link(payment: Payment) -> str:
    return format_html('<a href="{}">{}</a>', reverse("admin:billing_payment_change", args=[payment.pk]), payment)


def _account_link(account: Account) -> str:
    return format_html('<a href="{}">{}</a>', reverse("admin:accounts_account_change", args=[account.pk]), account)


def record_payment_url(account: Account, invoice: Invoice | None = None) -> str:
    url = reverse("admin:billing_payment_record", args=[account.pk])
    return f"{url}?invoice={invoice.pk}" if invoice is not None else url


def invoice_is_payable(invoice: Invoice) -> bool:
    return invoice.status == Invoice.Status.FINALIZED and invoice.amount_due > 0


class _ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    @admin.display(description="At")
    def at(self, row):
        return format_datetime(row.created_at)

    @admin.display(description="By")
    def by(self, row):
        return row.created_by or "system"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class PaymentAllocationInline(_ReadOnlyInline):
    """On a payment's page: where its money went (and came back from)."""

    model = PaymentAllocation
    fk_name = "payment"
    verbose_name_plural = "Applied to invoices (positive) and taken back off them (negative)"
    fields = ("invoice_link", "kind", "amount_shown", "at", "by", "reason")
    readonly_fields = fields

    amount_shown = money_column("amount", "Amount")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("invoice", "created_by")

    @admin.display(description="Invoice")
    def invoice_link(self, allocation):
        return _invoice_link(allocation.invoice)


class InvoiceAllocationInline(_ReadOnlyInline):
    """On an invoice's page: the payments that paid it, and money taken back off it."""

    model = PaymentAllocation
    fk_name = "invoice"
    verbose_name_plural = "Payments (how it was paid)"
    fields = ("payment_link", "method", "kind", "amount_shown", "at", "by", "reason")
    readonly_fields = fields

    amount_shown = money_column("amount", "Amount")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("payment", "created_by")

    @admin.display(description="Payment")
    def payment_link(self, allocation):
        return _payment_link(allocation.payment)

    @admin.display(description="Method")
    def method(self, allocation):
        payment = allocation.payment
        shown = payment.get_provider_display()
        return f"{shown}, {payment.reference}" if payment.reference else shown


class RefundInline(_ReadOnlyInline):
    model = Refund
    fields = ("public_id", "amount_shown", "status", "reason", "refunded_at", "by")
    readonly_fields = fields

    amount_shown = money_column("amount", "Amount")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by")


@admin.register(Payment)
class PaymentAdmin(ServiceAdmin):
    list_display = (
        "public_id",
        "account_name",
        "provider",
        "reference_shown",
        "amount_display",
        "status",
        "received_at",
        "unapplied_display",
        "payment_method",
    )
    list_filter = ("status", "provider", "currency")
    search_fields = ("=public_id", "reference", "=account__public_id", "account__name")
    list_select_related = ("account",)
    date_hierarchy = "received_at"
    inlines = [PaymentAllocationInline, RefundInline]
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "public_id",
                    "account_link",
                    "status",
                    "provider",
                    "payment_method",
                    "reference",
                    "amount_display",
                    "unapplied_display",
                    "received_at",
                )
            },
        ),
        ("Recorded", {"fields": ("recorded_by", "note", "created_at", "external_id")}),
        ("Automatic collection", {"fields": ("collected_invoice", "attempt", "failure_code", "failure_message")}),
        ("Reversal", {"fields": ("reversed_at", "reversal_reason")}),
        ("Dispute", {"fields": ("disputed_display", "dispute_reference")}),
    )

    amount_display = money_column("amount", "Amount")
    disputed_display = money_column("disputed_amount", "Disputed")

    def get_queryset(self, request):
        # The unapplied part of each listed payment in the page's one query: succeeded payments less their
        # allocations and succeeded refunds (billing.selectors.payment_unapplied, row by row).
        allocated = (
            PaymentAllocation.objects.filter(payment=OuterRef("pk"))
            .values("payment")
            .annotate(total=Sum("amount"))
            .values("total")
        )
        refunded = (
            Refund.objects.filter(payment=OuterRef("pk"), status=Refund.Status.SUCCEEDED)
            .values("payment")
            .annotate(total=Sum("amount"))
            .values("total")
        )
        unapplied = Case(
            When(
                status=Payment.Status.SUCCEEDED,
                then=F("amount")
                - Coalesce(Subquery(allocated, output_field=MONEY), Value(ZERO), output_field=MONEY)
                - Coalesce(Subquery(refunded, output_field=MONEY), Value(ZERO), output_field=MONEY),
            ),
            default=Value(ZERO),
            output_field=MONEY,
        )
        return super().get_queryset(request).annotate(_unapplied=unapplied)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return self.fieldsets
        shown = {
            "Automatic collection": obj.invoice_id is not None or bool(obj.failure_code),
            "Reversal": obj.status == Payment.Status.REVERSED,
            "Dispute": obj.disputed_amount > 0,
        }
        return [(name, options) for name, options in self.fieldsets if shown.get(name, True)]

    def get_readonly_fields(self, request, obj=None):
        # Append-only: nothing on a payment's page is edited.
        return [name for _, options in self.get_fieldsets(request, obj) for name in options["fields"]]

    def has_add_permission(self, request):
        return False  # recorded through "Record payment" (payment_record), or by Stripe's webhooks

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Account", ordering="account__name")
    def account_name(self, payment):
        return truncated(payment.account.name, 26)

    @admin.display(description="Reference", ordering="reference")
    def reference_shown(self, payment):
        return truncated(payment.reference, 24) if payment.reference else "–"

    @admin.display(description="Unapplied", ordering="_unapplied")
    def unapplied_display(self, payment):
        amount = getattr(payment, "_unapplied", None)
        if amount is None:
            amount = payment_unapplied(payment)
        return format_money(amount, payment.currency)

    @admin.display(description="Account")
    def account_link(self, payment):
        return _account_link(payment.account)

    @admin.display(description="Collected for invoice")
    def collected_invoice(self, payment):
        return _invoice_link(payment.invoice) if payment.invoice_id else "–"

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if (
            obj is not None
            and request.user.has_perm(PERM_REFUND)
            and obj.status == Payment.Status.SUCCEEDED
            and not obj.refunds.exists()
        ):
            context["reverse_payment_url"] = reverse("admin:billing_payment_reverse", args=[obj.pk])
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    # The pages that record, refund and reverse.

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("record/<int:account_id>/", view(self.record_view), name="billing_payment_record"),
            path("refund/<int:account_id>/", view(self.refund_balance_view), name="billing_payment_refund_balance"),
            path("<path:object_id>/reverse/", view(self.reverse_view), name="billing_payment_reverse"),
            *super().get_urls(),
        ]

    def _page(self, request, template, **context):
        return TemplateResponse(
            request,
            f"admin/billing/payment/{template}",
            {**self.admin_site.each_context(request), "opts": self.model._meta, **context},
        )

    @staticmethod
    def _require(request, permission: str) -> None:
        if not request.user.has_perm(permission):
            raise PermissionDenied

    def record_view(self, request, account_id: int):
        self._require(request, PERM_RECORD)
        account = get_object_or_404(Account, pk=account_id)
        invoices = open_invoices(account)
        open_count, amount_due = len(invoices), sum((i.amount_due for i in invoices), ZERO)
        chosen = next((i for i in invoices if str(i.pk) == request.GET.get("invoice")), None)
        if request.method == "POST":
            # An amount typed for an invoice that is no longer open (paid meanwhile, say) is not dropped
            # for the default order: the invoice stays on the form, and the service says why it is refused.
            typed = {
                key.removeprefix("invoice_")
                for key, value in request.POST.items()
                if key.startswith("invoice_") and value.strip()
            }
            # ASCII digits: str.isdigit() also takes "²", which is no primary key.
            stale = [pk for pk in typed - {str(i.pk) for i in invoices} if pk.isascii() and pk.isdigit()]
            invoices += list(Invoice.objects.filter(pk__in=stale).order_by("due_at", "pk"))
        now = clock.now()
        initial = {"received_at": now.date()}
        if chosen is not None:
            due = round_money(chosen.amount_due, account.currency)
            initial |= {"amount": due, RecordPaymentForm.invoice_field(chosen): due}
        data = request.POST if request.method == "POST" else None
        form = RecordPaymentForm(data, initial=initial, account=account, invoices=invoices, today=now.date())
        if request.method == "POST" and form.is_valid():
            try:
                payment = payment_record(
                    account=account,
                    amount=form.cleaned_data["amount"],
                    provider=form.cleaned_data["provider"],
                    received_at=form.received_moment(now),
                    reference=form.cleaned_data["reference"],
                    note=form.cleaned_data["note"],
                    allocations=form.allocations(),
                    actor=request.user,
                    now=now,
                )
            except BillingError as exc:
                form.add_service_error(exc)
            else:
                self.message_user(request, self._recorded_message(payment), messages.SUCCESS)
                if chosen is not None:
                    return HttpResponseRedirect(reverse("admin:billing_invoice_change", args=[chosen.pk]))
                return HttpResponseRedirect(reverse("admin:billing_payment_change", args=[payment.pk]))
        places = minor_unit(account.currency)
        return self._page(
            request,
            "record.html",
            title=f"Record a payment from {account.name}",
            account=account,
            form=form,
            rows=[
                {
                    "invoice": invoice,
                    "field": field,
                    "due": format_money(invoice.amount_due, invoice.currency),
                    "total": format_money(invoice.total, invoice.currency),
                    "due_minor": int(round_money(invoice.amount_due, invoice.currency).scaleb(places)),
                    "fill_order": 0 if invoice == chosen else position + 1,
                    "chosen": invoice == chosen,
                }
                for position, (invoice, field) in enumerate(form.invoice_rows())
            ],
            places=places,
            open_count=open_count,
            amount_due=format_money(amount_due, account.currency),
            balance=format_money(credit_balance(account), account.currency),
            back_url=reverse("admin:billing_invoice_change", args=[chosen.pk])
            if chosen
            else reverse("admin:accounts_account_change", args=[account.pk]),
        )

    @staticmethod
    def _recorded_message(payment: Payment) -> str:
        currency = payment.currency
        applied = [
            f"{format_money(a.amount, currency)} to {a.invoice.number}"
            for a in payment.allocations.select_related("invoice").order_by("pk")
        ]
        left = payment_unapplied(payment)
        parts = [f"Recorded {payment}: {format_money(payment.amount, currency)} ({payment.get_provider_display()})"]
        parts.append("applied " + ", ".join(applied) if applied else "applied to no invoice")
        if left > 0:
            parts.append(f"{format_money(left, currency)} added to the credit balance")
        return "; ".join(parts) + "."

    def refund_balance_view(self, request, account_id: int):
        self._require(request, PERM_REFUND)
        account = get_object_or_404(Account, pk=account_id)
        form = RefundBalanceForm(request.POST if request.method == "POST" else None, account=account)
        if request.method == "POST" and form.is_valid():
            try:
                refunds = account_balance_refund(
                    account=account,
                    amount=form.cleaned_data["amount"],
                    reason=form.cleaned_data["reason"],
                    actor=request.user,
                )
            except BillingError as exc:
                form.add_service_error(exc)
            else:
                total = sum((r.amount for r in refunds), ZERO)
                ids = ", ".join(r.public_id for r in refunds)
                self.message_user(
                    request,
                    f"Refunded {format_money(total, account.currency)} of the credit balance ({ids}); the balance "
                    f"is now {format_money(credit_balance(account), account.currency)}.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:accounts_account_change", args=[account.pk]))
        return self._page(
            request,
            "refund_balance.html",
            title=f"Refund the credit balance of {account.name}",
            account=account,
            form=form,
            balance=format_money(credit_balance(account), account.currency),
            back_url=reverse("admin:accounts_account_change", args=[account.pk]),
        )

    def reverse_view(self, request, object_id: str):
        self._require(request, PERM_REFUND)
        payment = self.get_object(request, object_id)
        if payment is None:
            raise Http404
        form = ReversePaymentForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                payment_reverse(payment=payment, reason=form.cleaned_data["reason"], actor=request.user)
            except BillingError as exc:
                form.add_service_error(exc)
            else:
                taken_back = [
                    f"{a.invoice.number} owes {format_money(-a.amount, a.currency)} again"
                    for a in payment.allocations.filter(kind=PaymentAllocation.Kind.REVERSAL).select_related("invoice")
                ]
                self.message_user(
                    request,
                    f"Reversed {payment}" + (": " + ", ".join(taken_back) if taken_back else "") + ".",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:billing_payment_change", args=[payment.pk]))
        return self._page(
            request,
            "reverse.html",
            title=f"Reverse payment {payment}",
            payment=payment,
            form=form,
            amount=format_money(payment.amount, payment.currency),
            allocations=[
                (a.invoice, format_money(a.amount, a.currency), a.get_kind_display())
                for a in payment.allocations.select_related("invoice")
            ],
            back_url=reverse("admin:billing_payment_change", args=[payment.pk]),
        )


class InvoicePaymentsMixin:
    """For ``InvoiceAdmin``: the payments that paid the invoice, and its "Record payment" button."""

    change_form_template = "admin/billing/payment/invoice_change_form.html"

    def get_inlines(self, request, obj):
        inlines = list(super().get_inlines(request, obj))
        if obj is not None and obj.status != Invoice.Status.DRAFT:
            inlines.append(InvoiceAllocationInline)
        return inlines

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and request.user.has_perm(PERM_RECORD) and invoice_is_payable(obj):
            context["record_payment_url"] = record_payment_url(obj.account, obj)
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def get_actions(self, request):
        return _with_record_action(self, request, super().get_actions(request))

    @admin.action(description="Record payment…")
    def record_payment_action(self, request, queryset):
        invoices = list(queryset.select_related("account")[:2])
        if len(invoices) != 1 or not invoice_is_payable(invoices[0]):
            self.message_user(request, ERR_ONE_PAYABLE_INVOICE, messages.ERROR)
            return None
        return HttpResponseRedirect(record_payment_url(invoices[0].account, invoices[0]))


ERR_ONE_PAYABLE_INVOICE = "Select one finalized invoice with an amount due to record a payment for it."
ERR_ONE_ACCOUNT = "Select one account to record a payment from it."


def _with_record_action(model_admin, request, actions):
    """The changelist's "Record payment…" action, for those who may record payments (Finance admin)."""
    if request.user.has_perm(PERM_RECORD):
        actions["record_payment_action"] = model_admin.get_action("record_payment_action")
    return actions


class PaymentsAccountAdmin(BillingAccountAdmin):
    """The account page with what payments add: its credit balance and amount due, its payments in the
    "Related" line, and the "Record payment" and "Refund balance" buttons for Finance admin."""

    change_form_template = "admin/billing/payment/account_change_form.html"
    RELATED = (
        *BillingAccountAdmin.RELATED[:2],  # invoices, credit notes
        ("Payments", "billing_payment", "payments"),
        *BillingAccountAdmin.RELATED[2:],
    )
    PAYMENT_FIELDS = ("amount_due_shown", "credit_balance_shown")

    def get_fieldsets(self, request, obj=None):
        fieldsets = list(super().get_fieldsets(request, obj))
        if obj is None:
            return fieldsets
        names = [name for name, _ in fieldsets]
        at = names.index("Billing") + 1 if "Billing" in names else len(fieldsets)
        fieldsets.insert(at, ("Payments", {"fields": self.PAYMENT_FIELDS}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, *self.PAYMENT_FIELDS] if obj is not None else fields

    @admin.display(description="Amount due")
    def amount_due_shown(self, account):
        invoices = open_invoices(account)
        total = format_money(sum((i.amount_due for i in invoices), ZERO), account.currency)
        if not invoices:
            return f"{total} (no open invoices)"
        return f"{total} on {len(invoices)} open invoice{'s' if len(invoices) != 1 else ''}"

    @admin.display(description="Credit balance")
    def credit_balance_shown(self, account):
        return format_html(
            '<span id="credit-balance">{}</span> (unapplied payments, applied to the next invoices)',
            format_money(credit_balance(account), account.currency),
        )

    def get_actions(self, request):
        return _with_record_action(self, request, super().get_actions(request))

    @admin.action(description="Record payment…")
    def record_payment_action(self, request, queryset):
        accounts = list(queryset[:2])
        if len(accounts) != 1:
            self.message_user(request, ERR_ONE_ACCOUNT, messages.ERROR)
            return None
        return HttpResponseRedirect(record_payment_url(accounts[0]))

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            if request.user.has_perm(PERM_RECORD):
                context["record_payment_url"] = record_payment_url(obj)
            if request.user.has_perm(PERM_REFUND) and credit_balance(obj) > 0:
                context["refund_balance_url"] = reverse("admin:billing_payment_refund_balance", args=[obj.pk])
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)


admin.site.unregister(Account)
admin.site.register(Account, PaymentsAccountAdmin)
