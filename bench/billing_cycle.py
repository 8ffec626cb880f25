#!/usr/bin/env python
"""Billing-cycle benchmark: close one month for many accounts with the real code path.

    .venv/bin/python bench/billing_cycle.py [--accounts 10000] [--events 10000000] [--workers 2]

Runs against its own PostgreSQL database ``ledgerline_billbench`` (dropped and recreated on every run) and a
copy of it, ``ledgerline_billbench_fanout``, made once the data is loaded so both measured runs start from the
same rows. Nothing else is touched.

1. Data: accounts with 3 tenants each on catalogue plans (messaging-business/startup with 3 master partners,
   platform-basic/professional; a few accounts end a trial inside the month), and N events for January 2026
   written as the ingest path stores them: ``usage_eventkey``, ``usage_usageevent``, the hourly
   ``usage_usagerollup`` (gauge shape columns for storage) and ``usage_usageuniquevalue`` (active users,
   premium features), streamed with ``COPY`` from 2 generator processes. A few sample accounts go through the
   app's own storage SQL (``usage.writers.write_events``) instead, and the generator's rows for them are
   compared with what that SQL wrote. Generation is not part of any figure.
2. Floor: one SQL ``GROUP BY account_id, metric_id`` over the month's events.
3. In-process: ``billing.services.runs.bill_period`` (``BILLING_REVIEW_HOURS=0``: invoices finalized) in one
   process: invoices/s, total, peak RSS, RSS after each chunk (memory flatness).
4. Fanned out (the figure that counts): ``billing_run_start``, then ``--workers`` processes pulling chunks and
   running ``billing_run_chunk``, then ``billing_run_finish`` and ``lifecycle_update`` -- what ``bill_period``
   does, on the copy of the data. Measured from ``billing_run_start`` to the end of ``lifecycle_update``; the
   workers are started (Django loaded) before the clock starts, as Celery workers would be.
Both runs are checked: one finalized invoice per account, numbered, no duplicate number, invoice totals equal
lines plus tax. Target: >= 250 invoices/s end to end on 2 cores, memory flat in the number of accounts.

``--profile`` instead profiles one chunk (cProfile) and counts its queries for two chunk sizes.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import gc
import io
import json
import multiprocessing as mp
import os
import pstats
import resource
import subprocess
import sys
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import ingest  # noqa: E402  (the ingest benchmark's database, migration and schema-cache helpers)

DB_NAME = "ledgerline_billbench"
INPROCESS_DB = "ledgerline_billbench_inprocess"
FANOUT_DB = "ledgerline_billbench_fanout"
MONTH_START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
MONTH_END = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 2, 1, 0, 5, tzinfo=dt.UTC)  # the run closes January five minutes after it ended
MONTH_DATE = "2026-01-01"
MONTH_SECONDS = 31 * 86_400
N_TENANTS = 3
N_PARTNERS = 3
# Plan of account i: by i % 20. Accounts with i % 50 in TRIAL_STARTS start in December and end their trial
# inside January (two segments: trial, then charged).
PLANS = ["messaging-business"] * 6 + ["messaging-startup"] * 6 + ["platform-basic"] * 5 + ["platform-professional"] * 3
TRIAL_STARTS = {1: dt.datetime(2025, 12, 20, tzinfo=dt.UTC), 7: dt.datetime(2025, 12, 25, tzinfo=dt.UTC)}
SAMPLE_ACCOUNTS = (0, 1, 6, 7, 12, 17)  # stored through usage.writers.write_events, then compared
EVENT_SHARE = (0.5, 0.75, 1.0, 1.25, 1.5)  # events of account i: average x EVENT_SHARE[i % 5]
GENERATOR_PROCESSES = 2
FLUSH_ACCOUNTS = 100  # accounts per COPY batch (bounded generator memory)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def dsn(db: str) -> str:
    return f"host=127.0.0.1 port=5432 user=postgres password=postgres dbname={db} connect_timeout=10"


def env_for(db: str, chunk: int | None = None) -> dict[str, str]:
    env = ingest.app_env(db_name=db)
    env.update(BILLING_REVIEW_HOURS="0", DJANGO_LOG_LEVEL="WARNING")
    if chunk:
        env["BILLING_RUN_CHUNK"] = str(chunk)
    return env


def django_setup(db: str, chunk: int | None = None) -> None:
    for key in [k for k in os.environ if k.startswith(("DJANGO_", "DATABASE_", "REDIS_", "BILLING_"))]:
        del os.environ[key]
    os.environ.update(env_for(db, chunk))
    import django

    django.setup()


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


# ------------------------------------------------------------------------------------------ fixtures


def save_book(tenants: list, partners: list, subscriptions: list, n_accounts: int) -> tuple[dict, dict]:
    """Insert the book's tenants, partners and subscriptions; each account's tenant and partner ids, in order."""
    from billing.models import Subscription
    from common.models import Counter
    from tenants.models import MasterPartner, Tenant

    Tenant.objects.bulk_create(tenants, batch_size=5000)
    MasterPartner.objects.bulk_create(partners, batch_size=5000)
    Subscription.objects.bulk_create(subscriptions, batch_size=2000)
    Counter.objects.update_or_create(name="public_id:sub", defaults={"value": n_accounts})
    tenant_ids: dict[int, list[int]] = defaultdict(list)
    for account_id, tenant_id in Tenant.objects.order_by("account_id", "public_id").values_list("account_id", "id"):
        tenant_ids[account_id].append(tenant_id)
    partner_ids: dict[int, list[int]] = defaultdict(list)
    for account_id, partner_id in MasterPartner.objects.order_by("account_id", "public_id").values_list(
        "account_id", "id"
    ):
        partner_ids[account_id].append(partner_id)
    return tenant_ids, partner_ids


def create_fixtures(n_accounts: int) -> dict:
    """Accounts, tenants, partners and subscriptions in bulk (bench rows: no audit history)."""
    from accounts.models import Account
    from billing.models import PlanVersion, Subscription
    from common.models import Counter
    from tenants.models import MasterPartner, Tenant
    from usage.models import Metric

    since = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)
    versions = {v.plan.code: v for v in PlanVersion.objects.select_related("plan").filter(plan__code__in=set(PLANS))}
    accounts = []
    for i in range(n_accounts):
        taxed, reverse = i % 4 == 0, i % 4 == 1
        accounts.append(
            Account(
                public_id=f"acc_{i + 1:06d}",
                name=f"Bench customer {i + 1}",
                currency="USD",
                billing_emails=[f"billing{i + 1}@example.com"],
                tax_id=f"DE{100000000 + i}" if reverse else "",
                tax_country="DE" if taxed or reverse else "",
                tax_rate=Decimal("19.000") if taxed else Decimal(0),
                tax_reverse_charge=reverse,
                status=Account.Status.TRIALING if i % 50 in TRIAL_STARTS else Account.Status.ACTIVE,
            )
        )
    Account.objects.bulk_create(accounts, batch_size=2000)
    Counter.objects.update_or_create(name="public_id:acc", defaults={"value": n_accounts})
    tenants, partners, subscriptions = [], [], []
    for i, account in enumerate(accounts):
        plan = PLANS[i % len(PLANS)]
        start = TRIAL_STARTS.get(i % 50, since)
        trial_days = versions[plan].trial_days if i % 50 in TRIAL_STARTS else 0
        for t in range(N_TENANTS):
            tenants.append(
                Tenant(account=account, public_id=f"ten_a{i + 1}_{t}", name=f"Tenant {t}", activated_at=since)
            )
        if plan.startswith("messaging"):
            for p in range(N_PARTNERS):
                partners.append(
                    MasterPartner(account=account, public_id=f"prt_p{p}", name=f"Partner {p}", activated_at=since)
                )
        subscriptions.append(
            Subscription(
                public_id=f"sub_{i + 1:06d}",
                account=account,
                plan_version=versions[plan],
                status=Subscription.Status.TRIALING if trial_days else Subscription.Status.ACTIVE,
                started_at=start,
                trial_end=start + dt.timedelta(days=trial_days) if trial_days else None,
                current_period_start=MONTH_START,
                current_period_end=MONTH_END,
            )
        )
    tenant_ids, partner_ids = save_book(tenants, partners, subscriptions, n_accounts)
    metrics = {m.code: m.id for m in Metric.objects.all()}
    return {
        "accounts": [
            (i, a.pk, PLANS[i % len(PLANS)], tenant_ids[a.pk], partner_ids.get(a.pk, []))
            for i, a in enumerate(accounts)
        ],
        "metrics": metrics,
    }


# ------------------------------------------------------------------------------------------- events


def event_counts(n_accounts: int, n_events: int) -> list[int]:
    average = n_events / n_accounts
    counts = [int(average * EVENT_SHARE[i % len(EVENT_SHARE)]) for i in range(n_accounts)]
    counts[-1] += n_events - sum(counts)
    return counts


def _ts(sec: int) -> str:
    day, rest = divmod(sec, 86_400)
    hour, rest = divmod(rest, 3600)
    minute, second = divmod(rest, 60)
    return f"2026-01-{day + 1:02d} {hour:02d}:{minute:02d}:{second:02d}+00"


def account_events(index: int, plan: str, count: int, tenants: list[int], partners: list[int], metrics: dict):
    """The events of one account in January: (transaction_id, tenant_id, metric_id, partner_id, second of the
    month, quantity (int or Decimal), properties JSON, unique value, is_gauge). Storage readings: twice a day
    per tenant (:10 and :40 of one hour); the rest messages (messaging plans, 3 in 4 with a partner) or API
    requests / active users / premium features (platform plans), in business hours (08:00-20:00)."""
    events = []
    gauge_days = min(31, max(1, count // 24))
    storage = metrics["storage_gb"]
    for day in range(gauge_days):
        for t, tenant in enumerate(tenants):
            level = Decimal(1 + t + (index % 7)) + Decimal(day % 7) / 4
            base = day * 86_400 + (2 + t) * 3600
            events.append((f"g{day:02d}{t}a", tenant, storage, None, base + 600, level, "{}", None, True))
            events.append(
                (f"g{day:02d}{t}b", tenant, storage, None, base + 2400, level + Decimal("0.25"), "{}", None, True)
            )
    rest = max(count - len(events), 0)
    business = 31 * 12 * 3600
    messaging = plan.startswith("messaging")
    users = 30 + (index * 13) % 60 if plan == "platform-basic" else 150 + (index * 17) % 120
    features = 1 + index % 5
    messages, api, active, premium = (
        metrics["messages"],
        metrics["api_requests"],
        metrics["active_users"],
        metrics["premium_features"],
    )
    for k in range(rest):
        offset = k * business // rest + (k * 7919) % 97
        day, within = divmod(min(offset, business - 1), 12 * 3600)
        sec = day * 86_400 + 8 * 3600 + within
        tenant = tenants[k % len(tenants)]
        txn = f"e{k:07d}"
        if messaging:
            p = (k // 3) % len(partners)
            partner = None if k % 4 == 3 else partners[p]
            props = "{}" if partner is None else f'{{"partner_id":"prt_p{p}"}}'
            events.append((txn, tenant, messages, partner, sec, 1 + (k * 7) % 60, props, None, False))
            continue
        kind = k % 20
        if kind < 12:
            events.append((txn, tenant, api, None, sec, 500 + (k * 37) % 4000, "{}", None, False))
        elif kind < 19:
            user = f"u{(k * 31) % users}"
            events.append((txn, tenant, active, None, sec, 1, f'{{"user_id":"{user}"}}', user, False))
        else:
            feature = f"f{k % features}"
            events.append((txn, tenant, premium, None, sec, 1, f'{{"feature":"{feature}"}}', feature, False))
    return events


def rollups_of(account_id: int, events: list) -> tuple[dict, dict]:
    """What the ingest SQL derives from the events: hourly buckets (sum, count, max, gauge shape) and the
    first sighting of each unique value per tenant."""
    buckets: dict[tuple, list] = {}
    gauges: dict[tuple, list] = defaultdict(list)
    uniques: dict[tuple, int] = {}
    for _txn, tenant, metric, partner, sec, quantity, _props, unique, is_gauge in events:
        key = (account_id, tenant, metric, partner, sec // 3600)
        b = buckets.get(key)
        if b is None:
            buckets[key] = [quantity, 1, quantity]
        else:
            b[0] += quantity
            b[1] += 1
            if quantity > b[2]:
                b[2] = quantity
        if is_gauge:
            gauges[key].append((sec, quantity))
        if unique is not None:
            ukey = (account_id, tenant, metric, unique)
            if ukey not in uniques or sec < uniques[ukey]:
                uniques[ukey] = sec
    shapes = {}
    for key, readings in gauges.items():
        readings.sort()
        pairs = zip(readings, readings[1:], strict=False)
        area = sum((value * Decimal(next_sec - sec) / 3600 for (sec, value), (next_sec, _) in pairs), Decimal(0))
        shapes[key] = (readings[0], readings[-1], round(area, 8))
    return {k: (*v, shapes.get(k)) for k, v in buckets.items()}, uniques


def _n(value) -> str:
    return "\\N" if value is None else str(value)


def generate(worker: int, accounts: list, counts: list[int], metrics: dict, db: str, out_q) -> None:
    """One generator process: its share of the accounts, COPY'd in batches of FLUSH_ACCOUNTS accounts."""
    try:
        import psycopg

        mine = [a for a in accounts if a[0] % GENERATOR_PROCESSES == worker and a[0] not in SAMPLE_ACCOUNTS]
        totals = {"events": 0, "rollups": 0, "uniques": 0}
        with psycopg.connect(dsn(db)) as conn:
            conn.execute("SET synchronous_commit = off")
            for lo in range(0, len(mine), FLUSH_ACCOUNTS):
                ev, keys, roll, uniq = [], [], [], []
                for index, account_id, plan, tenants, partners in mine[lo : lo + FLUSH_ACCOUNTS]:
                    events = account_events(index, plan, counts[index], tenants, partners, metrics)
                    for txn, tenant, metric, partner, sec, quantity, props, _u, _g in events:
                        ts = _ts(sec)
                        ev.append(
                            f"{account_id}\t{tenant}\t{metric}\t{_n(partner)}\t{txn}\t{ts}\t{quantity}\t{props}"
                            f"\t{_ts(sec + 1)}\t{MONTH_DATE}\tf\n"
                        )
                        keys.append(f"{account_id}\t{txn}\n")
                    buckets, uniques = rollups_of(account_id, events)
                    for (a, tenant, metric, partner, hour), (total, n, top, shape) in buckets.items():
                        hour_ts = _ts(hour * 3600)
                        if shape is None:
                            gauge = "\\N\t\\N\t\\N\t\\N\t\\N"
                        else:
                            (first_sec, first_value), (last_sec, last_value), area = shape
                            gauge = f"{_ts(first_sec)}\t{first_value}\t{_ts(last_sec)}\t{last_value}\t{area}"
                        roll.append(
                            f"{a}\t{tenant}\t{metric}\t{_n(partner)}\t{hour_ts}\t{MONTH_DATE}\t{total}\t{n}\t{top}"
                            f"\t{gauge}\n"
                        )
                    for (a, tenant, metric, value), sec in uniques.items():
                        uniq.append(f"{a}\t{tenant}\t{metric}\t{MONTH_DATE}\t{value}\t{MONTH_DATE}\t{_ts(sec)}\n")
                with conn.cursor() as cur:
                    for sql, rows in (
                        (
                            "COPY usage_usageevent (account_id, tenant_id, metric_id, partner_id, transaction_id,"
                            " timestamp, quantity, properties, received_at, billing_month, is_late) FROM STDIN",
                            ev,
                        ),
                        ("COPY usage_eventkey (account_id, transaction_id) FROM STDIN", keys),
                        (
                            "COPY usage_usagerollup (account_id, tenant_id, metric_id, partner_id, hour, billing_month,"
                            " quantity_sum, event_count, quantity_max, gauge_first_at, gauge_first_value,"
                            " gauge_last_at, gauge_last_value, gauge_inner_area) FROM STDIN",
                            roll,
                        ),
                        (
                            "COPY usage_usageuniquevalue (account_id, tenant_id, metric_id, usage_month, value,"
                            " billing_month, first_seen_at) FROM STDIN",
                            uniq,
                        ),
                    ):
                        if rows:
                            with cur.copy(sql) as copy:
                                for start in range(0, len(rows), 20_000):
                                    copy.write("".join(rows[start : start + 20_000]))
                conn.commit()
                totals["events"] += len(ev)
                totals["rollups"] += len(roll)
                totals["uniques"] += len(uniq)
        out_q.put({"worker": worker, **totals})
    except BaseException as exc:
        out_q.put({"worker": worker, "fatal": repr(exc)})


def ingest_samples(fixtures: dict, counts: list[int]) -> list[str]:
    """Sample accounts through the app's storage SQL; compare with what the generator would write."""
    from django.db import transaction

    from usage.models import UsageRollup, UsageUniqueValue
    from usage.writers import StagedEvent, write_events

    problems = []
    month = MONTH_START.date()
    received = MONTH_END - dt.timedelta(hours=1)
    for index, account_id, plan, tenants, partners in fixtures["accounts"]:
        if index not in SAMPLE_ACCOUNTS:
            continue
        events = account_events(index, plan, counts[index], tenants, partners, fixtures["metrics"])
        staged = [
            StagedEvent(
                transaction_id=txn,
                account_id=account_id,
                tenant_id=tenant,
                metric_id=metric,
                partner_id=partner,
                timestamp=MONTH_START + dt.timedelta(seconds=sec),
                quantity=Decimal(quantity),
                properties=props,
                billing_month=month,
                usage_month=month,
                is_late=False,
                unique_value=unique,
                is_gauge=is_gauge,
            )
            for txn, tenant, metric, partner, sec, quantity, props, unique, is_gauge in events
        ]
        for lo in range(0, len(staged), 1000):
            batch = sorted(staged[lo : lo + 1000], key=lambda s: s.transaction_id)
            with transaction.atomic():
                write_events(rows=batch, now=received)
        buckets, uniques = rollups_of(account_id, events)

        def at(sec):
            return MONTH_START + dt.timedelta(seconds=sec)

        expected = set()
        for (a, tenant, metric, partner, hour), (total, n, top, shape) in buckets.items():
            gauge = (None,) * 5
            if shape is not None:
                (fs, fv), (ls, lv), area = shape
                gauge = (at(fs), Decimal(fv), at(ls), Decimal(lv), Decimal(area))
            expected.add((a, tenant, metric, partner, at(hour * 3600), Decimal(total), n, Decimal(top), *gauge))
        stored = set(
            UsageRollup.objects.filter(account_id=account_id).values_list(
                "account_id", "tenant_id", "metric_id", "partner_id", "hour", "quantity_sum", "event_count",
                "quantity_max", "gauge_first_at", "gauge_first_value", "gauge_last_at", "gauge_last_value",
                "gauge_inner_area",
            )
        )  # fmt: skip
        if stored != expected:
            problems.append(
                f"account {account_id}: rollups differ ({len(stored - expected)} stored only,"
                f" {len(expected - stored)} generated only), e.g. {sorted(stored ^ expected, key=str)[:2]}"
            )
        stored_uniques = set(
            UsageUniqueValue.objects.filter(account_id=account_id).values_list(
                "account_id", "tenant_id", "metric_id", "value", "first_seen_at"
            )
        )
        if stored_uniques != {(*k, at(sec)) for k, sec in uniques.items()}:
            problems.append(f"account {account_id}: unique values differ")
    return problems


# --------------------------------------------------------------------------------------------- runs


def check_invoices(db: str, n_accounts: int) -> tuple[dict, list[str]]:
    import psycopg

    with psycopg.connect(dsn(db)) as conn:
        row = conn.execute(
            """
            SELECT count(*), count(DISTINCT account_id), count(number), count(DISTINCT number),
                   count(*) FILTER (WHERE status NOT IN ('finalized', 'paid')),
                   coalesce(sum(total), 0), coalesce(sum(tax), 0), coalesce(sum(subtotal), 0),
                   (SELECT coalesce(sum(amount), 0) FROM billing_invoiceline),
                   (SELECT count(*) FROM billing_invoiceline),
                   (SELECT count(*) FROM billing_invoice i WHERE i.subtotal <> (
                        SELECT coalesce(sum(amount), 0) FROM billing_invoiceline l WHERE l.invoice_id = i.id)),
                   (SELECT count(*) FROM billing_invoice WHERE total <> subtotal + tax),
                   min(substring(number from '[0-9]+$')::int), max(substring(number from '[0-9]+$')::int)
            FROM billing_invoice WHERE period_start = %s
            """,
            [MONTH_START],
        ).fetchone()
    (
        count,
        accounts,
        numbered,
        distinct,
        not_final,
        total,
        tax,
        subtotal,
        lines,
        n_lines,
        bad_sub,
        bad_total,
        lo,
        hi,
    ) = row
    facts = {"invoices": count, "lines": n_lines, "total": total, "tax": tax, "lines_sum": lines}
    problems = []
    if count != n_accounts or accounts != n_accounts:
        problems.append(f"{count:,} invoices for {accounts:,} accounts; expected {n_accounts:,}")
    if numbered != count or distinct != count or (count and hi - lo + 1 != count):
        problems.append(f"numbers: {numbered:,} numbered, {distinct:,} distinct, range {lo}-{hi}")
    if not_final:
        problems.append(f"{not_final:,} invoices not finalized")
    if total != lines + tax or subtotal != lines or bad_sub or bad_total:
        problems.append(
            f"sum of totals {total} vs lines {lines} + tax {tax}; {bad_sub} invoices whose lines differ from the"
            f" subtotal, {bad_total} whose total is not subtotal + tax"
        )
    return facts, problems


def stored_data(args) -> dict | None:
    """What ``write_data`` recorded in the data database, if it holds the data these arguments ask for."""
    import psycopg

    try:
        with psycopg.connect(dsn(DB_NAME)) as conn:
            row = conn.execute("SELECT accounts, events, meta FROM bench_billing_cycle").fetchone()
    except psycopg.Error:
        return None
    if row is None or (row[0], row[1]) != (args.accounts, args.events):
        return None
    return row[2]


def write_data(args) -> tuple[float, list[str]]:
    """Recreate the data database: schema, catalogue, fixtures, events. Returns (seconds, problems)."""
    import psycopg
    from psycopg.types.json import Jsonb

    log(f"recreating database {DB_NAME}")
    ingest.recreate_database(DB_NAME)
    env = env_for(DB_NAME)
    how = ingest.migrate(env, use_cache=not args.no_schema_cache, db_name=DB_NAME)
    ingest.manage(env, "load_catalogue", timeout=120)
    log(f"schema: {how}; catalogue loaded")
    django_setup(DB_NAME)
    from django.db import connections

    t = time.monotonic()
    fixtures = create_fixtures(args.accounts)
    n_partners = sum(len(a[4]) for a in fixtures["accounts"])
    log(
        f"{args.accounts:,} accounts, {args.accounts * N_TENANTS:,} tenants, {n_partners:,} master partners,"
        f" subscriptions ({time.monotonic() - t:.0f} s)"
    )
    counts = event_counts(args.accounts, args.events)
    t = time.monotonic()
    sample_problems = ingest_samples(fixtures, counts)
    log(f"{len(SAMPLE_ACCOUNTS)} sample accounts stored by usage.writers.write_events ({time.monotonic() - t:.0f} s)")
    connections.close_all()
    t = time.monotonic()
    log(f"generating {args.events:,} events with {GENERATOR_PROCESSES} processes, COPY to 4 tables")
    ctx = mp.get_context("fork")
    out_q = ctx.Queue()
    gens = [
        ctx.Process(target=generate, args=(w, fixtures["accounts"], counts, fixtures["metrics"], DB_NAME, out_q))
        for w in range(GENERATOR_PROCESSES)
    ]
    for p in gens:
        p.start()
    gen_reports = [out_q.get(timeout=3600) for _ in gens]
    for p in gens:
        p.join()
    if any("fatal" in r for r in gen_reports):
        raise RuntimeError(f"generator failed: {gen_reports}")
    gen_seconds = time.monotonic() - t
    log(f"generated and copied in {gen_seconds:.0f} s; VACUUM ANALYZE")

    with psycopg.connect(dsn(DB_NAME), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) usage_usageevent, usage_eventkey, usage_usagerollup, usage_usageuniquevalue")
        conn.execute("CREATE TABLE bench_billing_cycle (accounts int, events bigint, meta jsonb)")
        conn.execute(
            "INSERT INTO bench_billing_cycle VALUES (%s, %s, %s)",
            [args.accounts, args.events, Jsonb({"generated_seconds": gen_seconds, "problems": sample_problems})],
        )
    return gen_seconds, sample_problems


def freeze_startup_objects() -> None:
    """What the ``bill_period`` command and Celery's ``worker_process_init`` do once Django is loaded."""
    gc.collect()
    gc.freeze()


def run_phase(args) -> dict:
    """Runs in its own process (fresh memory): bill the month in-process or fanned out; JSON on stdout."""
    django_setup(args.db, args.chunk)
    freeze_startup_objects()
    from billing.models import BillingRun
    from billing.services.lifecycle import lifecycle_update
    from billing.services.runs import bill_period, billing_run_finish, billing_run_start, pending_chunks
    from common.periods import Period

    period = Period(MONTH_START, MONTH_END)
    samples: list[tuple[int, float, float]] = []  # (accounts done, seconds, RSS MB) after each chunk
    if args.mode == "inprocess":
        t0 = time.perf_counter()

        def progress(done: int, total: int) -> None:
            samples.append((done, time.perf_counter() - t0, rss_mb()))

        run = bill_period(period=period, now=NOW, progress=progress)
        seconds = time.perf_counter() - t0
        return {
            "seconds": seconds,
            "chunks_seconds": samples[-1][1] if samples else 0.0,
            "invoices": BillingRun.objects.get(pk=run.pk).invoices_created,
            "maxrss": [maxrss_mb()],
            "samples": samples,
            "status": run.status,
        }
    ctx = mp.get_context("spawn")
    tasks, results, ready = ctx.Queue(), ctx.Queue(), ctx.Queue()
    procs = [
        ctx.Process(target=worker_main, args=(i, args.db, args.chunk, tasks, results, ready))
        for i in range(args.workers)
    ]
    for p in procs:
        p.start()
    try:
        for _ in procs:
            ready.get(timeout=120)
        t0 = time.perf_counter()
        run = billing_run_start(period=period, now=NOW)
        chunks = list(pending_chunks(run=run))
        for chunk in chunks:
            tasks.put((run.pk, chunk))
        for _ in procs:
            tasks.put(None)
        reports = [results.get(timeout=3600) for _ in procs]
        t_chunks = time.perf_counter() - t0
        fatal = [r["fatal"] for r in reports if "fatal" in r]
        if fatal:
            raise RuntimeError(f"worker failed: {fatal[0]}")
        run = billing_run_finish(run=run, now=NOW)
        lifecycle_update(period=period, now=NOW)
        seconds = time.perf_counter() - t0
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    return {
        "seconds": seconds,
        "chunks_seconds": t_chunks,
        "invoices": run.invoices_created,
        "maxrss": [maxrss_mb()] + [r["maxrss"] for r in reports],
        "samples": [r["samples"] for r in reports],
        "per_worker": [(r["chunks"], r["invoices"], r["busy"]) for r in reports],
        "status": run.status,
    }


def worker_main(idx: int, db: str, chunk: int | None, tasks, results, ready) -> None:
    """A fan-out worker: Django loaded before the clock starts, then chunks pulled until the end marker."""
    is_ready = False
    try:
        django_setup(db, chunk)
        from django.db import connection

        from billing.models import BillingRun
        from billing.services.runs import billing_run_chunk

        connection.ensure_connection()
        freeze_startup_objects()
        ready.put(idx)
        is_ready = True
        samples, n_chunks, invoices, busy, run = [], 0, 0, 0.0, None
        while (task := tasks.get()) is not None:
            run_id, account_ids = task
            t0 = time.perf_counter()
            if run is None:
                run = BillingRun.objects.get(pk=run_id)
            invoices += billing_run_chunk(run=run, account_ids=account_ids, now=NOW)
            busy += time.perf_counter() - t0
            n_chunks += 1
            samples.append((n_chunks, busy, rss_mb()))
        results.put({"maxrss": maxrss_mb(), "samples": samples, "chunks": n_chunks, "invoices": invoices, "busy": busy})
    except BaseException as exc:
        if not is_ready:
            ready.put(idx)
        results.put({"fatal": repr(exc)})


def profile_phase(args) -> None:
    """cProfile of one chunk, and the queries of chunks of two sizes (constant, not per account)."""
    django_setup(args.db, args.chunk)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from billing.services.runs import billing_run_chunk, billing_run_start, pending_chunks
    from common.periods import Period

    period = Period(MONTH_START, MONTH_END)
    run = billing_run_start(period=period, now=NOW)
    chunks = pending_chunks(run=run, size=args.chunk or 200)
    first = next(chunks)
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    billing_run_chunk(run=run, account_ids=first, now=NOW)
    profiler.disable()
    print(f"one chunk of {len(first)} accounts: {time.perf_counter() - t0:.2f} s (under cProfile)")
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
    stats.print_stats(45)
    stats.sort_stats("tottime").print_stats(30)
    print(out.getvalue())
    if args.profile_out:
        stats.dump_stats(args.profile_out)
    for size in (50, 200):
        ids = next(pending_chunks(run=run, size=size))
        with CaptureQueriesContext(connection) as queries:
            t0 = time.perf_counter()
            billing_run_chunk(run=run, account_ids=ids, now=NOW)
            took = time.perf_counter() - t0
        print(f"chunk of {len(ids)} accounts: {len(queries.captured_queries)} queries, {took:.2f} s")


def spawn_phase(mode: str, db: str, args) -> dict:
    cmd = [sys.executable, __file__, "--phase", "run", "--mode", mode, "--db", db, "--workers", str(args.workers)]
    if args.chunk:
        cmd += ["--chunk", str(args.chunk)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3600, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT="):
            return json.loads(line.removeprefix("RESULT="))
    raise RuntimeError(f"{mode} run failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")


def flatness(samples: list, label: str) -> str:
    """RSS after the first chunks vs. after the last ones."""
    if len(samples) < 4:
        return f"{label}: too few chunks to judge"
    rss = [s[2] for s in samples]
    early = max(rss[: max(2, len(rss) // 10)])
    return (
        f"{label}: RSS {rss[0]:.0f} MB after chunk 1, {early:.0f} MB max over the first 10 %,"
        f" {max(rss):.0f} MB max, {rss[-1]:.0f} MB after the last ({len(rss)} chunks);"
        f" growth after the first 10 %: {max(rss) - early:+.0f} MB"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=10_000_000, help="events in the month, all accounts")
    parser.add_argument("--workers", type=int, default=2, help="processes of the fanned-out run")
    parser.add_argument("--chunk", type=int, default=None, help="BILLING_RUN_CHUNK (default: the setting, 200)")
    parser.add_argument("--skip-inprocess", action="store_true", help="only the fanned-out run")
    parser.add_argument("--profile", action="store_true", help="profile one chunk instead of the two runs")
    parser.add_argument("--profile-out", help="with --profile: also write the pstats file here")
    parser.add_argument(
        "--reuse-data", action="store_true", help="keep the data of the last run with the same counts (no regeneration)"
    )
    parser.add_argument("--no-schema-cache", action="store_true", help="always run every migration (~90 s more)")
    parser.add_argument("--phase", choices=["main", "run", "profile"], default="main", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=["inprocess", "fanout"], help=argparse.SUPPRESS)
    parser.add_argument("--db", default=DB_NAME, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "run":
        print("RESULT=" + json.dumps(run_phase(args), default=str), flush=True)
        return 0
    if args.phase == "profile":
        profile_phase(args)
        return 0
    if min(args.accounts, args.events, args.workers) < 1 or args.accounts < max(SAMPLE_ACCOUNTS) + 1:
        parser.error(f"--accounts must be at least {max(SAMPLE_ACCOUNTS) + 1}; counts positive")

    started = time.monotonic()
    load_before = os.getloadavg()[0]
    import psycopg

    reused = args.reuse_data and stored_data(args) is not None
    if reused:
        meta = stored_data(args)
        gen_seconds, problems = meta["generated_seconds"], list(meta["problems"])
        log(f"reusing the data in {DB_NAME} ({args.accounts:,} accounts, {args.events:,} events)")
    else:
        gen_seconds, problems = write_data(args)
    with psycopg.connect(dsn(DB_NAME), autocommit=True) as conn:
        stored = conn.execute(
            "SELECT (SELECT count(*) FROM usage_usageevent), (SELECT count(*) FROM usage_eventkey),"
            " (SELECT count(*) FROM usage_usagerollup), (SELECT sum(event_count) FROM usage_usagerollup),"
            " (SELECT count(*) FROM usage_usageuniquevalue)"
        ).fetchone()
        per_metric = conn.execute(
            "SELECT e.metric_id, e.n, e.q, r.n, r.q FROM"
            " (SELECT metric_id, count(*) n, sum(quantity) q FROM usage_usageevent GROUP BY 1) e FULL JOIN"
            " (SELECT metric_id, sum(event_count) n, sum(quantity_sum) q FROM usage_usagerollup GROUP BY 1) r"
            " USING (metric_id)"
        ).fetchall()
        size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
    events, keys, rollups, rolled_events, uniques = stored
    if events != args.events or keys != events or rolled_events != events:
        problems.append(f"stored {events:,} events, {keys:,} keys, rollups count {rolled_events:,}")
    if any(r[1] != r[3] or r[2] != r[4] for r in per_metric):
        problems.append(f"rollups differ from events per metric: {per_metric}")
    log(
        f"stored {events:,} events ({keys:,} keys), {rollups:,} hourly rollups, {uniques:,} unique values;"
        f" database {size}"
    )

    # Floor: the month's events summed per account and metric in one statement (best of two, warm).
    with psycopg.connect(dsn(DB_NAME)) as conn:
        floors = []
        for _ in range(2):
            t = time.perf_counter()
            groups = len(
                conn.execute(
                    "SELECT account_id, metric_id, sum(quantity), count(*) FROM usage_usageevent"
                    " WHERE billing_month = %s GROUP BY 1, 2",
                    [MONTH_START.date()],
                ).fetchall()
            )
            floors.append(time.perf_counter() - t)
    floor = min(floors)
    log(f"floor GROUP BY: {groups:,} groups in {floor:.2f} s (runs: {', '.join(f'{f:.2f}' for f in floors)})")

    # Each run bills its own copy of the data; the data database stays unbilled (--reuse-data).
    copies = [FANOUT_DB] if args.skip_inprocess or args.profile else [INPROCESS_DB, FANOUT_DB]
    with psycopg.connect(ingest.ADMIN_DSN, autocommit=True) as conn:
        for copy in copies:
            conn.execute(f"DROP DATABASE IF EXISTS {copy} WITH (FORCE)")
            t = time.monotonic()
            conn.execute(f"CREATE DATABASE {copy} TEMPLATE {DB_NAME} STRATEGY FILE_COPY")
            log(f"copied the data to {copy} ({time.monotonic() - t:.0f} s)")

    if args.profile:
        sys.stdout.flush()
        cmd = [sys.executable, __file__, "--phase", "profile", "--db", FANOUT_DB]
        if args.chunk:
            cmd += ["--chunk", str(args.chunk)]
        if args.profile_out:
            cmd += ["--profile-out", args.profile_out]
        return subprocess.run(cmd, cwd=ROOT, timeout=1800, check=False).returncode

    results = {}
    if not args.skip_inprocess:
        log("in-process: bill_period")
        results["inprocess"] = spawn_phase("inprocess", INPROCESS_DB, args)
        log(f"in-process: {results['inprocess']['seconds']:.1f} s")
    log(f"fanned out: billing_run_start, {args.workers} worker processes, billing_run_finish, lifecycle_update")
    results["fanout"] = spawn_phase("fanout", FANOUT_DB, args)
    log(f"fanned out: {results['fanout']['seconds']:.1f} s")
    checks = {}
    for name, db in (("inprocess", INPROCESS_DB), ("fanout", FANOUT_DB)):
        if name in results:
            checks[name], found = check_invoices(db, args.accounts)
            problems += [f"{name}: {p}" for p in found]

    width = 118
    chunk = args.chunk or 200
    print()
    print("=" * width)
    print(
        f"Ledgerline billing-cycle benchmark: {os.cpu_count()} CPUs, {args.accounts:,} accounts, January 2026,"
        f" chunks of {chunk}; load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}"
    )
    print(
        f"Data (COPY, not timed): {events:,} raw events in usage_usageevent + usage_eventkey, {rollups:,} hourly"
        f" rollups (storage gauge shape included), {uniques:,} unique values; all {args.events:,} events written"
        f" raw; generated in {gen_seconds:.0f} s" + (" (reused from an earlier run)" if reused else "")
    )
    print("-" * width)
    rows = [("Floor: one GROUP BY over the events", f"{floor:.2f} s", f"{groups:,} (account, metric) groups")]
    for name, label in (("inprocess", "In-process bill_period"), ("fanout", f"Fanned out, {args.workers} processes")):
        r = results.get(name)
        if r is None:
            continue
        rate = r["invoices"] / r["seconds"] if r["seconds"] else 0.0
        rows.append(
            (
                label,
                f"{rate:,.0f} invoices/s",
                f"{r['invoices']:,} invoices in {r['seconds']:.1f} s (chunks {r['chunks_seconds']:.1f} s, finish +"
                f" lifecycle {r['seconds'] - r['chunks_seconds']:.1f} s); x{r['seconds'] / floor:.1f} the floor;"
                f" peak RSS {max(r['maxrss']):.0f} MB",
            )
        )
    for label, figure, detail in rows:
        print(f"{label:<38} {figure:>16}   {detail}")
    fan = results["fanout"]
    fan_rate = fan["invoices"] / fan["seconds"]
    print(
        f"{'':<38} {'':>16}   target >= 250 invoices/s end to end on 2 cores: {'met' if fan_rate >= 250 else 'NOT MET'}"
    )
    print("-" * width)
    print("Memory (RSS high-water marks, MB): " + ", ".join(
        f"{name} {' / '.join(f'{m:.0f}' for m in r['maxrss'])}" for name, r in results.items()
    ))  # fmt: skip
    if "inprocess" in results:
        print(flatness(results["inprocess"]["samples"], "In-process"))
    for i, worker_samples in enumerate(fan["samples"]):
        print(flatness(worker_samples, f"Fan-out worker {i + 1}"))
    if "per_worker" in fan:
        print("Workers (chunks, invoices, busy s): " + "; ".join(str(tuple(w)) for w in fan["per_worker"]))
    for name, c in checks.items():
        print(
            f"Checks {name}: {c['invoices']:,} invoices, {c['lines']:,} lines; sum of totals {c['total']:,}"
            f" = lines {c['lines_sum']:,} + tax {c['tax']:,}"
        )
    print("-" * width)
    if problems:
        print("PROBLEMS:")
        for p in problems:
            print("  " + p)
    else:
        print(
            "All checks passed: invoices = accounts, every invoice numbered (gap-free, no duplicate), totals = lines"
            " + tax, rollups = events, sample accounts identical to usage.writers output."
        )
    print(f"Total run time {time.monotonic() - started:.0f} s")
    print("=" * width)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
