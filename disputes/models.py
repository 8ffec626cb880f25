from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from common.money import AMOUNT_DECIMAL_PLACES, AMOUNT_MAX_DIGITS, CURRENCY_CHOICES, CURRENCY_MINOR_UNITS


class Dispute(models.Model):
    """A customer's challenge of charges. Staff work it in the admin; settlement is a credit note."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        UNDER_REVIEW = "under_review", "Under review"
        RESOLVED = "resolved", "Resolved"
        REJECTED = "rejected", "Rejected"

    public_id = models.CharField(max_length=32, unique=True, editable=False)
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="disputes")
    subject = models.CharField(max_length=200)
    description = models.TextField()
    amount = models.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS,
        decimal_places=AMOUNT_DECIMAL_PLACES,
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text="Amount the customer disputes, in the account currency.",
    )
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolution_note = models.TextField(blank=True)
    opened_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.CheckConstraint(name="dispute_amount_positive", condition=Q(amount__gt=0)),
            models.CheckConstraint(
                name="dispute_currency_supported", condition=Q(currency__in=list(CURRENCY_MINOR_UNITS))
            ),
            models.CheckConstraint(
                name="dispute_closed_has_time",
                condition=Q(status__in=["open", "under_review"], closed_at__isnull=True)
                | Q(status__in=["resolved", "rejected"], closed_at__isnull=False),
                violation_error_message="Resolved and rejected disputes (only) have a closing time.",
            ),
        ]
        indexes = [models.Index(fields=["account", "status"])]

    def __str__(self) -> str:
        return f"{self.public_id}: {self.subject}"
