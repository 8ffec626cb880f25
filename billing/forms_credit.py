"""The staff form of a credit (the invoice's "Issue credit note" page; the dispute case's credit proposal).

Per invoice line a mode — nothing, the whole line (what is left of it), a quantity at the line's unit price, or
an amount — and its value; a goodwill amount with its description; a reason; and where money already paid goes
(the credit balance, or a refund). The form only parses what staff typed: the rules and the figures belong to
``billing.services.credit_notes`` (``credit_line_for_quantity``, ``credit_preview``, ``credit_note_issue``),
whose ``BillingError`` is put back on the form by ``add_service_error``, on the line it names.

Rendered by ``templates/admin/billing/_credit_fields.html`` (``{% include ... with credit_form=form %}``).
"""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.db.models import Sum

from billing.forms_payments import money_field
from billing.models import CreditNote, CreditNoteLine, Invoice, InvoiceLine
from billing.presentation import unit_price_text
from billing.services.credit_notes import CreditLine, CreditPreview, credit_line_for_quantity, credit_preview
from common.errors import BillingError
from common.money import QUANTITY_DECIMAL_PLACES, QUANTITY_MAX_DIGITS, format_money, format_quantity, round_money

ZERO = Decimal(0)
MODE_NONE, MODE_WHOLE, MODE_QUANTITY, MODE_AMOUNT = "none", "whole", "quantity", "amount"
ERR_VALUE_NEEDED = "Type the quantity or the amount to credit on this line."
ERR_NOTHING_LEFT = "Nothing is left to credit on this line."
ERR_GOODWILL_DESCRIPTION = "Say what the goodwill credit is for."
GOODWILL_DESCRIPTION = "Goodwill credit"


class CreditForm(forms.Form):
    goodwill_amount = forms.DecimalField(required=False)  # replaced in __init__ by a box in the invoice's currency
    goodwill_description = forms.CharField(
        max_length=300, required=False, initial=GOODWILL_DESCRIPTION, label="Goodwill description"
    )
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Why the customer is credited; printed on the credit note.",
    )
    excess_to = forms.ChoiceField(
        label="Money already paid goes to",
        choices=CreditNote._meta.get_field("excess_to").choices,
        initial="balance",
        widget=forms.RadioSelect,
        help_text="Only what the invoice no longer owes after the credit: the credit balance pays the next "
        "invoices; a refund sends it back (card payments through Stripe).",
    )

    def __init__(self, *args, invoice: Invoice, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.invoice = invoice
        currency = invoice.currency
        self.fields["goodwill_amount"] = money_field(
            currency, required=False, min_value=ZERO, label=f"Goodwill amount ({currency}, before tax)"
        )
        self.invoice_lines: list[InvoiceLine] = list(invoice.lines.select_related("metric").order_by("position"))
        credited = dict(
            CreditNoteLine.objects.filter(invoice_line__invoice=invoice, credit_note__status=CreditNote.Status.ISSUED)
            .values("invoice_line_id")
            .annotate(total=Sum("amount"))
            .values_list("invoice_line_id", "total")
        )
        self.credited = {line.pk: round_money(credited.get(line.pk, ZERO), currency) for line in self.invoice_lines}
        for line in self.invoice_lines:
            choices = [(MODE_NONE, "nothing"), (MODE_WHOLE, "whole line")]
            if self.by_quantity(line):
                choices.append((MODE_QUANTITY, "quantity at the unit price"))
            choices.append((MODE_AMOUNT, "amount"))
            self.fields[self.mode_field(line)] = forms.ChoiceField(
                choices=choices, initial=MODE_NONE, label=f"Credit on {line.description}"
            )
            self.fields[self.value_field(line)] = forms.DecimalField(
                required=False,
                min_value=ZERO,
                max_digits=QUANTITY_MAX_DIGITS,
                decimal_places=QUANTITY_DECIMAL_PLACES,
                label=f"Quantity or amount on {line.description}",
            )

    # Names and rows, for the template.

    @staticmethod
    def mode_field(line: InvoiceLine) -> str:
        return f"line_{line.pk}_mode"

    @staticmethod
    def value_field(line: InvoiceLine) -> str:
        return f"line_{line.pk}_value"

    @staticmethod
    def by_quantity(line: InvoiceLine) -> bool:
        """Whether a quantity of ``line`` can be credited at its unit price (one price, a billed quantity)."""
        return (
            line.unit_price is not None and (line.billable if line.billable is not None else line.quantity) is not None
        )

    def left_on(self, line: InvoiceLine) -> Decimal:
        return max(round_money(line.amount, self.invoice.currency) - self.credited[line.pk], ZERO)

    def line_rows(self) -> list[dict]:
        currency = self.invoice.currency
        rows = []
        for line in self.invoice_lines:
            billed = line.billable if line.billable is not None else line.quantity
            rows.append(
                {
                    "line": line,
                    "mode": self[self.mode_field(line)],
                    "value": self[self.value_field(line)],
                    "amount": format_money(line.amount, currency),
                    "billed": format_quantity(billed) if billed is not None and self.by_quantity(line) else "–",
                    "unit_price": unit_price_text(line, currency) if self.by_quantity(line) else "–",
                    "credited": format_money(self.credited[line.pk], currency) if self.credited[line.pk] else "–",
                    "left": format_money(self.left_on(line), currency),
                }
            )
        return rows

    # What was typed, as the service's credit lines.

    def clean(self):
        cleaned = super().clean()
        currency = self.invoice.currency
        for line in self.invoice_lines:
            mode, value = cleaned.get(self.mode_field(line)), cleaned.get(self.value_field(line))
            if mode in (MODE_QUANTITY, MODE_AMOUNT) and not value:
                self.add_error(self.value_field(line), ERR_VALUE_NEEDED)
            elif mode == MODE_AMOUNT and value != round_money(value, currency):
                self.add_error(self.value_field(line), f"An amount in {currency} is to its minor unit.")
            elif mode == MODE_WHOLE and self.left_on(line) <= 0:
                self.add_error(self.mode_field(line), ERR_NOTHING_LEFT)
        if cleaned.get("goodwill_amount") and not (cleaned.get("goodwill_description") or "").strip():
            self.add_error("goodwill_description", ERR_GOODWILL_DESCRIPTION)
        return cleaned

    def credit_lines(self) -> list[CreditLine]:
        """The credit typed, line by line (a quantity priced by ``credit_line_for_quantity``); a line the
        service refuses gets the error on its box. Empty when the form has errors."""
        if not self.is_valid():
            return []
        cleaned = self.cleaned_data
        lines: list[CreditLine] = []
        for line in self.invoice_lines:
            mode, value = cleaned.get(self.mode_field(line)), cleaned.get(self.value_field(line))
            if mode == MODE_WHOLE:
                lines.append(CreditLine(invoice_line=line, description=line.description, amount=self.left_on(line)))
            elif mode == MODE_QUANTITY:
                try:
                    lines.append(credit_line_for_quantity(line=line, quantity=value))
                except BillingError as exc:
                    self.add_error(self.value_field(line), exc.message)
            elif mode == MODE_AMOUNT:
                lines.append(CreditLine(invoice_line=line, description=line.description, amount=value))
        goodwill = cleaned.get("goodwill_amount")
        if goodwill:
            description = cleaned.get("goodwill_description", "").strip() or GOODWILL_DESCRIPTION
            lines.append(CreditLine(invoice_line=None, description=description, amount=goodwill))
        return lines if not self.errors else []

    def preview(self) -> CreditPreview | None:
        """The credit's figures (``credit_preview``), or None with the errors on the form."""
        lines = self.credit_lines()
        if self.errors:
            return None
        try:
            return credit_preview(invoice=self.invoice, lines=lines)
        except BillingError as exc:
            self.add_service_error(exc)
            return None

    def add_service_error(self, exc: BillingError) -> None:
        """A service's error where staff typed the value: on the line it names, else the field, else the form."""
        if exc.field == "lines":
            for line in self.invoice_lines:
                if f"“{line.description}”" in exc.message:
                    mode = self.cleaned_data.get(self.mode_field(line)) if hasattr(self, "cleaned_data") else None
                    field = self.mode_field(line) if mode == MODE_WHOLE else self.value_field(line)
                    self.add_error(field, exc.message)
                    return
        self.add_error(exc.field if exc.field in self.fields else None, exc.message)


class VoidCreditNoteForm(forms.Form):
    """The reason a credit note is voided (the credit note's "Void credit note" page)."""

    reason = forms.CharField(
        max_length=500,
        required=False,  # the service's rule and message ("Give a reason.")
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Why the credit is withdrawn, e.g. “issued on the wrong invoice”.",
    )

    def add_service_error(self, exc: BillingError) -> None:
        self.add_error(exc.field if exc.field in self.fields else None, exc.message)
