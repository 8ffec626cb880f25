"""``GET /v1/billing/usage/current`` latency with a small and a very large running month (part of
``bench/data_out.py``).

Two accounts on ``messaging-enterprise`` (3 tenants, 3 master partners) in the running month: one with
``--small`` events (5,000), one with ``--large`` (5,000,000). Their events are written in SQL as the ingest path
stores them (``usage_usageevent``, its keys in ``usage_eventkey``, and the hourly ``usage_usagerollup`` buckets
computed from those rows by ``GROUP BY``), spread evenly from the month's first second to now, 3 in 4 with a
partner. The app is served by gunicorn (1 worker, production settings); each account's read key asks for its
usage ``--requests`` times after 5 warm-up requests, one at a time, alternating between the two.
Reported: p50 and p95 of each, and the large
month's p50 as a multiple of the small one's. **Target: within 1.5×** (the estimate reads the hourly rollups, so
its cost follows hours × tenants × partners, not the number of events).
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import statistics
import time
from pathlib import Path

import ingest

SETUP_CODE = """
import datetime as dt, json
from accounts.services import account_create, api_key_create
from billing.models import PlanVersion
from billing.services.subscriptions import subscription_create
from tenants.services import partner_create, tenant_create
from usage.models import Metric
since = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
out = {{"metric_id": Metric.objects.get(code="messages").pk, "accounts": {{}}}}
for name in {names!r}:
    account = account_create(name=name, currency="USD", billing_emails=["bench@example.com"])
    tenants = [tenant_create(account=account, name=f"{{name}} tenant {{i}}", public_id=f"ten_{{name.lower()}}_{{i}}",
                             activated_at=since) for i in range(1, 4)]
    partners = [partner_create(account=account, public_id=f"prt_{{name.lower()}}_{{i}}", name=f"{{name}} partner {{i}}",
                               activated_at=since) for i in range(1, 4)]
    subscription_create(account=account, plan_version=PlanVersion.objects.get(plan__code="messaging-enterprise"),
                        started_at=since)
    _, secret = api_key_create(name="bench read", scopes=["read"], account=account, rate_limit_per_minute=100_000_000)
    out["accounts"][name] = {{"id": account.pk, "public_id": account.public_id, "secret": secret,
                             "tenants": [t.pk for t in tenants], "partners": [p.pk for p in partners],
                             "partner_ids": [p.public_id for p in partners]}}
print("BENCH_SETUP=" + json.dumps(out))
"""

EVENTS_SQL = """
INSERT INTO usage_usageevent (account_id, tenant_id, metric_id, partner_id, transaction_id, timestamp, quantity,
                              properties, received_at, billing_month, is_late)
SELECT %(account)s,
       (%(tenants)s::bigint[])[1 + i %% 3],
       %(metric)s,
       CASE WHEN i %% 4 = 0 THEN NULL ELSE (%(partners)s::bigint[])[1 + (i / 4) %% 3] END,
       'bench-' || i,
       %(start)s::timestamptz + (i::float8 / %(n)s) * %(span)s * interval '1 second',
       1,
       CASE WHEN i %% 4 = 0 THEN '{}'::jsonb
            ELSE jsonb_build_object('partner_id', (%(partner_ids)s::text[])[1 + (i / 4) %% 3]) END,
       %(start)s::timestamptz + (i::float8 / %(n)s) * %(span)s * interval '1 second',
       %(month)s::date,
       false
FROM generate_series(0, %(n)s - 1) AS i
"""
KEYS_SQL = """
INSERT INTO usage_eventkey (account_id, transaction_id)
SELECT account_id, transaction_id FROM usage_usageevent WHERE account_id = %(account)s
"""
ROLLUPS_SQL = """
INSERT INTO usage_usagerollup (account_id, tenant_id, metric_id, partner_id, hour, billing_month, quantity_sum,
                               event_count, quantity_max)
SELECT account_id, tenant_id, metric_id, partner_id, date_trunc('hour', timestamp), billing_month, sum(quantity),
       count(*), max(quantity)
FROM usage_usageevent WHERE account_id = %(account)s
GROUP BY 1, 2, 3, 4, 5, 6
"""


def load(env: dict[str, str], dsn: str, sizes: dict[str, int]) -> dict:
    """The two accounts and their events; returns the setup (ids, keys) with each account's event count."""
    import psycopg

    out = ingest.manage(env, "shell", "-c", SETUP_CODE.format(names=list(sizes)), timeout=180)
    setup = json.loads(next(line for line in out.splitlines() if line.startswith("BENCH_SETUP="))[12:])
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    span = (now - start).total_seconds()
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name, n in sizes.items():
            account = setup["accounts"][name]
            params = {
                "account": account["id"],
                "tenants": account["tenants"],
                "partners": account["partners"],
                "partner_ids": account["partner_ids"],
                "metric": setup["metric_id"],
                "start": start,
                "span": span,
                "n": n,
                "month": start.date(),
            }
            began = time.perf_counter()
            conn.execute(EVENTS_SQL, params)
            conn.execute(KEYS_SQL, params)
            conn.execute(ROLLUPS_SQL, params)
            rollups = conn.execute(
                "SELECT count(*), sum(event_count) FROM usage_usagerollup WHERE account_id = %s", (account["id"],)
            ).fetchone()
            account["events"] = n
            account["rollups"] = rollups[0]
            if rollups[1] != n:
                raise RuntimeError(f"{name}: the rollups count {rollups[1]} events, not {n}")
            ingest.log(f"  {name}: {n:,} events, {rollups[0]:,} hourly rollups in {time.perf_counter() - began:.1f} s")
        conn.execute("VACUUM ANALYZE usage_usageevent")
        conn.execute("VACUUM ANALYZE usage_usagerollup")
    return setup


def _get(conn: http.client.HTTPConnection, secret: str) -> tuple[int, float, dict]:
    began = time.perf_counter()
    conn.request("GET", "/v1/billing/usage/current", headers={"Authorization": f"Bearer {secret}"})
    response = conn.getresponse()
    body = response.read()
    took = time.perf_counter() - began
    return response.status, took, json.loads(body) if response.status == 200 else {}


def measure(port: int, secrets: dict[str, str], requests: int) -> dict[str, dict]:
    """Requests alternate between the accounts, so a busy moment of the machine costs both alike."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    documents: dict[str, dict] = {}
    for name, secret in secrets.items():
        for _ in range(5):
            status, _, documents[name] = _get(conn, secret)
            if status != 200:
                raise RuntimeError(f"GET /v1/billing/usage/current answered {status}")
    times: dict[str, list[float]] = {name: [] for name in secrets}
    for _ in range(requests):
        for name, secret in secrets.items():
            _, took, _ = _get(conn, secret)
            times[name].append(took * 1000)
    conn.close()
    out = {}
    for name, values in times.items():
        values.sort()
        metrics = documents[name].get("metrics") or []
        out[name] = {
            "p50": statistics.median(values),
            "p95": values[min(len(values) - 1, int(len(values) * 0.95))],
            "messages": next((m["quantity"] for m in metrics if m["metric"] == "messages"), None),
        }
    return out


def run(env_for_port, dsn: str, *, small: int, large: int, requests: int, log_dir: Path) -> dict:
    """Load both months, serve, measure; ``env_for_port(port)`` is the app's environment for gunicorn."""
    setup = load(env_for_port(None), dsn, {"Small": small, "Large": large})
    port = ingest.free_port()
    proc = ingest.start_gunicorn(env_for_port(port), port, log_dir / "data-out-latency-gunicorn.log")
    try:
        secrets = {name: setup["accounts"][name]["secret"] for name in ("Small", "Large")}
        results: dict = measure(port, secrets, requests)
    finally:
        ingest.stop_gunicorn(proc)
    for name, n in (("Small", small), ("Large", large)):
        results[name]["events"] = n
        results[name]["rollups"] = setup["accounts"][name]["rollups"]
        if results[name]["messages"] != str(n):
            raise RuntimeError(f"{name}: usage/current reports {results[name]['messages']} messages, not {n}")
    results["ratio"] = results["Large"]["p50"] / results["Small"]["p50"]
    return results
