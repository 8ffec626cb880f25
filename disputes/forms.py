"""Staff forms of the dispute admin: opening a case for a customer who phoned or wrote, and the case page's
actions.

The forms only parse what staff typed. The rules (which invoice may be disputed, how much of a line, that a
resolution needs a reason, who may act) belong to ``disputes.services``; a ``BillingError`` it raises is put back
on the form (``add_service_error``) or shown as the page's message. Text boxes are therefore not required here:
the service says what a step needs, in one place, in the words the API and the portal use too.
"""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import AutocompleteSelect
from django.contrib.auth import get_user_model
from django.db.models import Q

from accounts.models import Account
from billing.forms_payments import ServiceErrorsMixin, money_field
from billing.models import Invoice
from common.money import QUANTITY_DECIMAL_PLACES, QUANTITY_MAX_DIGITS, format_money, format_quantity
from disputes.models import Dispute
from disputes.services import LineClaim

# How a customer reaches billing staff when staff open the case for them.
STAFF_CHANNELS = [
    (Dispute.Channel.PHONE.value, Dispute.Channel.PHONE.label),
    (Dispute.Channel.EMAIL.value, Dispute.Channel.EMAIL.label),
    (Dispute.Channel.OTHER.value, Dispute.Channel.OTHER.label),
]
# Invoices a case can be about: issued ones (the service refuses the others, with its reason).
DISPUTABLE_STATUSES = (Invoice.Status.FINALIZED, Invoice.Status.PAID, Invoice.Status.UNCOLLECTIBLE)


def _text(label: str, *, rows: int = 3, help_text: str = "", max_length: int | None = None) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=False,
        max_length=max_length,
        help_text=help_text,
        widget=forms.Textarea(attrs={"rows": rows, "cols": 70}),
    )


class AccountPickForm(forms.Form):
    """First step of opening a case: whose invoice it is (searched like the account list)."""

    account = forms.ModelChoiceField(
        queryset=Account.objects.order_by("name"),
        widget=AutocompleteSelect(Dispute._meta.get_field("account"), admin.site),
        help_text="Search by name or id (acc_…).",
    )


class StaffOpenForm(ServiceErrorsMixin, forms.Form):
    """A case billing staff open on behalf of a customer, about one issued invoice of the account, optionally
    naming the lines disputed (with the quantity or amount in question)."""

    subject = forms.CharField(max_length=200, required=False)
    description = _text("Description", rows=5, help_text="What the customer says is wrong, in their words.")
    category = forms.ChoiceField(choices=Dispute.Category.choices, initial=Dispute.Category.OTHER)
    channel = forms.ChoiceField(
        choices=STAFF_CHANNELS, initial=Dispute.Channel.PHONE, help_text="How the customer raised it."
    )
    attachment = forms.FileField(required=False, help_text="Optional: what the customer sent (CSV, PDF, PNG or JPEG).")

    service_fields = {"attachment": "attachment", "subject": "subject", "description": "description"}

    def __init__(self, *args, invoice: Invoice, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.invoice = invoice
        self.invoice_lines = list(invoice.lines.order_by("position"))
        currency = invoice.currency
        self.fields["amount"] = money_field(
            currency,
            required=False,
            label=f"Amount disputed ({currency})",
            help_text="Before tax; leave empty when the customer did not say.",
        )
        for line in self.invoice_lines:
            self.fields[f"line_{line.pk}"] = forms.BooleanField(required=False, label=line.description)
            self.fields[f"line_{line.pk}_quantity"] = forms.DecimalField(
                required=False,
                max_digits=QUANTITY_MAX_DIGITS,
                decimal_places=QUANTITY_DECIMAL_PLACES,
                label=f"Quantity disputed of {line.description}",
            )
            self.fields[f"line_{line.pk}_amount"] = money_field(
                currency, required=False, label=f"Amount disputed of {line.description}"
            )
            self.fields[f"line_{line.pk}_note"] = forms.CharField(
                required=False, max_length=500, label=f"Note on {line.description}"
            )

    def line_rows(self) -> list[dict]:
        """The invoice's lines with their boxes, for the template's table."""
        currency = self.invoice.currency
        return [
            {
                "line": line,
                "quantity": format_quantity(line.quantity) if line.quantity is not None else "–",
                "amount": format_money(line.amount, currency),
                "chosen": self[f"line_{line.pk}"],
                "disputed_quantity": self[f"line_{line.pk}_quantity"],
                "disputed_amount": self[f"line_{line.pk}_amount"],
                "note": self[f"line_{line.pk}_note"],
            }
            for line in self.invoice_lines
        ]

    def claims(self) -> list[LineClaim]:
        """The lines ticked (or given a quantity, amount or note), as the service takes them."""
        data = self.cleaned_data
        claims = []
        for line in self.invoice_lines:
            quantity: Decimal | None = data.get(f"line_{line.pk}_quantity")
            amount: Decimal | None = data.get(f"line_{line.pk}_amount")
            note: str = data.get(f"line_{line.pk}_note") or ""
            if data.get(f"line_{line.pk}") or quantity is not None or amount is not None or note:
                claims.append(LineClaim(invoice_line=line, quantity=quantity, amount=amount, note=note))
        return claims


# --- The case page's actions: each form is what one service call takes -----------------------------------


class NoteForm(forms.Form):
    note = _text("Note", rows=2, help_text="Optional; shown on the timeline.")


class QuestionForm(forms.Form):
    question = _text("Question to the customer", help_text="Sent to the customer's billing addresses.")


class MessageForm(forms.Form):
    body = _text("Message", rows=4)
    attachment = forms.FileField(required=False, help_text="Optional: CSV, PDF, PNG or JPEG.")


class ReasonForm(forms.Form):
    reason = _text("Reason", help_text="The customer reads it.")


class DecisionForm(forms.Form):
    note = _text("Note", rows=2, max_length=500)


def staff_who_work_cases():
    """Who a case can be assigned to: active staff who may change disputes (directly or through a group)."""
    users = get_user_model().objects.filter(is_active=True, is_staff=True)
    may = (
        Q(is_superuser=True)
        | Q(user_permissions__codename="change_dispute", user_permissions__content_type__app_label="disputes")
        | Q(groups__permissions__codename="change_dispute", groups__permissions__content_type__app_label="disputes")
    )
    return users.filter(may).distinct().order_by("username")


class AssignForm(forms.Form):
    assignee = forms.ModelChoiceField(
        queryset=get_user_model().objects.none(), required=False, empty_label="Nobody (unassign)"
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["assignee"].queryset = staff_who_work_cases()
        self.fields["assignee"].label_from_instance = lambda user: user.get_full_name() or user.username
