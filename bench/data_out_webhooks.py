#!/usr/bin/env python
"""Webhook delivery benchmark: n outbox events to one endpoint whose receiver fails some requests at random.

    .venv/bin/python bench/data_out_webhooks.py [--events 20000] [--failure-rate 0.01] [--no-schema-cache]

``run(n_events, failure_rate)`` (what ``bench/data_out.py`` calls) runs this file in a process of its own, so its
Django set-up (``config.settings.production``, its own database ``ledgerline_webhookbench``, dropped and recreated,
migrated with the schema cache of ``bench/ingest.py``) touches no other part, and returns the figures.

1. Receiver (another process, so that it has a core of its own): ``http.server.ThreadingHTTPServer`` speaking
   HTTP/1.1 with keep-alive on a free 127.0.0.1 port. It answers 503 to ``failure_rate`` of the requests at random
   and 200 to the others, and counts requests, distinct ``webhook-id`` values acknowledged, and duplicates (a
   request for an id it had already acknowledged with a 200).
2. Data (not timed): one account with one endpoint pointing at the receiver (private addresses allowed for the
   run: the receiver is local), and ``n_events`` ``billing.invoice_generated`` outbox events, written in bulk.
3. Timed: ``webhooks_dispatch`` and ``webhooks_deliver_due`` (the services the periodic task runs: fan-out in
   batches, ``FOR UPDATE SKIP LOCKED`` claims, a thread pool of ``WEBHOOKS_DELIVERY_CONCURRENCY`` over kept-alive
   connections, bulk writes) in a loop until every delivery has succeeded. Retries are not waited for: after each
   pass the next attempt of the deliveries still pending is moved to now, as if the clock had been advanced.

Figures: deliveries/s (events delivered over the timed loop's wall time), attempts, duplicates seen by the
receiver, events missing at the receiver (target: 0), failures answered. **Target: ≥ 500 deliveries/s on 2 cores.**
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import random
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import ingest  # noqa: E402  (the benchmarks' database, migration and schema-cache helpers)

DB_NAME = "ledgerline_webhookbench"
NOW = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)
RESULT_PREFIX = "RESULT "
TARGET_PER_SECOND = 500


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- The receiver -----------------------------------------------------------------------------------------


def _serve(port_out, failure_rate: float, seed: int) -> None:
    """The receiver process: serves until killed; ``GET /stats`` answers its counts as JSON."""
    rng = random.Random(seed)
    lock = threading.Lock()
    acknowledged: set[str] = set()
    counts = {"requests": 0, "failed": 0, "duplicates": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive
        # Headers and body are written apart: without TCP_NODELAY each answer would wait for the client's delayed
        # ACK (about 40 ms), and the receiver, not the sender, would set the pace.
        disable_nagle_algorithm = True

        def log_message(self, *args):
            pass

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if self.path == "/stats" else "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            with lock:
                stats = {**counts, "distinct": len(acknowledged)}
            self._answer(200, json.dumps(stats).encode())

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            webhook_id = self.headers.get("webhook-id", "")
            with lock:
                counts["requests"] += 1
                if rng.random() < failure_rate:
                    counts["failed"] += 1
                    fail = True
                else:
                    fail = False
                    if webhook_id in acknowledged:
                        counts["duplicates"] += 1
                    acknowledged.add(webhook_id)
            self._answer(503 if fail else 200, b"unavailable" if fail else b"ok")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port_out.put(server.server_address[1])
    server.serve_forever()


def receiver_start(failure_rate: float) -> tuple[multiprocessing.Process, int]:
    queue: multiprocessing.Queue = multiprocessing.Queue()
    process = multiprocessing.Process(target=_serve, args=(queue, failure_rate, 20261207), daemon=True)
    process.start()
    return process, queue.get(timeout=10)


def receiver_stats(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as answer:
        return json.loads(answer.read())


# --- The run (in its own process) ---------------------------------------------------------------------------


def _django_setup(env: dict[str, str]) -> None:
    for key in [k for k in os.environ if k.startswith(("DJANGO_", "DATABASE_", "REDIS_", "WEBHOOKS_"))]:
        del os.environ[key]
    os.environ.update(env)
    import django

    django.setup()


def _emit(account, n_events: int) -> None:
    from common.outbox import OutboxMessage, outbox_emit_many

    for start in range(0, n_events, 5000):
        outbox_emit_many(
            (
                OutboxMessage(
                    type="billing.invoice_generated",
                    account_id=account.pk,
                    dedup_key=f"bench:{i}",
                    data={
                        "invoice_id": f"INV-2026-{i + 1:06d}",
                        "invoice_number": f"INV-2026-{i + 1:06d}",
                        "account_id": account.public_id,
                        "status": "finalized",
                        "currency": "USD",
                        "subtotal": "1240.00",
                        "tax": "248.00",
                        "total": "1488.00",
                        "amount_due": "1488.00",
                        "due_at": "2026-12-31T00:05:00Z",
                        "period": {"start": "2026-11-01T00:00:00Z", "end": "2026-12-01T00:00:00Z"},
                    },
                )
                for i in range(start, min(start + 5000, n_events))
            ),
            now=NOW,
        )


def measure(n_events: int, failure_rate: float, use_cache: bool = True) -> dict:
    env = ingest.app_env(db_name=DB_NAME)
    log(f"Database {DB_NAME}: recreating and migrating")
    ingest.recreate_database(DB_NAME)
    log(f"  {ingest.migrate(env, use_cache=use_cache, db_name=DB_NAME)}")
    receiver, port = receiver_start(failure_rate)  # forked before Django opens anything
    _django_setup(env)

    from django.conf import settings

    from accounts.services import account_create
    from webhooks.models import WebhookAttempt, WebhookDelivery
    from webhooks.services.delivery import webhooks_deliver_due, webhooks_dispatch
    from webhooks.services.endpoints import endpoint_create

    # The receiver is on this machine: production's address rules would refuse it.
    settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = True
    settings.WEBHOOKS_REQUIRE_HTTPS = False

    try:
        account = account_create(name="Bench receiver", currency="USD", billing_emails=["ap@bench.example"])
        endpoint, _ = endpoint_create(account=account, url=f"http://127.0.0.1:{port}/hooks", now=NOW)
        _emit(account, n_events)
        log(f"Data: 1 endpoint, {n_events:,} outbox events; receiver fails {failure_rate:.1%} of requests")

        passes = 0
        start = time.perf_counter()
        while True:
            passes += 1
            now = dt.datetime.now(dt.UTC)
            webhooks_dispatch(now=now)
            webhooks_deliver_due(now=now, max_batches=1000)
            pending = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING)
            # Retries: as if the clock had moved on to each one's next attempt.
            if not pending.update(next_attempt_at=now) and not WebhookDelivery.objects.count() < n_events:
                break
        took = time.perf_counter() - start

        stats = receiver_stats(port)
        delivered = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.SUCCEEDED).count()
        figures = {
            "events": n_events,
            "seconds": round(took, 3),
            "deliveries_per_second": round(n_events / took, 1),
            "passes": passes,
            "attempts": WebhookAttempt.objects.count(),
            "succeeded": delivered,
            "receiver_requests": stats["requests"],
            "receiver_failed": stats["failed"],
            "duplicates": stats["duplicates"],
            "missing": n_events - stats["distinct"],
            "concurrency": settings.WEBHOOKS_DELIVERY_CONCURRENCY,
            "batch": settings.WEBHOOKS_DELIVERY_BATCH,
            "target_per_second": TARGET_PER_SECOND,
        }
        figures["ok"] = bool(
            figures["missing"] == 0 and delivered == n_events and figures["deliveries_per_second"] >= TARGET_PER_SECOND
        )
        return figures
    finally:
        receiver.terminate()
        receiver.join(timeout=5)


def run(n_events: int = 20000, failure_rate: float = 0.01, use_cache: bool = True) -> dict:
    """The benchmark in a process of its own; returns its figures (see the module's doc)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--events", str(n_events)]
    command += ["--failure-rate", str(failure_rate), "--result-line"]
    if not use_cache:
        command.append("--no-schema-cache")
    done = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, timeout=3600, check=True)
    line = next(line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX))
    return json.loads(line.removeprefix(RESULT_PREFIX))


def report(figures: dict) -> str:
    return "\n".join(
        [
            "| figure | value |",
            "| --- | --- |",
            f"| webhook deliveries/s ({figures['events']:,} events, {figures['concurrency']} threads) | "
            f"{figures['deliveries_per_second']:,.0f} (target ≥ {figures['target_per_second']}) |",
            f"| attempts (receiver answered 503 to {figures['receiver_failed']:,}) | {figures['attempts']:,} |",
            f"| duplicates seen by the receiver | {figures['duplicates']:,} |",
            f"| events missing at the receiver | {figures['missing']:,} |",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--failure-rate", type=float, default=0.01)
    parser.add_argument("--no-schema-cache", action="store_true")
    parser.add_argument("--result-line", action="store_true", help="print the figures as one JSON line (run())")
    args = parser.parse_args()
    figures = measure(args.events, args.failure_rate, use_cache=not args.no_schema_cache)
    if args.result_line:
        print(RESULT_PREFIX + json.dumps(figures), flush=True)
    else:
        print(report(figures))
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
