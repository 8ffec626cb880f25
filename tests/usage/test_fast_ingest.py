"""The lean handler of single events (``usage.fast_ingest``), over real HTTP: it answers exactly what the
full REST view answers — status, headers and body byte for byte — for every outcome it handles, hands
everything else to Django, and stores each acknowledged event once, even from many concurrent requests.

Two servers run in this process on the test database: ``fast`` serves the production WSGI stack
(``config.wsgi``: the lean handler in front of Django), ``plain`` serves Django alone. The Django
application behind the lean handler counts the requests it receives, so each test knows which handler
answered.
"""

from __future__ import annotations

import datetime as dt
import http.client
import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
import time_machine
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.db.models import Sum

from accounts.models import ApiKey
from accounts.services import api_key_create, api_key_revoke
from billing.services.subscriptions import subscription_create
from common.clock import clock_set
from common.models import OutboxEvent
from tests.accounts.factories import AccountFactory
from tests.tenants.factories import MasterPartnerFactory, TenantFactory
from tests.usage.http import request
from usage.models import EventKey, UsageEvent, UsageRollup

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
UTC = dt.UTC
NOW = dt.datetime(2026, 11, 26, 10, 30, tzinfo=UTC)
HOST = "127.0.0.1"


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


@dataclass
class Servers:
    fast: int
    plain: int
    reached_django: list[str] = field(default_factory=list)  # bodies the lean handler passed on

    def post(self, which: str, body: bytes | dict, key: str | None = None, **headers: str):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {"Content-Type": "application/json", **{k.replace("_", "-"): v for k, v in headers.items()}}
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        return request(HOST, getattr(self, which), raw, sent)


def _serve(app) -> tuple[ThreadedWSGIServer, threading.Thread]:
    server = ThreadedWSGIServer((HOST, 0), QuietHandler, allow_reuse_address=False)
    server.set_app(app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def servers() -> Iterator[Servers]:
    from config import wsgi
    from usage.fast_ingest import EventsFastPath

    assert isinstance(wsgi.application, EventsFastPath), "production serves the lean handler first"
    reached: list[str] = []

    def django_app(environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        reached.append(body.decode())
        environ["wsgi.input"] = io.BytesIO(body)
        return wsgi.django_application(environ, start_response)

    fast, fast_thread = _serve(EventsFastPath(django_app))
    plain, plain_thread = _serve(wsgi.django_application)
    try:
        yield Servers(fast=fast.server_address[1], plain=plain.server_address[1], reached_django=reached)
    finally:
        for server, thread in ((fast, fast_thread), (plain, plain_thread)):
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)


@pytest.fixture(autouse=True)
def clock():
    """Time runs, from a fixed moment well inside a rate-limit minute."""
    with time_machine.travel(NOW, tick=True):
        yield


@pytest.fixture
def northwind(plan):
    account = AccountFactory(name="Northwind")
    subscription_create(
        account=account, plan_version=plan("messaging-business"), started_at=dt.datetime(2026, 1, 1, tzinfo=UTC)
    )
    tenant = TenantFactory(
        account=account, public_id="ten_northwind_eu", activated_at=dt.datetime(2026, 1, 1, tzinfo=UTC)
    )
    other = TenantFactory(
        account=account, public_id="ten_northwind_us", activated_at=dt.datetime(2026, 1, 1, tzinfo=UTC)
    )
    MasterPartnerFactory(
        account=account, public_id="prt_supplier_001", activated_at=dt.datetime(2026, 1, 1, tzinfo=UTC)
    )
    api_key, secret = api_key_create(name="ingest", scopes=["ingest"], account=account)
    return {"account": account, "tenant": tenant, "other": other, "api_key": api_key, "key": secret}


def event(txn: str = "txn-1", **overrides) -> dict:
    return {
        "transaction_id": txn,
        "tenant": "ten_northwind_eu",
        "metric": "messages",
        "quantity": 1,
        "timestamp": "2026-11-26T10:00:00Z",
        **overrides,
    }


def test_a_single_event_is_stored_by_the_lean_handler(servers, northwind):
    status, _, body = servers.post(
        "fast", event(quantity="2.5", properties={"partner_id": "prt_supplier_001"}), northwind["key"]
    )
    assert (status, body) == (202, b'{"accepted":1,"duplicates":0}')
    assert servers.reached_django == []
    stored = UsageEvent.objects.get()
    assert (stored.transaction_id, stored.quantity, stored.partner.public_id, stored.is_late) == (
        "txn-1",
        Decimal("2.5"),
        "prt_supplier_001",
        False,
    )
    rollup = UsageRollup.objects.get()
    assert (rollup.hour, rollup.quantity_sum, rollup.event_count) == (
        dt.datetime(2026, 11, 26, 10, tzinfo=UTC),
        Decimal("2.5"),
        1,
    )
    assert ApiKey.objects.get(pk=northwind["api_key"].pk).last_used_at is not None


def test_a_repeated_transaction_id_is_a_duplicate(servers, northwind):
    assert servers.post("fast", event(), northwind["key"])[2] == b'{"accepted":1,"duplicates":0}'
    assert servers.post("fast", event(quantity=5), northwind["key"])[2] == b'{"accepted":0,"duplicates":1}'
    assert servers.reached_django == []
    assert UsageEvent.objects.get().quantity == 1
    assert UsageRollup.objects.get().event_count == 1


def _same_answer(servers: Servers, body: bytes | dict, key: str | None, **headers: str):
    """The lean handler and the full view answer alike; returns the status and body."""
    fast = servers.post("fast", body, key, **headers)
    assert servers.reached_django == [], "the full view answered instead of the lean handler"
    plain = servers.post("plain", body, key, **headers)
    assert fast == plain
    return fast[0], json.loads(fast[2])


INVALID = [
    ({"tenant": "ten_nobody"}, "tenant", "unknown_tenant"),
    ({"metric": "sms"}, "metric", "unknown_metric"),
    ({"quantity": -1}, "quantity", "negative_quantity"),
    ({"timestamp": "yesterday"}, "timestamp", "invalid_timestamp"),
    ({"timestamp": "2026-11-26T10:45:00Z"}, "timestamp", "timestamp_in_future"),
    ({"properties": {"partner_id": "prt_unknown"}}, "properties.partner_id", "unknown_partner"),
    ({"colour": "blue"}, "colour", "unknown_field"),
    ({"tenant": "ten_\u2028"}, "tenant", "unknown_tenant"),  # rendered escaped, as the REST framework does
    ({"timestamp": "9999-12-31T23:59:59Z"}, "timestamp", "timestamp_in_future"),
    ({"metric": "messages\x00"}, "metric", "unknown_metric"),
    ({"x\x00": 1}, "x\\x00", "unknown_field"),
    ({"properties": {"k" * 65: 1}}, "properties", "property_key_too_long"),
    ({"properties": {f"k{i}": i for i in range(51)}}, "properties", "too_many_properties"),
]


def test_an_invalid_event_is_400_alike(servers, northwind):
    for bad, where, code in INVALID:
        status, body = _same_answer(servers, event(**bad), northwind["key"])
        assert status == 400, bad
        assert body["error"] == {
            "code": "invalid_events",
            "field": "events",
            "message": "1 invalid event(s); nothing was stored.",
        }
        assert [(e["index"], e["field"], e["code"]) for e in body["errors"]] == [(0, where, code)]
    assert UsageEvent.objects.count() == EventKey.objects.count() == 0


def test_a_missing_transaction_id_is_400_alike(servers, northwind):
    status, body = _same_answer(servers, {"tenant": "ten_northwind_eu", "metric": "messages"}, northwind["key"])
    assert (status, body["errors"]) == (
        400,
        [{"index": 0, "field": "transaction_id", "code": "required", "message": "This field is required."}],
    )


BAD_KEYS = [
    (None, "not_authenticated", "Send an API key as 'Authorization: Bearer <key>'."),
    ("", "not_authenticated", "Send an API key as 'Authorization: Bearer <key>'."),
    (
        "Bearer ll_000000000000_" + "0" * 48,
        "authentication_failed",
        "The API key is not valid: unknown, revoked or expired.",
    ),
    ("Bearer not-a-key", "authentication_failed", "The API key is not valid: unknown, revoked or expired."),
    ("Bearer ", "authentication_failed", "Send an API key as 'Authorization: Bearer <key>'."),
    ("Basic abc", "authentication_failed", "Send an API key as 'Authorization: Bearer <key>'."),
]


def test_no_or_a_bad_key_is_401_alike(servers, northwind):
    for header, code, message in BAD_KEYS:
        headers = {} if header is None else {"Authorization": header}
        fast = servers.post("fast", event(), None, **headers)
        plain = servers.post("plain", event(), None, **headers)
        assert servers.reached_django == []
        assert fast == plain, header
        status, sent, body = fast
        assert status == 401
        assert sent["WWW-Authenticate"] == 'Bearer realm="ledgerline"'
        assert json.loads(body) == {"error": {"code": code, "field": None, "message": message}}, header
    assert UsageEvent.objects.count() == 0


def test_a_revoked_key_is_401_alike(servers, northwind):
    api_key, secret = api_key_create(name="old", scopes=["ingest"], account=northwind["account"])
    api_key_revoke(api_key=api_key)
    assert _same_answer(servers, event(), secret)[0] == 401


def _get(port: int, path: str, secret: str) -> int:
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {secret}"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_the_lean_handler_and_the_full_views_expire_a_key_by_the_same_test_clock(servers, northwind):
    """Both authentication paths read the billing clock, not the wall clock: a key expiring between
    two settings of the test clock works before and is refused after, by the lean handler of
    ``POST /v1/events`` and by a REST framework view alike."""
    _, secret = api_key_create(
        name="expiring",
        scopes=["ingest", "read"],
        account=northwind["account"],
        expires_at=NOW + dt.timedelta(days=1),
    )
    clock_set(at=NOW + dt.timedelta(hours=1))
    assert servers.post("fast", event("before"), secret)[0] == 202
    assert _get(servers.plain, "/v1/billing/usage/current", secret) == 200

    clock_set(at=NOW + dt.timedelta(days=2))  # past the expiry on the test clock; the wall clock is not
    status, sent, body = servers.post("fast", event("after"), secret)
    assert (status, sent["WWW-Authenticate"], json.loads(body)["error"]["code"]) == (
        401,
        'Bearer realm="ledgerline"',
        "authentication_failed",
    )
    assert _get(servers.plain, "/v1/billing/usage/current", secret) == 401
    assert servers.reached_django == []  # the lean handler answered both events
    assert list(UsageEvent.objects.values_list("transaction_id", flat=True)) == ["before"]


def test_a_key_without_ingest_scope_is_403_alike(servers, northwind):
    _, secret = api_key_create(name="reader", scopes=["read"], account=northwind["account"])
    status, body = _same_answer(servers, event(), secret)
    assert (status, body) == (
        403,
        {"error": {"code": "permission_denied", "field": None, "message": "This API key lacks the 'ingest' scope."}},
    )
    assert UsageEvent.objects.count() == 0


def test_a_tenant_of_another_account_is_403_alike(servers, northwind):
    TenantFactory(
        account=AccountFactory(), public_id="ten_someone_else", activated_at=dt.datetime(2026, 1, 1, tzinfo=UTC)
    )
    status, body = _same_answer(servers, event(tenant="ten_someone_else"), northwind["key"])
    assert (status, body) == (
        403,
        {
            "error": {
                "code": "tenant_not_allowed",
                "field": "events",
                "message": "This API key may not report usage for the tenant(s) named; nothing was stored.",
            },
            "errors": [
                {
                    "index": 0,
                    "field": "tenant",
                    "code": "tenant_not_allowed",
                    "message": "Tenant 'ten_someone_else' is not one this API key may report for.",
                }
            ],
        },
    )
    assert UsageEvent.objects.count() == 0


def test_a_tenant_pinned_key_reports_only_for_its_tenant(servers, northwind):
    _, secret = api_key_create(
        name="pinned", scopes=["ingest"], account=northwind["account"], tenant=northwind["tenant"]
    )
    status, body = _same_answer(servers, event(tenant="ten_northwind_us"), secret)
    assert (status, body["errors"][0]["code"]) == (403, "tenant_not_allowed")
    assert servers.post("fast", event("pinned-ok"), secret)[0] == 202
    assert list(UsageEvent.objects.values_list("transaction_id", flat=True)) == ["pinned-ok"]


def test_the_accepted_answer_is_the_same(servers, northwind):
    fast = servers.post("fast", event("a"), northwind["key"])
    plain = servers.post("plain", event("b"), northwind["key"])
    assert fast == plain
    assert fast[0] == 202
    assert fast[1]["Content-Type"] == "application/json"
    assert servers.reached_django == []


def test_the_rate_limit_is_429_with_retry_after(servers, northwind):
    _, secret = api_key_create(name="slow", scopes=["ingest"], account=northwind["account"], rate_limit_per_minute=2)
    assert [servers.post("fast", event(f"r{i}"), secret)[0] for i in range(2)] == [202, 202]
    # Over the limit, an invalid event is refused for the limit too: the count comes before the body.
    answers = [
        servers.post(which, body, secret) for which in ("fast", "plain") for body in (event("r3"), event(metric="x"))
    ]
    assert servers.reached_django == []
    for status, headers, body in answers:
        wait = int(headers["Retry-After"])
        assert (status, 1 <= wait <= 60) == (429, True)
        assert json.loads(body) == {
            "error": {
                "code": "rate_limited",
                "field": None,
                "message": f"Request was throttled. Expected available in {wait} second{'s' if wait != 1 else ''}.",
            }
        }
    assert answers[0][1].keys() == answers[2][1].keys()
    assert UsageEvent.objects.count() == 2


def test_an_idempotency_key_request_goes_to_the_full_view_and_replays(servers, northwind):
    first = servers.post("fast", event("idem"), northwind["key"], Idempotency_Key="k-1")
    again = servers.post("fast", event("idem"), northwind["key"], Idempotency_Key="k-1")
    other = servers.post("fast", event("idem-2"), northwind["key"], Idempotency_Key="k-1")
    assert len(servers.reached_django) == 3
    assert (first[0], first[2]) == (again[0], again[2]) == (202, b'{"accepted":1,"duplicates":0}')
    assert again[1]["Idempotent-Replayed"] == "true"
    assert other[0] == 409
    assert UsageEvent.objects.count() == 1


def test_batches_and_other_months_go_to_the_full_view(servers, northwind):
    from usage.services import period_close

    assert servers.post("fast", {"events": [event("batch-1"), event("batch-2")]}, northwind["key"])[0] == 202
    period_close(
        account=northwind["account"], month=dt.date(2026, 10, 1), closed_at=dt.datetime(2026, 11, 22, tzinfo=UTC)
    )
    status, _, body = servers.post("fast", event("late", timestamp="2026-10-31T23:00:00Z"), northwind["key"])
    assert (status, body) == (202, b'{"accepted":1,"duplicates":0}')
    assert len(servers.reached_django) == 2
    late = UsageEvent.objects.get(transaction_id="late")
    assert (late.is_late, late.billing_month) == (True, dt.date(2026, 11, 1))
    assert servers.post("fast", b"{not json", northwind["key"])[0] == 400
    assert len(servers.reached_django) == 3


def test_concurrent_single_events_land_exactly_once(servers, northwind):
    """Many requests at once, each event sent twice: every one answered after its commit, one copy of
    each stored, and the answers add up."""
    n_events, senders = 60, 8
    answers: list[tuple[int, bytes]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(senders)

    def send(offset: int) -> None:
        barrier.wait(timeout=30)
        for i in range(offset, n_events * 2, senders):
            status, _, body = servers.post("fast", event(f"c-{i % n_events}", quantity=i % n_events), northwind["key"])
            with lock:
                answers.append((status, body))

    threads = [threading.Thread(target=send, args=(k,)) for k in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert servers.reached_django == []
    assert {status for status, _ in answers} == {202}
    bodies = [json.loads(body) for _, body in answers]
    assert sum(b["accepted"] for b in bodies) == n_events
    assert sum(b["duplicates"] for b in bodies) == n_events
    assert UsageEvent.objects.count() == EventKey.objects.count() == n_events
    expected = sum(range(n_events))
    assert UsageRollup.objects.aggregate(total=Sum("quantity_sum"))["total"] == expected
    assert UsageRollup.objects.aggregate(count=Sum("event_count"))["count"] == n_events


def test_limits_are_checked_after_events_from_the_lean_handler(servers, plan):
    account = AccountFactory()
    subscription_create(
        account=account, plan_version=plan("messaging-startup"), started_at=dt.datetime(2026, 1, 1, tzinfo=UTC)
    )
    TenantFactory(account=account, public_id="ten_startup", activated_at=dt.datetime(2026, 1, 1, tzinfo=UTC))
    _, secret = api_key_create(name="k", scopes=["ingest"], account=account)
    assert servers.post("fast", event("q1", tenant="ten_startup", quantity=3700), secret)[0] == 202
    alerts = OutboxEvent.objects.filter(account=account).exclude(type="billing.subscription_updated")
    assert not alerts.exists()
    assert servers.post("fast", event("q2", tenant="ten_startup", quantity=100), secret)[0] == 202
    assert servers.reached_django == []
    assert list(alerts.values_list("type", flat=True)) == ["billing.usage_threshold"]


def test_a_database_connection_dropped_between_requests_is_replaced_and_the_event_stored(servers, northwind, settings):
    from django.db import connection

    # As in production: no test clock, so the write is the request's first use of the database.
    settings.LEDGERLINE_TEST_CLOCK = False

    # One keep-alive HTTP connection: both requests are served by the same server thread and its
    # (persistent) database connection.
    client = http.client.HTTPConnection(HOST, servers.fast, timeout=30)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {northwind['key']}"}
    client.request("POST", "/v1/events", json.dumps(event("before")), headers)
    first = client.getresponse()
    assert (first.status, first.read()) == (202, b'{"accepted":1,"duplicates":0}')
    # The database drops every other session (a restart, a failover, an idle timeout of a proxy).
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        assert cursor.fetchone()[0] >= 1
    client.request("POST", "/v1/events", json.dumps(event("after")), headers)
    second = client.getresponse()
    assert (second.status, second.read()) == (202, b'{"accepted":1,"duplicates":0}')
    client.close()
    assert sorted(UsageEvent.objects.values_list("transaction_id", flat=True)) == ["after", "before"]
    assert servers.reached_django == []
