"""The demo's webhooks: ``load_demo`` leaves delivered, retrying and disabled endpoints, and its inboxes answer as
a receiver that verifies signatures would."""

import datetime as dt
import json

import pytest
import time_machine
from django.core.management import call_command
from django.test import RequestFactory
from standardwebhooks.webhooks import Webhook

from common.models import OutboxEvent
from demo.views import webhook_inbox
from demo.webhook_inbox import inbox_answer
from tests.accounts.factories import AccountFactory
from webhooks.event_types import EVENT_TYPE_NAMES
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.services.endpoints import endpoint_create

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 11, 26, 12, tzinfo=dt.UTC)
BODY = b'{"id":"evt_000001","type":"webhook.test","created_at":"2026-11-26T12:00:00Z","data":{}}'


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


def _signed(secret: str, body: bytes = BODY) -> dict[str, str]:
    return {
        "webhook-id": "evt_000001",
        "webhook-timestamp": str(int(NOW.timestamp())),
        "webhook-signature": Webhook(secret).sign("evt_000001", NOW, body),
    }


def test_load_demo_delivers_to_its_inboxes_and_leaves_a_retrying_and_a_disabled_endpoint(capsys):
    call_command("load_demo")
    out = capsys.readouterr().out
    assert "Webhooks (portal: Webhooks; admin: Webhooks):" in out
    erp, feed, crm, staging = WebhookEndpoint.objects.order_by("id")
    assert erp.account.public_id == feed.account.public_id == "acc_000001"
    delivered = WebhookDelivery.objects.filter(endpoint__in=[erp, feed])
    assert delivered.exists() and not delivered.exclude(status="succeeded").exists()
    assert {"webhook.test", "billing.invoice_generated"} <= set(erp.deliveries.values_list("event_type", flat=True))
    assert "billing.usage_reported" in set(feed.deliveries.values_list("event_type", flat=True))
    assert "billing.usage_reported" not in set(erp.deliveries.values_list("event_type", flat=True))
    answers = WebhookAttempt.objects.filter(delivery__endpoint=erp).values_list("status_code", "response_excerpt")
    assert all(code == 200 and '"signature": "verified"' in excerpt for code, excerpt in answers)
    assert crm.enabled and crm.failing_since is not None
    assert set(crm.deliveries.values_list("status", flat=True)) == {"pending"}
    assert not staging.enabled and staging.disabled_reason.startswith("Disabled automatically")
    # Every event the demo's book recorded is a type endpoints can subscribe to.
    assert set(OutboxEvent.objects.values_list("type", flat=True)) <= EVENT_TYPE_NAMES


def test_an_inbox_verifies_the_signature():
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    assert inbox_answer(_signed(secret), BODY, [secret]) == (
        200,
        {"received": "evt_000001", "type": "webhook.test", "signature": "verified"},
    )
    assert inbox_answer(_signed(secret), BODY + b" ", [secret])[0] == 401
    assert inbox_answer({"webhook-id": "evt_000001"}, BODY, [secret])[0] == 400


def test_the_demo_servers_inbox_checks_against_the_endpoints_secret():
    account = AccountFactory()
    _, secret = endpoint_create(account=account, url="http://127.0.0.1:8000/demo/webhooks/erp-bridge/")
    factory = RequestFactory(HTTP_HOST="127.0.0.1:8000")
    good = factory.post("/demo/webhooks/erp-bridge/", BODY, content_type="application/json", headers=_signed(secret))
    response = webhook_inbox(good, name="erp-bridge")
    assert response.status_code == 200 and json.loads(response.content)["signature"] == "verified"
    forged = factory.post(
        "/demo/webhooks/erp-bridge/", BODY, content_type="application/json", headers=_signed("whsec_" + "A" * 32)
    )
    assert webhook_inbox(forged, name="erp-bridge").status_code == 401
    unknown = factory.post("/demo/webhooks/other/", BODY, content_type="application/json", headers=_signed(secret))
    assert webhook_inbox(unknown, name="other").status_code == 404
