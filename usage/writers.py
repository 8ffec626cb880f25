"""Storing validated events with their rollups, exactly once.

PostgreSQL: the batch is streamed with ``COPY`` into a temporary staging table, then one statement
inserts the new idempotency keys (``ON CONFLICT DO NOTHING``), the events whose keys were new, their
hourly rollups (``ON CONFLICT DO UPDATE`` adding to the bucket) and new unique values. Gauge buckets
touched by the batch are then recomputed from their (few) readings. Rows go in sorted by key so that
concurrent batches lock rows in the same order.

Events refused because their key was already stored (or repeated in the batch) are tallied per account,
tenant, metric and hour (``RefusedDuplicate``, ``refused_duplicates_tally``); the write statement names the refused
rows of a batch (none, almost always), so a batch without duplicates pays nothing more.

SQLite (the demo database): the same effect with plain ORM statements.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection, transaction

from usage.models import EventKey, RefusedDuplicate, UsageEvent, UsageRollup, UsageUniqueValue


@dataclass(frozen=True, slots=True)
class StagedEvent:
    transaction_id: str
    account_id: int
    tenant_id: int
    metric_id: int
    partner_id: int | None
    timestamp: dt.datetime
    quantity: Decimal
    properties: str  # JSON text
    billing_month: dt.date
    usage_month: dt.date
    is_late: bool
    unique_value: str | None
    is_gauge: bool


@dataclass(frozen=True, slots=True)
class Refusal:
    """An event refused as a duplicate, as it was sent (validated: its tenant and metric are known)."""

    account_id: int
    tenant_id: int | None
    metric_id: int
    timestamp: dt.datetime
    quantity: Decimal


def refusal_of(row: StagedEvent) -> Refusal:
    return Refusal(row.account_id, row.tenant_id, row.metric_id, row.timestamp, row.quantity)


STAGE_COLUMNS = (
    "transaction_id",
    "account_id",
    "tenant_id",
    "metric_id",
    "partner_id",
    "ts",
    "quantity",
    "properties",
    "billing_month",
    "usage_month",
    "is_late",
    "unique_value",
    "is_gauge",
)

CREATE_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS usage_stage (
    transaction_id varchar(255) NOT NULL, account_id bigint NOT NULL, tenant_id bigint NOT NULL,
    metric_id bigint NOT NULL, partner_id bigint, ts timestamptz NOT NULL, quantity numeric(24, 8) NOT NULL,
    properties jsonb NOT NULL, billing_month date NOT NULL, usage_month date NOT NULL, is_late boolean NOT NULL,
    unique_value varchar(255), is_gauge boolean NOT NULL
) ON COMMIT DELETE ROWS
"""

INSERT_ALL = """
WITH new_keys AS (
    INSERT INTO usage_eventkey (account_id, transaction_id)
    SELECT account_id, transaction_id FROM usage_stage ORDER BY account_id, transaction_id
    ON CONFLICT DO NOTHING
    RETURNING account_id, transaction_id
), new_events AS (
    INSERT INTO usage_usageevent (account_id, tenant_id, metric_id, partner_id, transaction_id, timestamp,
                                  quantity, properties, received_at, billing_month, is_late)
    SELECT s.account_id, s.tenant_id, s.metric_id, s.partner_id, s.transaction_id, s.ts, s.quantity,
           s.properties, %s::timestamptz, s.billing_month, s.is_late
    FROM usage_stage s JOIN new_keys k USING (account_id, transaction_id)
    RETURNING account_id, tenant_id, metric_id, partner_id, timestamp, quantity, billing_month
), rolled AS (
    INSERT INTO usage_usagerollup AS r (account_id, tenant_id, metric_id, partner_id, hour, billing_month,
                                        quantity_sum, event_count, quantity_max)
    SELECT account_id, tenant_id, metric_id, partner_id, date_trunc('hour', timestamp), billing_month,
           sum(quantity), count(*), max(quantity)
    FROM new_events
    GROUP BY 1, 2, 3, 4, 5, 6
    ORDER BY 1, 2, 3, 4, 5, 6
    ON CONFLICT ON CONSTRAINT usage_rollup_bucket DO UPDATE SET
        quantity_sum = r.quantity_sum + EXCLUDED.quantity_sum,
        event_count = r.event_count + EXCLUDED.event_count,
        quantity_max = GREATEST(r.quantity_max, EXCLUDED.quantity_max)
    RETURNING 1
), uniques AS (
    INSERT INTO usage_usageuniquevalue (account_id, tenant_id, metric_id, usage_month, value, billing_month,
                                        first_seen_at)
    SELECT DISTINCT ON (s.account_id, s.tenant_id, s.metric_id, s.usage_month, s.unique_value)
           s.account_id, s.tenant_id, s.metric_id, s.usage_month, s.unique_value, s.billing_month, s.ts
    FROM usage_stage s JOIN new_keys k USING (account_id, transaction_id)
    WHERE s.unique_value IS NOT NULL
    ORDER BY s.account_id, s.tenant_id, s.metric_id, s.usage_month, s.unique_value, s.ts
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM new_events), (SELECT count(*) FROM rolled), (SELECT count(*) FROM uniques)
"""

# Gauge buckets touched by the batch, recomputed from their readings. A reading holds until the next
# one; ties on a timestamp resolve to the last stored.
RECOMPUTE_GAUGES = """
WITH touched AS (
    SELECT DISTINCT account_id, tenant_id, metric_id, date_trunc('hour', ts) AS hour
    FROM usage_stage WHERE is_gauge
), readings AS (
    SELECT t.account_id, t.tenant_id, t.metric_id, t.hour, e.timestamp, e.quantity,
           lead(e.timestamp) OVER w AS next_at,
           row_number() OVER w AS n_asc,
           row_number() OVER (PARTITION BY t.account_id, t.tenant_id, t.metric_id, t.hour
                              ORDER BY e.timestamp DESC, e.id DESC) AS n_desc
    FROM touched t
    JOIN usage_usageevent e ON e.account_id = t.account_id AND e.tenant_id = t.tenant_id
        AND e.metric_id = t.metric_id AND e.timestamp >= t.hour AND e.timestamp < t.hour + interval '1 hour'
    WINDOW w AS (PARTITION BY t.account_id, t.tenant_id, t.metric_id, t.hour ORDER BY e.timestamp, e.id)
), shape AS (
    SELECT account_id, tenant_id, metric_id, hour,
           max(timestamp) FILTER (WHERE n_asc = 1) AS first_at,
           max(quantity) FILTER (WHERE n_asc = 1) AS first_value,
           max(timestamp) FILTER (WHERE n_desc = 1) AS last_at,
           max(quantity) FILTER (WHERE n_desc = 1) AS last_value,
           coalesce(sum(quantity * extract(epoch FROM next_at - timestamp) / 3600)
                    FILTER (WHERE next_at IS NOT NULL), 0) AS inner_area
    FROM readings GROUP BY 1, 2, 3, 4
)
UPDATE usage_usagerollup r SET gauge_first_at = s.first_at, gauge_first_value = s.first_value,
    gauge_last_at = s.last_at, gauge_last_value = s.last_value, gauge_inner_area = round(s.inner_area, 8)
FROM shape s
WHERE r.account_id = s.account_id AND r.tenant_id = s.tenant_id AND r.metric_id = s.metric_id
    AND r.hour = s.hour AND r.partner_id IS NULL
"""


# The same statement, answering which keys were new rather than how many: a group of requests written
# together (``usage.group_commit``) tells each request what became of its own events. (Every data-modifying
# part of a WITH runs to completion whatever the final SELECT reads.)
_COUNTS = "SELECT (SELECT count(*) FROM new_events), (SELECT count(*) FROM rolled), (SELECT count(*) FROM uniques)"
assert INSERT_ALL.strip().endswith(_COUNTS)
INSERT_ALL_KEYS = INSERT_ALL.strip().removesuffix(_COUNTS) + "SELECT account_id, transaction_id FROM new_keys"
# ... and answering which rows were refused, their key being stored already: almost always none, so the answer
# costs an anti-join of the batch with its new keys (both in memory) and no rows on the wire.
INSERT_ALL_REFUSED = (
    INSERT_ALL.strip().removesuffix(_COUNTS) + "SELECT s.transaction_id FROM usage_stage s WHERE NOT EXISTS "
    "(SELECT 1 FROM new_keys k WHERE k.account_id = s.account_id AND k.transaction_id = s.transaction_id)"
)

EventKeyTuple = tuple[int, str]  # (account_id, transaction_id)


def write_events(*, rows: list[StagedEvent], now: dt.datetime) -> int:
    """Store the rows whose keys are new; return how many. Call inside a transaction."""
    if connection.vendor == "postgresql":
        return _write_postgresql(rows, now, returning="count")
    return len(_write_generic(rows, now))


def write_events_refused(*, rows: list[StagedEvent], now: dt.datetime) -> list[StagedEvent]:
    """Like ``write_events``, returning the rows that were not stored because their key was (``rows`` are one
    account's, with distinct keys). Call inside a transaction."""
    if connection.vendor == "postgresql":
        refused_ids = _write_postgresql(rows, now, returning="refused")
    else:
        new = _write_generic(rows, now)
        if len(new) == len(rows):
            return []
        refused_ids = {r.transaction_id for r in rows if (r.account_id, r.transaction_id) not in new}
    return [r for r in rows if r.transaction_id in refused_ids] if refused_ids else []


def write_events_keys(*, rows: list[StagedEvent], now: dt.datetime) -> set[EventKeyTuple]:
    """Like ``write_events``, returning the keys that were new. ``rows`` may span accounts but must not
    repeat a key. Call inside a transaction, unless ``written_in_one_statement(rows)``."""
    if connection.vendor == "postgresql":
        return _write_postgresql(rows, now, returning="keys")
    return _write_generic(rows, now)


def written_in_one_statement(rows: list[StagedEvent]) -> bool:
    """Whether ``write_events_keys`` stores ``rows`` with a single statement, which PostgreSQL runs as a
    transaction of its own: a small batch (inline rows) without gauge readings (those need a second
    statement recomputing their buckets)."""
    return connection.vendor == "postgresql" and len(rows) <= SMALL_BATCH and not any(r.is_gauge for r in rows)


# Small batches (single events above all) skip the staging table: the rows go inline as a VALUES list
# named like the table, so the same statements run with two round trips instead of five.
SMALL_BATCH = 50
_CASTS = (
    "varchar",
    "bigint",
    "bigint",
    "bigint",
    "bigint",
    "timestamptz",
    "numeric",
    "jsonb",
    "date",
    "date",
    "boolean",
    "varchar",
    "boolean",
)
_ROW = "(" + ", ".join(f"%s::{cast}" for cast in _CASTS) + ")"


def _inline_stage(rows: list[StagedEvent]) -> tuple[str, list]:
    values = ", ".join([_ROW] * len(rows))
    params: list = []
    for r in rows:
        params.extend(_row(r))
    return f"usage_stage ({', '.join(STAGE_COLUMNS)}) AS (VALUES {values})", params


def _row(r: StagedEvent) -> tuple:
    return (
        r.transaction_id,
        r.account_id,
        r.tenant_id,
        r.metric_id,
        r.partner_id,
        r.timestamp,
        r.quantity,
        r.properties,
        r.billing_month,
        r.usage_month,
        r.is_late,
        r.unique_value,
        r.is_gauge,
    )


def _execute_small(cursor, sql: str, params: list) -> list[tuple]:
    """Run a small batch's statement. Its text depends only on the number of rows, so with
    ``USAGE_PREPARED_WRITES`` (the default) it is bound on the server and prepared once per connection:
    PostgreSQL then skips parsing and planning the four-part statement on every single event, which costs
    more than storing it. Django leaves prepared statements off by default for the sake of transaction-mode
    connection poolers; set ``USAGE_PREPARED_WRITES=0`` behind one that cannot keep them."""
    if not getattr(settings, "USAGE_PREPARED_WRITES", True):
        cursor.execute(sql, params)
        return cursor.fetchall()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as server_cursor:
        server_cursor.execute(sql, params, prepare=True)
        return server_cursor.fetchall() if server_cursor.description else []


_STATEMENTS = {"count": INSERT_ALL, "keys": INSERT_ALL_KEYS, "refused": INSERT_ALL_REFUSED}


def _result(found: list[tuple], returning: str, rows: int) -> tuple[Any, bool]:
    """The statement's answer for ``returning``, and whether it stored any row."""
    if returning == "keys":
        keys = {tuple(k) for k in found}
        return keys, bool(keys)
    if returning == "refused":
        refused = {k[0] for k in found}
        return refused, len(refused) < rows
    return found[0][0], bool(found[0][0])


def _write_postgresql(rows: list[StagedEvent], now: dt.datetime, returning: str):
    insert = _STATEMENTS[returning]
    if len(rows) <= SMALL_BATCH:
        stage, params = _inline_stage(rows)
        with connection.cursor() as cursor:  # connects (and health-checks) as for any query
            found = _execute_small(
                cursor, "WITH " + stage + ", " + insert.strip().removeprefix("WITH "), [*params, now]
            )
            result, stored = _result(found, returning, len(rows))
            if stored and any(r.is_gauge for r in rows):
                _execute_small(cursor, "WITH " + stage + ", " + RECOMPUTE_GAUGES.strip().removeprefix("WITH "), params)
        return result
    with connection.cursor() as cursor:
        cursor.execute(CREATE_STAGE)
        with cursor.cursor.copy(f"COPY usage_stage ({', '.join(STAGE_COLUMNS)}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row(_row(r))
        cursor.execute(insert, [now])
        result, stored = _result(cursor.fetchall(), returning, len(rows))
        if stored and any(r.is_gauge for r in rows):
            cursor.execute(RECOMPUTE_GAUGES)
        cursor.execute("TRUNCATE usage_stage")
    return result


def _hour(moment: dt.datetime) -> dt.datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _write_generic(rows: list[StagedEvent], now: dt.datetime) -> set[EventKeyTuple]:
    """Row-by-row fallback for SQLite: same results, no concurrency guarantees beyond SQLite's lock."""
    # SQLite allows one writer at a time and the caller holds the transaction, so keys that are not
    # there now cannot appear before commit.
    existing: set[tuple[int, str]] = set()
    for offset in range(0, len(rows), 500):
        chunk = rows[offset : offset + 500]
        existing.update(
            EventKey.objects.filter(
                account_id__in={r.account_id for r in chunk}, transaction_id__in=[r.transaction_id for r in chunk]
            ).values_list("account_id", "transaction_id")
        )
    new = [r for r in rows if (r.account_id, r.transaction_id) not in existing]
    EventKey.objects.bulk_create([EventKey(account_id=r.account_id, transaction_id=r.transaction_id) for r in new])
    UsageEvent.objects.bulk_create(
        [
            UsageEvent(
                account_id=r.account_id,
                tenant_id=r.tenant_id,
                metric_id=r.metric_id,
                partner_id=r.partner_id,
                transaction_id=r.transaction_id,
                timestamp=r.timestamp,
                quantity=r.quantity,
                properties=json.loads(r.properties),
                received_at=now,
                billing_month=r.billing_month,
                is_late=r.is_late,
            )
            for r in new
        ]
    )
    buckets: dict[tuple, list[StagedEvent]] = defaultdict(list)
    for r in new:
        buckets[(r.account_id, r.tenant_id, r.metric_id, r.partner_id, _hour(r.timestamp), r.billing_month)].append(r)
    # The batch's buckets that hold rows already are read in one query per account and written back in bulk:
    # a query per bucket made loading the demo's usage several times slower.
    stored = _stored_rollups(buckets)
    created: list[UsageRollup] = []
    changed: list[UsageRollup] = []
    for key, items in sorted(buckets.items(), key=lambda kv: tuple(str(k) for k in kv[0])):
        rollup = stored.get(key)
        if rollup is None:
            account_id, tenant_id, metric_id, partner_id, hour, billing_month = key
            rollup = UsageRollup(
                account_id=account_id,
                tenant_id=tenant_id,
                metric_id=metric_id,
                partner_id=partner_id,
                hour=hour,
                billing_month=billing_month,
                quantity_sum=Decimal(0),
                event_count=0,
            )
            created.append(rollup)
        else:
            changed.append(rollup)
        rollup.quantity_sum += sum((i.quantity for i in items), Decimal(0))
        rollup.event_count += len(items)
        top = max(i.quantity for i in items)
        rollup.quantity_max = top if rollup.quantity_max is None else max(rollup.quantity_max, top)
        if items[0].is_gauge:
            _recompute_gauge_generic(rollup)
    UsageRollup.objects.bulk_create(created)
    UsageRollup.objects.bulk_update(changed, fields=_ROLLUP_TOTALS)
    UsageUniqueValue.objects.bulk_create(
        [
            UsageUniqueValue(
                account_id=r.account_id,
                tenant_id=r.tenant_id,
                metric_id=r.metric_id,
                usage_month=r.usage_month,
                value=r.unique_value,
                billing_month=r.billing_month,
                first_seen_at=r.timestamp,
            )
            for r in sorted(new, key=lambda r: r.timestamp)
            if r.unique_value is not None
        ],
        ignore_conflicts=True,
    )
    return {(r.account_id, r.transaction_id) for r in new}


_ROLLUP_TOTALS = [
    "quantity_sum",
    "event_count",
    "quantity_max",
    "gauge_first_at",
    "gauge_first_value",
    "gauge_last_at",
    "gauge_last_value",
    "gauge_inner_area",
]


def _stored_rollups(buckets: dict[tuple, list[StagedEvent]]) -> dict[tuple, UsageRollup]:
    """The stored rollups of ``buckets`` (keyed like them), one query per account of the batch."""
    by_account: dict[int, list[tuple]] = defaultdict(list)
    for key in buckets:
        by_account[key[0]].append(key)
    stored: dict[tuple, UsageRollup] = {}
    for account_id, keys in by_account.items():
        hours = [key[4] for key in keys]
        candidates = UsageRollup.objects.filter(
            account_id=account_id,
            metric_id__in={key[2] for key in keys},
            hour__gte=min(hours),
            hour__lte=max(hours),
            tenant_id__in={key[1] for key in keys},
        )
        for rollup in candidates:
            key = (
                rollup.account_id,
                rollup.tenant_id,
                rollup.metric_id,
                rollup.partner_id,
                rollup.hour,
                rollup.billing_month,
            )
            if key in buckets:
                stored[key] = rollup
    return stored


def _recompute_gauge_generic(rollup: UsageRollup) -> None:
    readings = list(
        UsageEvent.objects.filter(
            account_id=rollup.account_id,
            tenant_id=rollup.tenant_id,
            metric_id=rollup.metric_id,
            timestamp__gte=rollup.hour,
            timestamp__lt=rollup.hour + dt.timedelta(hours=1),
        )
        .order_by("timestamp", "id")
        .values_list("timestamp", "quantity")
    )
    area = Decimal(0)
    for (at, value), (next_at, _) in zip(readings, readings[1:], strict=False):
        area += value * Decimal(int((next_at - at).total_seconds() * 1_000_000)) / Decimal(3_600_000_000)
    rollup.gauge_first_at, rollup.gauge_first_value = readings[0]
    rollup.gauge_last_at, rollup.gauge_last_value = readings[-1]
    rollup.gauge_inner_area = round(area, 8)


# --- Refused duplicates --------------------------------------------------------------------------------------

# Every bucket of a call is one row of one statement (a row may be updated only once per statement), in key
# order, so concurrent tallies lock their rows in the same order.
TALLY_REFUSED = """
INSERT INTO usage_refusedduplicate AS t (account_id, tenant_id, metric_id, hour, count, quantity_sum,
                                         first_refused_at, last_refused_at)
VALUES {values}
ON CONFLICT ON CONSTRAINT usage_refused_duplicate_bucket DO UPDATE SET
    count = t.count + EXCLUDED.count,
    quantity_sum = t.quantity_sum + EXCLUDED.quantity_sum,
    first_refused_at = LEAST(t.first_refused_at, EXCLUDED.first_refused_at),
    last_refused_at = GREATEST(t.last_refused_at, EXCLUDED.last_refused_at)
"""
_TALLY_ROW = "(%s, %s, %s, %s, %s, %s, %s, %s)"

TallyKey = tuple[int, int | None, int, dt.datetime]  # (account_id, tenant_id, metric_id, hour)


def refused_duplicates_tally(*, refusals: Sequence[Refusal], now: dt.datetime) -> None:
    """Add ``refusals`` (events refused as duplicates at ``now``) to their hourly tallies: one statement on
    PostgreSQL. Called only for a batch that had duplicates."""
    if not refusals:
        return
    buckets: dict[TallyKey, tuple[int, Decimal]] = {}
    for r in refusals:
        key = (r.account_id, r.tenant_id, r.metric_id, _hour(r.timestamp))
        count, total = buckets.get(key, (0, Decimal(0)))
        buckets[key] = (count + 1, total + r.quantity)
    ordered = sorted(buckets.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0, kv[0][2], kv[0][3]))
    if connection.vendor != "postgresql":
        _tally_generic(ordered, now)
        return
    params: list[Any] = []
    for (account_id, tenant_id, metric_id, hour), (count, total) in ordered:
        params.extend((account_id, tenant_id, metric_id, hour, count, total, now, now))
    with connection.cursor() as cursor:
        cursor.execute(TALLY_REFUSED.format(values=", ".join([_TALLY_ROW] * len(ordered))), params)


def _tally_generic(ordered: list[tuple[TallyKey, tuple[int, Decimal]]], now: dt.datetime) -> None:
    """SQLite: read the buckets' rows, add to them, write back (the caller's transaction holds SQLite's lock)."""
    with transaction.atomic():
        keys = [key for key, _ in ordered]
        stored = {
            (t.account_id, t.tenant_id, t.metric_id, t.hour): t
            for t in RefusedDuplicate.objects.filter(
                account_id__in={k[0] for k in keys}, metric_id__in={k[2] for k in keys}, hour__in={k[3] for k in keys}
            )
        }
        created, changed = [], []
        for key, (count, total) in ordered:
            tally = stored.get(key)
            if tally is None:
                account_id, tenant_id, metric_id, hour = key
                created.append(
                    RefusedDuplicate(
                        account_id=account_id,
                        tenant_id=tenant_id,
                        metric_id=metric_id,
                        hour=hour,
                        count=count,
                        quantity_sum=total,
                        first_refused_at=now,
                        last_refused_at=now,
                    )
                )
                continue
            tally.count += count
            tally.quantity_sum += total
            tally.first_refused_at = min(tally.first_refused_at, now)
            tally.last_refused_at = max(tally.last_refused_at, now)
            changed.append(tally)
        RefusedDuplicate.objects.bulk_create(created)
        RefusedDuplicate.objects.bulk_update(
            changed, fields=["count", "quantity_sum", "first_refused_at", "last_refused_at"]
        )
