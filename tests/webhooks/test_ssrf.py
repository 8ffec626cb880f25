"""Webhooks go only to public https addresses in production: refused when the endpoint is saved and again when
it is sent to, after the name is resolved; no redirect is followed; the answer is read only so far."""

import ipaddress

import pytest

from common.errors import BillingError
from common.outbox import outbox_emit
from tests.webhooks.conftest import NOW
from tests.webhooks.factories import endpoint_for
from webhooks.models import WebhookAttempt, WebhookDelivery
from webhooks.services.delivery import webhooks_run
from webhooks.services.endpoints import endpoint_create, endpoint_update
from webhooks.ssrf import ERR_ADDRESS, ERR_CREDENTIALS, ERR_RESOLVES_PRIVATE, ERR_SCHEME, address_is_public

pytestmark = pytest.mark.django_db


@pytest.fixture
def production_like(settings):
    settings.WEBHOOKS_REQUIRE_HTTPS = True
    settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = False


def emit(account, key="1"):
    outbox_emit(type="billing.invoice_generated", account_id=account.pk, data={}, now=NOW, dedup_key=f"k:{key}")


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3", "172.16.0.1", "192.168.1.10", "127.0.0.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
        "224.0.0.1", "240.0.0.1", "255.255.255.255", "192.0.2.1", "::1", "::", "fe80::1", "fc00::1", "ff02::1",
        "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "2001:db8::1",
    ],
)  # fmt: skip
def test_private_and_special_addresses_are_refused(address):
    assert address_is_public(ipaddress.ip_address(address)) is False


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address):
    assert address_is_public(ipaddress.ip_address(address)) is True


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://10.0.0.5/hooks", ERR_ADDRESS.format(host="10.0.0.5")),
        ("https://[::1]:8443/hooks", ERR_ADDRESS.format(host="::1")),
        ("https://[::ffff:192.168.0.1]/hooks", ERR_ADDRESS.format(host="::ffff:192.168.0.1")),
        ("https://localhost:8443/hooks", ERR_RESOLVES_PRIVATE.format(host="localhost", address="127.0.0.1")),
        ("https://2130706433/hooks", ERR_RESOLVES_PRIVATE.format(host="2130706433", address="127.0.0.1")),
        ("http://8.8.8.8/hooks", ERR_SCHEME),
        ("https://me:secret@8.8.8.8/hooks", ERR_CREDENTIALS),
    ],
)
def test_a_private_or_plain_http_url_is_refused_when_saved(account, production_like, url, message):
    with pytest.raises(BillingError) as refused:
        endpoint_create(account=account, url=url)
    assert (refused.value.field, refused.value.status, refused.value.message) == ("url", 400, message)
    assert not account.webhook_endpoints.exists()


def test_editing_an_endpoint_to_a_private_url_is_refused(account, production_like):
    endpoint, _ = endpoint_create(account=account, url="https://8.8.8.8/hooks")
    with pytest.raises(BillingError) as refused:
        endpoint_update(endpoint=endpoint, data={"url": "https://192.168.0.1/hooks"})
    assert refused.value.field == "url"
    endpoint.refresh_from_db()
    assert endpoint.url == "https://8.8.8.8/hooks"


def test_a_name_that_resolves_to_a_private_address_at_send_time_is_not_sent_to(account, receiver, settings):
    endpoint_for(account, receiver.url)  # saved where private addresses are allowed (local, tests)
    emit(account)
    settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = False  # production rules at send time

    webhooks_run()

    assert receiver.received == []
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, None)
    assert delivery.last_error == ERR_RESOLVES_PRIVATE.format(host="localhost", address="127.0.0.1")
    assert WebhookAttempt.objects.get().error == delivery.last_error


def test_redirects_are_not_followed(account, httpserver):
    httpserver.expect_request("/hooks", method="POST").respond_with_data(
        "moved", status=302, headers={"Location": httpserver.url_for("/elsewhere")}
    )
    endpoint_for(account, httpserver.url_for("/hooks"))
    emit(account)

    webhooks_run()

    assert [request.path for request, _ in httpserver.log] == ["/hooks"]
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.last_status_code, delivery.last_error) == ("pending", 302, "HTTP 302")


def test_only_the_first_500_characters_of_an_answer_are_kept(account, httpserver):
    httpserver.expect_request("/hooks", method="POST").respond_with_data("x" * 200_000, status=200)
    endpoint_for(account, httpserver.url_for("/hooks"))
    emit(account)

    webhooks_run()

    attempt = WebhookAttempt.objects.get()
    assert (attempt.status_code, attempt.response_excerpt) == (200, "x" * 500)
    assert WebhookDelivery.objects.get().status == "succeeded"
