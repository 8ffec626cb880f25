"""Events reach a real local receiver signed per Standard Webhooks; a receiver that is down gets every event once
it is back; retries follow the schedule; a resend carries the same webhook-id; a rotated secret overlaps."""

import datetime as dt
import http.server
import socket
import threading

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from common.models import OutboxEvent
from common.outbox import outbox_emit
from tests.accounts.factories import AccountFactory
from tests.webhooks.conftest import NOW
from tests.webhooks.factories import endpoint_for
from webhooks.event_types import EVENT_TYPES, TEST_EVENT, event_type
from webhooks.models import WebhookAttempt, WebhookDelivery
from webhooks.services.delivery import (
    RETRY_SCHEDULE,
    webhooks_deliver_batch,
    webhooks_deliver_due,
    webhooks_dispatch,
    webhooks_run,
)
from webhooks.services.endpoints import delivery_resend, endpoint_rotate_secret, endpoint_send_test
from webhooks.signing import secret_generate

pytestmark = pytest.mark.django_db
Status = WebhookDelivery.Status
INVOICE = event_type("billing.invoice_generated")


def emit(account, type_="billing.invoice_generated", key="1", data=None, now=None):
    return outbox_emit(
        type=type_,
        account_id=account.pk,
        data=data if data is not None else {**event_type(type_).example, "account_id": account.public_id},
        now=now or NOW,
        dedup_key=f"{type_}:{key}",
    )


def test_an_event_arrives_signed_with_its_stable_id_and_the_outbox_payload(account, receiver):
    endpoint, secret = endpoint_for(account, receiver.url)
    event = emit(account)

    webhooks_run()

    assert len(receiver.received) == 1
    request = receiver.received[0]
    # The body verifies with the receiver's copy of the secret, as a customer's code would check it.
    document = Webhook(secret).verify(request.body, request.headers)
    assert document == {
        "id": f"evt_{event.pk:06d}",
        "type": "billing.invoice_generated",
        "created_at": "2026-12-07T09:00:00Z",
        "data": {**INVOICE.example, "account_id": account.public_id},
    }
    assert request.headers["Webhook-Id"] == f"evt_{event.pk:06d}"
    # Sent to the address resolved and vetted for "localhost", naming the host as the URL does.
    assert request.headers["Host"] == receiver.url.split("/")[2]
    assert request.headers["Webhook-Timestamp"] == str(int(NOW.timestamp()))
    assert request.headers["User-Agent"] == "Ledgerline-Webhooks/1"
    assert request.headers["Content-Type"] == "application/json"
    # Deterministic: sorted keys, no spaces.
    assert request.body.startswith(b'{"created_at":"2026-12-07T09:00:00Z","data":{')
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (Status.SUCCEEDED, 1, 200)
    assert delivery.delivered_at == NOW and delivery.next_attempt_at is None
    attempt = WebhookAttempt.objects.get()
    assert (attempt.status_code, attempt.response_excerpt, attempt.trigger) == (200, "accepted", "scheduled")
    assert OutboxEvent.objects.get(pk=event.pk).delivered_at == NOW
    assert endpoint.secrets.count() == 1


def test_a_wrong_secret_does_not_verify(account, receiver):
    endpoint_for(account, receiver.url)
    emit(account)
    webhooks_run()
    other = secret_generate()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(receiver.received[0].body, receiver.received[0].headers)


def test_fan_out_is_idempotent_and_follows_subscriptions(account, receiver):
    everything, _ = endpoint_for(account, receiver.url)
    invoices_only, _ = endpoint_for(account, receiver.url, ["billing.invoice_generated"])
    emit(account, "billing.invoice_generated")
    emit(account, "billing.payment_failed")
    emit(account, "billing.usage_reported")  # opt-in: only to endpoints that name it

    assert webhooks_dispatch().deliveries == 3
    OutboxEvent.objects.update(delivered_at=None)  # handed over again (a crash after the commit, say)
    assert webhooks_dispatch().events == 3

    assert WebhookDelivery.objects.filter(endpoint=everything).count() == 2
    assert list(WebhookDelivery.objects.filter(endpoint=invoices_only).values_list("event_type", flat=True)) == [
        "billing.invoice_generated"
    ]


def test_every_event_type_of_the_catalogue_is_delivered(account, receiver):
    _, secret = endpoint_for(account, receiver.url, [e.name for e in EVENT_TYPES if e.name != TEST_EVENT])
    for n, event in enumerate(EVENT_TYPES):
        if event.name != TEST_EVENT:
            emit(account, event.name, key=str(n))
    endpoint = account.webhook_endpoints.get()
    endpoint_send_test(endpoint=endpoint)

    webhooks_run()

    received = {Webhook(secret).verify(r.body, r.headers)["type"] for r in receiver.received}
    assert received == {event.name for event in EVENT_TYPES}
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {Status.SUCCEEDED}


def test_other_accounts_and_endpoints_added_later_get_nothing(account, receiver, clock):
    other = AccountFactory(name="Globex")
    emit(account, key="before")
    clock.shift(dt.timedelta(minutes=1))
    endpoint_for(other, receiver.url)
    endpoint, _ = endpoint_for(account, receiver.url)
    webhooks_run()
    assert receiver.received == []  # the event happened before the endpoint existed; Globex has no events
    emit(account, key="after", now=NOW + dt.timedelta(minutes=1))
    webhooks_run()
    assert len(receiver.received) == 1
    assert WebhookDelivery.objects.get().endpoint == endpoint


def test_a_receiver_down_for_an_hour_gets_every_event_afterwards(account, receiver, clock):
    _, secret = endpoint_for(account, receiver.url)
    receiver.status = 503
    for n in range(5):
        emit(account, key=str(n))

    # Down for an hour while the run every 10 seconds sends what is due: the first attempt, then the retries
    # after 5 s, 5 min and 30 min (± 10 %); the next one waits 2 h.
    for _ in range(360):
        clock.shift(dt.timedelta(seconds=10))
        webhooks_run()
    assert len(receiver.received) == 20  # 5 events x 4 attempts
    assert set(WebhookDelivery.objects.values_list("status", "attempts")) == {(Status.PENDING, 4)}

    receiver.status = 200
    received_before = len(receiver.received)
    clock.shift(dt.timedelta(hours=2))  # past the fourth retry (at most 36 min + 2 h 12 min after the first try)
    webhooks_run()

    assert set(WebhookDelivery.objects.values_list("status", "attempts")) == {(Status.SUCCEEDED, 5)}
    late = receiver.received[received_before:]
    assert sorted(Webhook(secret).verify(r.body, r.headers)["id"] for r in late) == sorted(
        f"evt_{pk:06d}" for pk in OutboxEvent.objects.values_list("pk", flat=True)
    )
    # Every attempt of an event carried the same webhook-id.
    assert len(set(receiver.ids())) == 5


def test_a_receiver_not_listening_for_an_hour_gets_every_event_once_it_listens(account, clock):
    with socket.socket() as probe:  # a port nobody listens on, for now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _, secret = endpoint_for(account, f"http://127.0.0.1:{port}/hooks")
    for n in range(3):
        emit(account, key=str(n))
    for _ in range(360):
        clock.shift(dt.timedelta(seconds=10))
        webhooks_run()
    delivery = WebhookDelivery.objects.first()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (Status.PENDING, 4, None)
    assert "Connection refused" in delivery.last_error
    assert delivery.endpoint.failing_since == NOW + dt.timedelta(seconds=10)

    received = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            received.append((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        clock.shift(dt.timedelta(hours=2))
        webhooks_run()
    finally:
        server.shutdown()
        server.server_close()

    assert set(WebhookDelivery.objects.values_list("status", "attempts")) == {(Status.SUCCEEDED, 5)}
    assert sorted(Webhook(secret).verify(body, headers)["id"] for headers, body in received) == sorted(
        f"evt_{pk:06d}" for pk in OutboxEvent.objects.values_list("pk", flat=True)
    )
    assert WebhookDelivery.objects.first().endpoint.failing_since is None


def test_retries_follow_the_schedule_within_its_jitter_then_give_up(account, receiver, clock):
    receiver.status = 500
    endpoint_for(account, receiver.url)
    emit(account)
    webhooks_dispatch()
    elapsed = dt.timedelta(0)
    for wait in RETRY_SCHEDULE:
        webhooks_deliver_due()
        delivery = WebhookDelivery.objects.get()
        now = NOW + elapsed
        assert delivery.status == Status.PENDING
        assert now + wait * 0.9 <= delivery.next_attempt_at <= now + wait * 1.1
        elapsed = delivery.next_attempt_at - NOW
        clock.move_to(delivery.next_attempt_at)
    webhooks_deliver_due()  # the tenth attempt, about three days after the first

    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == (Status.FAILED, 10, None)
    assert dt.timedelta(hours=64) < elapsed < dt.timedelta(hours=79)  # 71 h 35 min ± 10 %
    assert len(receiver.received) == 10
    assert set(WebhookAttempt.objects.values_list("status_code", flat=True)) == {500}


def test_a_resend_delivers_the_same_webhook_id(account, receiver, clock):
    _, secret = endpoint_for(account, receiver.url)
    event = emit(account)
    webhooks_run()
    first = Webhook(secret).verify(receiver.received[0].body, receiver.received[0].headers)
    clock.shift(dt.timedelta(hours=2))

    delivery_resend(delivery=WebhookDelivery.objects.get())
    webhooks_deliver_due()

    assert [r.headers["Webhook-Id"] for r in receiver.received] == [f"evt_{event.pk:06d}"] * 2
    assert Webhook(secret).verify(receiver.received[1].body, receiver.received[1].headers) == first
    assert list(WebhookAttempt.objects.order_by("at").values_list("trigger", flat=True)) == ["scheduled", "resend"]


def test_a_failed_resend_is_not_retried(account, receiver, clock):
    endpoint_for(account, receiver.url)
    emit(account)
    webhooks_run()
    receiver.status = 502
    delivery_resend(delivery=WebhookDelivery.objects.get())
    webhooks_deliver_due()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (Status.FAILED, 2, 502)


def test_during_a_rotation_both_secrets_verify_then_only_the_new_one(account, receiver, clock):
    endpoint, old = endpoint_for(account, receiver.url)
    clock.shift(dt.timedelta(minutes=1))
    endpoint, new = endpoint_rotate_secret(endpoint=endpoint)
    assert new != old and new.startswith("whsec_") and len(new) == len("whsec_") + 32  # 24 bytes, base64

    emit(account, key="during", now=NOW + dt.timedelta(minutes=1))
    webhooks_run()
    during = receiver.received[-1]
    assert len(during.headers["Webhook-Signature"].split(" ")) == 2
    assert Webhook(old).verify(during.body, during.headers)
    assert Webhook(new).verify(during.body, during.headers)

    clock.shift(dt.timedelta(hours=24))  # the overlap (WEBHOOKS_SECRET_OVERLAP_HOURS) is over
    emit(account, key="after", now=NOW + dt.timedelta(hours=24, minutes=1))
    webhooks_run()
    after = receiver.received[-1]
    assert len(after.headers["Webhook-Signature"].split(" ")) == 1
    assert Webhook(new).verify(after.body, after.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(after.body, after.headers)


def test_a_test_event_goes_to_that_endpoint_only(account, receiver):
    endpoint, secret = endpoint_for(account, receiver.url)
    endpoint_for(account, receiver.url.replace("/hooks", "/other"))
    endpoint_send_test(endpoint=endpoint)
    webhooks_run()
    assert len(receiver.received) == 1
    document = Webhook(secret).verify(receiver.received[0].body, receiver.received[0].headers)
    assert document["type"] == "webhook.test"
    assert document["data"] == {
        "account_id": account.public_id,
        "endpoint_id": endpoint.public_id,
        "message": "This is a test event from Ledgerline.",
    }
    assert WebhookAttempt.objects.get().trigger == "test"


def test_a_failing_endpoint_gets_one_round_of_the_thread_pool_per_batch(account, receiver, settings):
    settings.WEBHOOKS_DELIVERY_CONCURRENCY = 4
    failing, _ = endpoint_for(account, receiver.url)
    healthy, _ = endpoint_for(account, receiver.url)
    for n in range(10):
        emit(account, key=str(n))
    webhooks_dispatch()
    type(failing).objects.filter(pk=failing.pk).update(failing_since=NOW)  # it failed before this batch

    summary = webhooks_deliver_batch()

    assert summary.attempts == 14  # 4 of the failing endpoint's 10, all 10 of the healthy one's
    assert WebhookDelivery.objects.filter(endpoint=healthy, status=Status.SUCCEEDED).count() == 10
    assert WebhookDelivery.objects.filter(endpoint=failing, status=Status.SUCCEEDED).count() == 4
    failing.refresh_from_db()
    assert failing.failing_since is None  # its successes lift the cap for the next batch
    assert webhooks_deliver_batch().attempts == 6


def test_a_failing_endpoints_backlog_does_not_starve_the_others(account, receiver, settings):
    settings.WEBHOOKS_DELIVERY_CONCURRENCY = 4
    failing, _ = endpoint_for(account, receiver.url, ["billing.invoice_generated"])
    healthy, _ = endpoint_for(account, receiver.url, ["billing.payment_failed"])
    for n in range(30):  # its backlog is older than anything of the healthy endpoint's
        emit(account, "billing.invoice_generated", key=str(n))
    for n in range(5):
        emit(account, "billing.payment_failed", key=str(n))
    webhooks_dispatch()
    type(failing).objects.filter(pk=failing.pk).update(failing_since=NOW)

    assert webhooks_deliver_batch(limit=10).attempts == 9  # 4 of the failing endpoint's, the healthy one's 5

    assert WebhookDelivery.objects.filter(endpoint=healthy, status=Status.SUCCEEDED).count() == 5
