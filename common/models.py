from django.db import models


class Counter(models.Model):
    """A named, monotonically increasing counter for gap-free numbers (public ids, invoice series).

    Invariant: ``value`` is the last number handed out; it only grows, one at a time, under a row
    lock taken by ``common.services.counter_next`` inside the caller's transaction, so a rolled-back
    caller gives its number back and no two callers ever get the same number.
    """

    name = models.CharField(max_length=64, primary_key=True, help_text="Series name, e.g. 'account' or 'invoice:2026'.")
    value = models.PositiveBigIntegerField(default=0, help_text="The last number handed out in this series.")

    class Meta:
        verbose_name = "number series"
        verbose_name_plural = "number series"

    def __str__(self) -> str:
        return f"{self.name} = {self.value}"


class OutboxEvent(models.Model):
    """A domain event, written in the same transaction as the change it reports (transactional outbox);
    ``delivered_at`` and ``attempts`` stay empty until something delivers events. ``dedup_key`` makes
    "once per account, metric, period and threshold" events exactly-once: a second insert with the same key
    is a no-op."""

    type = models.CharField(max_length=64, help_text="e.g. billing.usage_threshold, billing.limit_exceeded.")
    account = models.ForeignKey(
        "accounts.Account", on_delete=models.CASCADE, null=True, blank=True, related_name="outbox_events"
    )
    payload = models.JSONField(help_text='The event: {"type": ..., "data": {...}}.')
    dedup_key = models.CharField(max_length=200, unique=True, null=True, blank=True)
    created_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "outbox event"
        indexes = [
            models.Index(fields=["account", "type", "created_at"], name="outbox_account_type"),
            models.Index(fields=["delivered_at", "created_at"], name="outbox_pending"),
        ]

    def __str__(self) -> str:
        return f"{self.type} ({self.created_at:%Y-%m-%d %H:%M})"


class IdempotencyRecord(models.Model):
    """The stored outcome of a POST sent with an ``Idempotency-Key`` header: a repeat with the same key
    and body replays it; the same key with another body is refused. Kept for 24 hours."""

    api_key = models.ForeignKey("accounts.ApiKey", on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Empty while in progress.")
    body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["api_key", "key"], name="idempotency_key_unique")]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created")]

    def __str__(self) -> str:
        return f"{self.key} ({self.status_code or 'in progress'})"


class Clock(models.Model):
    """The test clock: a settable "now" for demos and tests (like Stripe's test clocks).

    One row. While ``frozen_at`` is set, ``common.clock.now()`` returns it, so trials, period ends and
    grace windows can be reached without waiting. Only honoured where ``LEDGERLINE_TEST_CLOCK`` is on
    (local and test settings); production always runs on the real time.
    """

    frozen_at = models.DateTimeField(null=True, blank=True, help_text="The time the system sees; empty: real time.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "test clock"

    def __str__(self) -> str:
        return f"Test clock at {self.frozen_at:%Y-%m-%d %H:%M:%S} UTC" if self.frozen_at else "Test clock (real time)"
