"""The production server (gunicorn) is killed with SIGKILL in the middle of a stream of batches: every event
that got a 202 is stored, nothing is half-stored, and resending everything afterwards yields exact totals.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from accounts.services import api_key_create
from billing.services.subscriptions import subscription_create
from tests.accounts.factories import AccountFactory
from tests.tenants.factories import TenantFactory
from tests.usage.http import post_events
from usage.models import EventKey, UsageEvent, UsageRollup

REPO = Path(__file__).resolve().parents[2]
GUNICORN = REPO / ".venv" / "bin" / "gunicorn"
HOST = "127.0.0.1"
N_STREAMS = 2
BATCHES_PER_STREAM = 30
BATCH = 200
KILL_AFTER_ACKS = 10
REQUEST_TIMEOUT = 30
START_TIMEOUT = 30


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    """gunicorn with the production settings on the test database, in its own process group."""

    def __init__(self, log: Path) -> None:
        self.port = _free_port()
        self.log = log
        db = connection.settings_dict
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="config.settings.production",
            DJANGO_SECRET_KEY="durability-test-secret-key-" + "x" * 50,
            DJANGO_SECURE_SSL_REDIRECT="0",
            DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
            DATABASE_URL=f"postgres://postgres:postgres@127.0.0.1:{db.get('PORT') or 5432}/{db['NAME']}",
            REDIS_URL=settings.REDIS_URL,
            GUNICORN_BIND=f"{HOST}:{self.port}",
            GUNICORN_WORKERS="2",
            # Names the server's database sessions, so the test can wait for exactly these to end.
            PGAPPNAME=SERVER_APP_NAME,
        )
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [str(GUNICORN), "-c", "config/gunicorn.py", "config.wsgi"],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"gunicorn exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
                try:
                    conn.request("GET", "/healthz")
                    if conn.getresponse().status == 200:
                        return
                finally:
                    conn.close()
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.1)
        pytest.fail(f"gunicorn not healthy within {START_TIMEOUT}s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL the master and its workers (the whole process group) and reap the master."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


class Stream(threading.Thread):
    """Posts its batches one after another until the server goes away; records what was acknowledged."""

    def __init__(self, port: int, secret: str, batches: list[list[dict]]) -> None:
        super().__init__(daemon=True)
        self.port, self.secret, self.batches = port, secret, batches
        self.acked: dict[int, dict] = {}  # batch index -> 202 body
        self.other: list[tuple[int, int, object]] = []  # non-202 answers
        self.errors: list[tuple[int, str]] = []  # no answer (connection reset, refused, ...)
        self.attempted: list[int] = []
        self.in_flight: int | None = None  # batch sent, response not read yet

    def run(self) -> None:
        for index, batch in enumerate(self.batches):
            self.attempted.append(index)
            conn = http.client.HTTPConnection(HOST, self.port, timeout=REQUEST_TIMEOUT)
            try:
                conn.request(
                    "POST",
                    "/v1/events",
                    body=json.dumps({"events": batch}).encode(),
                    headers={"Authorization": f"Bearer {self.secret}", "Content-Type": "application/json"},
                )
                self.in_flight = index
                response = conn.getresponse()
                raw = response.read().decode()
                if response.status == 202:
                    self.acked[index] = json.loads(raw)
                else:
                    self.other.append((index, response.status, raw))
            except (OSError, http.client.HTTPException) as exc:
                self.errors.append((index, repr(exc)))
                return  # the server is gone
            finally:
                self.in_flight = None
                conn.close()


def _events(tenant: str, now: dt.datetime, count: int) -> list[dict]:
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    span = max(1, min(3 * 3600, int((now - month_start).total_seconds()) - 60))
    rng = random.Random(4242)
    events = []
    for i in range(count):
        quantity = Decimal(rng.randrange(1, 10_000)) / 100 + Decimal(rng.randrange(0, 1000)) / 10**8
        moment = max(month_start, now - dt.timedelta(seconds=60 + rng.randrange(span)))
        events.append(
            {
                "transaction_id": f"dur-{i:06d}",
                "tenant": tenant,
                "metric": "messages",
                "quantity": str(quantity),
                "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "properties": {"n": i},
            }
        )
    return events


SERVER_APP_NAME = "ledgerline-durability-server"


def _server_sessions() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s",
            [SERVER_APP_NAME],
        )
        return cursor.fetchone()[0]


def _wait_for_quiet_database(timeout: float = 30) -> None:
    """Until none of the killed server's sessions is connected: their backends have ended (rolling back
    whatever they had not committed), so what we read next is final."""
    deadline = time.monotonic() + timeout
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND application_name = %s",
                [SERVER_APP_NAME],
            )
            (others,) = cursor.fetchone()
        if others == 0:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{others} database session(s) still open {timeout}s after the server was killed")
        time.sleep(0.1)


def _stored_state(account) -> dict:
    rollups = UsageRollup.objects.filter(account=account).aggregate(total=Sum("quantity_sum"), count=Sum("event_count"))
    return {
        "events": dict(UsageEvent.objects.filter(account=account).values_list("transaction_id", "quantity")),
        "keys": set(EventKey.objects.filter(account=account).values_list("transaction_id", flat=True)),
        "rollup_total": rollups["total"] or Decimal(0),
        "rollup_count": rollups["count"] or 0,
    }


def _expected_rollups() -> dict[dt.datetime, tuple[Decimal, int]]:
    by_hour: dict[dt.datetime, tuple[Decimal, int]] = {}
    for moment, quantity in UsageEvent.objects.values_list("timestamp", "quantity"):
        hour = moment.replace(minute=0, second=0, microsecond=0)
        total, count = by_hour.get(hour, (Decimal(0), 0))
        by_hour[hour] = (total + quantity, count + 1)
    return by_hour


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_sigkill_mid_stream_loses_no_acknowledged_event_and_resending_is_exact(plan, tmp_path):
    account = AccountFactory(name="Durable Co")
    subscription_create(
        account=account, plan_version=plan("messaging-enterprise"), started_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    )
    tenant = TenantFactory(
        account=account, public_id="ten_durable", activated_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    )
    _, secret = api_key_create(name="stream", scopes=["ingest"], account=account, rate_limit_per_minute=1_000_000)

    total = N_STREAMS * BATCHES_PER_STREAM * BATCH
    events = _events(tenant.public_id, timezone.now(), total)
    quantity_of = {e["transaction_id"]: Decimal(e["quantity"]) for e in events}
    batches = [events[i : i + BATCH] for i in range(0, total, BATCH)]
    per_stream = [batches[s * BATCHES_PER_STREAM : (s + 1) * BATCHES_PER_STREAM] for s in range(N_STREAMS)]
    log = tmp_path / "gunicorn.log"

    # 1. Stream, and kill the server while requests are in flight.
    server = Server(log)
    try:
        server.wait_healthy()
        streams = [Stream(server.port, secret, b) for b in per_stream]
        for stream in streams:
            stream.start()
        deadline = time.monotonic() + 60
        while True:
            acks = sum(len(s.acked) for s in streams)
            in_flight = [(n, s.in_flight) for n, s in enumerate(streams) if s.in_flight is not None]
            if acks >= KILL_AFTER_ACKS and in_flight:
                break
            if time.monotonic() > deadline or not any(s.is_alive() for s in streams):
                pytest.fail(f"only {acks} batches acknowledged before the streams stopped:\n{server.log_tail()}")
            time.sleep(0.001)
        assert _server_sessions() > 0, "the server's database sessions are not named; the wait below would be moot"
        server.kill()
        for stream in streams:
            stream.join(timeout=REQUEST_TIMEOUT + 5)
            assert not stream.is_alive(), "a client is still waiting on a killed server"
    finally:
        server.kill()

    for stream in streams:
        assert not stream.other, stream.other[:3]
        assert len(stream.acked) < BATCHES_PER_STREAM, "the stream finished before the kill"
        assert stream.errors, "the stream did not notice the server going away"
    assert in_flight, "no request was in flight at the kill"

    acked_batches = [per_stream[n][i] for n, s in enumerate(streams) for i in s.acked]
    attempted_batches = [per_stream[n][i] for n, s in enumerate(streams) for i in s.attempted]
    acked_ids = {e["transaction_id"] for b in acked_batches for e in b}
    assert len(acked_batches) >= KILL_AFTER_ACKS
    assert all(body == {"accepted": BATCH, "duplicates": 0} for s in streams for body in s.acked.values())

    _wait_for_quiet_database()
    after_crash = _stored_state(account)
    stored_ids = set(after_crash["events"])
    # Every acknowledged event survived the kill, with its quantity.
    assert acked_ids <= stored_ids, f"{len(acked_ids - stored_ids)} acknowledged events lost"
    # Nothing half-stored: each batch is there completely or not at all, and nothing unsent appears.
    for batch in attempted_batches:
        ids = {e["transaction_id"] for e in batch}
        assert ids <= stored_ids or not ids & stored_ids, "a batch was stored in part"
    assert stored_ids <= {e["transaction_id"] for b in attempted_batches for e in b}
    assert after_crash["events"] == {t: quantity_of[t] for t in stored_ids}
    # Keys and rollups moved together with the events.
    assert after_crash["keys"] == stored_ids
    assert after_crash["rollup_total"] == sum((quantity_of[t] for t in stored_ids), Decimal(0))
    assert after_crash["rollup_count"] == len(stored_ids)

    # 2. Restart and resend everything, acknowledged batches included.
    server = Server(log)
    try:
        server.wait_healthy()
        results: list[tuple[int, int, object]] = []

        def resend(stream_batches: list[list[dict]], n: int) -> None:
            for i, batch in enumerate(stream_batches):
                try:
                    status, body = post_events(HOST, server.port, secret, batch, REQUEST_TIMEOUT)
                except (OSError, http.client.HTTPException) as exc:
                    status, body = -1, repr(exc)
                results.append((n * BATCHES_PER_STREAM + i, status, body))

        senders = [threading.Thread(target=resend, args=(b, n), daemon=True) for n, b in enumerate(per_stream)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(timeout=120)
            assert not sender.is_alive(), "resending took over two minutes"
    finally:
        server.kill()

    assert len(results) == len(batches)
    failures = [r for r in results if r[1] != 202]
    assert not failures, (failures[:3], server.log_tail())
    assert sum(body["accepted"] for _, _, body in results) == total - len(stored_ids)
    assert sum(body["duplicates"] for _, _, body in results) == len(stored_ids)
    # The batches stored before the crash come back as pure duplicates, the others as wholly new.
    for index, _, body in results:
        ids = {e["transaction_id"] for e in batches[index]}
        expected = {"accepted": 0, "duplicates": BATCH} if ids <= stored_ids else {"accepted": BATCH, "duplicates": 0}
        assert body == expected, (index, body)

    _wait_for_quiet_database()
    final = _stored_state(account)
    assert final["events"] == quantity_of
    assert final["keys"] == set(quantity_of)
    assert UsageEvent.objects.count() == EventKey.objects.count() == total
    assert final["rollup_total"] == sum(quantity_of.values(), Decimal(0))
    assert final["rollup_count"] == total
    assert {r.hour: (r.quantity_sum, r.event_count) for r in UsageRollup.objects.all()} == _expected_rollups()
