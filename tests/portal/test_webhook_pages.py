"""The portal's Webhooks pages against a real local receiver: owners and admins add an endpoint (its secret shown
once), send a test event that verifies with the Standard Webhooks library, resend a failed delivery with the same
webhook-id, rotate, disable and delete; billing and member users only look; another account's endpoint is a 404."""

import datetime as dt
import html

import pytest
import time_machine
from django.test import Client, override_settings
from standardwebhooks.webhooks import Webhook

from accounts.models import AccountUser
from tests.accounts.factories import AccountFactory, AccountUserFactory
from tests.webhooks.factories import Receiver, endpoint_for
from webhooks import transport
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.selectors import delivery_public_id
from webhooks.services.delivery import webhooks_run

pytestmark = pytest.mark.django_db
UTC = dt.UTC
NOW = dt.datetime(2026, 12, 7, 9, tzinfo=UTC)
PASSWORD = "portal-pass-123"


@pytest.fixture(autouse=True)
def _frozen_time():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def receiver(httpserver):
    transport.pools_clear()
    yield Receiver(httpserver)
    transport.pools_clear()


@pytest.fixture
def account():
    return AccountFactory(name="Northwind")


def _user(account, role, email):
    membership = AccountUserFactory(account=account, email=email, role=role)
    client = Client()
    assert client.login(username=membership.user.username, password=PASSWORD)
    return client


@pytest.fixture
def as_owner(account):
    return _user(account, AccountUser.Role.OWNER, "olivia@northwind.example")


def _secret_on_page(page: str) -> str:
    start = page.index('id="new-secret"')
    value = page[page.index('value="', start) + 7 :]
    return value[: value.index('"')]


def test_the_owner_adds_an_endpoint_and_sees_its_secret_once(as_owner, account, receiver):
    response = as_owner.post(
        "/portal/webhooks/new/",
        {"url": receiver.url, "description": "ERP bridge", "event_types": ["billing.invoice_generated"]},
        follow=True,
    )
    endpoint = WebhookEndpoint.objects.get(account=account)
    assert response.redirect_chain == [(f"/portal/webhooks/{endpoint.public_id}/", 302)]
    page = response.content.decode()
    secret = _secret_on_page(page)
    assert secret.startswith("whsec_")
    assert "shown only this once" in page
    assert response["Cache-Control"].startswith("max-age=0")
    assert (endpoint.url, endpoint.description, endpoint.event_types) == (
        receiver.url,
        "ERP bridge",
        ["billing.invoice_generated"],
    )
    again = as_owner.get(f"/portal/webhooks/{endpoint.public_id}/").content.decode()
    assert secret not in again
    listing = as_owner.get("/portal/webhooks/").content.decode()
    assert endpoint.public_id in listing and f"whsec_…{secret[-4:]}" in listing and secret not in listing


def test_a_test_event_reaches_the_receiver_signed_and_shows_as_delivered(as_owner, account, receiver):
    endpoint, secret = endpoint_for(account, receiver.url)
    response = as_owner.post(f"/portal/webhooks/{endpoint.public_id}/test/", follow=True)
    assert "A test event is on its way" in response.content.decode()
    webhooks_run()

    assert len(receiver.received) == 1
    got = receiver.received[0]
    document = Webhook(secret).verify(got.body, got.headers)
    assert document["type"] == "webhook.test"
    assert document["data"]["endpoint_id"] == endpoint.public_id
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert delivery.status == "succeeded"
    page = as_owner.get(f"/portal/webhooks/{endpoint.public_id}/").content.decode()
    assert delivery_public_id(delivery.pk) in page and "HTTP 200" in page
    detail = as_owner.get(
        f"/portal/webhooks/{endpoint.public_id}/deliveries/{delivery_public_id(delivery.pk)}/"
    ).content.decode()
    assert got.headers["Webhook-Id"] in detail
    assert "HTTP 200" in detail and "accepted" in detail
    assert '"type": "webhook.test"' in html.unescape(detail)


def test_a_failed_delivery_is_resent_with_the_same_webhook_id(as_owner, account, receiver):
    endpoint, secret = endpoint_for(account, receiver.url)
    receiver.status = 503
    as_owner.post(f"/portal/webhooks/{endpoint.public_id}/test/")
    webhooks_run()
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert (delivery.status, delivery.last_status_code) == ("pending", 503)

    receiver.status = 200
    url = f"/portal/webhooks/{endpoint.public_id}/deliveries/{delivery_public_id(delivery.pk)}/"
    response = as_owner.post(url + "resend/", follow=True)
    assert "is being sent again with the same webhook-id" in response.content.decode()
    webhooks_run()
    assert receiver.ids() == [receiver.received[0].headers["Webhook-Id"]] * 2
    Webhook(secret).verify(receiver.received[1].body, receiver.received[1].headers)
    delivery.refresh_from_db()
    assert delivery.status == "succeeded"
    page = as_owner.get(url).content.decode()
    assert "HTTP 503" in page and "HTTP 200" in page


def test_the_owner_rotates_disables_enables_and_deletes(as_owner, account, receiver):
    endpoint, old_secret = endpoint_for(account, receiver.url)
    page = as_owner.post(f"/portal/webhooks/{endpoint.public_id}/rotate-secret/", follow=True).content.decode()
    new_secret = _secret_on_page(page)
    assert new_secret != old_secret and "keeps working for 24 hours" in page

    page = as_owner.post(f"/portal/webhooks/{endpoint.public_id}/disable/", follow=True).content.decode()
    endpoint.refresh_from_db()
    assert not endpoint.enabled and "olivia@northwind.example" in endpoint.disabled_reason
    assert "is disabled" in page
    as_owner.post(f"/portal/webhooks/{endpoint.public_id}/enable/")
    endpoint.refresh_from_db()
    assert endpoint.enabled

    assert as_owner.get(f"/portal/webhooks/{endpoint.public_id}/delete/").status_code == 200
    response = as_owner.post(f"/portal/webhooks/{endpoint.public_id}/delete/", follow=True)
    assert response.redirect_chain == [("/portal/webhooks/", 302)]
    assert not WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()


def test_the_owner_edits_the_event_types(as_owner, account, receiver):
    endpoint, _ = endpoint_for(account, receiver.url)
    response = as_owner.post(
        f"/portal/webhooks/{endpoint.public_id}/edit/",
        {"url": receiver.url, "description": "Usage feed", "event_types": ["billing.usage_reported"]},
    )
    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert (endpoint.description, endpoint.event_types) == ("Usage feed", ["billing.usage_reported"])


def test_a_bad_url_is_refused_on_its_field(as_owner, account):
    response = as_owner.post("/portal/webhooks/new/", {"url": "not a url", "event_types": []})
    assert response.status_code == 400
    assert response.context["form"].errors["url"] == ["Enter a valid URL."]
    assert not WebhookEndpoint.objects.exists()


@override_settings(WEBHOOKS_REQUIRE_HTTPS=True, WEBHOOKS_ALLOW_PRIVATE_ADDRESSES=False)
def test_a_private_address_is_refused_under_production_rules(as_owner, account):
    response = as_owner.post("/portal/webhooks/new/", {"url": "https://127.0.0.1/hooks", "event_types": []})
    assert response.status_code == 400
    errors = response.context["form"].errors["url"]
    assert len(errors) == 1 and "127.0.0.1" in errors[0]
    response = as_owner.post("/portal/webhooks/new/", {"url": "http://hooks.example.com/in", "event_types": []})
    assert response.status_code == 400 and "https" in response.context["form"].errors["url"][0]
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize("role", [AccountUser.Role.BILLING, AccountUser.Role.MEMBER])
def test_billing_and_member_users_look_but_do_not_touch(account, receiver, role):
    endpoint, _ = endpoint_for(account, receiver.url)
    client = _user(account, role, f"{role}@northwind.example")
    listing = client.get("/portal/webhooks/")
    assert listing.status_code == 200
    assert endpoint.public_id in listing.content.decode()
    assert "Add endpoint" not in listing.content.decode()
    detail = client.get(f"/portal/webhooks/{endpoint.public_id}/")
    assert detail.status_code == 200 and "Send test event" not in detail.content.decode()
    base = f"/portal/webhooks/{endpoint.public_id}/"
    for url in ("/portal/webhooks/new/", base + "test/", base + "rotate-secret/", base + "disable/", base + "delete/"):
        assert client.post(url, {"url": receiver.url}).status_code == 403, url
    assert client.post(base + "edit/", {"url": "https://evil.example/"}).status_code == 403
    endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.url == receiver.url
    assert not WebhookDelivery.objects.exists()


def test_another_accounts_endpoint_is_not_found(as_owner, receiver):
    other = AccountFactory(name="Initech")
    endpoint, _ = endpoint_for(other, receiver.url)
    as_other_owner = _user(other, AccountUser.Role.OWNER, "owner@initech.example")
    as_other_owner.post(f"/portal/webhooks/{endpoint.public_id}/test/")
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    base = f"/portal/webhooks/{endpoint.public_id}/"
    assert as_owner.get(base).status_code == 404
    assert as_owner.get(base + f"deliveries/{delivery_public_id(delivery.pk)}/").status_code == 404
    for url in (base + "test/", base + "disable/", base + "delete/", base + "rotate-secret/"):
        assert as_owner.post(url).status_code == 404, url
    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 1
    endpoint.refresh_from_db()
    assert endpoint.enabled
