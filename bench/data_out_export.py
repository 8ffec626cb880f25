#!/usr/bin/env python
"""Export benchmark: the NDJSON event export over HTTP against PostgreSQL's own COPY of the same rows.

    .venv/bin/python bench/data_out_export.py [--events N]

``run(n_events)`` (used by bench/data_out.py) works on its own database ``ledgerline_bench_export`` (dropped and
recreated) and Redis db 14, serving the app with gunicorn (one worker) on a free port, as bench/ingest.py does:

1. Load ``n_events / 10`` events of one account for November 2026 straight into the event table (settled: received
   an hour ago), then time (a) ``COPY (SELECT … the export's columns …) TO STDOUT`` read by psycopg, and (b)
   ``GET /v1/export/events?billing_month=2026-11`` with ``Accept: application/x-ndjson`` through gunicorn, the body
   read in 1 MiB chunks; and the worker's peak RSS (VmHWM) for the request.
2. Load the rest, up to ``n_events``, restart gunicorn, and time both again.

Reports rows/s of both, the ratio HTTP / COPY (target >= 50 %) and the worker's peak RSS at both sizes (flat: a
stream from a server-side cursor holds one chunk, whatever the month's size).
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ingest  # noqa: E402 — the benchmarks' shared setup (database, migrations, gunicorn)

DB_NAME = "ledgerline_bench_export"
DSN = f"host=127.0.0.1 port=5432 user=postgres password=postgres dbname={DB_NAME} connect_timeout=10"
MONTH = "2026-11"
READ_CHUNK = 1 << 20

KEY_CODE = """
from accounts.services import api_key_create
print("EXPORT_KEY=" + api_key_create(name="erp bench", scopes=["export"], rate_limit_per_minute=100_000_000)[1])
"""

# Events for one account, spread over November's tenants, partners and seconds; ids continue from ``start``.
LOAD_SQL = """
INSERT INTO usage_usageevent (account_id, tenant_id, metric_id, partner_id, transaction_id, timestamp, quantity,
                              properties, received_at, billing_month, is_late)
SELECT %(account)s, (%(tenants)s::bigint[])[1 + g %% cardinality(%(tenants)s::bigint[])], %(metric)s,
       (%(partners)s::bigint[])[1 + g %% cardinality(%(partners)s::bigint[])], 'bench-' || g,
       timestamptz '2026-11-01 00:00:00+00' + (g %% 2505600) * interval '1 second', 1 + g %% 3,
       jsonb_build_object('channel', 'sms'), now() - interval '1 hour', date '2026-11-01', false
FROM generate_series(%(start)s, %(stop)s - 1) AS g
"""

COPY_SQL = f"""
COPY (
    SELECT e.id, e.transaction_id, a.public_id, t.public_id, m.code, p.public_id, e.timestamp,
           trim_scale(e.quantity)::text, e.properties::text, e.billing_month, e.received_at, e.is_late
    FROM usage_usageevent e
    JOIN accounts_account a ON a.id = e.account_id
    JOIN tenants_tenant t ON t.id = e.tenant_id
    JOIN billing_metric m ON m.id = e.metric_id
    LEFT JOIN tenants_masterpartner p ON p.id = e.partner_id
    WHERE e.billing_month = date '{MONTH}-01'
    ORDER BY e.id
) TO STDOUT
"""


def log(msg: str) -> None:
    ingest.log(msg)


def load(cfg: dict, start: int, stop: int) -> float:
    import psycopg

    began = time.perf_counter()
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(
            LOAD_SQL,
            {
                "account": cfg["account_id"],
                "tenants": list(cfg["tenants"].values()),
                "metric": cfg["metric_id"],
                "partners": list(cfg["partners"].values()),
                "start": start,
                "stop": stop,
            },
        )
        conn.execute("VACUUM ANALYZE usage_usageevent")
    return time.perf_counter() - began


def time_copy() -> tuple[int, float]:
    import psycopg

    rows = 0
    began = time.perf_counter()
    with psycopg.connect(DSN) as conn, conn.cursor() as cursor, cursor.copy(COPY_SQL) as copy:
        for block in copy:
            rows += bytes(block).count(b"\n")
    return rows, time.perf_counter() - began


def worker_pids(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children")
    return [int(pid) for pid in children.read_text().split()] if children.exists() else []


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def time_http(port: int, secret: str) -> tuple[int, float, int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    began = time.perf_counter()
    conn.request(
        "GET",
        f"/v1/export/events?billing_month={MONTH}",
        headers={"Authorization": f"Bearer {secret}", "Accept": "application/x-ndjson"},
    )
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"export answered {response.status}: {response.read()[:500]!r}")
    rows = size = 0
    while block := response.read(READ_CHUNK):
        rows += block.count(b"\n")
        size += len(block)
    elapsed = time.perf_counter() - began
    conn.close()
    return rows, elapsed, size


def measure(env: dict, port: int, secret: str, expected: int, log_path: Path) -> dict:
    copy_rows, copy_s = time_copy()
    proc = ingest.start_gunicorn(env, port, log_path)
    try:
        [worker] = worker_pids(proc.pid)
        base_rss = peak_rss_mib(worker)
        http_rows, http_s, size = time_http(port, secret)
        rss = peak_rss_mib(worker)
    finally:
        ingest.stop_gunicorn(proc)
    if copy_rows != expected or http_rows != expected:
        raise RuntimeError(f"expected {expected} rows; COPY gave {copy_rows}, HTTP {http_rows}")
    result = {
        "rows": expected,
        "copy_rows_per_s": round(copy_rows / copy_s),
        "http_rows_per_s": round(http_rows / http_s),
        "ratio": round((http_rows / http_s) / (copy_rows / copy_s), 3),
        "http_mib": round(size / 2**20, 1),
        "worker_rss_before_mib": round(base_rss, 1),
        "worker_peak_rss_mib": round(rss, 1),
    }
    log(
        f"{expected:,} rows: COPY {result['copy_rows_per_s']:,} rows/s, HTTP NDJSON {result['http_rows_per_s']:,} "
        f"rows/s ({result['ratio']:.0%}), worker peak RSS {rss:.0f} MiB (at start {base_rss:.0f} MiB)"
    )
    return result


def run(n_events: int = 5_000_000) -> dict:
    """Load ``n_events`` November events (in two steps, ``n_events / 10`` first) and time the export of both sizes
    against COPY. Returns the figures of both runs, the ratio at full size and whether the peak RSS stayed flat."""
    small = max(n_events // 10, 1)
    ingest.recreate_database(DB_NAME)
    env = ingest.app_env(db_name=DB_NAME)
    log(f"schema: {ingest.migrate(env, use_cache=True, db_name=DB_NAME)}")
    ingest.manage(env, "load_catalogue", timeout=120)
    cfg = ingest.create_fixtures(env)
    secret = next(
        line.removeprefix("EXPORT_KEY=")
        for line in ingest.manage(env, "shell", "-c", KEY_CODE).splitlines()
        if line.startswith("EXPORT_KEY=")
    )
    port = ingest.free_port()
    server_env = ingest.app_env(port=port, workers=1, db_name=DB_NAME)
    log_path = Path(tempfile.gettempdir()) / "ledgerline-bench-export-gunicorn.log"

    log(f"loading {small:,} events ({load(cfg, 0, small):.1f} s)")
    smaller = measure(server_env, port, secret, small, log_path)
    log(f"loading {n_events - small:,} more events ({load(cfg, small, n_events):.1f} s)")
    larger = measure(server_env, port, secret, n_events, log_path)
    flat = larger["worker_peak_rss_mib"] <= smaller["worker_peak_rss_mib"] * 1.25 + 16
    summary = {
        "small": smaller,
        "large": larger,
        "ratio": larger["ratio"],
        "ratio_target_met": larger["ratio"] >= 0.5,
        "peak_rss_flat": flat,
    }
    log(f"ratio HTTP/COPY {larger['ratio']:.0%} (target 50 %); peak RSS {'flat' if flat else 'NOT flat'}")
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5_000_000)
    args = parser.parse_args()
    print(json.dumps(run(args.events), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
