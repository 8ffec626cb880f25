"""Reconciliation: lines of imported bank statements, and the mismatches found between invoices, the payments
ledger and Stripe's own records, kept until staff resolve them."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from billing.models.catalogue import _amount
from common.money import CURRENCY_CHOICES


class BankStatementLine(models.Model):
    """One credit line of an imported bank statement: matched to an invoice (and recorded as a payment), or
    left for staff to match by hand."""

    class Status(models.TextChoices):
        MATCHED = "matched", "Matched and recorded"
        UNMATCHED = "unmatched", "Waiting for staff"
        IGNORED = "ignored", "Ignored by staff"

    line_key = models.CharField(
        max_length=64,
        unique=True,
        help_text="Digest of date, amount, currency, reference and occurrence: "
        "importing the same statement twice records nothing twice.",
    )
    booked_on = models.DateField(help_text="The date on the statement.")
    amount = _amount()
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    reference = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices)
    payment = models.OneToOneField(
        "billing.Payment", on_delete=models.PROTECT, null=True, blank=True, related_name="statement_line"
    )
    note = models.CharField(max_length=500, blank=True, help_text="Why it matched, or why it did not.")
    imported_at = models.DateTimeField()
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-booked_on", "id"]
        constraints = [
            models.CheckConstraint(name="statement_line_amount_positive", condition=Q(amount__gt=0)),
            models.CheckConstraint(
                name="statement_line_matched_has_payment",
                condition=~Q(status="matched") | Q(payment__isnull=False),
            ),
        ]
        indexes = [models.Index(fields=["status", "booked_on"], name="statement_line_status")]

    def __str__(self) -> str:
        return f"{self.booked_on} {self.currency} {self.amount} {self.reference}".strip()


class ReconciliationIssue(models.Model):
    """A mismatch found by reconciliation; open until staff resolve it (found again, it stays one row)."""

    class Kind(models.TextChoices):
        CHARGE_WITHOUT_PAYMENT = "charge_without_payment", "Stripe charge with no payment"
        PAYMENT_WITHOUT_INVOICE = "payment_without_invoice", "Payment applied to no invoice"
        AMOUNT_MISMATCH = "amount_mismatch", "Amounts differ"
        PAID_WITHOUT_MONEY = "paid_without_money", "Invoice paid with no money"
        STATEMENT_LINE_UNMATCHED = "statement_line_unmatched", "Bank statement line not matched"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Resolved"

    key = models.CharField(max_length=200, unique=True, help_text="What was found, so it is recorded once.")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    month = models.DateField(help_text="First day of the reconciled month.")
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    invoice = models.ForeignKey("billing.Invoice", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    payment = models.ForeignKey("billing.Payment", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    external_id = models.CharField(max_length=255, blank=True, help_text="Stripe's id (ch_…, txn_…), if any.")
    amount = _amount(null=True, blank=True)
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES, blank=True)
    description = models.CharField(max_length=500)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    detected_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    resolution = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["status", "-month", "kind", "id"]
        indexes = [models.Index(fields=["status", "month"], name="recon_issue_status_month")]

    def __str__(self) -> str:
        return self.description
