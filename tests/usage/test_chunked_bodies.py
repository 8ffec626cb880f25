"""Request bodies sent with ``Transfer-Encoding: chunked`` (no Content-Length), over real HTTP.

gunicorn (the production server, ``config/gunicorn.py``) de-chunks the body and ends ``wsgi.input`` with it:
the events are read and stored as if the length had been sent. A server that hands the raw stream over
(``wsgiref``, ``runserver``) cannot give the body to the application: the request is refused with a 411
that says so, by the lean events handler and by the full view alike, instead of being read as empty.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from accounts.services import api_key_create
from billing.services.subscriptions import subscription_create
from tests.accounts.factories import AccountFactory
from tests.tenants.factories import TenantFactory
from usage.models import UsageEvent

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
START_TIMEOUT = 60
UTC = dt.UTC
LENGTH_REQUIRED = {
    "error": {
        "code": "length_required",
        "field": None,
        "message": "Send the request body with a Content-Length header; this server cannot read a chunked body.",
    }
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def post_chunked(port: int, body: bytes, secret: str, path: str = "/v1/events") -> tuple[int, dict, bytes]:
    """POST ``body`` in two chunks, without a Content-Length; return the status, headers and raw body.

    The request goes out in one write: a server that answers before reading the body (the 411) then finds it
    already received and closes cleanly, instead of resetting a connection the client is still writing to."""
    half = len(body) // 2
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:half], body[half:]) if part)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAuthorization: Bearer {secret}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((HOST, port), timeout=30) as sock:
        try:
            sock.sendall(head + chunks + b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered (and closed) before the whole body arrived: the answer is still there to read
        response = http.client.HTTPResponse(sock)
        response.begin()
        headers = {k: v for k, v in response.getheaders() if k.lower() not in ("date", "server", "connection")}
        return response.status, headers, response.read()


@pytest.fixture
def northwind(plan):
    account = AccountFactory(name="Northwind")
    subscription_create(
        account=account, plan_version=plan("messaging-business"), started_at=dt.datetime(2026, 1, 1, tzinfo=UTC)
    )
    TenantFactory(account=account, public_id="ten_northwind_eu", activated_at=dt.datetime(2026, 1, 1, tzinfo=UTC))
    _, secret = api_key_create(name="ingest", scopes=["ingest"], account=account)
    return secret


@pytest.fixture
def gunicorn() -> Iterator[int]:
    """gunicorn as deployed (``config/gunicorn.py``, ``config.wsgi``, production settings) on the test database."""
    port = _free_port()
    db = connection.settings_dict
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DJANGO_SECRET_KEY="chunked-test-secret-key-" + "x" * 50,
        DJANGO_SECURE_SSL_REDIRECT="0",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=f"postgres://postgres:postgres@127.0.0.1:{db.get('PORT') or 5432}/{db['NAME']}",
        GUNICORN_BIND=f"{HOST}:{port}",
        GUNICORN_WORKERS="1",
        GUNICORN_THREADS="2",
        GUNICORN_ACCESS_LOG="",
    )
    proc = subprocess.Popen(
        [str(REPO / ".venv" / "bin" / "gunicorn"), "-c", "config/gunicorn.py", "config.wsgi"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"gunicorn exited with {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
            try:
                probe = http.client.HTTPConnection(HOST, port, timeout=2)
                probe.request("GET", "/healthz")
                if probe.getresponse().status == 200:
                    break
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"gunicorn not healthy within {START_TIMEOUT}s")
            time.sleep(0.2)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # its database sessions end with it, before the tables are flushed
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _event(txn: str) -> dict:
    return {"transaction_id": txn, "tenant": "ten_northwind_eu", "metric": "messages", "quantity": 3}


def test_gunicorn_reads_a_chunked_event_and_a_chunked_batch(gunicorn, northwind):
    single = post_chunked(gunicorn, json.dumps(_event("chunked-1")).encode(), northwind)
    batch = post_chunked(
        gunicorn, json.dumps({"events": [_event("chunked-2"), _event("chunked-3")]}).encode(), northwind
    )
    assert (single[0], single[2]) == (202, b'{"accepted":1,"duplicates":0}')
    assert (batch[0], batch[2]) == (202, b'{"accepted":2,"duplicates":0}')
    assert sorted(UsageEvent.objects.values_list("transaction_id", "quantity")) == [
        ("chunked-1", 3),
        ("chunked-2", 3),
        ("chunked-3", 3),
    ]


def test_gunicorn_refuses_a_chunked_body_over_the_size_limit_as_too_large(gunicorn, northwind):
    status, _, raw = post_chunked(gunicorn, b" " * (16 * 1024 * 1024) + b"{}", northwind)
    assert (status, json.loads(raw)) == (
        413,
        {
            "error": {
                "code": "payload_too_large",
                "field": None,
                "message": "The request body is too large; send at most 10,000 events per request.",
            }
        },
    )


def test_a_chunked_body_the_server_cannot_read_is_411_from_both_handlers(northwind):
    from config import wsgi
    from tests.usage.test_fast_ingest import _serve

    fast, fast_thread = _serve(wsgi.application)
    plain, plain_thread = _serve(wsgi.django_application)
    try:
        body = json.dumps(_event("chunked-1")).encode()
        answers = [post_chunked(server.server_address[1], body, northwind) for server in (fast, plain)]
    finally:
        for server, thread in ((fast, fast_thread), (plain, plain_thread)):
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)
    assert answers[0] == answers[1]
    status, headers, raw = answers[0]
    assert (status, headers["Content-Type"], json.loads(raw)) == (411, "application/json", LENGTH_REQUIRED)
    assert UsageEvent.objects.count() == 0
