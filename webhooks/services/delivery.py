"""From the outbox to the endpoints: the fan-out and the sending of due deliveries with their retries.

- ``webhooks_dispatch`` takes committed outbox events not handed over yet (``OutboxEvent.delivered_at`` empty: the
  column means "handed to webhooks"), creates one delivery per enabled endpoint of the event's account that
  subscribes to its type and existed when it happened, and marks the events handed over, in batches. Idempotent:
  a delivery is unique per endpoint and event, and events are taken with ``FOR UPDATE SKIP LOCKED``.
- ``webhooks_deliver_due`` claims due deliveries (``FOR UPDATE SKIP LOCKED``, then a lease: their next attempt is
  moved past the batch's longest possible duration, so a worker that dies mid-batch leaves them to be sent again;
  an endpoint that is failing gets at most ``WEBHOOKS_DELIVERY_CONCURRENCY`` of a batch, so a receiver that times
  out cannot hold up the others),
  sends them from a thread pool (``WEBHOOKS_DELIVERY_CONCURRENCY``) over kept-alive connections, then writes the
  attempts and the deliveries' new state in bulk, in one transaction.
- A 2xx answer is a success. Anything else (another status, a redirect, a timeout, a refused connection, an
  address the SSRF guard refuses) is retried on ``RETRY_SCHEDULE`` (±10 % jitter): ten attempts over about three
  days, after which the delivery has failed. A resend is one attempt.

Delivery is at least once: a delivery whose answer was lost (a worker stopped between sending and writing) is
sent again, with the same ``webhook-id``; receivers deduplicate by it. Order is not guaranteed. Nothing here
runs on the ingestion path: events are only read from the outbox, by the periodic task.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, Window
from django.db.models.functions import RowNumber

from common import clock
from common.bulk import bulk_update_fields
from common.models import OutboxEvent
from webhooks import transport
from webhooks.event_types import TEST_EVENT, receives
from webhooks.models import (
    RESPONSE_EXCERPT_LENGTH,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookSecret,
    event_public_id,
)
from webhooks.services.endpoints import endpoints_disable_failing
from webhooks.signing import Signer, body_bytes
from webhooks.ssrf import Target

Status = WebhookDelivery.Status
Trigger = WebhookDelivery.Trigger

# The wait before each retry, after the 1st, 2nd, ... failed attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h,
# 20 h, 20 h — about 3 days (71 h 35 min 5 s) from the first attempt to the tenth, after which the delivery has
# failed. Each wait is stretched or shortened at random by up to JITTER, so that retries of many deliveries that
# failed together (a receiver's outage) do not all arrive at once when it is back.
RETRY_SCHEDULE: tuple[dt.timedelta, ...] = (
    dt.timedelta(seconds=5),
    dt.timedelta(minutes=5),
    dt.timedelta(minutes=30),
    dt.timedelta(hours=2),
    dt.timedelta(hours=5),
    dt.timedelta(hours=10),
    dt.timedelta(hours=14),
    dt.timedelta(hours=20),
    dt.timedelta(hours=20),
)
MAX_ATTEMPTS = len(RETRY_SCHEDULE) + 1
# The columns written when deliveries and attempts are inserted (every column but the id).
DELIVERY_FIELDS = ("account", "endpoint", "event", "event_type", "status", "trigger", "attempts", "next_attempt_at",
                   "last_status_code", "last_error", "delivered_at", "created_at", "updated_at")  # fmt: skip
ATTEMPT_FIELDS = ("delivery", "at", "status_code", "latency_ms", "response_excerpt", "error", "trigger")
JITTER = 0.10
# A claim is safe for the batch's longest possible run: every request at its full timeouts, plus this margin.
LEASE_MARGIN = dt.timedelta(seconds=60)


def retry_delay(attempts: int, *, rng: random.Random | None = None) -> dt.timedelta | None:
    """The wait after the ``attempts``-th failed attempt (jitter included), or None when it was the last."""
    if attempts < 1 or attempts > len(RETRY_SCHEDULE):
        return None
    factor = (rng or random).uniform(1 - JITTER, 1 + JITTER)
    return RETRY_SCHEDULE[attempts - 1] * factor


def _batch(setting: str, default: int) -> int:
    return max(1, int(getattr(settings, setting, default)))


def _of_self() -> dict[str, Any]:
    """Lock only the rows of the queried table, not those of the tables joined for the filter."""
    return {"of": ("self",)} if connection.features.has_select_for_update_of else {}


def _skip_locked() -> dict[str, Any]:
    """``FOR UPDATE SKIP LOCKED`` where the database has it; SQLite (one writer at a time) reads plainly."""
    return {"skip_locked": True} if connection.features.has_select_for_update_skip_locked else {}


def _insert(objs: list[Any], fields: tuple[str, ...], *, ignore_conflicts: bool = False) -> None:
    """``bulk_create(objs)`` of the hot path in one statement whose text does not grow with the rows: on
    PostgreSQL one array per column joined with ``unnest`` (as ``common.bulk.bulk_update_fields``; a 500-row
    ``VALUES`` list costs more to build and parse than to insert); elsewhere ``bulk_create``."""
    if not objs:
        return
    model = type(objs[0])
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create(objs, ignore_conflicts=ignore_conflicts, batch_size=2000)
        return
    columns = [model._meta.get_field(name) for name in fields]
    qn = connection.ops.quote_name
    names = ", ".join(qn(column.column) for column in columns)
    casts = ", ".join(f"%s::{column.db_type(connection)}[]" for column in columns)
    arrays = [[column.get_db_prep_save(getattr(obj, column.attname), connection) for obj in objs] for column in columns]
    conflict = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {qn(model._meta.db_table)} ({names}) SELECT * FROM unnest({casts}){conflict}", arrays
        )


# --- Fan-out --------------------------------------------------------------------------------------------


@dataclass
class DispatchSummary:
    events: int = 0
    deliveries: int = 0


@transaction.atomic
def _dispatch_batch(*, now: dt.datetime, size: int) -> tuple[int, int]:
    events = list(
        OutboxEvent.objects.select_for_update(**_skip_locked())
        .filter(delivered_at__isnull=True)
        .order_by("created_at", "id")
        .values_list("id", "type", "account_id", "created_at")[:size]
    )
    if not events:
        return 0, 0
    accounts = {account_id for _, _, account_id, _ in events if account_id is not None}
    endpoints: dict[int, list[tuple[int, list[str], dt.datetime]]] = {}
    for endpoint_id, account_id, types, created_at in WebhookEndpoint.objects.filter(
        account_id__in=accounts, enabled=True
    ).values_list("id", "account_id", "event_types", "created_at"):
        endpoints.setdefault(account_id, []).append((endpoint_id, types or [], created_at))
    rows = [
        WebhookDelivery(
            account_id=account_id,
            endpoint_id=endpoint_id,
            event_id=event_id,
            event_type=event_type,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
        for event_id, event_type, account_id, event_at in events
        if account_id is not None and event_type != TEST_EVENT
        for endpoint_id, types, endpoint_at in endpoints.get(account_id, ())
        if receives(types, event_type) and event_at >= endpoint_at
    ]
    _insert(rows, DELIVERY_FIELDS, ignore_conflicts=True)
    OutboxEvent.objects.filter(pk__in=[event[0] for event in events]).update(delivered_at=now)
    return len(events), len(rows)


def webhooks_dispatch(*, now: dt.datetime | None = None, max_batches: int = 100) -> DispatchSummary:
    """Fan the outbox's events not yet handed over out to deliveries, ``WEBHOOKS_DISPATCH_BATCH`` events per
    transaction, until none is left (or ``max_batches`` were done)."""
    now = now or clock.now()
    size = _batch("WEBHOOKS_DISPATCH_BATCH", 1000)
    summary = DispatchSummary()
    for _ in range(max_batches):
        events, deliveries = _dispatch_batch(now=now, size=size)
        summary.events += events
        summary.deliveries += deliveries
        if events < size:
            break
    return summary


# --- Sending --------------------------------------------------------------------------------------------


@dataclass
class DeliverySummary:
    attempts: int = 0
    succeeded: int = 0
    retrying: int = 0
    failed: int = 0
    disabled_endpoints: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Claimed:
    delivery_id: int
    endpoint_id: int
    attempts: int
    trigger: str
    url: str
    event_id: int
    event_type: str
    event_at: dt.datetime
    data: dict[str, Any]


def _timeouts() -> float:
    return float(getattr(settings, "WEBHOOKS_CONNECT_TIMEOUT_SECONDS", 3)) + float(
        getattr(settings, "WEBHOOKS_READ_TIMEOUT_SECONDS", 10)
    )


@transaction.atomic
def _claim(*, now: dt.datetime, limit: int, concurrency: int) -> list[_Claimed]:
    # An endpoint that is failing (perhaps timing out) gets at most one round of the thread pool per batch, so
    # that it cannot hold up everyone else's deliveries, however many of its own are due; its first success
    # lifts the cap. Its share is picked by rank (PostgreSQL takes no FOR UPDATE with a window function), then
    # locked; the other endpoints' due deliveries fill the rest of the batch, oldest first.
    due = WebhookDelivery.objects.filter(status=Status.PENDING, next_attempt_at__lte=now)
    ranked = (
        due.filter(endpoint__failing_since__isnull=False)
        .annotate(rank=Window(RowNumber(), partition_by=[F("endpoint_id")], order_by=[F("next_attempt_at"), F("id")]))
        .filter(rank__lte=concurrency)
        .order_by("next_attempt_at", "id")
        .values_list("id", flat=True)[: max(limit // 2, 1)]
    )
    ids = list(
        WebhookDelivery.objects.select_for_update(**_skip_locked())
        .filter(pk__in=list(ranked))
        .order_by("next_attempt_at", "id")
        .values_list("id", flat=True)
    )
    ids += list(
        due.select_for_update(**_skip_locked(), **_of_self())
        .filter(endpoint__failing_since__isnull=True)
        .order_by("next_attempt_at", "id")
        .values_list("id", flat=True)[: limit - len(ids)]
    )
    if not ids:
        return []
    rounds = math.ceil(len(ids) / concurrency)
    lease_until = now + dt.timedelta(seconds=rounds * _timeouts()) + LEASE_MARGIN
    WebhookDelivery.objects.filter(pk__in=ids).update(next_attempt_at=lease_until)
    rows = WebhookDelivery.objects.filter(pk__in=ids).values_list(
        "id", "endpoint_id", "attempts", "trigger", "endpoint__url", "event_id", "event_type",
        "event__created_at", "event__payload",
    )  # fmt: skip
    return [
        _Claimed(
            delivery_id=row[0],
            endpoint_id=row[1],
            attempts=row[2],
            trigger=row[3],
            url=row[4],
            event_id=row[5],
            event_type=row[6],
            event_at=row[7],
            data=(row[8] or {}).get("data", {}),
        )
        for row in rows
    ]


def _signing_secrets(endpoint_ids: Iterable[int], now: dt.datetime) -> dict[int, list[str]]:
    """Each endpoint's valid secrets, newest first (the current one, and the previous one during an overlap)."""
    secrets: dict[int, list[str]] = {}
    rows = (
        WebhookSecret.objects.filter(endpoint_id__in=set(endpoint_ids))
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .order_by("endpoint_id", "-created_at", "-id")
        .values_list("endpoint_id", "secret")
    )
    for endpoint_id, secret in rows:
        secrets.setdefault(endpoint_id, []).append(secret)
    return secrets


@dataclass(frozen=True)
class _Request:
    claimed: _Claimed
    target: Target | None
    refused: str
    event_id: str
    body: bytes
    secrets: tuple[str, ...]


class _Sender:
    """Signs each request as it goes out (its ``webhook-timestamp`` is the moment it is sent, however long the
    batch has been running: receivers refuse a timestamp more than a few minutes old) and sends it."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now
        self.started = time.perf_counter()
        self.signer = Signer()

    def moment(self) -> dt.datetime:
        # Whole seconds (the resolution of webhook-timestamp): a batch that takes under a second is at ``now``.
        return self.now + dt.timedelta(seconds=int(time.perf_counter() - self.started))

    def __call__(self, request: _Request) -> tuple[dt.datetime, transport.Outcome]:
        at = self.moment()
        if request.target is None:
            return at, transport.Outcome(status_code=None, latency_ms=0, error=request.refused[:500])
        headers = self.signer.headers(event_id=request.event_id, body=request.body, at=at, secrets=request.secrets)
        return at, transport.send(request.target, request.body, headers)


def _prepare(claimed: list[_Claimed], now: dt.datetime) -> list[_Request]:
    secrets = _signing_secrets((c.endpoint_id for c in claimed), now)
    targets: dict[str, Target | str] = {}  # one resolution per URL and batch
    requests = []
    for item in claimed:
        target = targets.get(item.url)
        if target is None:
            target = targets[item.url] = transport.resolve(item.url)
        event_id = event_public_id(item.event_id)
        body = body_bytes(event_id=event_id, event_type=item.event_type, created_at=item.event_at, data=item.data)
        keys = tuple(secrets.get(item.endpoint_id, []))
        if isinstance(target, str):
            requests.append(_Request(item, None, target, event_id, body, keys))
        elif not keys:
            requests.append(_Request(item, None, "The endpoint has no signing secret.", event_id, body, keys))
        else:
            requests.append(_Request(item, target, "", event_id, body, keys))
    return requests


@transaction.atomic
def _record(
    requests: list[_Request], outcomes: list[tuple[dt.datetime, transport.Outcome]], now: dt.datetime
) -> DeliverySummary:
    summary = DeliverySummary(attempts=len(requests))
    ids = [r.claimed.delivery_id for r in requests]
    # Still pending (not cancelled by a disable, nor deleted, while the batch was out): only those move on.
    live = {
        delivery.pk: delivery
        for delivery in WebhookDelivery.objects.select_for_update().filter(pk__in=ids, status=Status.PENDING)
    }
    attempts = []
    changed = []
    succeeded_endpoints: set[int] = set()
    failing_endpoints: dict[int, dt.datetime] = {}
    for request, (sent_at, outcome) in zip(requests, outcomes, strict=True):
        claimed = request.claimed
        delivery = live.get(claimed.delivery_id)
        if delivery is None:
            continue
        attempts.append(
            WebhookAttempt(
                delivery_id=claimed.delivery_id,
                at=sent_at,
                status_code=outcome.status_code,
                latency_ms=outcome.latency_ms,
                response_excerpt=outcome.excerpt[:RESPONSE_EXCERPT_LENGTH],
                error=outcome.error[:500],
                trigger=claimed.trigger,
            )
        )
        delivery.attempts = claimed.attempts + 1
        delivery.last_status_code = outcome.status_code
        delivery.last_error = outcome.error[:500]
        delivery.updated_at = now
        if outcome.succeeded:
            delivery.status, delivery.next_attempt_at, delivery.delivered_at = Status.SUCCEEDED, None, now
            succeeded_endpoints.add(claimed.endpoint_id)
            summary.succeeded += 1
        else:
            failing_endpoints.setdefault(claimed.endpoint_id, now)
            delay = None if claimed.trigger == Trigger.RESEND else retry_delay(delivery.attempts)
            if delay is None:
                delivery.status, delivery.next_attempt_at = Status.FAILED, None
                summary.failed += 1
            else:
                delivery.next_attempt_at = now + delay
                summary.retrying += 1
        changed.append(delivery)
    _insert(attempts, ATTEMPT_FIELDS)
    bulk_update_fields(
        changed,
        ["status", "attempts", "next_attempt_at", "last_status_code", "last_error", "delivered_at", "updated_at"],
    )
    if succeeded_endpoints:
        WebhookEndpoint.objects.filter(pk__in=succeeded_endpoints, failing_since__isnull=False).update(
            failing_since=None
        )
    only_failing = set(failing_endpoints) - succeeded_endpoints
    if only_failing:
        WebhookEndpoint.objects.filter(pk__in=only_failing, failing_since__isnull=True).update(failing_since=now)
    return summary


_executor: ThreadPoolExecutor | None = None
_executor_size = 0


def _pool(size: int) -> ThreadPoolExecutor:
    """One thread pool per worker process, kept between batches (as the connections are)."""
    global _executor, _executor_size
    if _executor is None or _executor_size != size:
        if _executor is not None:
            _executor.shutdown(wait=False)
        _executor, _executor_size = ThreadPoolExecutor(max_workers=size, thread_name_prefix="webhooks"), size
    return _executor


def webhooks_deliver_batch(*, now: dt.datetime | None = None, limit: int | None = None) -> DeliverySummary:
    """Send one batch of due deliveries (up to ``limit``, default ``WEBHOOKS_DELIVERY_BATCH``)."""
    now = now or clock.now()
    concurrency = _batch("WEBHOOKS_DELIVERY_CONCURRENCY", 16)
    claimed = _claim(now=now, limit=limit or _batch("WEBHOOKS_DELIVERY_BATCH", 500), concurrency=concurrency)
    if not claimed:
        return DeliverySummary()
    requests = _prepare(claimed, now)
    send = _Sender(now)
    outcomes = [send(requests[0])] if len(requests) == 1 else list(_pool(concurrency).map(send, requests))
    return _record(requests, outcomes, now)


def webhooks_deliver_due(
    *, now: dt.datetime | None = None, max_batches: int = 20, limit: int | None = None
) -> DeliverySummary:
    """Send due deliveries batch after batch until none is due (or ``max_batches`` were sent), then disable the
    endpoints that have failed for too long."""
    now = now or clock.now()
    total = DeliverySummary()
    size = limit or _batch("WEBHOOKS_DELIVERY_BATCH", 500)
    for _ in range(max_batches):
        summary = webhooks_deliver_batch(now=now, limit=size)
        total.attempts += summary.attempts
        total.succeeded += summary.succeeded
        total.retrying += summary.retrying
        total.failed += summary.failed
        if summary.attempts < size:
            break
    total.disabled_endpoints = [e.public_id for e in endpoints_disable_failing(now=now)]
    return total


def webhooks_run(*, now: dt.datetime | None = None) -> tuple[DispatchSummary, DeliverySummary]:
    """The periodic run: fan out what the outbox holds, then send what is due."""
    now = now or clock.now()
    return webhooks_dispatch(now=now), webhooks_deliver_due(now=now)
