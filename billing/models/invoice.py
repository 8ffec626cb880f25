"""Invoices, their lines, credit notes, and the monthly billing run that produces them.

Money invariants (enforced by services, and for finalized documents also by database triggers,
migration 0003): a finalized invoice's number, period, currency, lines and money fields never change;
corrections are credit notes. Balances (``amount_paid``, ``amount_credited``, ``amount_due``) move only
through payments and credit notes.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Round
from simple_history.models import HistoricalRecords

from billing.models.catalogue import _amount, _quantity, _unit_price
from common.money import AMOUNT_DECIMAL_PLACES, CURRENCY_CHOICES


def _exact(expression):
    """Sums and differences of amounts in a check constraint. PostgreSQL's numeric is exact and the rounding
    changes nothing; SQLite (the demo) computes with binary floats, where 0.30 - 0.10 is not 0.20 until it
    is rounded to the stored places."""
    return Round(expression, AMOUNT_DECIMAL_PLACES)


class Invoice(models.Model):
    """An account's consolidated invoice for one calendar month ``[period_start, period_end)``."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        FINALIZED = "finalized", "Finalized"
        PAID = "paid", "Paid"
        VOID = "void", "Void"
        UNCOLLECTIBLE = "uncollectible", "Uncollectible"

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="invoices")
    number = models.CharField(
        max_length=32, unique=True, null=True, blank=True, help_text="Assigned at finalization, e.g. INV-2026-000123."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    period_start = models.DateTimeField(help_text="Start of the billed month (inclusive, UTC).")
    period_end = models.DateTimeField(help_text="End of the billed month (exclusive, UTC).")
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    subtotal = _amount(default=0, help_text="Sum of the lines, discounts included, before tax.")
    discount_total = _amount(default=0, help_text="Discounts included in the subtotal (a positive figure).")
    tax_rate = models.DecimalField(max_digits=6, decimal_places=3, default=0)
    tax_reverse_charge = models.BooleanField(default=False)
    tax = _amount(default=0)
    total = _amount(default=0)
    amount_paid = _amount(default=0)
    amount_credited = _amount(default=0)
    amount_due = _amount(default=0, help_text="total − paid − credited.")
    snapshot = models.JSONField(
        default=dict, blank=True, help_text="Account, plan and metric names as they were at finalization."
    )
    billing_run = models.ForeignKey(
        "billing.BillingRun", on_delete=models.SET_NULL, null=True, blank=True, related_name="invoices"
    )
    held = models.BooleanField(default=False, help_text="Held by staff: not finalized until released.")
    hold_reason = models.CharField(max_length=500, blank=True)
    review_until = models.DateTimeField(
        null=True, blank=True, help_text="A draft is finalized automatically after this moment unless held."
    )
    anomalies = models.JSONField(default=list, blank=True, help_text="Usage anomalies flagged when drafted.")
    created_at = models.DateTimeField()
    finalized_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        ordering = ["-period_start", "account_id"]
        # Taking money back off an issued invoice is a finance decision (see accounts/permissions.py).
        permissions = [
            ("void_issued_invoice", "Can void a finalized invoice"),
            ("write_off_invoice", "Can write off an invoice as uncollectible"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "period_start"],
                condition=~Q(status="void"),
                name="invoice_one_per_account_period",
                violation_error_message="The account already has an invoice for this period.",
            ),
            models.CheckConstraint(name="invoice_period_ordered", condition=Q(period_end__gt=F("period_start"))),
            models.CheckConstraint(
                name="invoice_total_is_subtotal_plus_tax", condition=Q(total=_exact(F("subtotal") + F("tax")))
            ),
            models.CheckConstraint(
                name="invoice_due_is_balance",
                condition=Q(status__in=["void", "uncollectible"], amount_due=0)
                | Q(amount_due=_exact(F("total") - F("amount_paid") - F("amount_credited"))),
            ),
            models.CheckConstraint(
                name="invoice_number_when_issued",
                condition=Q(status="draft", number__isnull=True)
                | (~Q(status="draft") & Q(number__isnull=False))
                # A draft voided before finalization keeps no number.
                | Q(status="void", number__isnull=True),
            ),
        ]
        indexes = [
            models.Index(fields=["status", "review_until"], name="invoice_status_review"),
            models.Index(fields=["account", "-period_start"], name="invoice_account_period"),
        ]

    def __str__(self) -> str:
        return self.number or f"Draft {self.period_start:%Y-%m} for account #{self.account_id}"

    @property
    def is_locked(self) -> bool:
        """Finalized (or later): the money never changes again."""
        return self.status != self.Status.DRAFT

    @property
    def month_label(self) -> str:
        return f"{self.period_start:%B %Y}"


class InvoiceLine(models.Model):
    """One line of an invoice. ``amount`` is rounded once, to the currency's minor unit."""

    class Kind(models.TextChoices):
        BASE_FEE = "base_fee", "Base fee"
        USAGE = "usage", "Usage"
        LATE_USAGE = "late_usage", "Late usage from an earlier period"
        DISCOUNT = "discount", "Discount"
        MINIMUM_COMMITMENT = "minimum_commitment", "Minimum commitment top-up"
        PREPAID_CREDIT = "prepaid_credit", "Prepaid credit applied"
        EARLY_TERMINATION = "early_termination", "Early-termination charge"

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=24, choices=Kind.choices)
    description = models.CharField(max_length=300)
    metric = models.ForeignKey("usage.Metric", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    plan_version = models.ForeignKey(
        "billing.PlanVersion", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    period_start = models.DateTimeField(help_text="Start of the time this line covers (inclusive).")
    period_end = models.DateTimeField(help_text="End of the time this line covers (exclusive).")
    usage_month = models.DateField(null=True, blank=True, help_text="Late usage: the month it happened in.")
    prepaid_credit = models.ForeignKey(
        "billing.PrepaidCredit",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="draws",
        help_text="Prepaid credit lines: the credit drawn on.",
    )
    quantity = _quantity(null=True, blank=True, help_text="Billed quantity (after conversion to the billing unit).")
    included = _quantity(null=True, blank=True, help_text="Included in the plan for this span; empty: unlimited.")
    billable = _quantity(null=True, blank=True, help_text="Quantity charged for (beyond the included one).")
    unit_price = _unit_price(null=True, blank=True, help_text="Price per price unit, where one price applies.")
    amount = _amount()
    breakdown = models.JSONField(
        default=dict, blank=True, help_text="Per tenant and per master partner: quantity and share of the amount."
    )
    transaction_ids = models.JSONField(
        default=list, blank=True, help_text="Late usage: the transaction ids of the events this line bills."
    )

    class Meta:
        ordering = ["invoice", "position"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "position"], name="invoice_line_position"),
            models.CheckConstraint(name="invoice_line_span_ordered", condition=Q(period_end__gt=F("period_start"))),
        ]

    def __str__(self) -> str:
        return self.description


class CreditNote(models.Model):
    """A correction of a finalized invoice: credits part or all of it (e.g. to settle a dispute)."""

    class Status(models.TextChoices):
        ISSUED = "issued", "Issued"
        VOID = "void", "Void"

    number = models.CharField(max_length=32, unique=True, help_text="Gap-free, e.g. CN-2026-000012.")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_notes")
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="credit_notes")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ISSUED)
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    reason = models.CharField(max_length=500)
    subtotal = _amount()
    tax = _amount()
    total = _amount()
    issued_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    released = _amount(
        default=0,
        help_text="Money already paid on the invoice that this credit released to the credit balance (or refunded).",
    )
    excess_to = models.CharField(
        max_length=8,
        default="balance",
        choices=[("balance", "Credit balance (next invoice)"), ("refund", "Refund")],
        help_text="Where money already paid beyond what the invoice still owed went.",
    )
    voided_at = models.DateTimeField(null=True, blank=True)
    void_reason = models.CharField(max_length=500, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-issued_at"]
        permissions = [("void_credit_note", "Can void a credit note that is not applied yet")]
        constraints = [
            models.CheckConstraint(name="credit_note_positive", condition=Q(subtotal__gt=0) & Q(tax__gte=0)),
            models.CheckConstraint(name="credit_note_total", condition=Q(total=_exact(F("subtotal") + F("tax")))),
        ]

    def __str__(self) -> str:
        return self.number


class CreditNoteLine(models.Model):
    credit_note = models.ForeignKey(CreditNote, on_delete=models.CASCADE, related_name="lines")
    invoice_line = models.ForeignKey(
        InvoiceLine, on_delete=models.PROTECT, null=True, blank=True, related_name="credit_note_lines"
    )
    description = models.CharField(max_length=300)
    amount = _amount(help_text="Credited amount before tax (positive).")

    class Meta:
        constraints = [models.CheckConstraint(name="credit_note_line_positive", condition=Q(amount__gt=0))]

    def __str__(self) -> str:
        return self.description


class BillingRun(models.Model):
    """The close of one month for every account (or one account): progress, failures and outcome.

    One run per month (dry runs aside); running the month again resumes the same run, and the invoice's
    unique constraint plus a per-account lock make sure no account is invoiced twice.
    """

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        COMPLETED_WITH_FAILURES = "completed_with_failures", "Completed with failures"

    month = models.DateField(help_text="First day of the billed month.")
    dry_run = models.BooleanField(default=False, help_text="Computes and reports; writes no invoice.")
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.RUNNING)
    trigger = models.CharField(max_length=16, default="command", help_text="schedule, command or admin.")
    accounts_total = models.PositiveIntegerField(default=0)
    accounts_done = models.PositiveIntegerField(default=0)
    accounts_failed = models.PositiveIntegerField(default=0)
    invoices_created = models.PositiveIntegerField(default=0)
    amount_total = models.JSONField(default=dict, blank=True, help_text="Invoiced totals per currency.")
    accounts_in_book = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Accounts on the books when the run started (empty for a run of chosen accounts).",
    )
    not_in_run = models.JSONField(
        default=list,
        blank=True,
        help_text="Accounts on the books that this run does not bill, by reason: "
        "[{reason, count, accounts (up to 20 ids)}].",
    )
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-month", "-started_at"]
        constraints = [
            models.UniqueConstraint(fields=["month"], condition=Q(dry_run=False), name="billing_run_one_per_month"),
        ]

    def __str__(self) -> str:
        return f"Billing run {self.month:%Y-%m}" + (" (dry run)" if self.dry_run else "")

    @property
    def progress(self) -> str:
        progress = f"{self.accounts_done + self.accounts_failed} / {self.accounts_total}"
        if self.accounts_in_book is not None and self.accounts_in_book != self.accounts_total:
            progress += f" ({self.accounts_in_book} on the books)"
        return progress


class BillingRunItem(models.Model):
    """One account's step in a run: done with its invoice, or failed with the reason."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    run = models.ForeignKey(BillingRun, on_delete=models.CASCADE, related_name="items")
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    invoice = models.ForeignKey(Invoice, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    total = _amount(null=True, blank=True)
    anomalies = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["run", "account_id"]
        constraints = [models.UniqueConstraint(fields=["run", "account"], name="billing_run_item_unique")]
        indexes = [models.Index(fields=["run", "status"], name="billing_run_item_status")]

    def __str__(self) -> str:
        return f"{self.run}: account #{self.account_id} {self.status}"
