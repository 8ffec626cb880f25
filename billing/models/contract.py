"""Negotiated agreements: an account's ``Contract`` (term, renewal, commitment, cancellation rule, account
manager), its volume-discount tiers, prepaid credits and signed documents.

A contract changes how the rating engine prices the account's months (``billing.rating.engine`` reads it; no
code outside the engine special-cases contracted accounts): the negotiated prices themselves are the custom
plan version the account subscribes to. Contracts are edited by Finance admins; every change is kept in the
history tables (who, when, old and new values).
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from simple_history.models import HistoricalRecords

from common.money import (
    AMOUNT_DECIMAL_PLACES,
    AMOUNT_MAX_DIGITS,
    CURRENCY_CHOICES,
    QUANTITY_DECIMAL_PLACES,
    QUANTITY_MAX_DIGITS,
)


def _amount(**kwargs):
    return models.DecimalField(max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES, **kwargs)


def _percent(**kwargs):
    return models.DecimalField(
        max_digits=5,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
        **kwargs,
    )


class Contract(models.Model):
    """An account's signed agreement over a term ``[term_start, term_end)``.

    Invariants: the term ends after it starts; a committed minimum has a period; an early-termination rule has
    its percentage. ``term_end`` is ``term_start`` plus ``term_months`` calendar months (set by the services);
    an auto-renewing contract moves its term forward by ``term_months`` when it ends.
    """

    class CommitmentPeriod(models.TextChoices):
        MONTH = "month", "Per month"
        YEAR = "year", "Per contract year"
        TERM = "term", "Over the whole term"

    class Cancellation(models.TextChoices):
        TERM_END = "term_end", "Runs to the end of the term"
        EARLY_TERMINATION = "early_termination", "Ends when asked, with an early-termination charge"

    public_id = models.CharField(max_length=32, unique=True, editable=False)
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="contracts")
    reference = models.CharField(max_length=64, blank=True, help_text="The agreement's own reference, e.g. MSA-0142.")
    term_start = models.DateTimeField(help_text="First moment of the term (inclusive, UTC).")
    term_months = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(120)], help_text="Length of the term, e.g. 36."
    )
    term_end = models.DateTimeField(help_text="End of the current term (exclusive, UTC).")
    auto_renew = models.BooleanField(default=True, help_text="At the term's end a new term of the same length starts.")
    renewal_notice_days = models.PositiveSmallIntegerField(
        default=60,
        validators=[MaxValueValidator(365)],
        help_text="The billing contacts are e-mailed this many days before the term ends.",
    )
    renewal_notified_for = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="The term end the last renewal notice was sent for."
    )
    commitment_amount = _amount(
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text="Committed minimum (before tax) per commitment period; a shortfall is billed as a true-up line.",
    )
    commitment_period = models.CharField(
        max_length=8, choices=CommitmentPeriod.choices, default=CommitmentPeriod.YEAR, blank=True
    )
    cancellation = models.CharField(max_length=20, choices=Cancellation.choices, default=Cancellation.TERM_END)
    early_termination_percent = _percent(
        null=True,
        blank=True,
        help_text="Early termination: this share of what the rest of the term commits (the committed minimum, "
        "or else the base fees) is charged.",
    )
    account_manager = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="managed_contracts",
        limit_choices_to={"is_staff": True},
        help_text="The dedicated account manager, shown to the customer in the portal and on invoices.",
    )
    terminated_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="Ended early at this moment (exclusive)."
    )
    termination_fee = _amount(
        null=True, blank=True, editable=False, help_text="The early-termination charge billed with the last month."
    )
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["account", "-term_start"]
        constraints = [
            models.CheckConstraint(
                name="contract_term_ordered",
                condition=Q(term_end__gt=F("term_start")),
                violation_error_message="The term must end after it starts.",
            ),
            models.CheckConstraint(
                name="contract_commitment_has_period",
                condition=Q(commitment_amount__isnull=True) | ~Q(commitment_period=""),
                violation_error_message="A committed minimum needs its period (month, contract year or term).",
            ),
            models.CheckConstraint(
                name="contract_early_termination_has_percent",
                condition=~Q(cancellation="early_termination") | Q(early_termination_percent__isnull=False),
                violation_error_message="An early-termination rule needs its percentage.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.public_id}: {self.account} ({self.term_months} months)"


class ContractDiscountTier(models.Model):
    """A volume discount on one metric's charges: usage above ``threshold`` (the account's billed quantity in
    the month, all tenants together) is discounted by ``percent``. Tiers are graduated: with 10 % over 200,000
    and 15 % over 500,000, the charges of units 200,000–500,000 get 10 % and those above 500,000 get 15 %."""

    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="discount_tiers")
    metric = models.ForeignKey("usage.Metric", on_delete=models.PROTECT, related_name="+")
    threshold = models.DecimalField(
        max_digits=QUANTITY_MAX_DIGITS,
        decimal_places=QUANTITY_DECIMAL_PLACES,
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Billed quantity in the month above which the discount applies.",
    )
    percent = _percent(help_text="Discount on the charges of the usage above the threshold.")

    history = HistoricalRecords()

    class Meta:
        ordering = ["contract", "metric", "threshold"]
        constraints = [
            models.UniqueConstraint(fields=["contract", "metric", "threshold"], name="contract_tier_unique"),
            models.CheckConstraint(name="contract_tier_percent_range", condition=Q(percent__gt=0, percent__lte=100)),
        ]

    def __str__(self) -> str:
        return f"{self.percent.normalize():f} % over {self.threshold.normalize():f}"


class PrepaidCredit(models.Model):
    """Money the customer paid in advance under the contract. It draws down against usage charges (after
    volume discounts, before tax) month by month, oldest expiry first, as "Prepaid credit applied" lines; what
    is left is the amount less those lines on invoices that are not void."""

    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="prepaid_credits")
    amount = _amount(validators=[MinValueValidator(Decimal("0.01"))])
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    effective_at = models.DateTimeField(help_text="Usage from this moment on may draw on it.")
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Usage from this moment on may not.")
    description = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["contract", "expires_at", "effective_at", "id"]
        constraints = [
            models.CheckConstraint(name="prepaid_credit_positive", condition=Q(amount__gt=0)),
            models.CheckConstraint(
                name="prepaid_credit_expiry_ordered",
                condition=Q(expires_at__isnull=True) | Q(expires_at__gt=F("effective_at")),
                violation_error_message="A prepaid credit must expire after it takes effect.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency} prepaid"


def contract_document_path(instance: ContractDocument, filename: str) -> str:
    return f"contracts/{instance.contract.public_id}/{instance.token}.pdf"


class ContractDocument(models.Model):
    """A signed document of the contract (PDF, checked by its content)."""

    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="documents")
    token = models.CharField(max_length=32, unique=True, editable=False)
    name = models.CharField(max_length=200, help_text="The file's name as uploaded.")
    file = models.FileField(upload_to=contract_document_path)
    size = models.PositiveIntegerField()
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    uploaded_at = models.DateTimeField()

    class Meta:
        ordering = ["contract", "uploaded_at"]

    def __str__(self) -> str:
        return self.name
