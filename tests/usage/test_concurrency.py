"""Several client processes send overlapping batches with the same transaction ids, all at once, to a live
server: exactly one copy of each event lands, and counts and totals are exact to the unit.

The clients are separate processes (``spawn``) speaking plain HTTP; they never touch Django or its
database connection. That is why this module imports nothing from Django at the top: each spawned
client imports it to find its entry point.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import queue
import random
import time
import urllib.parse
from decimal import Decimal

import pytest

from tests.usage.http import post_events

N_EVENTS = 3_000
N_CLIENTS = 4
BATCH = 500
REQUEST_TIMEOUT = 60  # seconds, per request
CLIENTS_DEADLINE = 120  # seconds, for all clients together


def _client(index: int, url: str, secret: str, batches: list[list[dict]], barrier, results) -> None:
    """One client process: wait for the others, then post its batches one after another."""
    parts = urllib.parse.urlsplit(url)
    out: list[tuple[int | None, object]] = []
    try:
        barrier.wait(timeout=60)
        for batch in batches:
            out.append(post_events(parts.hostname, parts.port, secret, batch, REQUEST_TIMEOUT))
    except Exception as exc:  # reported to the test, which fails on it
        out.append((None, repr(exc)))
    results.put((index, out))


def _events(tenant: str, now: dt.datetime) -> list[dict]:
    """N_EVENTS distinct events with varied quantities, spread over the last hours of the current month."""
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    span = max(1, min(3 * 3600, int((now - month_start).total_seconds()) - 60))
    rng = random.Random(20261126)
    events = []
    for i in range(N_EVENTS):
        quantity = Decimal(1 + (i * 7919) % 97) + Decimal(i % 100) / 100  # 1.00 .. 97.99
        moment = max(month_start, now - dt.timedelta(seconds=60 + rng.randrange(span)))
        events.append(
            {
                "transaction_id": f"conc-{i:05d}",
                "tenant": tenant,
                "metric": "messages",
                "quantity": str(quantity),
                "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "properties": {"n": i},
            }
        )
    return events


def _chunks(events: list[dict]) -> list[list[dict]]:
    return [events[i : i + BATCH] for i in range(0, len(events), BATCH)]


def _plans(events: list[dict]) -> list[list[list[dict]]]:
    """Every client sends every event once, cut and ordered differently so batches overlap partially."""
    in_order = _chunks(events)
    shuffled = list(events)
    random.Random(2).shuffle(shuffled)
    rotated = events[BATCH // 2 :] + events[: BATCH // 2]  # boundaries half a batch off client 0's
    plans = [
        in_order,  # 0..499, 500..999, ...
        list(reversed(in_order)),  # the same batches, last first
        _chunks(shuffled),  # each batch overlaps all of the others' batches
        list(reversed(_chunks(rotated))),  # straddles the others' boundaries
    ]
    assert len(plans) == N_CLIENTS
    for plan_ in plans:
        assert sorted(e["transaction_id"] for batch in plan_ for e in batch) == sorted(
            e["transaction_id"] for e in events
        )
    return plans


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_overlapping_concurrent_batches_land_exactly_once(live_server, plan):
    from django.db.models import Sum
    from django.utils import timezone

    from accounts.services import api_key_create
    from billing.services.subscriptions import subscription_create
    from common.models import OutboxEvent
    from tests.accounts.factories import AccountFactory
    from tests.tenants.factories import TenantFactory
    from usage.models import EventKey, UsageEvent, UsageRollup

    account = AccountFactory(name="Concurrent Co")
    subscription_create(
        account=account,
        plan_version=plan("messaging-enterprise"),
        started_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )
    tenant = TenantFactory(
        account=account, public_id="ten_concurrent", activated_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    )
    _, secret = api_key_create(name="load", scopes=["ingest"], account=account, rate_limit_per_minute=1_000_000)

    now = timezone.now()
    events = _events(tenant.public_id, now)
    expected_total = sum((Decimal(e["quantity"]) for e in events), Decimal(0))
    plans = _plans(events)

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(N_CLIENTS)
    results = ctx.Queue()
    clients = [
        ctx.Process(target=_client, args=(i, live_server.url, secret, plans[i], barrier, results), daemon=True)
        for i in range(N_CLIENTS)
    ]
    started = time.monotonic()
    for process in clients:
        process.start()
    responses: dict[int, list] = {}
    try:
        deadline = started + CLIENTS_DEADLINE
        while len(responses) < N_CLIENTS:
            index, out = results.get(timeout=max(0.1, deadline - time.monotonic()))
            responses[index] = out
    except queue.Empty:
        pytest.fail(f"only {len(responses)} of {N_CLIENTS} clients finished within {CLIENTS_DEADLINE}s")
    finally:
        for process in clients:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)

    statuses = [(index, status) for index, out in responses.items() for status, _ in out]
    failures = [(index, status, body) for index, out in responses.items() for status, body in out if status != 202]
    assert not failures, failures[:5]
    assert len(statuses) == sum(len(p) for p in plans) == N_CLIENTS * (N_EVENTS // BATCH)
    bodies = [body for out in responses.values() for _, body in out]
    assert sum(b["accepted"] for b in bodies) == N_EVENTS
    assert sum(b["duplicates"] for b in bodies) == N_CLIENTS * N_EVENTS - N_EVENTS

    assert UsageEvent.objects.filter(account=account).count() == N_EVENTS
    assert UsageEvent.objects.count() == N_EVENTS
    assert EventKey.objects.count() == N_EVENTS
    assert set(UsageEvent.objects.values_list("transaction_id", flat=True)) == {e["transaction_id"] for e in events}
    stored = dict(UsageEvent.objects.values_list("transaction_id", "quantity"))
    assert stored == {e["transaction_id"]: Decimal(e["quantity"]) for e in events}
    assert UsageEvent.objects.aggregate(total=Sum("quantity"))["total"] == expected_total

    rollups = UsageRollup.objects.filter(account=account).aggregate(total=Sum("quantity_sum"), count=Sum("event_count"))
    assert rollups == {"total": expected_total, "count": N_EVENTS}
    # Each hourly bucket holds exactly the events of its hour.
    by_hour: dict[dt.datetime, tuple[Decimal, int]] = {}
    for moment, quantity in UsageEvent.objects.values_list("timestamp", "quantity"):
        hour = moment.replace(minute=0, second=0, microsecond=0)
        total, count = by_hour.get(hour, (Decimal(0), 0))
        by_hour[hour] = (total + quantity, count + 1)
    assert {r.hour: (r.quantity_sum, r.event_count) for r in UsageRollup.objects.all()} == by_hour

    # 3,000 events of ~50 messages cross every alert of the 100,000-message limit: each recorded once.
    if timezone.now().month == now.month:
        assert expected_total > 100_000
        alerts = OutboxEvent.objects.filter(
            account=account, type__in=["billing.usage_threshold", "billing.limit_exceeded"]
        )
        assert sorted(alerts.values_list("type", "dedup_key")) == sorted(
            [
                ("billing.usage_threshold", f"usage_threshold:{account.pk}:messages:{now:%Y-%m}:{t}")
                for t in (75, 90, 100)
            ]
            + [("billing.limit_exceeded", f"limit_exceeded:{account.pk}:messages:{now:%Y-%m}")]
        )
