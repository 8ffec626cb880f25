"""Webhook endpoints in the admin: billing staff add one for a customer (the secret is shown once, in a message),
edit it, send a test event, disable and enable it, rotate its secret and resend deliveries; only a Finance admin
deletes one; a portal user reaches none of it."""

import re

import pytest
from django.apps import apps
from django.contrib.auth.models import Group
from django.test import Client

from accounts.models import AccountUser
from accounts.permissions import BILLING_STAFF, FINANCE_ADMIN, staff_groups_sync
from common.outbox import outbox_emit
from tests.accounts.factories import AccountUserFactory, StaffUserFactory
from tests.webhooks.conftest import NOW
from tests.webhooks.factories import endpoint_for
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services.delivery import webhooks_deliver_due, webhooks_run

pytestmark = pytest.mark.django_db
ENDPOINTS = "/admin/webhooks/webhookendpoint/"
DELIVERIES = "/admin/webhooks/webhookdelivery/"


def staff(name, group):
    if not Group.objects.filter(name=group).exists():
        staff_groups_sync(apps)
    return StaffUserFactory(username=name, groups=[Group.objects.get(name=group)])


def logged_in(user):
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def bianca(db):
    return logged_in(staff("bianca", BILLING_STAFF))


@pytest.fixture
def fiona(db):
    return logged_in(staff("fiona", FINANCE_ADMIN))


def messages_of(response):
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_billing_staff_add_an_endpoint_and_see_its_secret_once(bianca, account):
    response = bianca.post(
        f"{ENDPOINTS}add/",
        {
            "account": account.pk,
            "url": "https://hooks.example.com/ledgerline",
            "description": "ERP",
            "event_types": ["billing.invoice_generated", "billing.payment_failed"],
        },
        follow=True,
    )

    endpoint = WebhookEndpoint.objects.get()
    secret = endpoint.secrets.get().secret
    assert messages_of(response)[0] == (
        f"The signing secret of {endpoint.public_id} is {secret} — copy it now: it is not shown again."
    )
    assert endpoint.event_types == ["billing.invoice_generated", "billing.payment_failed"]
    assert endpoint.created_by.username == "bianca"
    assert endpoint.history.get().history_user.username == "bianca"
    listing = bianca.get(ENDPOINTS).content.decode()
    assert f"whsec_…{secret[-4:]}" in listing and secret not in listing
    assert secret not in bianca.get(f"{ENDPOINTS}{endpoint.pk}/change/").content.decode()


def test_a_private_url_is_refused_by_the_admin_under_production_rules(bianca, account, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = False
    response = bianca.post(f"{ENDPOINTS}add/", {"account": account.pk, "url": "https://10.0.0.8/hooks"}, follow=True)
    assert not WebhookEndpoint.objects.exists()
    assert any("private, loopback, link-local or reserved" in m for m in messages_of(response))


def test_billing_staff_run_the_actions(bianca, account, receiver):
    endpoint, _ = endpoint_for(account, receiver.url)

    def act(action):
        return bianca.post(ENDPOINTS, {"action": action, "_selected_action": [endpoint.pk]}, follow=True)

    assert "Test event queued for 1 endpoint(s)." in messages_of(act("send_test"))
    webhooks_deliver_due()
    assert [r.document["type"] for r in receiver.received] == ["webhook.test"]

    assert "1 endpoint(s) disabled." in messages_of(act("disable"))
    endpoint.refresh_from_db()
    assert (endpoint.enabled, endpoint.disabled_reason) == (False, "Disabled by bianca (staff).")
    assert "1 endpoint(s) enabled." in messages_of(act("enable"))

    rotated = messages_of(act("rotate_secret"))[0]
    new = re.search(r"is (whsec_\S+)", rotated).group(1)
    assert endpoint.secrets.get(expires_at__isnull=True).secret == new

    WebhookDelivery.objects.update(status="failed", next_attempt_at=None)
    assert "1 failed or cancelled deliveries queued again." in messages_of(act("resend_failed"))


def test_the_list_shows_failing_since_and_the_success_rate(bianca, account, receiver):
    endpoint_for(account, receiver.url)
    for n in range(4):
        outbox_emit(type="billing.payment_failed", account_id=account.pk, data={}, now=NOW, dedup_key=f"f:{n}")
    webhooks_run()
    receiver.status = 503
    outbox_emit(type="billing.payment_failed", account_id=account.pk, data={}, now=NOW, dedup_key="f:5")
    webhooks_run()

    page = bianca.get(ENDPOINTS).content.decode()
    assert "80.0% of 5" in page
    assert "2026-12-07 09:00 UTC" in page  # failing since


def test_deliveries_show_their_attempts_and_can_be_resent(bianca, account, receiver):
    endpoint_for(account, receiver.url)
    outbox_emit(type="billing.payment_failed", account_id=account.pk, data={}, now=NOW, dedup_key="f:1")
    webhooks_run()
    delivery = WebhookDelivery.objects.get()

    page = bianca.get(f"{DELIVERIES}{delivery.pk}/change/").content.decode()
    assert delivery.webhook_id in page and "accepted" in page

    response = bianca.post(DELIVERIES, {"action": "resend", "_selected_action": [delivery.pk]}, follow=True)
    assert "1 deliveries queued to be sent again." in messages_of(response)
    webhooks_deliver_due()
    assert receiver.ids() == [delivery.webhook_id] * 2


def test_only_a_finance_admin_deletes_an_endpoint(bianca, fiona, account):
    endpoint, _ = endpoint_for(account, "https://hooks.example.com/a")
    assert bianca.get(f"{ENDPOINTS}{endpoint.pk}/delete/").status_code == 403
    assert bianca.post(f"{ENDPOINTS}{endpoint.pk}/delete/", {"post": "yes"}).status_code == 403
    assert WebhookEndpoint.objects.exists()

    fiona.post(f"{ENDPOINTS}{endpoint.pk}/delete/", {"post": "yes"})
    assert not WebhookEndpoint.objects.exists()


def test_a_portal_user_reaches_none_of_it(account):
    user = AccountUserFactory(account=account, role=AccountUser.Role.OWNER).user
    client = logged_in(user)
    assert client.get(ENDPOINTS).status_code == 302  # to the admin's sign-in
    assert client.get(DELIVERIES).status_code == 302
