#!/usr/bin/env python
"""Data-out benchmark: the export stream, webhook delivery and the usage API under a large month.

    .venv/bin/python bench/data_out.py [--events 5000000] [--webhooks 20000] [--failure-rate 0.01]
                                       [--small 5000] [--large 5000000] [--only export,webhooks,latency]

Needs PostgreSQL on 127.0.0.1:5432 (user ``postgres``) and Redis on 127.0.0.1:6379 (db 14). Each part drops and
recreates its own database, migrated with the schema cache of ``bench/ingest.py``, with
``config.settings.production``. See ``bench/README.md`` ("Data out") for what each part measures and its target.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import data_out_export  # noqa: E402
import data_out_latency  # noqa: E402
import data_out_webhooks  # noqa: E402
import ingest  # noqa: E402

LATENCY_DB = "ledgerline_latencybench"
PARTS = ("export", "webhooks", "latency")


def latency_part(args) -> tuple[list[str], bool]:
    ingest.log(f"usage/current latency: database {LATENCY_DB}, {args.small:,} and {args.large:,} events")
    env = ingest.app_env(db_name=LATENCY_DB)
    ingest.recreate_database(LATENCY_DB)
    ingest.log(f"  {ingest.migrate(env, use_cache=not args.no_schema_cache, db_name=LATENCY_DB)}")
    ingest.manage(env, "load_catalogue", timeout=120)
    dsn = ingest.BENCH_DSN.replace(f"dbname={ingest.DB_NAME}", f"dbname={LATENCY_DB}")
    results = data_out_latency.run(
        lambda port: ingest.app_env(port=port, workers=1, db_name=LATENCY_DB),
        dsn,
        small=args.small,
        large=args.large,
        requests=args.requests,
        log_dir=Path(tempfile.gettempdir()),
    )
    rows = []
    for name in ("Small", "Large"):
        r = results[name]
        rows.append(
            f"| usage/current, {r['events']:,} events ({r['rollups']:,} rollups) | p50 {r['p50']:.1f} ms, "
            f"p95 {r['p95']:.1f} ms |"
        )
    ok = results["ratio"] <= 1.5
    rows.append(f"| usage/current, large / small (p50) | ×{results['ratio']:.2f} (target ≤ 1.5) |")
    return rows, ok


def export_part(args) -> tuple[list[str], bool]:
    ingest.log(f"Export: {args.events:,} events as NDJSON through HTTP against COPY of the same rows")
    figures = data_out_export.run(args.events)
    rows = []
    for size in ("small", "large"):
        r = figures[size]
        rows.append(
            f"| export of {r['rows']:,} events | HTTP NDJSON {r['http_rows_per_s']:,} rows/s, "
            f"COPY {r['copy_rows_per_s']:,} rows/s: {r['ratio']:.0%} (target ≥ 50 %); "
            f"worker peak RSS {r['worker_peak_rss_mib']:.0f} MiB |"
        )
    rows.append(
        f"| export memory, {figures['small']['rows']:,} → {figures['large']['rows']:,} events | "
        f"{'flat' if figures['peak_rss_flat'] else 'NOT flat'} |"
    )
    return rows, figures["ratio_target_met"] and figures["peak_rss_flat"]


def webhooks_part(args) -> tuple[list[str], bool]:
    ingest.log(f"Webhooks: {args.webhooks:,} events to a local receiver failing {args.failure_rate:.0%} of requests")
    figures = data_out_webhooks.run(args.webhooks, args.failure_rate, use_cache=not args.no_schema_cache)
    rows = data_out_webhooks.report(figures).splitlines()[2:]
    ok = figures["missing"] == 0 and figures["duplicates"] == 0 and figures["deliveries_per_second"] >= 500
    return rows, ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5_000_000, help="events exported (export part)")
    parser.add_argument("--webhooks", type=int, default=20_000, help="events delivered (webhooks part)")
    parser.add_argument("--failure-rate", type=float, default=0.01, help="share of receiver answers that fail")
    parser.add_argument("--small", type=int, default=5_000, help="events in the small month (latency part)")
    parser.add_argument("--large", type=int, default=5_000_000, help="events in the large month (latency part)")
    parser.add_argument("--requests", type=int, default=40, help="timed requests per month (latency part)")
    parser.add_argument("--only", default=",".join(PARTS), help="comma-separated parts to run")
    parser.add_argument("--no-schema-cache", action="store_true")
    args = parser.parse_args()
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")

    table: list[str] = []
    ok = True
    runners = {"export": export_part, "webhooks": webhooks_part, "latency": latency_part}
    for part in parts:
        rows, passed = runners[part](args)
        table.extend(rows)
        ok = ok and passed
    print()
    print("| figure | value |")
    print("| --- | --- |")
    print("\n".join(table))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
