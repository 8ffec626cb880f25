#!/usr/bin/env python
"""Ingest benchmark: HTTP batch ingest vs. the raw storage ceiling, and single-event latency.

    .venv/bin/python bench/ingest.py [--events N] [--workers W] [--clients C] [--single S]

Runs against its own PostgreSQL database ``ledgerline_bench`` (dropped and recreated on every run) and
Redis db 14, with the app served by gunicorn on 127.0.0.1 (a free port). Nothing else is touched.

1. HTTP batch ingest: N events in batches of 1,000 to ``POST /v1/events`` from C client processes, each
   on its own connection; events/s from the first send to the last 202; every event must land.
2. Raw ceiling: the same number of rows, COPY'd by psycopg into the staging table and stored with the
   app's own SQL (``usage.writers.CREATE_STAGE`` / ``INSERT_ALL``), 1,000 per transaction, from C
   processes with one connection each. Ratio HTTP / raw (target >= 40 %).
3. Single events: S single-event POSTs from 8 processes (one connection each): req/s, p50 and p99 latency
   (targets >= 1,000 req/s, p99 < 50 ms).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import http.client
import json
import multiprocessing as mp
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DB_NAME = "ledgerline_bench"
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "password": "postgres"}
ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres password=postgres dbname=postgres connect_timeout=10"
BENCH_DSN = f"host=127.0.0.1 port=5432 user=postgres password=postgres dbname={DB_NAME} connect_timeout=10"
N_TENANTS = 3
N_PARTNERS = 3
METRIC = "messages"
PLAN = "messaging-enterprise"
HTTP_RETRIES = 3
CACHE_DIR = Path(tempfile.gettempdir()) / "ledgerline-bench-cache"
MIGRATING_PACKAGES = ("Django", "dj-stripe", "django-celery-beat", "django-simple-history", "django-timezone-field")
SECRET_KEY = "bench-" + secrets.token_hex(32)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------------------------- setup


def app_env(port: int | None = None, workers: int | None = None, db_name: str = DB_NAME) -> dict[str, str]:
    # The server's tuning knobs pass through (they are printed in the report); everything else is the bench's.
    tuning = ("GUNICORN_THREADS",)
    env = {
        k: v
        for k, v in os.environ.items()
        if k in tuning or not k.startswith(("DJANGO_", "GUNICORN_", "DATABASE_", "REDIS_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DJANGO_SECRET_KEY=SECRET_KEY,
        DATABASE_URL=f"postgres://postgres:postgres@127.0.0.1:5432/{db_name}",
        REDIS_URL="redis://127.0.0.1:6379/14",
        DJANGO_SECURE_SSL_REDIRECT="0",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DJANGO_DEBUG="0",
        DJANGO_LOG_LEVEL="WARNING",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/14",
    )
    if port is not None:
        env.update(GUNICORN_BIND=f"127.0.0.1:{port}", GUNICORN_WORKERS=str(workers), GUNICORN_ACCESS_LOG="/dev/null")
        # An empty GUNICORN_ACCESS_LOG makes gunicorn 27 exit ("'' isn't writable"); /dev/null silences it.
    return env


def recreate_database(db_name: str = DB_NAME) -> None:
    import psycopg

    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {db_name}")


def migrations_fingerprint() -> str:
    """Identifies the migrated schema: the project's migration files and the versions of the packages
    whose apps bring migrations."""
    from importlib import metadata

    digest = hashlib.sha256()
    for path in sorted(ROOT.glob("*/migrations/*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    for name in MIGRATING_PACKAGES:
        try:
            digest.update(f"{name}=={metadata.version(name)}\n".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{name} missing\n".encode())
    return digest.hexdigest()[:16]


def migrate(env: dict[str, str], use_cache: bool, db_name: str = DB_NAME) -> str:
    """``manage.py migrate`` on the fresh database. dj-stripe's migrations alone take ~90 s of CPU, so the
    migrated schema is kept as a pg_dump keyed by the migrations' fingerprint and restored first when it
    matches; ``migrate`` still runs afterwards (then a no-op). ``env`` must point DATABASE_URL at ``db_name``.
    Returns how the schema was obtained."""
    cache = CACHE_DIR / f"schema-{migrations_fingerprint()}.dump"
    if use_cache and cache.exists():
        subprocess.run(
            ["pg_restore", "--no-owner", "--exit-on-error", "-h", "127.0.0.1", "-U", "postgres", "-d", db_name,
             str(cache)],
            check=True, timeout=120, capture_output=True,
        )  # fmt: skip
        manage(env, "migrate", "--noinput", "-v0", timeout=300)
        return f"restored {cache} + migrate"
    manage(env, "migrate", "--noinput", "-v0", timeout=600)
    if use_cache:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        subprocess.run(
            ["pg_dump", "--format=custom", "-h", "127.0.0.1", "-U", "postgres", "-f", str(tmp), db_name],
            check=True, timeout=120, capture_output=True,
        )  # fmt: skip
        for old in CACHE_DIR.glob("schema-*.dump"):  # keep only the current schema
            old.unlink(missing_ok=True)
        tmp.replace(cache)
    return "full migrate" + (f" (schema cached in {cache})" if use_cache else "")


def manage(env: dict[str, str], *args: str, timeout: float = 180) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {args[0]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


SETUP_CODE = """
import datetime as dt, json
from accounts.services import account_create, api_key_create
from billing.models import PlanVersion
from billing.services.subscriptions import subscription_create
from tenants.services import partner_create, tenant_create
from usage.models import Metric
since = dt.datetime.fromisoformat({since!r})
account = account_create(name="Bench Co", currency="USD", billing_emails=["bench@example.com"])
tenants = [
    tenant_create(account=account, name=f"Bench tenant {{i}}", public_id=f"ten_bench_{{i}}", activated_at=since)
    for i in range(1, {n_tenants} + 1)
]
partners = [
    partner_create(account=account, public_id=f"prt_bench_{{i}}", name=f"Bench partner {{i}}", activated_at=since)
    for i in range(1, {n_partners} + 1)
]
subscription_create(account=account, plan_version=PlanVersion.objects.get(plan__code={plan!r}))
api_key, secret = api_key_create(name="bench", scopes=["ingest", "read"], account=account,
                                 rate_limit_per_minute=100_000_000)
print("BENCH_SETUP=" + json.dumps({{
    "secret": secret,
    "account_id": account.pk,
    "metric_id": Metric.objects.get(code={metric!r}).pk,
    "tenants": {{t.public_id: t.pk for t in tenants}},
    "partners": {{p.public_id: p.pk for p in partners}},
}}))
"""


def create_fixtures(env: dict[str, str]) -> dict:
    now = dt.datetime.now(dt.UTC)
    since = min(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), now - dt.timedelta(days=90))
    code = SETUP_CODE.format(
        since=since.isoformat(), n_tenants=N_TENANTS, n_partners=N_PARTNERS, plan=PLAN, metric=METRIC
    )
    out = manage(env, "shell", "-c", code, timeout=120)
    for line in out.splitlines():
        if line.startswith("BENCH_SETUP="):
            return json.loads(line.removeprefix("BENCH_SETUP="))
    raise RuntimeError(f"setup printed no BENCH_SETUP line:\n{out}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(env: dict[str, str], port: int, log_path: Path) -> subprocess.Popen:
    log_file = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [str(BIN / "gunicorn"), "-c", "config/gunicorn.py", "config.wsgi"],
        cwd=ROOT,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    proc.log_file = log_file  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited ({proc.returncode}):\n{tail(log_path)}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            resp = conn.getresponse()
            resp.read()
            conn.close()
            if resp.status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.25)
    stop_gunicorn(proc)
    raise RuntimeError(f"gunicorn did not answer /healthz within 60 s:\n{tail(log_path)}")


def stop_gunicorn(proc: subprocess.Popen | None) -> None:
    if proc is None:
        return
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # graceful: the master stops its workers
        try:
            proc.wait(timeout=35)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the session started for this gunicorn only
            proc.wait(timeout=10)
    proc.log_file.close()  # type: ignore[attr-defined]


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# ------------------------------------------------------------------------------------------- events


def event_shape(i: int, tenants: list[str], partners: list[str]) -> tuple[str, str | None]:
    """Tenant and partner of event i: tenants round-robin, a partner on three events in four."""
    tenant = tenants[i % len(tenants)]
    partner = None if i % 4 == 3 else partners[(i // len(tenants)) % len(partners)]
    return tenant, partner


def event_time(i: int, base: dt.datetime, month_start: dt.datetime) -> dt.datetime:
    """Within the last couple of minutes, never in the future, never before the current month."""
    return max(base - dt.timedelta(seconds=i % 60), month_start)


def http_event(txn: str, i: int, cfg: dict) -> dict:
    tenant, partner = event_shape(i, cfg["tenant_codes"], cfg["partner_codes"])
    event = {
        "transaction_id": txn,
        "tenant": tenant,
        "metric": METRIC,
        "quantity": 1,
        "timestamp": event_time(i, cfg["base"], cfg["month_start"]).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if partner is not None:
        event["properties"] = {"partner_id": partner}
    return event


def batch_ranges(total: int, size: int, clients: int, idx: int) -> list[tuple[int, int]]:
    return [(s, min(s + size, total)) for k, s in enumerate(range(0, total, size)) if k % clients == idx]


# ------------------------------------------------------------------------------------------ clients


def _post(conn: http.client.HTTPConnection, body: bytes, headers: dict) -> tuple[int | None, bytes, int]:
    """POST /v1/events; reconnects and retries on a dropped connection (a retried batch only
    yields duplicates, never double counting). Returns (status or None, body, retries)."""
    last: Exception | None = None
    for attempt in range(HTTP_RETRIES + 1):
        try:
            conn.request("POST", "/v1/events", body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, data, attempt
        except (http.client.HTTPException, OSError) as exc:
            last = exc
            conn.close()
            time.sleep(0.05 * (attempt + 1))
    return None, repr(last).encode(), HTTP_RETRIES


def http_client(idx: int, kind: str, cfg: dict, barrier, out_q) -> None:
    """One client process with one connection: 'batch' (batches of events) or 'single' (one event each)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent's handler is for the parent only
    try:
        if kind == "batch":
            bodies = [
                (
                    hi - lo,
                    json.dumps(
                        {"events": [http_event(f"http-{n:09d}", n, cfg) for n in range(lo, hi)]},
                        separators=(",", ":"),
                    ).encode(),
                )
                for lo, hi in batch_ranges(cfg["events"], cfg["batch"], cfg["clients"], idx)
            ]
        else:
            bodies = [
                (1, json.dumps(http_event(f"single-{n:09d}", n, cfg), separators=(",", ":")).encode())
                for n in range(idx, cfg["single"], cfg["connections"])
            ]
        headers = {"Authorization": f"Bearer {cfg['secret']}", "Content-Type": "application/json"}
        conn = http.client.HTTPConnection("127.0.0.1", cfg["port"], timeout=cfg["request_timeout"])
        statuses: Counter = Counter()
        errors: list[str] = []
        latencies: list[float] = []
        accepted = duplicates = retries = unsent = 0
        barrier.wait(timeout=300)
        t_first = time.monotonic()
        deadline = t_first + cfg["duration" if kind == "batch" else "single_duration"]
        t_last = t_first
        for k, (_count, body) in enumerate(bodies):
            if time.monotonic() > deadline:
                unsent = sum(c for c, _ in bodies[k:])
                break
            t0 = time.perf_counter()
            status, data, tries = _post(conn, body, headers)
            latencies.append(time.perf_counter() - t0)
            retries += tries
            statuses[status] += 1
            if status == 202:
                t_last = time.monotonic()
                result = json.loads(data)
                accepted += result["accepted"]
                duplicates += result["duplicates"]
            elif len(errors) < 5:
                errors.append(f"{status}: {data[:300]!r}")
        conn.close()
        out_q.put(
            {
                "idx": idx,
                "t_first": t_first,
                "t_last": t_last,
                "statuses": dict(statuses),
                "accepted": accepted,
                "duplicates": duplicates,
                "retries": retries,
                "unsent": unsent,
                "errors": errors,
                "latencies": latencies if kind == "single" else [],
            }
        )
    except BaseException as exc:  # report, never hang the parent
        out_q.put({"idx": idx, "fatal": repr(exc)})


def raw_client(idx: int, cfg: dict, sql: dict, barrier, out_q) -> None:
    """One process, one psycopg connection: COPY 1,000 rows to the staging table and run the app's SQL,
    one transaction per batch, exactly as usage.writers does (client-side binding, like Django)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent's handler is for the parent only
    try:
        import psycopg

        ids, month = cfg["ids"], cfg["month_start"].date()
        props = {p: json.dumps({"partner_id": p}, separators=(",", ":")) for p in cfg["partner_codes"]}
        batches = []
        for lo, hi in batch_ranges(cfg["events"], cfg["batch"], cfg["clients"], idx):
            rows = []
            for n in range(lo, hi):
                tenant, partner = event_shape(n, cfg["tenant_codes"], cfg["partner_codes"])
                rows.append(
                    (
                        f"raw-{n:09d}",
                        ids["account_id"],
                        ids["tenants"][tenant],
                        ids["metric_id"],
                        None if partner is None else ids["partners"][partner],
                        event_time(n, cfg["base"], cfg["month_start"]),
                        Decimal(1),
                        "{}" if partner is None else props[partner],
                        month,
                        month,
                        False,
                        None,
                        False,
                    )
                )
            rows.sort(key=lambda r: r[0])
            batches.append(rows)
        copy_sql = f"COPY usage_stage ({', '.join(sql['columns'])}) FROM STDIN"
        conn = psycopg.connect(BENCH_DSN, cursor_factory=psycopg.ClientCursor)
        conn.execute("SET TIME ZONE 'UTC'")
        conn.commit()
        inserted = retries = unsent = 0
        errors: list[str] = []
        barrier.wait(timeout=300)
        t_first = time.monotonic()
        deadline = t_first + cfg["duration"]
        for k, rows in enumerate(batches):
            if time.monotonic() > deadline:
                unsent = sum(len(b) for b in batches[k:])
                break
            for attempt in range(3):
                try:
                    with conn.transaction(), conn.cursor() as cur:
                        cur.execute(sql["create_stage"])
                        with cur.copy(copy_sql) as copy:
                            for row in rows:
                                copy.write_row(row)
                        cur.execute(sql["insert_all"], [dt.datetime.now(dt.UTC)])
                        inserted += cur.fetchone()[0]
                        cur.execute("TRUNCATE usage_stage")
                    break
                except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) as exc:
                    retries += 1
                    if attempt == 2:
                        errors.append(repr(exc))
                    time.sleep(0.01 * (attempt + 1))
        t_last = time.monotonic()
        conn.close()
        out_q.put(
            {
                "idx": idx,
                "t_first": t_first,
                "t_last": t_last,
                "accepted": inserted,
                "retries": retries,
                "unsent": unsent,
                "errors": errors,
            }
        )
    except BaseException as exc:
        out_q.put({"idx": idx, "fatal": repr(exc)})


def run_clients(target, n: int, args_for, timeout: float) -> list[dict]:
    """Start n client processes, release them together, collect one result each (bounded)."""
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(n)
    out_q = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args_for(i), barrier, out_q), daemon=True) for i in range(n)]
    for p in procs:
        p.start()
    results: list[dict] = []
    deadline = time.monotonic() + timeout
    finished = False
    try:
        while len(results) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{n - len(results)} client(s) did not report within {timeout:.0f} s")
            try:
                results.append(out_q.get(timeout=min(remaining, 5)))
            except Exception:  # queue.Empty: check the clients are still alive
                if not any(p.is_alive() for p in procs) and out_q.empty():
                    raise RuntimeError("client processes died without reporting") from None
        finished = True
    finally:
        for p in procs:
            if not finished:  # error or interrupt: stop sending at once
                p.terminate()
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
    fatal = [r for r in results if "fatal" in r]
    if fatal:
        raise RuntimeError(f"client failure: {fatal[0]['fatal']}")
    return sorted(results, key=lambda r: r["idx"])


# ------------------------------------------------------------------------------------------- report


def scalar(query: str, params: tuple | None = None) -> int:
    import psycopg

    with psycopg.connect(BENCH_DSN) as conn:
        return conn.execute(query, params).fetchone()[0] or 0


def settle_database() -> None:
    """CHECKPOINT and VACUUM ANALYZE the usage tables (autocommit), as a quiet database would be."""
    import psycopg

    with psycopg.connect(BENCH_DSN, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        for table in ("usage_eventkey", "usage_usageevent", "usage_usagerollup", "usage_usageuniquevalue"):
            conn.execute(f"VACUUM (ANALYZE) {table}")


def wall(results: list[dict]) -> float:
    return max(r["t_last"] for r in results) - min(r["t_first"] for r in results)


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


def status_line(results: list[dict]) -> tuple[Counter, list[str], int, int, int]:
    statuses: Counter = Counter()
    errors: list[str] = []
    for r in results:
        statuses.update(r["statuses"])
        errors.extend(r["errors"])
    return (
        statuses,
        errors,
        sum(r["retries"] for r in results),
        sum(r["unsent"] for r in results),
        sum(r["duplicates"] for r in results),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000, help="events for the batch and raw runs")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 2,
        help="gunicorn workers (default: one per core, as in production)",
    )
    parser.add_argument("--clients", type=int, default=4, help="client processes for the batch and raw runs")
    parser.add_argument("--batch", type=int, default=1_000, help="events per request / per transaction")
    parser.add_argument("--single", type=int, default=5_000, help="single-event requests")
    parser.add_argument("--connections", type=int, default=8, help="concurrent single-event clients")
    parser.add_argument("--max-seconds", type=float, default=90, help="time bound of the batch and raw runs")
    parser.add_argument("--single-seconds", type=float, default=30, help="time bound of the single-event run")
    parser.add_argument(
        "--no-schema-cache", action="store_true", help="always run every migration (adds ~90 s); no dump kept"
    )
    args = parser.parse_args()
    if min(args.events, args.workers, args.clients, args.batch, args.single, args.connections) < 1:
        parser.error("all counts must be positive")

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="ledgerline-bench-"))
    gunicorn_log = workdir / "gunicorn.log"
    env = app_env()

    log(f"recreating database {DB_NAME}")
    recreate_database()
    log("migrate + load_catalogue")
    how = migrate(env, use_cache=not args.no_schema_cache)
    manage(env, "load_catalogue", timeout=120)
    log(f"schema: {how}")
    ids = create_fixtures(env)
    log(f"account {ids['account_id']}, tenants {list(ids['tenants'])}, partners {list(ids['partners'])}")

    # The app's own storage SQL, imported from usage/writers.py (needs Django set up).
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from usage import writers

    sql = {"create_stage": writers.CREATE_STAGE, "insert_all": writers.INSERT_ALL, "columns": writers.STAGE_COLUMNS}

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    month_start = now.replace(day=1, hour=0, minute=0, second=0)
    cfg = {
        "events": args.events,
        "batch": args.batch,
        "clients": args.clients,
        "single": args.single,
        "connections": args.connections,
        "duration": args.max_seconds,
        "single_duration": args.single_seconds,
        "request_timeout": 60,
        "base": now - dt.timedelta(seconds=60),
        "month_start": month_start,
        "tenant_codes": sorted(ids["tenants"]),
        "partner_codes": sorted(ids["partners"]),
        "secret": ids["secret"],
        "ids": ids,
    }
    # Bound for collecting each phase's results: body generation + the bounded phase + the last request.
    collect_timeout = max(args.max_seconds, args.single_seconds) + 120
    rows: list[tuple[str, str, str]] = []  # (benchmark, figure, detail)
    problems: list[str] = []
    load_before = os.getloadavg()[0]
    gunicorn = None
    port = free_port()
    try:
        log(f"starting gunicorn ({args.workers} workers) on 127.0.0.1:{port}; log {gunicorn_log}")
        gunicorn = start_gunicorn(app_env(port, args.workers), port, gunicorn_log)
        cfg["port"] = port

        # 1. HTTP batch ingest
        log(f"HTTP batch ingest: {args.events:,} events, batches of {args.batch:,}, {args.clients} clients")
        res = run_clients(http_client, args.clients, lambda i: (i, "batch", cfg), collect_timeout)
        seconds = wall(res)
        accepted = sum(r["accepted"] for r in res)
        statuses, errors, retries, unsent, dups = status_line(res)
        landed = scalar("SELECT count(*) FROM usage_usageevent")
        rolled = scalar("SELECT sum(event_count) FROM usage_usagerollup")
        http_rate = accepted / seconds if seconds > 0 else 0.0
        rows.append(
            (
                "HTTP batch ingest",
                f"{http_rate:,.0f} events/s",
                f"{landed:,} landed of {args.events:,} in {seconds:.1f} s; rollups count {rolled:,}",
            )
        )
        non202 = {k: v for k, v in statuses.items() if k != 202}
        if landed != args.events or non202 or unsent or dups or rolled != landed:
            problems.append(
                f"batch: landed {landed:,} of {args.events:,}, non-202 {non202 or 'none'}, unsent {unsent:,},"
                f" duplicates {dups:,}, retries {retries}, rollup events {rolled:,}; {errors[:3]}"
            )

        # 2. Raw ceiling (no HTTP, no Django): same rows, same SQL, same number of processes
        log(f"raw COPY+INSERT ceiling: {args.events:,} rows, {args.batch:,} per transaction, {args.clients} processes")
        raw = run_clients(raw_client, args.clients, lambda i: (i, cfg, sql), collect_timeout)
        raw_seconds = wall(raw)
        raw_rate = sum(r["accepted"] for r in raw) / raw_seconds if raw_seconds > 0 else 0.0
        raw_landed = scalar("SELECT count(*) FROM usage_usageevent WHERE transaction_id LIKE %s", ("raw-%",))
        ratio = 100 * http_rate / raw_rate if raw_rate else 0.0
        rows.append(
            ("Raw COPY+INSERT ceiling", f"{raw_rate:,.0f} events/s", f"{raw_landed:,} landed in {raw_seconds:.1f} s")
        )
        rows.append(("Ratio HTTP / raw", f"{ratio:.1f} %", f"target >= 40 %: {'met' if ratio >= 40 else 'NOT MET'}"))
        raw_errors = [e for r in raw for e in r["errors"]]
        raw_unsent = sum(r["unsent"] for r in raw)
        if raw_landed != args.events or raw_errors or raw_unsent:
            problems.append(f"raw: landed {raw_landed:,} of {args.events:,}, unsent {raw_unsent:,}; {raw_errors[:3]}")

        # 3. Single-event requests. The 2 x N rows just written leave PostgreSQL flushing and vacuuming in the
        # background; settle that first, so this phase measures requests and not the previous phase's tail.
        settle_database()
        log(
            f"single events: up to {args.single:,} requests over {args.connections} connections,"
            f" at most {args.single_seconds:.0f} s"
        )
        single = run_clients(http_client, args.connections, lambda i: (i, "single", cfg), collect_timeout)
        s_seconds = wall(single)
        s_statuses, s_errors, s_retries, s_unsent, s_dups = status_line(single)
        ok = s_statuses.get(202, 0)
        lat = sorted(x for r in single for x in r["latencies"])
        p50, p99 = 1000 * percentile(lat, 0.50), 1000 * percentile(lat, 0.99)
        s_landed = scalar("SELECT count(*) FROM usage_usageevent WHERE transaction_id LIKE %s", ("single-%",))
        rps = ok / s_seconds if s_seconds > 0 else 0.0
        sent = f"{args.single - s_unsent:,} of {args.single:,} sent" + (
            f" (time bound {args.single_seconds:.0f} s)" if s_unsent else ""
        )
        rows.append(
            (
                f"Single events, {args.connections} connections",
                f"{rps:,.0f} req/s",
                f"p50 {p50:.1f} ms, p99 {p99:.1f} ms; {s_landed:,} landed of {ok:,} accepted; {sent}",
            )
        )
        rows.append(
            (
                "",
                "",
                f"targets: >= 1,000 req/s {'met' if rps >= 1000 else 'NOT MET'},"
                f" p99 < 50 ms {'met' if p99 < 50 else 'NOT MET'}",
            )
        )
        s_non202 = {k: v for k, v in s_statuses.items() if k != 202}
        if s_landed != ok or s_non202 or s_dups:
            problems.append(
                f"single: landed {s_landed:,} of {ok:,} accepted, non-202 {s_non202 or 'none'}, unsent {s_unsent:,},"
                f" duplicates {s_dups:,}, retries {s_retries}; {s_errors[:3]}"
            )
    finally:
        log("stopping gunicorn")
        stop_gunicorn(gunicorn)

    width = 110
    print()
    print("=" * width)
    print(
        f"Ledgerline ingest benchmark: {os.cpu_count()} CPUs, gunicorn {args.workers} workers"
        f" x {os.environ.get('GUNICORN_THREADS', '8')} threads,"
        f" {args.clients} batch clients x {args.batch:,} events;"
        f" load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}"
    )
    print("-" * width)
    for label, figure, detail in rows:
        print(f"{label:<30} {figure:>18}   {detail}")
    print("-" * width)
    if problems:
        print("PROBLEMS (events lost, refused or retried):")
        for p in problems:
            print("  " + p)
    else:
        print("Nothing lost: every request answered 202 and every event landed exactly once.")
    print(f"Total run time {time.monotonic() - started:.0f} s; gunicorn log {gunicorn_log}")
    print("=" * width)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
