"""Single events sent at once to the served application (``config.wsgi``, as ``make demo`` serves it): the lean
handler takes them and the group committer writes concurrent requests together, each thread of the server
on its own connection to the SQLite file."""

import datetime as dt
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
import time_machine
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

from tests.usage.http import request
from usage.models import UsageEvent, UsageRollup

# Committed for real, so the server's threads see the account; the migrations' rows are restored after.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
UTC = dt.UTC
HOST = "127.0.0.1"


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


@pytest.fixture
def served():
    """The port of a threaded server (runserver's) serving the application ``make demo`` serves."""
    from config import wsgi

    server = ThreadedWSGIServer((HOST, 0), QuietHandler, allow_reuse_address=False)
    server.set_app(wsgi.application)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_concurrent_single_events_are_each_stored_once(northwind, served):
    with time_machine.travel(dt.datetime(2026, 11, 26, 10, 30, tzinfo=UTC), tick=True):
        key = northwind()["key"]

        def send(n: int) -> tuple[int, bytes]:
            body = {
                "transaction_id": f"single-{n}",
                "tenant": "ten_nw_1",
                "metric": "messages",
                "quantity": n,
                "timestamp": "2026-11-26T10:00:00Z",
            }
            status, _, answer = request(
                HOST,
                served,
                json.dumps(body).encode(),
                {"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
            )
            return status, answer

        with ThreadPoolExecutor(max_workers=8) as pool:
            first = list(pool.map(send, range(1, 41)))
            again = list(pool.map(send, range(1, 11)))
    assert first == [(202, b'{"accepted":1,"duplicates":0}')] * 40
    assert again == [(202, b'{"accepted":0,"duplicates":1}')] * 10
    assert UsageEvent.objects.count() == 40
    rollup = UsageRollup.objects.get()
    assert (rollup.quantity_sum, rollup.event_count, rollup.quantity_max) == (Decimal(sum(range(1, 41))), 40, 40)
