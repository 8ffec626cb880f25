"""The portal's payment pages against what no link of ours produces: control characters in an invoice number or
payment id, a Stripe return URL with a session id Stripe does not know (or with Stripe not configured at
all), another account's receipt or invoice. Each is a 404 or a plain message on the Billing page, never a 500;
a POST without the CSRF token is refused and a GET of a POST-only view is a 405."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from django.test import Client

from accounts.services import account_user_create
from billing.models import Invoice, PaymentProfile
from billing.services.payments import payment_record
from portal.views.stripe_checkout import ERR_STRIPE_OFF
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import close, subscribe
from tests.billing.stripe_fake import stripe_fake_start

pytestmark = pytest.mark.django_db
PASSWORD = "portal-pass-123"


@pytest.fixture
def accounts(plan):
    """Northwind's and Umbrella's November invoices ($299.00 each) and a $10.00 transfer of each."""
    northwind, umbrella = AccountFactory(name="Northwind"), AccountFactory(name="Umbrella")
    for account in (northwind, umbrella):
        subscribe(account, plan("messaging-business"))
    close()
    return {
        name: {
            "account": account,
            "invoice": Invoice.objects.get(account=account),
            "payment": payment_record(account=account, amount=D("10.00"), provider="bank_transfer", reference="TRF"),
        }
        for name, account in (("northwind", northwind), ("umbrella", umbrella))
    }


def signed_in(account, role: str, *, csrf: bool = False) -> Client:
    email = f"{role}@{account.name.lower()}.example"
    account_user_create(account=account, email=email, role=role, password=PASSWORD)
    client = Client(enforce_csrf_checks=csrf)
    assert client.login(username=email, password=PASSWORD)
    return client


@pytest.mark.parametrize(
    "method, url",
    [
        ("get", "/portal/billing/payments/pay_%00/"),
        ("get", "/portal/billing/payments/pay%1F000001/"),
        ("post", "/portal/invoices/INV-2026-%00/pay/"),
        ("get", "/portal/invoices/%00/"),
        ("get", "/portal/invoices/%00/pdf"),
        ("get", "/portal/credit-notes/%00/pdf"),
    ],
)
def test_a_control_character_in_a_number_or_id_is_a_404(accounts, method, url):
    client = signed_in(accounts["northwind"]["account"], "owner")

    assert getattr(client, method)(url).status_code == 404


@pytest.mark.parametrize("role", ["owner", "admin", "billing", "member"])
def test_another_accounts_receipt_is_a_404_for_every_role(accounts, role):
    client = signed_in(accounts["northwind"]["account"], role)

    own = client.get(f"/portal/billing/payments/{accounts['northwind']['payment'].public_id}/")
    other = client.get(f"/portal/billing/payments/{accounts['umbrella']['payment'].public_id}/")

    assert (own.status_code, other.status_code) == (200, 404)


@pytest.mark.parametrize("role, status", [("owner", 404), ("admin", 404), ("billing", 404), ("member", 403)])
def test_paying_another_accounts_invoice_is_a_404_and_a_member_may_pay_none(accounts, role, status):
    client = signed_in(accounts["northwind"]["account"], role)

    assert client.post(f"/portal/invoices/{accounts['umbrella']['invoice'].number}/pay/").status_code == status


@pytest.mark.parametrize("url", ["/portal/billing/card/", "/portal/invoices/INV-2026-000001/pay/"])
def test_a_post_only_view_answers_a_get_with_405(accounts, url):
    assert signed_in(accounts["northwind"]["account"], "owner").get(url).status_code == 405


@pytest.mark.parametrize(
    "url", ["/portal/billing/card/", "/portal/invoices/INV-2026-000001/pay/", "/portal/billing/auto-collection/"]
)
def test_a_post_without_the_csrf_token_is_refused(accounts, url):
    client = signed_in(accounts["northwind"]["account"], "owner", csrf=True)

    assert client.post(url, {"enabled": "on"}).status_code == 403
    assert not PaymentProfile.objects.exists()


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_coming_back_from_stripe_when_stripe_is_not_configured_says_so_plainly(accounts, settings):
    settings.STRIPE_TEST_SECRET_KEY = settings.STRIPE_LIVE_SECRET_KEY = ""
    client = signed_in(accounts["northwind"]["account"], "owner")

    response = client.get("/portal/billing/card/saved/?session_id=cs_test_a1b2c3", follow=True)

    assert response.redirect_chain == [("/portal/billing/", 302)]
    assert messages_of(response) == [ERR_STRIPE_OFF]


@pytest.fixture
def fake(httpserver, settings, monkeypatch):
    return stripe_fake_start(httpserver, settings, monkeypatch)


@pytest.mark.parametrize(
    "session_id",
    [
        "cs_test_unknown123",  # well formed, but Stripe has no such session
        "cs_%00",
        "cs_../../v1/customers",
        "cs_" + "a" * 300,
        "https://evil.example/",
        "",
    ],
)
def test_a_return_from_stripe_with_a_session_stripe_does_not_know_is_a_404(accounts, fake, session_id):
    client = signed_in(accounts["northwind"]["account"], "owner")

    assert client.get(f"/portal/billing/card/saved/?session_id={session_id}").status_code == 404
    assert not PaymentProfile.objects.filter(payment_method_id__gt="").exists()


def test_a_return_with_another_customers_completed_session_is_a_404(accounts, fake):
    from billing.services import stripe_gateway

    stripe_gateway.checkout_setup_session(
        account=accounts["umbrella"]["account"], success_url="https://x.example/", cancel_url="https://x.example/"
    )
    session_id = next(o["id"] for o in fake.objects.values() if o["object"] == "checkout.session")
    fake.complete_setup(session_id)
    client = signed_in(accounts["northwind"]["account"], "owner")

    assert client.get(f"/portal/billing/card/saved/?session_id={session_id}").status_code == 404
    assert not PaymentProfile.objects.filter(payment_method_id__gt="").exists()
