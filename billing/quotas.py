"""Plan limits: where an account stands, and the alerts recorded as usage crosses them.

Crossing 75 %, 90 % and 100 % of a limit records one ``billing.usage_threshold`` outbox event per
account, metric, period and threshold; going beyond the limit records one ``billing.limit_exceeded``.
Both are written in the ingest transaction, so an alert exists iff the usage that caused it does.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from accounts.models import Account
from billing.models import PlanCharge, Subscription
from common import locks
from common.enqueue import enqueue
from common.formats import decimal_string
from common.models import OutboxEvent
from common.outbox import outbox_emit
from common.periods import month_containing
from tenants.models import Tenant
from usage.models import Metric, UsageRollup, UsageUniqueValue
from usage.selectors import ZERO, gauge_current_level, partners_live_in_period, tenants_live_in_period

logger = logging.getLogger(__name__)
THRESHOLDS = (75, 90, 100)
QUOTA_WINDOW_SECONDS = 2
CHECK_TASK = "billing.quotas_check"
_queued_until: dict[int, float] = {}  # per process: account id → until when a queued check covers commits


@dataclass(frozen=True)
class QuotaStatus:
    metric: Metric
    limit: Decimal
    window: str  # "period" or "hour"
    period_label: str
    current: Decimal

    @property
    def percentage(self) -> Decimal:
        return (self.current * 100 / self.limit).quantize(Decimal("0.01")) if self.limit else Decimal(0)

    @property
    def remaining(self) -> Decimal:
        return max(self.limit - self.current, ZERO)

    @property
    def exceeded(self) -> bool:
        return self.current > self.limit


def live_subscription(account: Account) -> Subscription | None:
    return (
        Subscription.objects.filter(account=account)
        .exclude(status=Subscription.Status.CANCELLED)
        .select_related("plan_version__plan")
        .prefetch_related("plan_version__charges__metric", "plan_version__charges__tiers")
        .first()
    )


def _current(account: Account, charge: PlanCharge, now: dt.datetime, tenant: Tenant | None) -> Decimal:
    metric = charge.metric
    month = month_containing(now)
    scope = {"tenant": tenant} if tenant is not None else {}
    if charge.limit_window == PlanCharge.LimitWindow.HOUR:
        hour = now.replace(minute=0, second=0, microsecond=0)
        rows = UsageRollup.objects.filter(account=account, metric=metric, hour=hour, **scope)
        if metric.aggregation == Metric.Aggregation.COUNT:
            return Decimal(sum(r.event_count for r in rows))
        return sum((r.quantity_sum for r in rows), ZERO)
    # Tenants and partners: those live at any moment of the month so far, the count billed for the month.
    if metric.source == Metric.Source.TENANTS:
        return Decimal(tenants_live_in_period(account_ids=[account.pk], period=month, now=now).count())
    if metric.source == Metric.Source.PARTNERS:
        return Decimal(partners_live_in_period(account_ids=[account.pk], period=month, now=now).count())
    if metric.aggregation == Metric.Aggregation.TIME_WEIGHTED:
        if tenant is None:
            return gauge_current_level(account=account, metric=metric, now=now)
        last = (
            UsageRollup.objects.filter(
                account=account, metric=metric, tenant=tenant, hour__lte=now, gauge_last_at__isnull=False
            )
            .order_by("-hour")
            .first()
        )
        return last.gauge_last_value if last else ZERO
    if metric.aggregation == Metric.Aggregation.UNIQUE_COUNT:
        qs = UsageUniqueValue.objects.filter(account=account, metric=metric, usage_month=month.start.date(), **scope)
        return Decimal(qs.values("value").distinct().count())
    rows = UsageRollup.objects.filter(account=account, metric=metric, billing_month=month.start.date(), **scope)
    if metric.aggregation == Metric.Aggregation.COUNT:
        return Decimal(sum(r.event_count for r in rows))
    if metric.aggregation == Metric.Aggregation.MAX:
        return max((r.quantity_max or ZERO for r in rows), default=ZERO)
    return sum((r.quantity_sum for r in rows), ZERO)


def quota_statuses(
    *, account: Account, now: dt.datetime, metric_ids: set[int] | None = None, tenant: Tenant | None = None
) -> list[QuotaStatus]:
    """Every limit of the account's plan (or those of ``metric_ids``) with current usage. With ``tenant``, the
    limits its events count towards, each with that tenant's own usage (the limits stay the account's);
    limits counted from the account's records (tenants, master partners) are left out."""
    subscription = live_subscription(account)
    if subscription is None:
        return []
    statuses = []
    for charge in subscription.plan_version.charges.all():
        if charge.limit is None or (metric_ids is not None and charge.metric_id not in metric_ids):
            continue
        if tenant is not None and charge.metric.source != Metric.Source.EVENTS:
            continue
        if charge.limit_window == PlanCharge.LimitWindow.HOUR:
            label = now.replace(minute=0, second=0, microsecond=0).strftime("%Y-%m-%dT%H:00Z")
        else:
            label = f"{now:%Y-%m}"
        statuses.append(
            QuotaStatus(
                metric=charge.metric,
                limit=charge.limit,
                window=charge.limit_window,
                period_label=label,
                current=_current(account, charge, now, tenant),
            )
        )
    return sorted(statuses, key=lambda s: s.metric.code)


def quotas_evaluate(*, account: Account, metric_ids: set[int] | None, now: dt.datetime) -> list[OutboxEvent]:
    """Record threshold and limit-exceeded events newly reached by ``account``'s usage. Idempotent."""
    recorded = []
    for status in quota_statuses(account=account, now=now, metric_ids=metric_ids):
        if status.limit <= 0:
            continue
        reached = [t for t in THRESHOLDS if status.current * 100 >= status.limit * t]
        events: list[tuple[str, int | None, str]] = [
            (
                "billing.usage_threshold",
                t,
                f"usage_threshold:{account.pk}:{status.metric.code}:{status.period_label}:{t}",
            )
            for t in reached
        ]
        if status.exceeded:
            events.append(
                (
                    "billing.limit_exceeded",
                    None,
                    f"limit_exceeded:{account.pk}:{status.metric.code}:{status.period_label}",
                )
            )
        for event_type, threshold, key in events:
            data = {
                "account_id": account.public_id,
                "threshold_type": status.metric.code,
                "threshold_percentage": threshold if threshold is not None else int(status.percentage),
                "current_usage": decimal_string(status.current),
                "plan_limit": decimal_string(status.limit),
                "period": status.period_label,
            }
            event = outbox_emit(type=event_type, account_id=account.pk, data=data, now=now, dedup_key=key)
            if event is not None:
                recorded.append(event)
    return recorded


def quotas_after_write(*, account: Account, now: dt.datetime, **_: object) -> None:
    """Receiver of ``usage.signals.usage_written``, in the transaction that stored new usage: evaluate the
    account's limits right here when tasks run eagerly (no workers), otherwise by a task after commit."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        quotas_check(account=account, now=now)
    else:
        transaction.on_commit(lambda: quotas_schedule(account=account))


def quotas_schedule(*, account: Account) -> None:
    """Queue the evaluation of the account's limits after new usage committed: one task per account per
    window, run when the window closes, so it sees every batch committed in the window and the request
    path does no quota work."""
    # This process queued a check that runs after this commit: nothing to do (saves a Redis round trip).
    if time.monotonic() < _queued_until.get(account.pk, 0.0):
        return
    try:
        if cache.add(f"quotas-pending:{account.pk}", 1, timeout=QUOTA_WINDOW_SECONDS):
            enqueue(CHECK_TASK, account.pk, countdown=QUOTA_WINDOW_SECONDS)
            _queued_until[account.pk] = time.monotonic() + QUOTA_WINDOW_SECONDS - 0.1
    except Exception:  # the usage is committed and acknowledged; the next batch schedules again
        logger.exception("Could not queue the quota check of account %s", account.public_id)


@transaction.atomic
def quotas_check(*, account: Account, now: dt.datetime) -> list[OutboxEvent]:
    """Record the alerts the account's committed usage has reached. One evaluation per account at a time
    (advisory lock), each seeing all usage committed before it, so no crossing is missed."""
    locks.lock(locks.QUOTAS, account.pk)
    return quotas_evaluate(account=account, metric_ids=None, now=now)
