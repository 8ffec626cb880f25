"""The webhooks API: a key with the webhooks scope manages its account's endpoints (the secret is shown once),
sends test events, reads deliveries page by page and resends them; without a key 401, without the scope 403,
another account's endpoint or delivery 404."""

import pytest
from standardwebhooks import Webhook

from accounts.services import api_key_create
from common.outbox import outbox_emit
from tests.accounts.factories import AccountFactory
from tests.webhooks.conftest import NOW
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services.delivery import webhooks_deliver_due, webhooks_run
from webhooks.ssrf import ERR_ADDRESS

pytestmark = pytest.mark.django_db
ENDPOINTS = "/v1/webhooks/endpoints"


@pytest.fixture
def key(account):
    return api_key_create(name="webhooks", scopes=["webhooks"], account=account)[1]


@pytest.fixture
def client(api, key):
    return api(key)


def create(client, url, **extra):
    return client.post(ENDPOINTS, {"url": url, **extra}, format="json")


def test_creating_an_endpoint_shows_its_secret_once(client, account):
    response = create(client, "https://hooks.example.com/ledgerline", event_types=["billing.invoice_generated"])

    assert response.status_code == 201
    body = response.json()
    endpoint = WebhookEndpoint.objects.get()
    secret = endpoint.secrets.get().secret
    assert body == {
        "id": endpoint.public_id,
        "url": "https://hooks.example.com/ledgerline",
        "description": "",
        "event_types": ["billing.invoice_generated"],
        "enabled": True,
        "disabled_at": None,
        "disabled_reason": None,
        "failing_since": None,
        "secret_hint": f"whsec_…{secret[-4:]}",
        "created_at": "2026-12-07T09:00:00Z",
        "updated_at": "2026-12-07T09:00:00Z",
        "secret": secret,
    }
    listed = client.get(ENDPOINTS).json()["results"]
    assert [e["id"] for e in listed] == [endpoint.public_id]
    assert "secret" not in listed[0] and secret not in str(client.get(f"{ENDPOINTS}/{endpoint.public_id}").json())
    assert endpoint.history.get().history_change_reason.startswith("created by API key")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://hooks.example.com"}, "url"),
        ({"url": "https://hooks.example.com", "event_types": ["billing.nothing"]}, "event_types.0"),
        ({"url": "https://hooks.example.com", "event_types": ["webhook.test"]}, "event_types.0"),
        ({"url": "https://hooks.example.com", "colour": "blue"}, "colour"),
        ({}, "url"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(client, body, field):
    response = client.post(ENDPOINTS, body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field


def test_a_private_address_is_refused_in_production(client, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = False
    response = create(client, "https://169.254.169.254/latest/meta-data")
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "invalid_url",
        "field": "url",
        "message": ERR_ADDRESS.format(host="169.254.169.254"),
    }


def test_patch_disables_and_enables_and_delete_removes(client):
    endpoint_id = create(client, "https://hooks.example.com/a").json()["id"]
    url = f"{ENDPOINTS}/{endpoint_id}"

    disabled = client.patch(url, {"enabled": False, "description": "paused"}, format="json").json()
    assert (disabled["enabled"], disabled["description"], disabled["disabled_at"]) == (
        False,
        "paused",
        "2026-12-07T09:00:00Z",
    )
    assert disabled["disabled_reason"].startswith("Disabled by API key")
    enabled = client.patch(url, {"enabled": True}, format="json").json()
    assert (enabled["enabled"], enabled["disabled_reason"], enabled["failing_since"]) == (True, None, None)

    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 404
    assert not WebhookEndpoint.objects.exists()


def test_rotating_returns_the_new_secret_once(client):
    created = create(client, "https://hooks.example.com/a").json()
    rotated = client.post(f"{ENDPOINTS}/{created['id']}/rotate-secret").json()
    assert rotated["secret"] != created["secret"]
    assert rotated["secret_hint"] == f"whsec_…{rotated['secret'][-4:]}"
    assert client.get(f"{ENDPOINTS}/{created['id']}").json()["secret_hint"] == rotated["secret_hint"]


def test_test_event_deliveries_and_resend(client, account, receiver):
    created = create(client, receiver.url).json()
    endpoint_id = created["id"]

    queued = client.post(f"{ENDPOINTS}/{endpoint_id}/test")
    assert queued.status_code == 202
    assert (queued.json()["event_type"], queued.json()["status"], queued.json()["attempt_log"]) == (
        "webhook.test",
        "pending",
        [],
    )
    webhooks_deliver_due()
    assert Webhook(created["secret"]).verify(receiver.received[0].body, receiver.received[0].headers)["type"] == (
        "webhook.test"
    )

    page = client.get(f"{ENDPOINTS}/{endpoint_id}/deliveries", {"status": "succeeded"}).json()
    (delivery,) = page["results"]
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == ("succeeded", 1, 200)
    assert delivery["attempt_log"] == [
        {
            "at": "2026-12-07T09:00:00Z",
            "trigger": "test",
            "status_code": 200,
            "latency_ms": delivery["attempt_log"][0]["latency_ms"],
            "response_excerpt": "accepted",
            "error": None,
        }
    ]
    assert client.get(f"{ENDPOINTS}/{endpoint_id}/deliveries", {"status": "failed"}).json()["results"] == []
    assert client.get(f"{ENDPOINTS}/{endpoint_id}/deliveries", {"status": "lost"}).json()["error"]["field"] == (
        "status"
    )

    resent = client.post(f"/v1/webhooks/deliveries/{delivery['id']}/resend")
    assert (resent.status_code, resent.json()["status"], resent.json()["event_id"]) == (
        202,
        "pending",
        delivery["event_id"],
    )
    webhooks_deliver_due()
    assert receiver.ids() == [delivery["event_id"]] * 2


def test_resend_failed_queues_every_failed_delivery(client, account, receiver):
    endpoint_id = create(client, receiver.url).json()["id"]
    for n in range(3):
        outbox_emit(type="billing.payment_failed", account_id=account.pk, data={}, now=NOW, dedup_key=f"f:{n}")
    webhooks_run()
    WebhookDelivery.objects.update(status="failed", next_attempt_at=None)  # as after three days of retries

    response = client.post(f"{ENDPOINTS}/{endpoint_id}/resend-failed", {}, format="json")

    assert (response.status_code, response.json()) == (202, {"queued": 3})
    webhooks_deliver_due()
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"succeeded"}
    assert len(receiver.received) == 6


def test_deliveries_come_in_cursor_pages(client, account, receiver):
    endpoint_id = create(client, receiver.url).json()["id"]
    for n in range(5):
        outbox_emit(type="billing.payment_failed", account_id=account.pk, data={}, now=NOW, dedup_key=f"f:{n}")
    webhooks_run()
    first = client.get(f"{ENDPOINTS}/{endpoint_id}/deliveries", {"page_size": 2}).json()
    second = client.get(first["next"]).json()
    third = client.get(second["next"]).json()
    ids = [d["id"] for page in (first, second, third) for d in page["results"]]
    assert len(ids) == len(set(ids)) == 5 and third["next"] is None


def test_no_key_is_401_and_a_key_without_the_scope_is_403(api, account):
    assert api(None).get(ENDPOINTS).status_code == 401
    read_key = api_key_create(name="read", scopes=["read"], account=account)[1]
    response = api(read_key).post(ENDPOINTS, {"url": "https://hooks.example.com"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "This API key lacks the webhooks scope."
    assert not WebhookEndpoint.objects.exists()


def test_another_accounts_endpoint_and_delivery_are_404(client, api, account, receiver):
    other = AccountFactory(name="Globex")
    other_client = api(api_key_create(name="w", scopes=["webhooks"], account=other)[1])
    theirs = create(other_client, receiver.url).json()["id"]
    other_client.post(f"{ENDPOINTS}/{theirs}/test")
    delivery = WebhookDelivery.objects.get()

    for method, path in [
        ("get", f"{ENDPOINTS}/{theirs}"),
        ("patch", f"{ENDPOINTS}/{theirs}"),
        ("delete", f"{ENDPOINTS}/{theirs}"),
        ("post", f"{ENDPOINTS}/{theirs}/rotate-secret"),
        ("post", f"{ENDPOINTS}/{theirs}/test"),
        ("get", f"{ENDPOINTS}/{theirs}/deliveries"),
        ("post", f"{ENDPOINTS}/{theirs}/resend-failed"),
        ("post", f"/v1/webhooks/deliveries/whd_{delivery.pk:06d}/resend"),
    ]:
        response = getattr(client, method)(path, {}, format="json")
        assert response.status_code == 404, path
    assert client.get(ENDPOINTS).json() == {"results": []}
    assert WebhookEndpoint.objects.get().enabled is True
