"""Writes of usage: ingesting events (with their rollups and quota alerts in the same transaction), and
the metric catalogue."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.conf import settings
from django.db import OperationalError, transaction

from accounts.models import Account
from accounts.throttling import RateLimited, rate_limit_waits
from common import locks
from common.audit import stamp
from common.errors import BillingError
from common.services import model_update
from tenants.selectors import partner_ids_for, tenant_rows_for
from usage import catalogue_cache
from usage.group_commit import GroupCommitter, Pending
from usage.ingest import EventError, RawEvent, parse_event
from usage.models import ClosedPeriod, Metric
from usage.signals import usage_written
from usage.writers import Refusal, StagedEvent, refusal_of, refused_duplicates_tally, write_events_refused

logger = logging.getLogger(__name__)
MAX_REPORTED_ERRORS = 100
DEADLOCK_RETRIES = 3


@dataclass
class IngestResult:
    accepted: int
    duplicates: int


@dataclass
class IngestRejected(Exception):
    """The batch was refused as a whole; nothing was stored."""

    status: int
    errors: list[dict[str, Any]] = field(default_factory=list)


def _month(moment: dt.datetime) -> dt.date:
    """The first day of the UTC month of ``moment`` (a parsed event timestamp, already in UTC).

    Called for every event of a batch: a tenth of the cost of ``month_containing(moment).start.date()``,
    which gives the same day."""
    return dt.date(moment.year, moment.month, 1)


def _setting_days(name: str, default: int) -> dt.timedelta:
    return dt.timedelta(days=getattr(settings, name, default))


@dataclass
class ValidatedEvents:
    """A batch that passed validation: the rows to store, one per distinct transaction id (sorted by it),
    and what the write must re-check."""

    account: Account
    rows: list[StagedEvent]
    duplicates_in_batch: int
    past_months: set[dt.date]  # months other than the current one that events fall in
    closed: dict[dt.date, dt.datetime]  # which of those were closed (invoiced), and when
    # The events refused for repeating a transaction id of the batch, as sent (``duplicates_in_batch`` of them).
    refused_in_batch: list[Refusal] = field(default_factory=list)


def events_validate(
    *, account: Account, items: Sequence[Any], now: dt.datetime, pinned_tenant_id: int | None = None
) -> ValidatedEvents:
    """Check every event for ``account`` (and, for a tenant-pinned API key, its one tenant) and build the
    rows to store. Reads only; the one definition of a valid batch, whichever handler received it.

    Raises ``IngestRejected``: 400 with every problem, or 403 when an event names a tenant the key may
    not report for.
    """
    errors: list[dict[str, Any]] = []
    forbidden: list[dict[str, Any]] = []
    parsed: list[tuple[int, RawEvent]] = []
    for index, item in enumerate(items):
        try:
            parsed.append((index, parse_event(item, now)))
        except EventError as exc:
            errors.append({"index": index, "field": exc.field, "code": exc.code, "message": exc.message})

    tenants = tenant_rows_for(public_ids={e.tenant for _, e in parsed}) if parsed else {}
    partner_ids = {str(e.properties["partner_id"]) for _, e in parsed if "partner_id" in e.properties}
    partners = partner_ids_for(account_id=account.pk, public_ids=partner_ids) if partner_ids else {}
    metrics = catalogue_cache.metrics_by_code()
    # The running month is never closed, so most requests need no lookup here.
    past_months = {_month(e.timestamp) for _, e in parsed} - {_month(now)}
    closed = _closed_months(account, past_months) if past_months else {}
    grace = _setting_days("USAGE_LATE_GRACE_DAYS", 7)
    oldest = now - _setting_days("USAGE_MAX_AGE_DAYS", 62)
    current_month = _month(now)

    staged: dict[str, StagedEvent] = {}
    duplicates_in_batch = 0
    refused_in_batch: list[Refusal] = []
    for index, event in parsed:
        try:
            tenant = tenants.get(event.tenant)
            if tenant is None:
                raise EventError("tenant", "unknown_tenant", value=event.tenant)
            if tenant.account_id != account.pk or (pinned_tenant_id and pinned_tenant_id != tenant.pk):
                forbidden.append(
                    {
                        "index": index,
                        "field": "tenant",
                        "code": "tenant_not_allowed",
                        "message": EventError("tenant", "tenant_not_allowed", value=event.tenant).message,
                    }
                )
                continue
            # Age first: a timestamp older than any tenant's life is too old, not outside that tenant's life.
            if event.timestamp < oldest:
                raise EventError("timestamp", "timestamp_too_old", days=(now - oldest).days)
            if event.timestamp < tenant.activated_at or (
                tenant.archived_at is not None and event.timestamp >= tenant.archived_at
            ):
                raise EventError("timestamp", "tenant_inactive", value=event.tenant)
            metric = metrics.get(event.metric)
            if metric is None:
                raise EventError("metric", "unknown_metric", value=event.metric)
            if not metric.reportable:
                raise EventError("metric", "metric_not_reportable", value=event.metric)
            usage_month = _month(event.timestamp)
            billing_month, is_late = usage_month, False
            closed_at = closed.get(usage_month)
            if closed_at is not None:
                if metric.is_gauge:  # a level holds over time: a reading cannot be billed after its month
                    raise EventError(
                        "timestamp", "gauge_period_closed", month=f"{usage_month:%Y-%m}", metric=metric.code
                    )
                if now > closed_at + grace:
                    raise EventError(
                        "timestamp",
                        "period_closed",
                        month=f"{usage_month:%Y-%m}",
                        until=f"{closed_at + grace:%Y-%m-%d %H:%M} UTC",
                    )
                billing_month, is_late = current_month, True
            partner_id = None
            if "partner_id" in event.properties:
                partner_id = partners.get(str(event.properties["partner_id"]))
                if partner_id is None:
                    raise EventError("properties.partner_id", "unknown_partner", value=event.properties["partner_id"])
            unique_value = None
            if metric.unique_property:
                raw = event.properties.get(metric.unique_property)
                if raw is None or raw == "":
                    raise EventError(
                        f"properties.{metric.unique_property}",
                        "missing_property",
                        metric=metric.code,
                        prop=metric.unique_property,
                    )
                unique_value = str(raw)
        except EventError as exc:
            errors.append({"index": index, "field": exc.field, "code": exc.code, "message": exc.message})
            continue
        if event.transaction_id in staged:
            duplicates_in_batch += 1
            refused_in_batch.append(Refusal(account.pk, tenant.pk, metric.id, event.timestamp, event.quantity))
            continue
        staged[event.transaction_id] = StagedEvent(
            transaction_id=event.transaction_id,
            account_id=account.pk,
            tenant_id=tenant.pk,
            metric_id=metric.id,
            partner_id=None if metric.is_gauge else partner_id,
            timestamp=event.timestamp,
            quantity=event.quantity,
            properties=orjson.dumps(event.properties).decode(),
            billing_month=usage_month if metric.is_gauge else billing_month,
            usage_month=usage_month,
            is_late=is_late and not metric.is_gauge,
            unique_value=unique_value,
            is_gauge=metric.is_gauge,
        )
    if forbidden:
        raise IngestRejected(403, forbidden[:MAX_REPORTED_ERRORS])
    if errors:
        errors.sort(key=lambda e: e["index"])
        raise IngestRejected(400, errors[:MAX_REPORTED_ERRORS])
    return ValidatedEvents(
        account=account,
        rows=sorted(staged.values(), key=lambda s: s.transaction_id),
        duplicates_in_batch=duplicates_in_batch,
        past_months=past_months,
        closed=closed,
        refused_in_batch=refused_in_batch,
    )


def events_ingest(
    *,
    account: Account,
    items: Sequence[Any],
    now: dt.datetime,
    pinned_tenant_id: int | None = None,
    _revalidated: bool = False,
) -> IngestResult:
    """Validate every event (``events_validate``), then store the new ones exactly once. All or nothing:
    raises ``IngestRejected`` and stores nothing when any event is refused. Events refused as duplicates (key
    stored already, or repeated in the batch) are tallied in the same transaction (``RefusedDuplicate``)."""
    batch = events_validate(account=account, items=items, now=now, pinned_tenant_id=pinned_tenant_id)
    rows, past_months = batch.rows, batch.past_months
    if not rows:
        return IngestResult(accepted=0, duplicates=batch.duplicates_in_batch)

    for attempt in range(DEADLOCK_RETRIES):
        try:
            with transaction.atomic():
                if past_months:
                    # Closing a month takes this lock exclusively: the months validated above cannot
                    # close before this batch commits, or the batch sees them closed and is re-validated.
                    lock_periods(account, exclusive=False)
                    if _closed_months(account, past_months) != batch.closed:
                        raise _PeriodsChanged
                refused = write_events_refused(rows=rows, now=now)
                inserted = len(rows) - len(refused)
                if inserted:
                    usage_written_notify(account=account, now=now)
                if refused or batch.refused_in_batch:
                    refused_duplicates_tally(
                        refusals=[*batch.refused_in_batch, *(refusal_of(r) for r in refused)], now=now
                    )
            break
        except _PeriodsChanged:
            if _revalidated:
                raise
            return events_ingest(
                account=account, items=items, now=now, pinned_tenant_id=pinned_tenant_id, _revalidated=True
            )
        except OperationalError as exc:  # deadlock or serialization failure between concurrent batches
            if not write_conflict(exc) or attempt == DEADLOCK_RETRIES - 1:
                raise
            time.sleep(0.01 * (attempt + 1))
    return IngestResult(accepted=inserted, duplicates=batch.duplicates_in_batch + len(rows) - inserted)


def write_conflict(exc: OperationalError) -> bool:
    """A deadlock or serialization failure between concurrent writers: the transaction may be retried."""
    return getattr(getattr(exc, "__cause__", None), "sqlstate", None) in ("40P01", "40001")


def events_ingest_grouped(
    *,
    account: Account,
    items: Sequence[Any],
    now: dt.datetime,
    pinned_tenant_id: int | None = None,
    rate_limited_as: Any = None,
) -> IngestResult:
    """``events_ingest`` for small batches of the running month (single events above all): the rows are
    written together with those other threads of this process are writing at the same moment, in one
    transaction (``usage.group_commit``); returns after it committed. A batch with events of another month
    must go through ``events_ingest``, which guards closed months.

    With ``rate_limited_as`` (an API key), the request is first counted against that key's rate limit,
    together with the rest of its group and whether or not its events are valid (as a throttle counts a
    request before its body is read): raises ``RateLimited`` when over the limit, else ``IngestRejected``
    for invalid events.
    """
    rejected: IngestRejected | None = None
    rows: list[StagedEvent] = []
    duplicates_in_batch = 0
    refused_in_batch: list[Refusal] = []
    try:
        batch = events_validate(account=account, items=items, now=now, pinned_tenant_id=pinned_tenant_id)
        if batch.past_months:
            raise ValueError("events of past months are stored by events_ingest")
        rows, duplicates_in_batch, refused_in_batch = batch.rows, batch.duplicates_in_batch, batch.refused_in_batch
    except IngestRejected as exc:
        if rate_limited_as is None:
            raise
        rejected = exc
    if not rows and rate_limited_as is None:
        return IngestResult(accepted=0, duplicates=duplicates_in_batch)
    member = Pending(account=account, rows=rows, now=now, admit_as=rate_limited_as, duplicates=refused_in_batch)
    new_keys = _group_committer.submit(member)
    if member.refused is not None:
        raise RateLimited(member.refused)
    if rejected is not None:
        raise rejected
    return IngestResult(accepted=len(new_keys), duplicates=duplicates_in_batch + len(rows) - len(new_keys))


class _PeriodsChanged(Exception):
    """A month of the batch closed between validation and write."""


def _closed_months(account: Account, months: set[dt.date]) -> dict[dt.date, dt.datetime]:
    return dict(ClosedPeriod.objects.filter(account=account, month__in=months).values_list("month", "closed_at"))


def usage_written_notify(*, account: Account, now: dt.datetime) -> None:
    """In the transaction that stored new usage of ``account``: tell the receivers of ``usage_written``
    (billing's plan-limit check). Metering does not know who listens."""
    usage_written.send(sender=Account, account=account, now=now)


_group_committer = GroupCommitter(
    conflict=lambda exc: write_conflict(exc),
    after_write=lambda account, now: usage_written_notify(account=account, now=now),
    tally_refused=lambda refusals, now: refused_duplicates_tally(refusals=refusals, now=now),
    admit=lambda api_keys: rate_limit_waits(api_keys=api_keys),
)


def lock_periods(account: Account, *, exclusive: bool) -> None:
    """Transaction-scoped lock between closing an account's months (exclusive) and writing its events
    for past months (shared)."""
    locks.lock(locks.PERIODS, account.pk, shared=not exclusive)


@transaction.atomic
def period_close(*, account: Any, month: dt.date, closed_at: dt.datetime) -> ClosedPeriod:
    """Mark an account's month as invoiced: later events for it are late usage, then refused. Waits for
    batches writing past-month events of the account to commit first (see ``lock_periods``)."""
    lock_periods(account, exclusive=True)
    if month.day != 1:
        raise BillingError("A closed period is a month: give its first day.", code="invalid_month", field="month")
    closed, _ = ClosedPeriod.objects.get_or_create(account=account, month=month, defaults={"closed_at": closed_at})
    return closed


METRIC_EDITABLE_FIELDS = ("name", "description", "unit", "is_active")


@transaction.atomic
def metric_create(
    *,
    code: str,
    name: str,
    unit: str,
    aggregation: str,
    billing_unit: str,
    source: str = Metric.Source.EVENTS,
    aggregation_property: str = "",
    description: str = "",
    actor: Any = None,
) -> Metric:
    metric = Metric(
        code=code,
        name=name,
        unit=unit,
        aggregation=aggregation,
        billing_unit=billing_unit,
        source=source,
        aggregation_property=aggregation_property,
        description=description,
    )
    metric.full_clean()
    stamp(metric, actor=actor, reason="created")
    metric.save()
    return metric


@transaction.atomic
def metric_update(*, metric: Metric, data: dict[str, Any], actor: Any = None) -> Metric:
    """Rename or describe a metric. How it is measured (code, source, aggregation, billing unit)
    never changes: that would silently change every price attached to it."""
    stamp(metric, actor=actor, reason="updated")
    metric, _ = model_update(instance=metric, fields=METRIC_EDITABLE_FIELDS, data=data)
    return metric
