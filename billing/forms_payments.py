"""Staff forms of the payments ledger (the admin's "Record payment", "Refund balance" and "Reverse payment").

The forms only parse what staff typed; the rules (positive amounts, not more than is due, not more than the
payment or the credit balance, a reason) belong to ``billing.services.payments``, whose ``BillingError`` is
put back on the form by ``add_service_error``: on the field it names, or on the invoice's own amount box.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from django import forms

from billing.models import Invoice, Payment
from common.errors import BillingError
from common.money import AMOUNT_DECIMAL_PLACES, AMOUNT_MAX_DIGITS, minor_unit

ERR_FUTURE_DAY = "A payment cannot be received in the future: {day} is after today ({today}, UTC)."
# Payments staff record by hand; Stripe's arrive through its webhooks.
MANUAL_PROVIDERS = [
    (Payment.Provider.BANK_TRANSFER.value, Payment.Provider.BANK_TRANSFER.label),
    (Payment.Provider.CHECK.value, Payment.Provider.CHECK.label),
    (Payment.Provider.OTHER.value, Payment.Provider.OTHER.label),
]


def money_field(currency: str, **kwargs) -> forms.DecimalField:
    """An amount box in ``currency``: at most its minor unit's places and what the money columns hold."""
    places = minor_unit(currency)
    field = forms.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS - AMOUNT_DECIMAL_PLACES + places, decimal_places=places, **kwargs
    )
    field.widget.attrs.update({"step": str(Decimal(1).scaleb(-places)), "inputmode": "decimal"})
    return field


class ServiceErrorsMixin:
    """``add_service_error``: a service's ``BillingError`` shown where staff typed the offending value."""

    service_fields: dict[str, str] = {}  # the service's field name → the form's

    def add_service_error(self, exc: BillingError) -> None:
        name = self.service_fields.get(exc.field or "", exc.field)
        self.add_error(name if name in self.fields else None, exc.message)  # type: ignore[attr-defined]


class RecordPaymentForm(ServiceErrorsMixin, forms.Form):
    """Money an account paid by bank transfer, check or otherwise, and the open invoices it settles.

    One amount box per open invoice: boxes left empty take nothing, and when every box is empty the
    payment goes to the open invoices oldest first. Whatever the invoices do not take becomes the
    account's credit balance."""

    amount = forms.DecimalField()  # replaced in __init__ by a box in the account's currency
    received_at = forms.DateField(
        label="Received on",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text="The day the money arrived (UTC); today's payments are recorded at the moment you save.",
    )
    provider = forms.ChoiceField(label="Method", choices=MANUAL_PROVIDERS, initial=Payment.Provider.BANK_TRANSFER)
    reference = forms.CharField(
        max_length=255, required=False, help_text="The bank transfer's reference or the check number."
    )
    note = forms.CharField(
        max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 60}), help_text="For staff."
    )

    service_fields = {"received_at": "received_at", "provider": "provider", "amount": "amount"}

    def __init__(self, *args, account, invoices: list[Invoice], today: dt.date, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.account, self.invoices, self.today = account, invoices, today
        self.fields["amount"] = money_field(account.currency, label=f"Amount ({account.currency})")
        self.fields["received_at"].widget.attrs["max"] = today.isoformat()
        for invoice in invoices:
            self.fields[self.invoice_field(invoice)] = money_field(
                account.currency, required=False, label=f"Apply to {invoice.number}"
            )

    @staticmethod
    def invoice_field(invoice: Invoice) -> str:
        return f"invoice_{invoice.pk}"

    def invoice_rows(self) -> list[tuple[Invoice, forms.BoundField]]:
        return [(invoice, self[self.invoice_field(invoice)]) for invoice in self.invoices]

    def clean_received_at(self) -> dt.date:
        day = self.cleaned_data["received_at"]
        if day > self.today:
            raise forms.ValidationError(ERR_FUTURE_DAY.format(day=day.isoformat(), today=self.today.isoformat()))
        return day

    def received_moment(self, now: dt.datetime) -> dt.datetime:
        """Today's payment at ``now``; an earlier day's at its start (00:00 UTC)."""
        day = self.cleaned_data["received_at"]
        if day >= now.date():
            return now
        return dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC)

    def allocations(self) -> list[tuple[Invoice, Decimal]] | None:
        """The amounts typed per invoice (0 or empty: nothing to that invoice); ``None`` when every box is
        empty, for the service's default (the open invoices, oldest first)."""
        typed = [(invoice, self.cleaned_data.get(self.invoice_field(invoice))) for invoice in self.invoices]
        if all(amount is None for _, amount in typed):
            return None
        return [(invoice, amount) for invoice, amount in typed if amount is not None and amount != 0]

    def add_service_error(self, exc: BillingError) -> None:
        if exc.field == "invoices":
            for invoice in self.invoices:
                if invoice.number and re.search(rf"\b{re.escape(invoice.number)}\b", exc.message):
                    self.add_error(self.invoice_field(invoice), exc.message)
                    return
        super().add_service_error(exc)


class RefundBalanceForm(ServiceErrorsMixin, forms.Form):
    amount = forms.DecimalField()  # replaced in __init__ by a box in the account's currency
    reason = forms.CharField(
        max_length=500,
        required=False,  # the service's rule and message ("Give a reason.")
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Why the money goes back, e.g. “account closed, balance returned by bank transfer”.",
    )

    service_fields = {"amount": "amount", "reason": "reason"}

    def __init__(self, *args, account, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["amount"] = money_field(account.currency, label=f"Amount ({account.currency})")


class ReversePaymentForm(ServiceErrorsMixin, forms.Form):
    reason = forms.CharField(
        max_length=500,
        required=False,  # the service's rule and message ("Give a reason.")
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Why it is undone, e.g. “recorded twice” or “the transfer bounced”.",
    )

    service_fields = {"reason": "reason"}
