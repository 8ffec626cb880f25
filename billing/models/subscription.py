from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models
from django.db.models import F, Q
from simple_history.models import HistoricalRecords


class Subscription(models.Model):
    """An account's subscription to one plan version.

    Invariants: at most one live (not cancelled) subscription per account; the current period is
    half-open ``[current_period_start, current_period_end)`` with start < end. Every change is kept
    in the history table (who, when, old and new values).
    """

    class Status(models.TextChoices):
        TRIALING = "trialing", "Trialing"
        ACTIVE = "active", "Active"
        PAST_DUE = "past_due", "Past due"
        CANCELLED = "cancelled", "Cancelled"

    public_id = models.CharField(
        max_length=32, unique=True, editable=False, validators=[RegexValidator(r"^sub_[0-9]{6,}$")]
    )
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="subscriptions")
    plan_version = models.ForeignKey(
        "billing.PlanVersion",
        on_delete=models.PROTECT,
        related_name="subscriptions",
        help_text="The prices in force. Read-only: a plan change ends this subscription and starts another.",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    started_at = models.DateTimeField(help_text="When the subscription began (UTC).")
    trial_end = models.DateTimeField(
        null=True, blank=True, help_text="End of the free trial (exclusive, UTC). Empty: no trial."
    )
    current_period_start = models.DateTimeField(help_text="Start of the current billing period (inclusive, UTC).")
    current_period_end = models.DateTimeField(help_text="End of the current billing period (exclusive, UTC).")
    cancel_at_period_end = models.BooleanField(
        default=False, help_text="Ends when the current period ends; that period is still billed."
    )
    cancelled_at = models.DateTimeField(null=True, blank=True, help_text="When cancellation was requested.")
    ended_at = models.DateTimeField(null=True, blank=True, help_text="When the subscription stopped (exclusive).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["account", "-started_at"]
        constraints = [
            models.CheckConstraint(
                name="subscription_period_ordered",
                condition=Q(current_period_end__gt=F("current_period_start")),
                violation_error_message="The billing period must end after it starts.",
            ),
            models.CheckConstraint(
                name="subscription_trial_after_start",
                condition=Q(trial_end__isnull=True) | Q(trial_end__gt=F("started_at")),
                violation_error_message="A trial must end after the subscription starts.",
            ),
            models.CheckConstraint(
                name="subscription_ended_after_start",
                condition=Q(ended_at__isnull=True) | Q(ended_at__gte=F("started_at")),
                violation_error_message="A subscription cannot end before it starts.",
            ),
            models.CheckConstraint(
                name="subscription_cancelled_has_end",
                condition=~Q(status="cancelled") | Q(ended_at__isnull=False),
                violation_error_message="A cancelled subscription has an end time.",
            ),
            models.UniqueConstraint(
                fields=["account"],
                condition=~Q(status="cancelled"),
                name="subscription_one_live_per_account",
                violation_error_message="The account already has a live subscription.",
            ),
        ]
        indexes = [models.Index(fields=["account", "status"])]

    def __str__(self) -> str:
        return f"{self.public_id}: {self.account.public_id} on {self.plan_version}"
