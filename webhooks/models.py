"""Webhook endpoints (an account's URLs that receive its events), their signing secrets, and the deliveries of
outbox events to them with every attempt.

Invariants:
- An endpoint has exactly one current secret (``expires_at`` empty); after a rotation the previous one stays
  valid until its ``expires_at`` and, meanwhile, every request carries both signatures.
- One delivery per endpoint and outbox event (a database constraint): fanning out twice adds nothing. The
  delivery's ``webhook-id`` is the event's id (``evt_…``), the same on every retry and resend, so receivers
  deduplicate by it (delivery is at-least-once).
- A pending delivery has a ``next_attempt_at``; a finished one (succeeded, failed, cancelled) has none.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from common.models import OutboxEvent
from webhooks.event_types import receives

SECRET_HINT_LENGTH = 4
RESPONSE_EXCERPT_LENGTH = 500


def event_public_id(event_id: int) -> str:
    """The stable id of outbox event ``event_id`` as receivers see it (``webhook-id`` and the body's ``id``)."""
    return f"evt_{event_id:06d}"


class WebhookEndpoint(models.Model):
    """A URL of the account's that receives its events (all of them, or the types listed), signed with the
    endpoint's secret."""

    public_id = models.CharField(max_length=32, unique=True, editable=False, help_text="e.g. we_000012.")
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(
        max_length=2000,
        help_text="Where events are POSTed. HTTPS, on a public address (checked when saved and again at every "
        "send, after the name is resolved). Redirects are not followed.",
    )
    description = models.CharField(max_length=200, blank=True, help_text="What the endpoint is for.")
    event_types = models.JSONField(
        default=list,
        blank=True,
        help_text='The event types it receives, e.g. ["billing.invoice_generated"]; empty: every type except '
        "the hourly usage report (billing.usage_reported), sent only to endpoints that name it.",
    )
    enabled = models.BooleanField(default=True, help_text="Disabled endpoints receive nothing.")
    disabled_at = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_reason = models.CharField(
        max_length=300,
        blank=True,
        editable=False,
        help_text="Why it was disabled: by whom, or after failing continuously for WEBHOOKS_DISABLE_AFTER_HOURS.",
    )
    failing_since = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="The first failed attempt since the last success; empty while it succeeds. Disabled "
        "automatically once this is WEBHOOKS_DISABLE_AFTER_HOURS old.",
    )
    created_at = models.DateTimeField(editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        editable=False,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Staff member or portal user who added it; empty when added with an API key.",
    )
    updated_at = models.DateTimeField(editable=False)

    # ``failing_since`` moves with every batch of deliveries (a plain UPDATE); the history records settings
    # and state changes: created, edited, enabled, disabled (and why), deleted.
    history = HistoricalRecords(excluded_fields=["failing_since"])

    class Meta:
        ordering = ["account", "created_at", "id"]
        verbose_name = "webhook endpoint"
        constraints = [
            models.CheckConstraint(
                name="webhook_endpoint_disabled_has_time",
                condition=Q(enabled=True, disabled_at__isnull=True) | Q(enabled=False, disabled_at__isnull=False),
                violation_error_message="A disabled endpoint (only) has the time it was disabled.",
            )
        ]
        indexes = [
            models.Index(fields=["account", "enabled"], name="webhook_endpoint_account"),
            models.Index(fields=["failing_since"], condition=Q(enabled=True), name="webhook_endpoint_failing"),
        ]

    def __str__(self) -> str:
        return f"{self.public_id}: {self.url}"

    def receives(self, event_type: str) -> bool:
        return receives(self.event_types or [], event_type)


class WebhookSecret(models.Model):
    """A signing secret (``whsec_<base64>``). Shown once, when created; lists show its last characters."""

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="secrets")
    secret = models.CharField(max_length=100, editable=False)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Empty: the current secret. Set on rotation: the end of the overlap."
    )

    class Meta:
        ordering = ["endpoint", "-created_at", "-id"]
        verbose_name = "webhook secret"
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint"], condition=Q(expires_at__isnull=True), name="webhook_secret_one_current"
            )
        ]

    def __str__(self) -> str:
        return f"…{self.hint}"

    @property
    def hint(self) -> str:
        return self.secret[-SECRET_HINT_LENGTH:]


class WebhookDelivery(models.Model):
    """One outbox event on its way to one endpoint, with its fate."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed (gave up)"
        CANCELLED = "cancelled", "Cancelled (endpoint disabled)"

    class Trigger(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        RESEND = "resend", "Resend"
        TEST = "test", "Test event"

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="+")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(OutboxEvent, on_delete=models.CASCADE, related_name="+")
    event_type = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    trigger = models.CharField(
        max_length=16,
        choices=Trigger.choices,
        default=Trigger.SCHEDULED,
        help_text="What asked for the next (or last) attempt: the schedule, a resend, a test.",
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, help_text="Empty once it is finished.")
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True, help_text="When the receiver answered 2xx.")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "webhook delivery"
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event"], name="webhook_delivery_once"),
            models.CheckConstraint(
                name="webhook_delivery_pending_is_scheduled",
                condition=Q(status="pending", next_attempt_at__isnull=False)
                | (~Q(status="pending") & Q(next_attempt_at__isnull=True)),
                violation_error_message="A pending delivery (only) has a next attempt.",
            ),
        ]
        indexes = [
            # The due queue: pending deliveries by their next attempt.
            models.Index(fields=["next_attempt_at"], condition=Q(status="pending"), name="webhook_delivery_due"),
            models.Index(fields=["account", "endpoint", "-created_at"], name="webhook_delivery_endpoint"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} → {self.endpoint_id} ({self.status})"

    @property
    def webhook_id(self) -> str:
        return event_public_id(self.event_id)


class WebhookAttempt(models.Model):
    """One HTTP request of a delivery and what the receiver answered."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_rows")
    at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Empty: no HTTP answer.")
    latency_ms = models.PositiveIntegerField(default=0)
    response_excerpt = models.CharField(max_length=RESPONSE_EXCERPT_LENGTH, blank=True)
    error = models.CharField(max_length=500, blank=True, help_text="Network error, refused address or bad status.")
    trigger = models.CharField(max_length=16, choices=WebhookDelivery.Trigger.choices)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "webhook attempt"
        indexes = [models.Index(fields=["delivery", "at"], name="webhook_attempt_delivery")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.status_code or self.error[:40]}"

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
