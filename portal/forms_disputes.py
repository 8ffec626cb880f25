"""The customer's dispute forms: opening a case on an invoice (which lines, how much of each, what is wrong,
files), replying on the case and withdrawing it.

The forms parse what the customer typed; ``disputes.services`` keeps the rules (which invoice may be disputed,
how much of a line, what a file may be) and its refusals come back on the field they name
(``add_service_error``): the attachment's type and size are checked by its content there, in one place for the
portal, the API and the admin. The form only announces them (``accept=`` and the size limit in the help text).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.template.defaultfilters import filesizeformat

from billing.forms_payments import money_field
from billing.models import Invoice, InvoiceLine
from common.errors import BillingError
from common.money import QUANTITY_DECIMAL_PLACES, QUANTITY_MAX_DIGITS, minor_unit
from disputes.models import Dispute
from disputes.services import LineClaim
from portal.forms import PortalForm

# What the file box offers; the service decides by the content, not by these names.
ATTACHMENT_ACCEPT = ".csv,.pdf,.png,.jpg,.jpeg,text/csv,application/pdf,image/png,image/jpeg"
# Files one form may carry (each is checked and stored on its own).
MAX_FILES = 5
ERR_TOO_MANY_FILES = f"Attach at most {MAX_FILES} files at a time."
ERR_REPLY_EMPTY = "Write a reply."
# A chargeback is opened by the customer's bank, not in the portal.
# How the service names a claim's field: "lines", "lines[2]", "lines[2].quantity".
LINE_FIELD = re.compile(r"lines(?:\[(?P<index>\d+)\](?:\.(?P<part>quantity|amount))?)?")
CUSTOMER_CATEGORIES = [
    (value, label) for value, label in Dispute.Category.choices if value != Dispute.Category.CHARGEBACK
]


class MultipleFileInput(forms.FileInput):
    allow_multiple_selected = True


class AttachmentsField(forms.FileField):
    """One or more files (none when not required), cleaned to a list."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": ATTACHMENT_ACCEPT}))
        super().__init__(**kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[UploadedFile]:
        files = [f for f in (data if isinstance(data, list | tuple) else [data]) if f]
        if len(files) > MAX_FILES:
            raise forms.ValidationError(ERR_TOO_MANY_FILES, code="too_many_files")
        return [super(AttachmentsField, self).clean(f, initial) for f in files]


def attachments_field() -> AttachmentsField:
    limit = filesizeformat(settings.DISPUTES_ATTACHMENT_MAX_BYTES)
    return AttachmentsField(
        label="Attachments (optional)",
        help_text=f"CSV, PDF, PNG or JPEG, up to {limit} each; up to {MAX_FILES} files.",
    )


class ServiceErrorForm(PortalForm):
    """Puts a service's refusal on the field it names; the service calls the file box "attachment"."""

    def add_service_error(self, exc: BillingError | Any) -> None:
        if isinstance(exc, BillingError) and exc.field in ("attachment", "attachments"):
            self.add_error("attachment", exc.message)
            return
        super().add_service_error(exc)


class DisputeOpenForm(ServiceErrorForm):
    """A case about one of the account's issued invoices: the lines disputed (a box per line, with the
    quantity or amount in question), the category, a subject and what is wrong, and files."""

    category = forms.ChoiceField(
        choices=CUSTOMER_CATEGORIES, initial=Dispute.Category.USAGE, label="What kind of problem is it?"
    )
    subject = forms.CharField(max_length=200, help_text="A short title, e.g. “Messages counted twice on Oct 14”.")
    description = forms.CharField(
        label="What is wrong",
        max_length=10_000,
        help_text="What you expected to be billed and why; dates, tenants or transaction ids help us check.",
        widget=forms.Textarea(attrs={"rows": 6}),
    )

    def __init__(self, *args: Any, invoice: Invoice, lines: list[InvoiceLine], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.invoice = invoice
        self.invoice_lines = lines
        self.lines_errors: list[str] = []
        self.claimed: list[LineClaim] = []
        for line in lines:
            name = line.description
            self.fields[f"line_{line.pk}"] = forms.BooleanField(required=False, label=f"Dispute {name}")
            self.fields[f"line_{line.pk}_quantity"] = forms.DecimalField(
                required=False,
                max_digits=QUANTITY_MAX_DIGITS,
                decimal_places=QUANTITY_DECIMAL_PLACES,
                min_value=Decimal(1).scaleb(-QUANTITY_DECIMAL_PLACES),
                label=f"Quantity disputed of {name}",
                # The browser's min as plain digits (the field's own would read 1E-8).
                widget=forms.NumberInput(attrs={"step": "any", "min": "0", "inputmode": "decimal"}),
            )
            self.fields[f"line_{line.pk}_amount"] = money_field(
                invoice.currency,
                required=False,
                min_value=Decimal(1).scaleb(-minor_unit(invoice.currency)),
                label=f"Amount disputed of {name} ({invoice.currency}, before tax)",
            )
        # The files last: after the lines in the page's order of fields.
        self.fields["attachment"] = attachments_field()

    def add_service_error(self, exc: BillingError | Any) -> None:
        """The service names a line by its place among the claims (``lines[1].quantity``): the error goes
        next to that line's box; one about the lines as a whole, to the lines' fieldset and the summary."""
        field = exc.field if isinstance(exc, BillingError) else None
        if field and field.startswith("lines"):
            match = LINE_FIELD.fullmatch(field)
            if match and match["part"] and int(match["index"]) < len(self.claimed):
                line = self.claimed[int(match["index"])].invoice_line
                self.add_error(f"line_{line.pk}_{match['part']}", exc.message)
                return
            self.lines_errors.append(exc.message)
            self.add_error(None, exc.message)
            return
        super().add_service_error(exc)

    def line_rows(self) -> list[dict]:
        """Each invoice line with its boxes, for the template's table."""
        return [
            {
                "line": line,
                "chosen": self[f"line_{line.pk}"],
                "quantity": self[f"line_{line.pk}_quantity"],
                "amount": self[f"line_{line.pk}_amount"],
            }
            for line in self.invoice_lines
        ]

    def main_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in ("category", "subject", "description")]

    def claims(self) -> list[LineClaim]:
        """The lines ticked (or given a quantity or amount), as the service takes them."""
        data = self.cleaned_data
        claims = []
        for line in self.invoice_lines:
            quantity: Decimal | None = data.get(f"line_{line.pk}_quantity")
            amount: Decimal | None = data.get(f"line_{line.pk}_amount")
            if data.get(f"line_{line.pk}") or quantity is not None or amount is not None:
                claims.append(LineClaim(invoice_line=line, quantity=quantity, amount=amount))
        self.claimed = claims
        return claims


class ReplyForm(ServiceErrorForm):
    body = forms.CharField(
        label="Your reply",
        max_length=10_000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 5}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["attachment"] = attachments_field()

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not (data.get("body") or "").strip() and "body" not in self.errors:
            self.add_error("body", ERR_REPLY_EMPTY)
        return data


class WithdrawForm(ServiceErrorForm):
    reason = forms.CharField(
        label="Why are you withdrawing it? (optional)",
        max_length=2_000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
