from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import F, Q
from django_fsm import FSMField, transition
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
    cancel_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Cancellation requested: the subscription ends at this moment (the end of the period, of the "
        "paid year or of the contract's term). Empty: it runs on.",
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


class PlanChangeRequest(models.Model):
    """A request to move an account's subscription to another plan version, with its approval.

    States (django-fsm-2; only the transitions below move them): pending → scheduled (approved, takes effect at
    ``effective_at``) → applied; pending → applied (approved to take effect at once); pending → declined (with
    a reason); pending or scheduled → cancelled. ``preview`` keeps the figures shown when it was requested.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Waiting for approval"
        SCHEDULED = "scheduled", "Approved, takes effect later"
        APPLIED = "applied", "Applied"
        DECLINED = "declined", "Declined"
        CANCELLED = "cancelled", "Cancelled"

    class Timing(models.TextChoices):
        NOW = "now", "Now (prorated)"
        PERIOD_END = "period_end", "At the end of the billing period"

    class Direction(models.TextChoices):
        UPGRADE = "upgrade", "Upgrade"
        DOWNGRADE = "downgrade", "Downgrade"
        LATERAL = "lateral", "Change at the same price"

    class Channel(models.TextChoices):
        PORTAL = "portal", "Portal"
        ADMIN = "admin", "Admin (staff)"
        API = "api", "API"

    public_id = models.CharField(
        max_length=32, unique=True, editable=False, validators=[RegexValidator(r"^chg_[0-9]{6,}$")]
    )
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="plan_changes")
    subscription = models.ForeignKey(
        Subscription, on_delete=models.PROTECT, related_name="change_requests", help_text="The subscription it changes."
    )
    from_version = models.ForeignKey("billing.PlanVersion", on_delete=models.PROTECT, related_name="+")
    to_version = models.ForeignKey("billing.PlanVersion", on_delete=models.PROTECT, related_name="+")
    timing = models.CharField(max_length=12, choices=Timing.choices, default=Timing.NOW)
    direction = models.CharField(max_length=12, choices=Direction.choices)
    needs_approval = models.BooleanField(default=True, help_text="Waits for billing staff before it applies.")
    state = FSMField(max_length=12, choices=State.choices, default=State.PENDING, protected=False)
    channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.PORTAL)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    requested_by_label = models.CharField(max_length=200, blank=True, help_text="Who asked (a user or an API key).")
    note = models.TextField(blank=True, help_text="What the customer said about it.")
    preview = models.JSONField(default=dict, blank=True, help_text="The figures shown when it was requested.")
    requested_at = models.DateTimeField()
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True, help_text="Why it was approved or declined; the customer reads it.")
    effective_at = models.DateTimeField(null=True, blank=True, help_text="When the new plan takes (or took) over.")
    applied_at = models.DateTimeField(null=True, blank=True)
    new_subscription = models.ForeignKey(
        Subscription, on_delete=models.PROTECT, null=True, blank=True, related_name="+", editable=False
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["-requested_at", "-id"]
        permissions = [("approve_plan_change", "Can approve or decline plan change requests")]
        constraints = [
            models.UniqueConstraint(
                fields=["account"],
                condition=Q(state__in=["pending", "scheduled"]),
                name="plan_change_one_open_per_account",
                violation_error_message="The account already has a plan change waiting.",
            ),
        ]
        indexes = [models.Index(fields=["state", "effective_at"])]

    def __str__(self) -> str:
        return f"{self.public_id}: {self.from_version} → {self.to_version}"

    @property
    def is_open(self) -> bool:
        return self.state in (self.State.PENDING, self.State.SCHEDULED)

    @transition(field=state, source=State.PENDING, target=State.SCHEDULED)
    def schedule(self) -> None:
        """Approved (or needing no approval), to take effect at ``effective_at``."""

    @transition(field=state, source=[State.PENDING, State.SCHEDULED], target=State.APPLIED)
    def apply(self) -> None:
        """The new plan is in force."""

    @transition(field=state, source=State.PENDING, target=State.DECLINED)
    def decline(self) -> None:
        """Billing staff said no (with a reason); nothing changed."""

    @transition(field=state, source=[State.PENDING, State.SCHEDULED], target=State.CANCELLED)
    def cancel(self) -> None:
        """Withdrawn by the customer or staff before it applied."""
