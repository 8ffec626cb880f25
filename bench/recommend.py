#!/usr/bin/env python
"""Recommendations benchmark: re-rate a book's last 12 closed months on every plan it may move to.

    .venv/bin/python bench/recommend.py [--accounts 10000] [--hours 24] [--chunk 200] [--workers 2] [--reuse-data]

Runs against its own PostgreSQL database ``ledgerline_bench_rec`` (dropped and recreated unless ``--reuse-data``
finds the same book in it) and a copy of it, ``ledgerline_bench_rec_close``, that the month close bills; Redis
db 15. Nothing else is touched.

1. Data (not timed): ``--accounts`` accounts with 3 tenants each on a mix of the catalogue's sellable plans
   (messaging monthly and annual, with 3 master partners; platform basic and professional), subscribed since
   2024, and 12 closed months of usage (February 2025 - January 2026) written straight into what the rating
   engine reads: the hourly ``usage_usagerollup`` buckets (messages, API requests, storage gauges with their
   shape columns) and ``usage_usageuniquevalue`` (active users, premium features), with ``INSERT ... SELECT``
   over ``generate_series``, indexes built after the load. Usage grows or shrinks month on month per account;
   one account in ten has a tenant gone idle in December; some use a premium feature in 2 months of 12.
2. Floor: the month close of January 2026 for the whole book, the path of ``bench/billing_cycle.py`` (imported,
   not copied): ``billing_run_start``, ``--close-workers`` (2) processes running ``billing_run_chunk``,
   ``billing_run_finish``, ``lifecycle_update``; invoices checked with ``billing_cycle.check_invoices``. Rate:
   account-months closed/s.
3. Re-rating: the nightly run as production does it (``insights.recommendations_refresh_book`` fanning the book
   out as one ``insights.recommendations_refresh_chunk`` task per chunk): ``recommendations_prune``, then the
   chunks of ``recommendations_book_chunks`` pulled from one queue by ``--workers`` (2) fresh processes, each
   with Django loaded and its own connection, calling ``recommendations_refresh_accounts(now=2026-02-01 00:05)``
   chunk after chunk; ``--workers 1`` runs the same chunks one after another in one process (what
   ``recommendations_refresh_book`` does). Rate: plan-months/s, where a plan-month is one account's month priced
   on one set of terms: its own (the invoice's arithmetic) and each plan it may move to. Per worker: CPU, its
   PostgreSQL backend's CPU, peak RSS (VmHWM) before and after, RSS sampled through the run.
Reports both rates, their ratio, the projected time for 10,000 accounts x 12 months x 7 plans (840,000
plan-months) at the measured rate, the CPU demand (workers + their PostgreSQL backends), and PASS/FAIL against
the target: under 5 minutes on 2 cores, each worker's memory flat. Checks: the re-rated January on each sample
account's own terms equals its invoice's subtotal from the close; every account in one chunk, re-rated once; the
recommendations written are the rows in the table.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import json
import multiprocessing as mp
import os
import pstats
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import billing_cycle  # noqa: E402  (the month close: fixtures' conventions, the fanned-out run, invoice checks)
import ingest  # noqa: E402  (database, migration and schema-cache helpers)

DB_NAME = "ledgerline_bench_rec"
CLOSE_DB = "ledgerline_bench_rec_close"
REDIS_DB = 15
NOW = billing_cycle.NOW  # 2026-02-01 00:05 UTC: January is closed; the 12 months re-rated are Feb 2025 - Jan 2026
FIRST_MONTH = dt.date(2025, 2, 1)
N_MONTHS = 12
TARGET_SECONDS = 300
TARGET_PLAN_MONTHS = 10_000 * 12 * 7
N_TENANTS = 3
N_PARTNERS = 3
# Plan of account i: by i % 20. 75 % messaging (6 sellable plans: a plan-month on its own terms + 5 others),
# 25 % platform (2 sellable: its own terms + 1 other).
PLAN_MIX = (
    ["messaging-startup"] * 4
    + ["messaging-business"] * 4
    + ["messaging-enterprise"] * 2
    + ["messaging-startup-annual"] * 2
    + ["messaging-business-annual"] * 2
    + ["messaging-enterprise-annual"]
    + ["platform-basic"] * 3
    + ["platform-professional"] * 2
)
# Per plan family, a month's usage at scale 1: messages, storage GB per tenant, API requests, active users,
# premium features used every month.
PROFILE = {
    "messaging-startup": (4_500, "0.3", 0, 0, 0),
    "messaging-business": (18_000, "2.5", 0, 0, 0),
    "messaging-enterprise": (70_000, "25", 0, 0, 0),
    "platform-basic": (0, "0.25", 700_000, 40, 1),
    "platform-professional": (0, "2.5", 3_500_000, 160, 2),
}
# Accounts (index in the book) whose re-rated January is compared with their invoice: each plan of the mix, the
# annual ones billed their year's fee in January (12) or not (10, 14).
SAMPLE_ACCOUNTS = (0, 4, 8, 10, 12, 14, 15, 19)
FLAT_MB = 25  # memory is flat when RSS grows by at most this after the first tenth of the run


def _app_env(*args, **kwargs):
    """The benchmarks' environment with this benchmark's Redis database (the others use db 14)."""
    env = _base_app_env(*args, **kwargs)
    env.update(REDIS_URL=f"redis://127.0.0.1:6379/{REDIS_DB}", CELERY_BROKER_URL=f"redis://127.0.0.1:6379/{REDIS_DB}")
    return env


_base_app_env = ingest.app_env
ingest.app_env = _app_env  # billing_cycle.env_for / django_setup (and its spawned workers) go through it

log = billing_cycle.log
dsn = billing_cycle.dsn
rss_mb = billing_cycle.rss_mb


def maxrss_mb() -> float:
    """This process's peak RSS: ``VmHWM``, the high-water mark of its own memory. ``getrusage``'s ``ru_maxrss``
    survives ``exec``, so in a phase started by a parent that had loaded the book it would report the parent's."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return billing_cycle.maxrss_mb()


def months() -> list[tuple[int, dt.date, dt.date]]:
    """(index, first day, first day of the next month) of the 12 months re-rated, oldest first."""
    result, start = [], FIRST_MONTH
    for m in range(N_MONTHS):
        end = dt.date(start.year + start.month // 12, start.month % 12 + 1, 1)
        result.append((m, start, end))
        start = end
    return result


def family(plan: str) -> str:
    return plan.removesuffix("-annual")


# ------------------------------------------------------------------------------------------------- data


def create_fixtures(n_accounts: int) -> None:
    """Accounts, tenants, partners and subscriptions in bulk (bench rows: no audit history), and the book table
    the usage SQL reads (account, plan, tenants, partners, usage scale and trend)."""
    from django.db import connection

    from accounts.models import Account
    from billing.models import PlanVersion, Subscription
    from common.models import Counter
    from tenants.models import MasterPartner, Tenant

    live_since = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    versions = {v.plan.code: v for v in PlanVersion.objects.select_related("plan").filter(plan__code__in=set(PLAN_MIX))}
    accounts = [
        Account(
            public_id=f"acc_{i + 1:06d}",
            name=f"Bench customer {i + 1}",
            currency="USD",
            billing_emails=[f"billing{i + 1}@example.com"],
            tax_country="DE" if i % 4 == 0 else "",
            tax_rate=Decimal("19.000") if i % 4 == 0 else Decimal(0),
            status=Account.Status.ACTIVE,
        )
        for i in range(n_accounts)
    ]
    Account.objects.bulk_create(accounts, batch_size=2000)
    Counter.objects.update_or_create(name="public_id:acc", defaults={"value": n_accounts})
    tenants, partners, subscriptions = [], [], []
    for i, account in enumerate(accounts):
        plan = PLAN_MIX[i % len(PLAN_MIX)]
        version = versions[plan]
        # Subscribed on the first of a month in 2024: all 12 months re-rated are whole months on the plan.
        started = dt.datetime(2024, 1 + i % 12, 1, tzinfo=dt.UTC)
        if _yearly(version):
            period_start = started.replace(year=2025) if started.month > 1 else started.replace(year=2026)
            period_end = period_start.replace(year=period_start.year + 1)
        else:
            period_start, period_end = billing_cycle.MONTH_START, billing_cycle.MONTH_END
        for t in range(N_TENANTS):
            tenants.append(
                Tenant(account=account, public_id=f"ten_a{i + 1}_{t}", name=f"Tenant {t}", activated_at=live_since)
            )
        if plan.startswith("messaging"):
            for p in range(N_PARTNERS):
                partners.append(
                    MasterPartner(account=account, public_id=f"prt_p{p}", name=f"Partner {p}", activated_at=live_since)
                )
        subscriptions.append(
            Subscription(
                public_id=f"sub_{i + 1:06d}",
                account=account,
                plan_version=version,
                status=Subscription.Status.ACTIVE,
                started_at=started,
                current_period_start=period_start,
                current_period_end=period_end,
            )
        )
    tenant_ids, partner_ids = billing_cycle.save_book(tenants, partners, subscriptions, n_accounts)
    rows = []
    for i, account in enumerate(accounts):
        plan = PLAN_MIX[i % len(PLAN_MIX)]
        messages, storage, api, users, features = PROFILE[family(plan)]
        scale = Decimal("0.6") + Decimal(i % 9) / 10  # 0.6 .. 1.4
        rows.append(
            (
                i,
                account.pk,
                plan,
                plan.startswith("messaging"),
                tenant_ids[account.pk],
                partner_ids.get(account.pk, []),
                messages * scale,
                Decimal(storage) * scale,
                api * scale,
                users * scale,
                features + i % 2,
                Decimal((i % 7) - 2) * Decimal("0.03"),  # month on month: -6 % .. +12 % of the first month
                i % 10 == 3,  # its third tenant goes idle in December
                i % 4 == 1,  # one more premium feature in 2 months of 12
            )
        )
    with connection.cursor() as cur:
        cur.execute(
            """
            CREATE TABLE bench_rec_book (
                idx int, account_id bigint, plan text, messaging bool, tenants bigint[], partners bigint[],
                messages numeric, storage numeric, api numeric, users numeric, features int, growth numeric,
                idle bool, rare_feature bool)
            """
        )
        cur.executemany(f"INSERT INTO bench_rec_book VALUES ({', '.join(['%s'] * 14)})", rows)


def _yearly(version) -> bool:
    from billing.rating.engine import is_yearly

    return is_yearly(version)


def usage_statements(month: int, start: dt.date, end: dt.date, hours: int, metrics: dict[str, int]) -> list[str]:
    """The SQL writing one month's rollups and unique values for the whole book. ``hours``: the hours of the
    month each (tenant, partner) message series and each tenant's API requests have usage in (of the month's
    business hours, 08:00-20:00); storage is read twice a day per tenant (two readings in one hour)."""
    days = (end - start).days
    slots = days * 12
    hours = min(hours, slots)
    ts, m = f"timestamptz '{start.isoformat()} 00:00:00+00'", month
    # The idle tenant (the third, of one account in ten) has no usage from December on.
    live = f"NOT (b.idle AND {m} >= 10 AND t = 2)"
    factor = f"(1 + b.growth * {m})"
    slot = f"(k * {slots} / {hours})"
    hour_of = f"{ts} + (({slot} / 12) * 24 + 8 + {slot} % 12) * interval '1 hour'"
    return [
        # Messages: 3 tenants x (3 partners + none), ``hours`` hourly buckets each.
        f"""
        INSERT INTO usage_usagerollup (account_id, tenant_id, metric_id, partner_id, hour, billing_month,
                                       quantity_sum, event_count, quantity_max)
        SELECT b.account_id, b.tenants[1 + t], {metrics["messages"]},
               CASE WHEN p = 3 THEN NULL ELSE b.partners[1 + p] END, {hour_of}, date '{start}', q.q, 1 + q.q / 30,
               least(q.q, 60)
        FROM bench_rec_book b, generate_series(0, 2) t, generate_series(0, 3) p, generate_series(0, {hours - 1}) k,
             LATERAL (SELECT greatest(1, round(b.messages * {factor} / {12 * hours}
                                               * (0.8 + ((k * 13 + t * 7 + p * 3 + b.idx) % 5) * 0.1)))::bigint) q(q)
        WHERE b.messaging AND {live}
        """,
        # API requests: 3 tenants, ``hours`` hourly buckets each.
        f"""
        INSERT INTO usage_usagerollup (account_id, tenant_id, metric_id, partner_id, hour, billing_month,
                                       quantity_sum, event_count, quantity_max)
        SELECT b.account_id, b.tenants[1 + t], {metrics["api_requests"]}, NULL, {hour_of}, date '{start}', q.q,
               1 + q.q / 2000, least(q.q, 4000)
        FROM bench_rec_book b, generate_series(0, 2) t, generate_series(0, {hours - 1}) k,
             LATERAL (SELECT greatest(1, round(b.api * {factor} / {3 * hours}
                                               * (0.8 + ((k * 13 + t * 7 + b.idx) % 5) * 0.1)))::bigint) q(q)
        WHERE NOT b.messaging AND {live}
        """,
        # Storage gauge: each tenant read at :10 and :40 of one hour a day (its level, then +0.25 GB).
        f"""
        INSERT INTO usage_usagerollup (account_id, tenant_id, metric_id, partner_id, hour, billing_month,
                                       quantity_sum, event_count, quantity_max, gauge_first_at, gauge_first_value,
                                       gauge_last_at, gauge_last_value, gauge_inner_area)
        SELECT b.account_id, b.tenants[1 + t], {metrics["storage_gb"]}, NULL, h.h, date '{start}', 2 * lv.v + 0.25, 2,
               lv.v + 0.25, h.h + interval '10 minutes', lv.v, h.h + interval '40 minutes', lv.v + 0.25, lv.v / 2
        FROM bench_rec_book b, generate_series(0, 2) t, generate_series(0, {days - 1}) d,
             LATERAL (SELECT {ts} + (d * 24 + 2 + t) * interval '1 hour') h(h),
             LATERAL (SELECT round(b.storage * {factor} * (1 + t * 0.2) + (d % 7) * 0.01, 4)) lv(v)
        WHERE {live}
        """,
        # Active users: each seen by one tenant, first on a day of the month.
        f"""
        INSERT INTO usage_usageuniquevalue (account_id, tenant_id, metric_id, usage_month, value, billing_month,
                                            first_seen_at)
        SELECT b.account_id, b.tenants[1 + t], {metrics["active_users"]}, date '{start}', 'u' || u, date '{start}',
               {ts} + (u % {days}) * interval '1 day' + interval '9 hours'
        FROM bench_rec_book b, generate_series(0, 499) u, LATERAL (SELECT u % 3) tt(t)
        WHERE NOT b.messaging AND u < round(b.users * {factor}) AND {live}
        """,
        # Premium features: ``features`` every month, and one more in 2 of the 12 months for one account in four.
        f"""
        INSERT INTO usage_usageuniquevalue (account_id, tenant_id, metric_id, usage_month, value, billing_month,
                                            first_seen_at)
        SELECT b.account_id, b.tenants[1], {metrics["premium_features"]}, date '{start}', 'f' || f, date '{start}',
               {ts} + interval '2 days 10 hours'
        FROM bench_rec_book b, generate_series(0, 5) f
        WHERE NOT b.messaging AND (f < b.features OR (f = 5 AND b.rare_feature AND {m} IN (3, 9)))
        """,
    ]


def write_usage(hours: int, metrics: dict[str, int]) -> None:
    """The 12 months' usage, two months at a time (two connections), with the tables' indexes dropped during the
    load and built again after it."""
    import psycopg

    with psycopg.connect(dsn(DB_NAME), autocommit=True) as conn:
        indexes = conn.execute(
            "SELECT i.indexname, i.indexdef, c.conname FROM pg_indexes i LEFT JOIN pg_constraint c"
            " ON c.conname = i.indexname AND c.conrelid = i.tablename::regclass"
            " WHERE i.tablename IN ('usage_usagerollup', 'usage_usageuniquevalue')"
            " AND i.indexdef NOT LIKE '%(id)'"
        ).fetchall()
        constraints = {
            name: (table, definition)
            for name, table, definition in conn.execute(
                "SELECT conname, conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint"
                " WHERE conrelid::regclass::text IN ('usage_usagerollup', 'usage_usageuniquevalue')"
                " AND contype = 'u'"
            ).fetchall()
        }
        for name, _definition, conname in indexes:
            if conname:
                conn.execute(f"ALTER TABLE {constraints[conname][0]} DROP CONSTRAINT {conname}")
            else:
                conn.execute(f"DROP INDEX {name}")

    def load(month):
        m, start, end = month
        with psycopg.connect(dsn(DB_NAME), autocommit=True) as conn:
            conn.execute("SET synchronous_commit = off")
            for sql in usage_statements(m, start, end, hours, metrics):
                conn.execute(sql)

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(load, months()))
    log("usage written; building the indexes")

    def build(item):
        name, definition, conname = item
        with psycopg.connect(dsn(DB_NAME), autocommit=True) as conn:
            conn.execute("SET maintenance_work_mem = '512MB'")
            if conname:
                table, constraint = constraints[conname]
                conn.execute(f"ALTER TABLE {table} ADD CONSTRAINT {conname} {constraint}")
            else:
                conn.execute(definition)

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(build, indexes))


def stored_data(args) -> dict | None:
    import psycopg

    try:
        with psycopg.connect(dsn(DB_NAME)) as conn:
            row = conn.execute("SELECT accounts, hours, meta FROM bench_recommend").fetchone()
    except psycopg.Error:
        return None
    if row is None or (row[0], row[1]) != (args.accounts, args.hours):
        return None
    return row[2]


def write_data(args) -> float:
    import psycopg
    from psycopg.types.json import Jsonb

    started = time.monotonic()
    log(f"recreating database {DB_NAME}")
    ingest.recreate_database(DB_NAME)
    env = billing_cycle.env_for(DB_NAME)
    how = ingest.migrate(env, use_cache=not args.no_schema_cache, db_name=DB_NAME)
    ingest.manage(env, "load_catalogue", timeout=120)
    log(f"schema: {how}; catalogue loaded")
    billing_cycle.django_setup(DB_NAME)
    from django.db import connections

    from usage.models import Metric

    t = time.monotonic()
    create_fixtures(args.accounts)
    metrics = {m.code: m.id for m in Metric.objects.all()}
    connections.close_all()
    log(f"{args.accounts:,} accounts, {args.accounts * N_TENANTS:,} tenants, partners, subscriptions"
        f" ({time.monotonic() - t:.0f} s); writing 12 months of usage")  # fmt: skip
    t = time.monotonic()
    write_usage(args.hours, metrics)
    with psycopg.connect(dsn(DB_NAME), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) usage_usagerollup, usage_usageuniquevalue")
        seconds = time.monotonic() - started
        conn.execute("CREATE TABLE bench_recommend (accounts int, hours int, meta jsonb)")
        conn.execute(
            "INSERT INTO bench_recommend VALUES (%s, %s, %s)",
            [args.accounts, args.hours, Jsonb({"generated_seconds": seconds})],
        )
    log(f"usage written and indexed in {time.monotonic() - t:.0f} s")
    return seconds


# ----------------------------------------------------------------------------------------------- phases


def close_phase(args) -> dict:
    """The month close of January for the book, as bench/billing_cycle.py's fanned-out run does it."""
    return billing_cycle.run_phase(
        SimpleNamespace(db=args.db, chunk=args.chunk, mode="fanout", workers=args.close_workers)
    )


class RssSampler(threading.Thread):
    """RSS every ``every`` seconds while the refresh runs (the refresh has no progress hook)."""

    def __init__(self, every: float = 0.5):
        super().__init__(daemon=True)
        self.every, self.samples, self.stop = every, [], threading.Event()
        self.t0 = time.perf_counter()

    def run(self) -> None:
        while not self.stop.wait(self.every):
            self.samples.append((time.perf_counter() - self.t0, rss_mb()))


class Counted:
    """``rerate_many`` as ``insights.services`` calls it, counting what it re-rated (after each call, so nothing is
    added to the time of a rating): account-months, and plan-months -- each account-month on the account's own
    terms and on every version it was handed."""

    def __init__(self, rerate_many):
        self.rerate_many, self.accounts, self.account_months, self.plan_months = rerate_many, 0, 0, 0

    def __call__(self, **kwargs):
        result = self.rerate_many(**kwargs)
        versions = kwargs["versions"]
        for account_id, entry in result.items():
            if entry.periods:
                self.accounts += 1
                self.account_months += len(entry.periods)
                self.plan_months += len(entry.periods) * (1 + len(versions.get(account_id, ())))
        return result


def backend_cpu_seconds() -> float | None:
    """CPU time (user + system) of this process's PostgreSQL backend so far, when the server runs on this machine."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sample_januaries() -> dict[str, str]:
    """The re-rated January of the sample accounts on their own terms (the invoice's figure, before tax)."""
    from accounts.models import Account
    from insights.rerate import rerate_many
    from insights.services import closed_months

    public_ids = [f"acc_{i + 1:06d}" for i in SAMPLE_ACCOUNTS]
    accounts = list(Account.objects.filter(public_id__in=public_ids))
    january = closed_months(now=NOW, months=1)
    rerated = rerate_many(accounts=accounts, periods=january, versions={}, now=NOW)
    return {a.public_id: str(rerated[a.pk].current[0].billed) for a in accounts}


class ChunkWorker:
    """One process re-rating chunks as a Celery worker runs ``insights.recommendations_refresh_chunk``: Django
    loaded and frozen before the clock starts, its own connection, chunks one after another. Measures what it
    did: chunks, plan-months (``Counted``), busy seconds, its CPU and its PostgreSQL backend's, RSS."""

    def __init__(self):
        from django.db import connection

        from insights import services

        self.services = services
        self.counted = services.rerate_many = Counted(services.rerate_many)
        connection.ensure_connection()
        billing_cycle.freeze_startup_objects()
        self.rss_start, self.maxrss_start = rss_mb(), maxrss_mb()
        self.backend0, self.cpu0 = backend_cpu_seconds(), time.process_time()
        self.sampler: RssSampler | None = None
        self.chunks, self.written, self.busy, self.first_chunk = 0, 0, 0.0, 0.0

    def run(self, account_ids: list[int]) -> None:
        if self.sampler is None:  # sampled from the first chunk on, not while waiting for it
            self.sampler = RssSampler()
            self.sampler.start()
        t0 = time.perf_counter()
        self.written += self.services.recommendations_refresh_accounts(account_ids=account_ids, now=NOW)
        self.busy += time.perf_counter() - t0
        self.chunks += 1
        if self.chunks == 1:
            self.first_chunk = self.busy

    def report(self) -> dict:
        cpu, backend1 = time.process_time() - self.cpu0, backend_cpu_seconds()
        samples = []
        if self.sampler is not None:
            self.sampler.stop.set()
            self.sampler.join()
            samples = self.sampler.samples
        return {
            "chunks": self.chunks,
            "written": self.written,
            "busy": self.busy,
            "first_chunk": self.first_chunk,
            "cpu": cpu,
            "backend_cpu": None if self.backend0 is None or backend1 is None else backend1 - self.backend0,
            "accounts": self.counted.accounts,
            "account_months": self.counted.account_months,
            "plan_months": self.counted.plan_months,
            "rss": [self.rss_start, rss_mb()],
            "maxrss": [self.maxrss_start, maxrss_mb()],
            "samples": samples,
        }


def refresh_worker(idx: int, db: str, tasks, results, ready) -> None:
    """A re-rating worker process (spawned): ready once Django is loaded, then chunks pulled from ``tasks`` until
    the end marker; its report on ``results``."""
    is_ready = False
    try:
        billing_cycle.django_setup(db)
        worker = ChunkWorker()
        ready.put(idx)
        is_ready = True
        while (account_ids := tasks.get()) is not None:
            worker.run(account_ids)
        results.put(worker.report())
    except BaseException as exc:
        if not is_ready:
            ready.put(idx)
        results.put({"fatal": repr(exc)})


def refresh_phase(args) -> dict:
    """The nightly re-rating as production runs it, in this fresh process: ``recommendations_prune``, then the
    chunks of ``recommendations_book_chunks`` re-rated by ``--workers`` worker processes pulling them from one
    queue (``recommendations_refresh_accounts``, all as of ``NOW``), as the fanned-out
    ``insights.recommendations_refresh_chunk`` tasks are; with ``--workers 1``, the same chunks one after another
    in this process (what ``recommendations_refresh_book`` does). Timed from the prune to the last chunk's end."""
    billing_cycle.django_setup(args.db)
    from django.db.models import Count

    from insights import services
    from insights.models import Recommendation

    Recommendation.objects.all().delete()  # every run writes the same rows into an empty table
    procs, coordinator = [], None
    if args.workers == 1:
        local = ChunkWorker()
        t0 = time.perf_counter()
        pruned = services.recommendations_prune()
        chunks = services.recommendations_book_chunks(chunk=args.chunk)
        for account_ids in chunks:
            local.run(account_ids)
        seconds = time.perf_counter() - t0
        reports = [local.report()]
    else:
        ctx = mp.get_context("spawn")
        tasks, results, ready = ctx.Queue(), ctx.Queue(), ctx.Queue()
        procs = [
            ctx.Process(target=refresh_worker, args=(i, args.db, tasks, results, ready)) for i in range(args.workers)
        ]
        for p in procs:
            p.start()
        try:
            for _ in procs:
                ready.get(timeout=180)
            billing_cycle.freeze_startup_objects()
            backend0, cpu0 = backend_cpu_seconds(), time.process_time()
            t0 = time.perf_counter()
            pruned = services.recommendations_prune()
            chunks = services.recommendations_book_chunks(chunk=args.chunk)
            for account_ids in chunks:
                tasks.put(account_ids)
            for _ in procs:
                tasks.put(None)
            reports = [results.get(timeout=7200) for _ in procs]
            seconds = time.perf_counter() - t0
            cpu, backend1 = time.process_time() - cpu0, backend_cpu_seconds()
        finally:
            for p in procs:
                p.join(timeout=30)
                if p.is_alive():
                    p.kill()
        fatal = [r["fatal"] for r in reports if "fatal" in r]
        if fatal:
            raise RuntimeError(f"re-rating worker failed: {fatal[0]}")
        coordinator = {
            "cpu": cpu,
            "backend_cpu": None if backend0 is None or backend1 is None else backend1 - backend0,
        }
    kinds = dict(Recommendation.objects.values_list("kind").annotate(n=Count("id")).order_by("kind"))
    total = {key: sum(r[key] for r in reports) for key in ("written", "accounts", "account_months", "plan_months")}
    return {
        "seconds": seconds,
        **total,
        "pruned": pruned,
        "chunks": len(chunks),
        "chunked_accounts": sum(len(ids) for ids in chunks),
        "rows": sum(kinds.values()),
        "kinds": kinds,
        "workers": reports,
        "coordinator": coordinator,
        "januaries": sample_januaries(),
    }


def worker_memory(report: dict) -> tuple[bool | None, float, str]:
    """Whether a worker's RSS stayed flat: growth after its first chunk or the first tenth of its run, whichever
    ends later (a chunk's working set is reached in the first chunk). ``None`` when it had too few chunks."""
    samples = report["samples"]
    if report["chunks"] < 4 or len(samples) < 10:
        return None, 0.0, f"too few chunks ({report['chunks']}) to judge"
    until = max(report["first_chunk"], samples[-1][0] / 10)
    early = max([r for t, r in samples if t <= until] or [samples[0][1]])
    growth = max(r for _, r in samples) - early
    return growth <= FLAT_MB, growth, f"{growth:+.0f} MB after its first chunk"


def profile_phase(args) -> None:
    """cProfile of the refresh of the first ``--chunk`` accounts (one chunk of the nightly run)."""
    billing_cycle.django_setup(args.db)
    from insights.services import recommendations_book_chunks, recommendations_refresh_accounts

    billing_cycle.freeze_startup_objects()
    account_ids = recommendations_book_chunks(chunk=args.chunk)[0]
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    recommendations_refresh_accounts(account_ids=account_ids, now=NOW, months=N_MONTHS)
    profiler.disable()
    print(f"one chunk of {len(account_ids)} accounts: {time.perf_counter() - t0:.2f} s (under cProfile)")
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
    stats.print_stats(40)
    stats.sort_stats("tottime").print_stats(30)
    print(out.getvalue())
    if args.profile_out:
        stats.dump_stats(args.profile_out)


def spawn_phase(phase: str, db: str, args) -> dict:
    cmd = [sys.executable, __file__, "--phase", phase, "--db", db, "--chunk", str(args.chunk)]
    cmd += ["--workers", str(args.workers), "--close-workers", str(args.close_workers)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=7200, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT="):
            return json.loads(line.removeprefix("RESULT="))
    raise RuntimeError(f"{phase} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")


def invoice_subtotals(public_ids) -> dict[str, str]:
    import psycopg

    with psycopg.connect(dsn(CLOSE_DB)) as conn:
        rows = conn.execute(
            "SELECT a.public_id, i.subtotal FROM billing_invoice i JOIN accounts_account a ON a.id = i.account_id"
            " WHERE i.period_start = %s AND a.public_id = ANY(%s)",
            [billing_cycle.MONTH_START, list(public_ids)],
        ).fetchall()
    return {public_id: str(subtotal) for public_id, subtotal in rows}


# ------------------------------------------------------------------------------------------------- main


def verdict(seconds: float) -> str:
    return "met" if seconds <= TARGET_SECONDS else "NOT MET"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=2_000, help="accounts in the book (the target's: 10000)")
    parser.add_argument(
        "--hours", type=int, default=24, help="hours a month with usage, per message series and per tenant's API"
    )
    parser.add_argument("--chunk", type=int, default=200, help="accounts per chunk (refresh and close)")
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="processes re-rating the chunks (1: one after another in one process)",
    )
    parser.add_argument("--close-workers", type=int, default=2, help="processes of the month close (the floor)")
    parser.add_argument("--reuse-data", action="store_true", help="keep the book of the last run with the same sizes")
    parser.add_argument("--profile", action="store_true", help="profile one chunk of the refresh instead")
    parser.add_argument("--profile-out", help="with --profile: also write the pstats file here")
    parser.add_argument("--no-schema-cache", action="store_true", help="always run every migration (~90 s more)")
    parser.add_argument(
        "--phase", choices=["main", "close", "refresh", "profile"], default="main", help=argparse.SUPPRESS
    )
    parser.add_argument("--db", default=DB_NAME, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "close":
        print("RESULT=" + json.dumps(close_phase(args), default=str), flush=True)
        return 0
    if args.phase == "refresh":
        print("RESULT=" + json.dumps(refresh_phase(args), default=str), flush=True)
        return 0
    if args.phase == "profile":
        profile_phase(args)
        return 0
    if args.accounts < len(PLAN_MIX) or min(args.hours, args.chunk, args.workers, args.close_workers) < 1:
        parser.error(f"--accounts must be at least {len(PLAN_MIX)}; sizes positive")

    started = time.monotonic()
    load_before = os.getloadavg()[0]
    import psycopg

    meta = stored_data(args) if args.reuse_data else None
    if meta is not None:
        gen_seconds = meta["generated_seconds"]
        log(f"reusing the book in {DB_NAME} ({args.accounts:,} accounts, {args.hours} hours a month)")
    else:
        gen_seconds = write_data(args)
    with psycopg.connect(dsn(DB_NAME), autocommit=True) as conn:
        rollups, uniques, size = conn.execute(
            "SELECT (SELECT count(*) FROM usage_usagerollup), (SELECT count(*) FROM usage_usageuniquevalue),"
            " pg_size_pretty(pg_database_size(current_database()))"
        ).fetchone()
    log(f"book: {rollups:,} hourly rollups, {uniques:,} unique values over 12 months; database {size}")

    if args.profile:
        sys.stdout.flush()
        cmd = [sys.executable, __file__, "--phase", "profile", "--db", DB_NAME, "--chunk", str(args.chunk)]
        if args.profile_out:
            cmd += ["--profile-out", args.profile_out]
        return subprocess.run(cmd, cwd=ROOT, timeout=1800, check=False).returncode

    with psycopg.connect(ingest.ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {CLOSE_DB} WITH (FORCE)")
        t = time.monotonic()
        conn.execute(f"CREATE DATABASE {CLOSE_DB} TEMPLATE {DB_NAME} STRATEGY FILE_COPY")
        log(f"copied the book to {CLOSE_DB} for the month close ({time.monotonic() - t:.0f} s)")

    log(
        f"floor: the month close of January 2026, {args.close_workers} worker processes (bench/billing_cycle.py's path)"
    )
    close = spawn_phase("close", CLOSE_DB, args)
    log(f"floor: {close['invoices']:,} invoices in {close['seconds']:.1f} s")
    checks, problems = billing_cycle.check_invoices(CLOSE_DB, args.accounts)
    how = "one process" if args.workers == 1 else f"{args.workers} worker processes"
    log(f"re-rating: recommendations_prune, then recommendations_refresh_accounts per chunk over 12 months, {how}")
    load_refresh = os.getloadavg()[0]
    refresh = spawn_phase("refresh", DB_NAME, args)
    log(f"re-rating: {refresh['plan_months']:,} plan-months in {refresh['seconds']:.1f} s")
    invoiced = invoice_subtotals(refresh["januaries"])
    for public_id, rerated in sorted(refresh["januaries"].items()):
        if public_id not in invoiced or Decimal(invoiced[public_id]) != Decimal(rerated):
            problems.append(f"{public_id}: January re-rated {rerated}, invoiced {invoiced.get(public_id)}")
    if refresh["accounts"] != args.accounts or refresh["account_months"] != args.accounts * N_MONTHS:
        problems.append(f"re-rated {refresh['accounts']:,} accounts, {refresh['account_months']:,} account-months")
    if refresh["chunked_accounts"] != args.accounts:
        problems.append(f"the chunks hold {refresh['chunked_accounts']:,} accounts of {args.accounts:,}")
    if not refresh["written"]:
        problems.append("no recommendation written")
    if refresh["rows"] != refresh["written"]:
        problems.append(f"{refresh['written']:,} recommendations written, {refresh['rows']:,} in the table")

    workers = refresh["workers"]
    coordinator = refresh["coordinator"] or {"cpu": 0.0, "backend_cpu": 0.0}
    close_rate = close["invoices"] / close["seconds"]
    plan_rate = refresh["plan_months"] / refresh["seconds"]
    account_month_rate = refresh["account_months"] / refresh["seconds"]
    plans_per_month = refresh["plan_months"] / refresh["account_months"]
    projected = TARGET_PLAN_MONTHS / plan_rate
    book_projected = 10_000 * N_MONTHS / account_month_rate
    # CPU demand: every worker process and its PostgreSQL backend (and the coordinator's prune and chunk listing).
    # A worker and its backend take turns (one waits for the other), so at most min(workers, cores) of them run at
    # once: on idle cores the wall clock is at least the demand divided by that.
    backends = [w["backend_cpu"] for w in workers] + [coordinator["backend_cpu"]]
    has_backend = all(b is not None for b in backends)
    worker_cpu = sum(w["cpu"] for w in workers)
    backend_cpu = sum(b or 0.0 for b in backends) - (coordinator["backend_cpu"] or 0.0)
    coord_cpu = coordinator["cpu"] + (coordinator["backend_cpu"] or 0.0)
    demand = worker_cpu + backend_cpu + coord_cpu
    cpu_projected = TARGET_PLAN_MONTHS * demand / refresh["plan_months"]
    lanes = min(args.workers, os.cpu_count() or 1)
    cpu_floor = cpu_projected / lanes
    memories = [worker_memory(w) for w in workers]
    judged = [m for m in memories if m[0] is not None]
    flat = all(m[0] for m in judged)
    if judged:
        memory = f"{'flat' if flat else 'NOT flat'}: at most {max(m[1] for m in judged):+.0f} MB after a first chunk"
    else:
        memory = f"too few chunks per worker to judge: run with at least {4 * args.workers * args.chunk} accounts"
    passed = projected <= TARGET_SECONDS and flat and not problems

    width = 118
    print()
    print("=" * width)
    print(
        f"Ledgerline recommendations benchmark: {os.cpu_count()} CPUs, {args.accounts:,} accounts, 12 closed months"
        f" (Feb 2025 - Jan 2026), chunks of {args.chunk}, re-rated on {how}; load average {load_before:.1f} at"
        f" start, {load_refresh:.1f} before the re-rating, {os.getloadavg()[0]:.1f} at the end"
    )
    print(
        f"Book (not timed): {rollups:,} hourly rollups and {uniques:,} unique values ({args.hours} hours a month per"
        f" series), database {size}; built in {gen_seconds:.0f} s" + (" (reused)" if meta is not None else "")
    )
    print("-" * width)
    rows = [
        (
            "Floor: month close of Jan 2026",
            f"{close_rate:,.1f} account-months/s",
            f"{close['invoices']:,} invoices in {close['seconds']:.1f} s, {args.close_workers} processes running"
            f" billing_run_chunk; peak RSS {max(close['maxrss']):.0f} MB",
        ),
        (
            "Re-rating: fanned out by chunk" if args.workers > 1 else "Re-rating: chunk after chunk",
            f"{plan_rate:,.0f} plan-months/s",
            f"{refresh['plan_months']:,} plan-months = {refresh['account_months']:,} account-months x"
            f" {plans_per_month:.2f} (own terms + each version rated) in {refresh['seconds']:.1f} s wall",
        ),
        (
            "",
            f"{account_month_rate:,.1f} account-months/s",
            f"{refresh['chunks']} chunks of {args.chunk} (recommendations_refresh_accounts) on {how}, after"
            f" recommendations_prune ({refresh['pruned']} removed)",
        ),
        (
            "",
            f"{refresh['written']:,} written",
            "recommendations: " + ", ".join(f"{k} {n:,}" for k, n in refresh["kinds"].items()),
        ),
        (
            "Ratio to the floor",
            f"x{plan_rate / close_rate:,.1f}",
            "plan-months/s re-rated per account-month/s closed"
            f" (account-months: x{account_month_rate / close_rate:.2f})",
        ),
        (
            "Projected: 10,000 x 12 x 7 plans",
            f"{projected:,.0f} s",
            f"{TARGET_PLAN_MONTHS:,} plan-months at {plan_rate:,.0f}/s, target < {TARGET_SECONDS} s:"
            f" {verdict(projected)}; 10,000 accounts of this mix: {book_projected:,.0f} s",
        ),
    ]
    if has_backend:
        rows.append(
            (
                "CPU demand (load-independent)",
                f"{cpu_projected:,.0f} s",
                f"workers {worker_cpu:.1f} s + their PostgreSQL backends {backend_cpu:.1f} s + coordinator"
                f" {coord_cpu:.1f} s of CPU for {refresh['seconds']:.1f} s wall; 840,000 plan-months on"
                f" {lanes} idle core{'s' if lanes > 1 else ''}: at least {cpu_floor:,.0f} s, {verdict(cpu_floor)}",
            )
        )
    for i, (w, (_, _, mem)) in enumerate(zip(workers, memories, strict=True), 1):
        rss = [r for _, r in w["samples"]] or w["rss"]
        backend = "" if w["backend_cpu"] is None else f" + backend {w['backend_cpu']:.1f} s"
        rows.append(
            (
                f"Worker {i}" if args.workers > 1 else "The one process",
                f"{w['chunks']} chunks",
                f"{w['plan_months']:,} plan-months, busy {w['busy']:.1f} s, CPU {w['cpu']:.1f} s{backend};"
                f" peak RSS {w['maxrss'][0]:.0f} -> {w['maxrss'][1]:.0f} MB, RSS max {max(rss):.0f} MB, {mem}",
            )
        )
    rows.append(
        (
            "Memory (per worker)",
            "flat" if flat else "NOT flat",
            f"{memory} (flat: <= {FLAT_MB} MB); peak RSS at most {max(w['maxrss'][1] for w in workers):.0f} MB",
        )
    )
    for label, figure, detail in rows:
        print(f"{label:<40} {figure:>24}   {detail}")
    print("-" * width)
    print(
        f"Checks: {checks['invoices']:,} invoices closed, numbered, totals = lines + tax; January re-rated on the"
        f" account's own terms = its invoice's subtotal for {len(refresh['januaries'])} sample accounts; every"
        " account in one chunk, re-rated once; the rows written are the rows in the table"
    )
    if problems:
        print("PROBLEMS:")
        for p in problems:
            print("  " + p)
    print(
        f"{'PASS' if passed else 'FAIL'}: the whole book (840,000 plan-months) re-rated in under {TARGET_SECONDS // 60}"
        f" minutes on this machine's 2 cores with {how} ({projected:,.0f} s projected), memory flat"
    )
    print(f"Total run time {time.monotonic() - started:.0f} s")
    print("=" * width)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
