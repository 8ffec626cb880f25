"""The metric catalogue (what can be metered), the event store and rollups.

Invariants:
- ``EventKey`` holds one row per acknowledged ``(account, transaction_id)``; an event row exists iff its
  key row was inserted by the same transaction, so every acknowledged event is stored exactly once.
- Rollups hold, per bucket, exactly the aggregate of the events in it: they are written in the same
  transaction as the events they count, from the rows that transaction inserted (never from a request).
- ``billing_month`` is the first day (UTC) of the month whose invoice bills the event: the month of its
  timestamp, or for late usage (its month already invoiced) the month in which it arrived.

Foreign keys here carry no index of their own (``db_index=False``): every read starts from the account and
is served by the composite keys below, and each extra index is paid on every event written.
"""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from common.money import QUANTITY_DECIMAL_PLACES, QUANTITY_MAX_DIGITS

CODE_RE = r"^[a-z][a-z0-9_]{0,62}$"
code_validator = RegexValidator(CODE_RE, "Use lower-case letters, digits and _ , starting with a letter.")


def _quantity(**kwargs):
    return models.DecimalField(max_digits=QUANTITY_MAX_DIGITS, decimal_places=QUANTITY_DECIMAL_PLACES, **kwargs)


def _total(**kwargs):
    """Aggregates of many events: room for billions of maximal events."""
    return models.DecimalField(max_digits=38, decimal_places=QUANTITY_DECIMAL_PLACES, **kwargs)


class Metric(models.Model):
    """A billable quantity and how it is measured over a period."""

    class Source(models.TextChoices):
        EVENTS = "events", "Usage events"
        TENANTS = "tenants", "Active tenants (from tenant lifecycle)"
        PARTNERS = "partners", "Active master partners (from partner lifecycle)"

    class Aggregation(models.TextChoices):
        SUM = "sum", "Sum of quantities"
        COUNT = "count", "Count of events"
        UNIQUE_COUNT = "unique_count", "Unique count of a property"
        MAX = "max", "Maximum quantity"
        TIME_WEIGHTED = "time_weighted", "Time-weighted gauge (e.g. GB held × hours)"

    class BillingUnit(models.TextChoices):
        PER_UNIT = "per_unit", "per 1"
        PER_THOUSAND = "per_thousand", "per 1,000"
        PER_GB_MONTH = "per_gb_month", "per GB-month"
        PER_USER_MONTH = "per_user_month", "per user-month"
        PER_FEATURE_MONTH = "per_feature_month", "per feature-month"
        PER_TENANT_MONTH = "per_tenant_month", "per tenant-month"
        PER_PARTNER_MONTH = "per_partner_month", "per partner-month"

    code = models.CharField(
        max_length=63, unique=True, validators=[code_validator], help_text="Code used by events' 'metric' field."
    )
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    unit = models.CharField(max_length=32, help_text="Unit of the reported quantity, e.g. 'request', 'GB'.")
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.EVENTS)
    aggregation = models.CharField(
        max_length=16,
        choices=Aggregation.choices,
        help_text="How a period's events become one quantity. Time-weighted reads each event's quantity "
        "as the new gauge level from its timestamp on, giving unit-hours.",
    )
    aggregation_property = models.CharField(
        max_length=63,
        blank=True,
        validators=[code_validator],
        help_text="For unique counts: the event property counted, e.g. user_id or feature.",
    )
    billing_unit = models.CharField(
        max_length=24,
        choices=BillingUnit.choices,
        help_text="What one price unit is. GB-months are GB-hours divided by the hours in the period.",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    # The tables keep the names they had when metrics belonged to billing: the model moved, the rows did not.
    history = HistoricalRecords(table_name="billing_historicalmetric")

    class Meta:
        db_table = "billing_metric"
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                name="metric_unique_count_has_property",
                condition=~Q(source="events", aggregation="unique_count") | ~Q(aggregation_property=""),
                violation_error_message="A unique count over events needs the property it counts.",
            ),
            models.CheckConstraint(
                name="metric_property_only_for_unique_count",
                condition=Q(aggregation="unique_count") | Q(aggregation_property=""),
                violation_error_message="Only unique counts take an aggregation property.",
            ),
            models.CheckConstraint(
                name="metric_lifecycle_sources_count_unique",
                condition=Q(source="events") | Q(aggregation="unique_count", aggregation_property=""),
                violation_error_message="Tenant and partner metrics count unique active resources.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    @property
    def price_unit_size(self) -> Decimal:
        """Billed quantity that one unit price pays for."""
        return Decimal(1000) if self.billing_unit == self.BillingUnit.PER_THOUSAND else Decimal(1)


class EventKey(models.Model):
    """The idempotency key of every stored event. Kept apart from the events so the event table can be
    range-partitioned by month (a unique key on a partitioned table must contain the partition key)."""

    pk = models.CompositePrimaryKey("account_id", "transaction_id")
    account = models.ForeignKey(
        "accounts.Account", on_delete=models.PROTECT, db_constraint=False, db_index=False, related_name="+"
    )
    transaction_id = models.CharField(max_length=255)

    class Meta:
        verbose_name = "event key"

    def __str__(self) -> str:
        return f"{self.account_id}:{self.transaction_id}"


class UsageEvent(models.Model):
    """One billable event as reported. Append-only: never updated, never deleted while billable."""

    account = models.ForeignKey(
        "accounts.Account", on_delete=models.PROTECT, db_constraint=False, db_index=False, related_name="+"
    )
    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.PROTECT, db_constraint=False, db_index=False, related_name="+"
    )
    metric = models.ForeignKey(
        "usage.Metric", on_delete=models.PROTECT, db_constraint=False, db_index=False, related_name="+"
    )
    partner = models.ForeignKey(
        "tenants.MasterPartner",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    transaction_id = models.CharField(max_length=255, help_text="The client's idempotency key for this event.")
    timestamp = models.DateTimeField(help_text="When the usage happened (UTC).")
    quantity = _quantity()
    properties = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(help_text="When Ledgerline acknowledged the event.")
    billing_month = models.DateField(help_text="First day of the month whose invoice bills this event.")
    is_late = models.BooleanField(default=False, help_text="Arrived after its month was invoiced.")

    class Meta:
        indexes = [
            models.Index(fields=["account", "timestamp"], name="usage_event_account_ts"),
            models.Index(fields=["account", "transaction_id"], name="usage_event_account_txn"),
            models.Index(fields=["account", "billing_month", "metric"], name="usage_event_billing"),
        ]

    def __str__(self) -> str:
        return f"{self.transaction_id} {self.metric_id} {self.quantity}"


class UsageRollup(models.Model):
    """Hourly aggregate of one (account, tenant, metric, partner, billing month) bucket.

    For gauges (time-weighted metrics) it also keeps the readings' shape inside the hour, so a period's
    unit-hours follow from the rollups alone: ``gauge_first_at``/``gauge_first_value``, the
    ``gauge_last_at``/``gauge_last_value``, and ``gauge_inner_area`` — the unit-hours between the first and
    the last reading of the hour.
    """

    account = models.ForeignKey(
        "accounts.Account", on_delete=models.PROTECT, db_constraint=False, db_index=False, related_name="+"
    )
    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.PROTECT, db_constraint=False, db_index=False, related_name="+"
    )
    metric = models.ForeignKey(
        "usage.Metric", on_delete=models.PROTECT, db_constraint=False, db_index=False, related_name="+"
    )
    partner = models.ForeignKey(
        "tenants.MasterPartner",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    hour = models.DateTimeField(help_text="Start of the hour (UTC) the events happened in.")
    billing_month = models.DateField()
    quantity_sum = _total(default=0)
    event_count = models.BigIntegerField(default=0)
    quantity_max = _quantity(null=True, blank=True)
    gauge_first_at = models.DateTimeField(null=True, blank=True)
    gauge_first_value = _quantity(null=True, blank=True)
    gauge_last_at = models.DateTimeField(null=True, blank=True)
    gauge_last_value = _quantity(null=True, blank=True)
    gauge_inner_area = _total(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "tenant", "metric", "partner", "hour", "billing_month"],
                name="usage_rollup_bucket",
                nulls_distinct=False,
            ),
            models.CheckConstraint(name="usage_rollup_count_non_negative", condition=Q(event_count__gte=0)),
        ]
        indexes = [
            models.Index(fields=["account", "billing_month", "metric"], name="usage_rollup_billing"),
            models.Index(fields=["account", "metric", "hour"], name="usage_rollup_hour"),
        ]

    def __str__(self) -> str:
        return f"{self.metric_id} @ {self.hour:%Y-%m-%d %H:00}: {self.quantity_sum}"


class UsageUniqueValue(models.Model):
    """A distinct property value (a user_id, a feature) seen for a unique-count metric in a month."""

    account = models.ForeignKey(
        "accounts.Account", on_delete=models.PROTECT, db_constraint=False, db_index=False, related_name="+"
    )
    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.PROTECT, db_constraint=False, db_index=False, related_name="+"
    )
    metric = models.ForeignKey(
        "usage.Metric", on_delete=models.PROTECT, db_constraint=False, db_index=False, related_name="+"
    )
    usage_month = models.DateField(help_text="First day of the month the value was seen in.")
    value = models.CharField(max_length=255)
    billing_month = models.DateField(help_text="Month whose invoice bills it (later for late usage).")
    first_seen_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "tenant", "metric", "usage_month", "value"], name="usage_unique_value"
            ),
        ]
        indexes = [models.Index(fields=["account", "usage_month", "metric"], name="usage_unique_month")]

    def __str__(self) -> str:
        return f"{self.metric_id} {self.usage_month:%Y-%m}: {self.value}"


class ClosedPeriod(models.Model):
    """An account's month whose invoice is final. Events for it are late usage (inside the grace
    window) or refused (after it)."""

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="closed_periods")
    month = models.DateField(help_text="First day of the closed month.")
    closed_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "month"], name="closed_period_unique")]

    def __str__(self) -> str:
        return f"{self.account_id} {self.month:%Y-%m} closed {self.closed_at:%Y-%m-%d}"


class RefusedDuplicate(models.Model):
    """A tally of events ingestion refused as duplicates — their transaction id was already stored, or repeated
    in the same batch — per account, tenant, metric and hour of the refused events' timestamps.

    Read from each refused event as it was sent (its tenant, metric, timestamp and quantity), never from the
    event stored under that id. Nothing here is billed: it answers "we sent it twice" in a dispute. Written only
    by the ingest path, and only when a batch had duplicates.
    """

    account = models.ForeignKey(
        "accounts.Account", on_delete=models.PROTECT, db_constraint=False, db_index=False, related_name="+"
    )
    tenant = models.ForeignKey(
        "tenants.Tenant",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    metric = models.ForeignKey(
        "usage.Metric", on_delete=models.PROTECT, db_constraint=False, db_index=False, related_name="+"
    )
    hour = models.DateTimeField(help_text="Start of the hour (UTC) of the refused events' timestamps, as sent.")
    count = models.BigIntegerField(default=0, help_text="Events refused as duplicates in this hour.")
    quantity_sum = _total(default=0, help_text="Sum of the quantities the refused events reported (not billed).")
    first_refused_at = models.DateTimeField(help_text="When the first of them was refused.")
    last_refused_at = models.DateTimeField(help_text="When the last of them was refused.")

    class Meta:
        verbose_name = "refused duplicate"
        constraints = [
            models.UniqueConstraint(
                fields=["account", "tenant", "metric", "hour"],
                name="usage_refused_duplicate_bucket",
                nulls_distinct=False,
            ),
            models.CheckConstraint(name="usage_refused_duplicate_count_positive", condition=Q(count__gt=0)),
        ]
        indexes = [models.Index(fields=["account", "metric", "hour"], name="usage_refused_hour")]

    def __str__(self) -> str:
        return f"{self.metric_id} @ {self.hour:%Y-%m-%d %H:00}: {self.count} refused"
