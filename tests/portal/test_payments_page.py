"""The portal's Billing page (payment method, automatic collection, balance, payments, collection of open
invoices), payment receipts, the account-status banner, and the balance on the invoice page and its PDF.

Northwind's October invoice INV-2026-000001 (tests/portal/billing_fixtures.py): USD 514.42, USD 200.00 paid by
bank transfer on November 5, USD 25.00 credited, USD 289.42 due on December 1; the clock at November 20."""

import datetime as dt
import io
import re
from decimal import Decimal

import pytest
from django.test import Client, override_settings
from django.urls import reverse
from pypdf import PdfReader

from accounts.models import Account
from accounts.services import account_user_create
from billing.models import Collection, Document, Invoice, Payment, PaymentProfile
from billing.presentation import collection_text
from billing.selectors import credit_balance
from billing.services.account_status import account_statuses_update
from billing.services.documents import document_pdf_bytes, document_ready
from billing.services.payment_profiles import (
    ERR_AUTO_COLLECTION_DENIED,
    ERR_NO_PAYMENT_METHOD,
    payment_profile_set_auto_collection,
)
from billing.services.payments import account_balance_refund, payment_record
from common import clock
from common.errors import BillingError
from common.periods import month_period
from tests.billing.cycle import close
from tests.portal.billing_fixtures import NOW, PASSWORD, billing_book

pytestmark = pytest.mark.django_db
UTC = dt.UTC
OCTOBER_INVOICE = "INV-2026-000001"
TOGGLE = 'action="/portal/billing/auto-collection/"'


@pytest.fixture
def book(plan):
    return billing_book(plan)


@pytest.fixture
def northwind(book):
    return book["northwind"]


def member(account, role: str) -> Client:
    """A signed-in portal user of ``account`` with ``role``."""
    email = f"{role}-user@{account.name.split()[0].lower()}.example"
    account_user_create(account=account, email=email, role=role, password=PASSWORD)
    client = Client()
    assert client.login(username=email, password=PASSWORD)
    return client


def owner(book_entry) -> Client:
    client = Client()
    assert client.login(username=book_entry["owner"].user.email, password=PASSWORD)
    return client


def text_of(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</', html, re.S)
    assert match, f"#{element_id} not on the page"
    return " ".join(re.sub(r"<[^>]+>", "", match.group(1)).split())


def row_of(html: str, attribute: str, value: str) -> str:
    match = re.search(rf'<tr {attribute}="{value}">(.*?)</tr>', html, re.S)
    assert match, f"no row {attribute}={value}"
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split())


def card_on_file(account) -> PaymentProfile:
    """The profile as Stripe's card set-up leaves it: a Visa ending 4242."""
    return PaymentProfile.objects.create(
        account=account,
        stripe_customer_id="cus_northwind",
        payment_method_id="pm_card_visa",
        payment_method_type=PaymentProfile.MethodType.CARD,
        payment_method_brand="visa",
        payment_method_last4="4242",
        payment_method_exp_month=8,
        payment_method_exp_year=2028,
    )


def pdf_lines(data: bytes) -> list[str]:
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    return [" ".join(line.split()) for line in text.splitlines()]


# The page for each role


@pytest.mark.parametrize(
    ("role", "may_switch"), [("owner", True), ("admin", True), ("billing", False), ("member", False)]
)
def test_every_role_sees_the_billing_page_and_only_owners_and_admins_get_the_switch(northwind, role, may_switch):
    client = owner(northwind) if role == "owner" else member(northwind["account"], role)
    response = client.get("/portal/billing/")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<a href="/portal/billing/" aria-current="page">Billing</a>' in html
    assert text_of(html, "payment-method") == "No payment method"
    assert text_of(html, "auto-collection") == "Off"
    # Without a payment method there is nothing to switch on yet: those who may switch are told what to do.
    assert TOGGLE not in html and "Turn on automatic collection" not in html
    assert ("Add a payment method to turn it on." in html) is may_switch
    card_on_file(northwind["account"])
    html = client.get("/portal/billing/").content.decode()
    assert (TOGGLE in html) is may_switch
    assert ("Turn on automatic collection" in html) is may_switch
    # The navigation links the page from every portal page.
    assert '<a href="/portal/billing/">Billing</a>' in client.get("/portal/invoices/").content.decode()


@pytest.mark.parametrize("role", ["member", "billing"])
def test_a_member_or_billing_user_cannot_switch_automatic_collection(northwind, role):
    account = northwind["account"]
    card_on_file(account)
    response = member(account, role).post("/portal/billing/auto-collection/", {"enabled": "on"})
    assert response.status_code == 403
    assert b"owner, admin" in response.content
    assert PaymentProfile.objects.get(account=account).auto_collection is False


def test_the_switch_is_a_post_with_its_csrf_token(northwind):
    account = northwind["account"]
    card_on_file(account)
    client = Client(enforce_csrf_checks=True)
    assert client.login(username=northwind["owner"].user.email, password=PASSWORD)
    assert client.get("/portal/billing/auto-collection/").status_code == 405
    assert client.post("/portal/billing/auto-collection/", {"enabled": "on"}).status_code == 403
    html = client.get("/portal/billing/").content.decode()
    form = re.search(rf"<form method=\"post\" {TOGGLE}>(.*?)</form>", html, re.S).group(1)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    response = client.post("/portal/billing/auto-collection/", {"enabled": "on", "csrfmiddlewaretoken": token})
    assert (response.status_code, response["Location"]) == (302, "/portal/billing/")
    assert PaymentProfile.objects.get(account=account).auto_collection is True


# Automatic collection: audited, and refused without a payment method


def test_the_owner_turns_automatic_collection_on_and_off_and_each_change_is_audited(northwind):
    account = northwind["account"]
    profile = card_on_file(account)
    client = owner(northwind)
    html = client.get("/portal/billing/").content.decode()
    assert text_of(html, "payment-method") == "Visa ending 4242, expires 08/2028"

    page = client.post("/portal/billing/auto-collection/", {"enabled": "on"}, follow=True).content.decode()
    assert "Automatic collection is on." in page
    assert text_of(page, "auto-collection") == "On"
    assert "Turn off automatic collection" in page
    profile.refresh_from_db()
    assert profile.auto_collection is True
    latest = profile.history.latest()
    assert (latest.history_user, latest.history_change_reason) == (
        northwind["owner"].user,
        "automatic collection turned on",
    )
    assert latest.history_date == NOW

    page = client.post("/portal/billing/auto-collection/", {"enabled": "off"}, follow=True).content.decode()
    assert "Automatic collection is off." in page
    assert text_of(page, "auto-collection") == "Off"
    assert [(h.auto_collection, h.history_change_reason) for h in profile.history.order_by("history_id")] == [
        (False, None),
        (True, "automatic collection turned on"),
        (False, "automatic collection turned off"),
    ]
    # Switching to what it is already leaves no history row.
    payment_profile_set_auto_collection(account=account, enabled=False, actor=northwind["owner"].user)
    assert profile.history.count() == 3


def test_turning_automatic_collection_on_without_a_payment_method_is_refused(northwind):
    account = northwind["account"]
    page = owner(northwind).post("/portal/billing/auto-collection/", {"enabled": "on"}, follow=True)
    html = page.content.decode()
    assert ERR_NO_PAYMENT_METHOD in html
    assert text_of(html, "auto-collection") == "Off"
    # Nothing was written: the refusal rolled the profile's creation back.
    assert not PaymentProfile.objects.filter(account=account).exists()

    with pytest.raises(BillingError) as refused:
        payment_profile_set_auto_collection(account=account, enabled=True, actor=None)
    assert (refused.value.message, refused.value.code, refused.value.status) == (
        ERR_NO_PAYMENT_METHOD,
        "payment_method_required",
        409,
    )


def test_a_portal_user_of_another_account_may_not_switch_it(book):
    card_on_file(book["northwind"]["account"])
    with pytest.raises(BillingError) as refused:
        payment_profile_set_auto_collection(
            account=book["northwind"]["account"], enabled=True, actor=book["globex"]["owner"].user
        )
    assert (refused.value.message, refused.value.status) == (ERR_AUTO_COLLECTION_DENIED, 403)
    assert PaymentProfile.objects.get(account=book["northwind"]["account"]).auto_collection is False


# Balance and payments


def test_balance_and_payments_to_the_cent_after_recording_payments(northwind):
    account = northwind["account"]
    client = owner(northwind)
    html = client.get("/portal/billing/").content.decode()
    assert (text_of(html, "open-balance"), text_of(html, "credit-balance")) == ("USD 289.42", "USD 0.00")

    wire = payment_record(account=account, amount=Decimal("100.00"), provider="bank_transfer", reference="WIRE-7781")
    html = client.get("/portal/billing/").content.decode()
    assert (text_of(html, "open-balance"), text_of(html, "credit-balance")) == ("USD 189.42", "USD 0.00")
    assert row_of(html, "data-invoice", OCTOBER_INVOICE).startswith(
        f"{OCTOBER_INVOICE} Partly paid 1 December 2026 USD 189.42 Awaiting your payment, due 1 Dec."
    )

    check = payment_record(account=account, amount=Decimal("239.42"), provider="check", reference="CHK 1044")
    html = client.get("/portal/billing/").content.decode()
    # USD 189.42 paid the rest of October; USD 50.00 is kept as credit balance.
    assert (text_of(html, "open-balance"), text_of(html, "credit-balance")) == ("USD 0.00", "USD 50.00")
    assert credit_balance(account) == Decimal("50.00")
    assert "Nothing is due." in html
    first = Payment.objects.get(account=account, reference="")
    assert row_of(html, "data-payment", check.public_id) == (
        f"20 November 2026 Check CHK 1044 USD 239.42 Succeeded {OCTOBER_INVOICE} (USD 189.42) Receipt for the payment "
        "of 20 November 2026"
    )
    assert row_of(html, "data-payment", wire.public_id) == (
        f"20 November 2026 Bank transfer WIRE-7781 USD 100.00 Succeeded {OCTOBER_INVOICE} (USD 100.00) Receipt for "
        "the payment of 20 November 2026"
    )
    assert row_of(html, "data-payment", first.public_id) == (
        f"5 November 2026 Bank transfer – USD 200.00 Succeeded {OCTOBER_INVOICE} (USD 200.00) Receipt for the "
        "payment of 5 November 2026"
    )
    # Newest first.
    assert html.index(check.public_id) < html.index(wire.public_id) < html.index(first.public_id)

    invoices = client.get("/portal/invoices/").content.decode()
    assert re.search(rf"{OCTOBER_INVOICE}</a></th>.*?<span class=\"badge paid\">Paid</span>", invoices, re.S)


def test_the_invoices_list_says_partly_paid_open_and_overdue(book):
    northwind, globex = book["northwind"], book["globex"]
    status = re.compile(r'data-label="Status"><span class="badge [\w-]+">([^<]+)</span>')
    assert status.findall(owner(northwind).get("/portal/invoices/").content.decode()) == ["Partly paid"]
    assert status.findall(owner(globex).get("/portal/invoices/").content.decode()) == ["Open"]
    clock.clock_set(at=dt.datetime(2026, 12, 2, 9, tzinfo=UTC))
    assert status.findall(owner(northwind).get("/portal/invoices/").content.decode()) == ["Overdue"]


def test_refunds_are_listed_with_the_payment_they_came_from(northwind):
    account = northwind["account"]
    overpaid = payment_record(account=account, amount=Decimal("339.42"), provider="bank_transfer", reference="W-1")
    (refund,) = account_balance_refund(account=account, amount=Decimal("30.00"), reason="Paid twice")
    html = owner(northwind).get("/portal/billing/").content.decode()
    assert row_of(html, "data-refund", refund.public_id) == (
        f"20 November 2026 USD 30.00 Paid twice {overpaid.public_id} Succeeded"
    )
    assert text_of(html, "credit-balance") == "USD 20.00"


# Collection of open invoices, in plain words


COLLECTIONS = [
    (
        {"state": "scheduled", "next_attempt_at": dt.datetime(2026, 11, 21, 6, tzinfo=UTC)},
        "We will charge your card ending 4242 on 21 Nov.",
    ),
    (
        {
            "state": "retrying",
            "attempts": 1,
            "first_failed_at": dt.datetime(2026, 11, 17, 6, tzinfo=UTC),
            "last_attempt_at": dt.datetime(2026, 11, 17, 6, tzinfo=UTC),
            "last_failure": "card declined",
            "next_attempt_at": dt.datetime(2026, 11, 22, 6, tzinfo=UTC),
        },
        "Card payment failed on 17 Nov (card declined). We will try again on 22 Nov.",
    ),
    ({"state": "paused"}, "Paused by our billing team."),
    (
        {"state": "exhausted", "attempts": 4, "last_failure": "insufficient funds"},
        "All retries failed: please pay now or update your card.",
    ),
    ({"state": "manual"}, "Awaiting your bank transfer, due 1 Dec."),
]


@pytest.mark.parametrize(("fields", "words"), COLLECTIONS, ids=[c[0]["state"] for c in COLLECTIONS])
def test_each_collection_state_of_an_open_invoice_reads_in_plain_words(northwind, fields, words):
    card_on_file(northwind["account"])
    Collection.objects.create(invoice=northwind["invoice"], account=northwind["account"], **fields)
    html = owner(northwind).get("/portal/billing/").content.decode()
    row = re.search(rf'<tr data-invoice="{OCTOBER_INVOICE}">.*?class="collection">([^<]*)<', html, re.S).group(1)
    assert row == words


def test_collection_wording_when_paid_written_off_overdue_or_without_a_card(northwind):
    invoice = northwind["invoice"]
    after_due = dt.datetime(2026, 12, 9, tzinfo=UTC)

    def words(state: str) -> str:
        collection = Collection(invoice=invoice, account=invoice.account, state=state)
        return collection_text(invoice, collection, profile=None, now=NOW)

    assert words("succeeded") == "Paid."
    assert words("written_off") == "Written off by our billing team."
    assert collection_text(invoice, None, profile=None, now=NOW) == "Awaiting your payment, due 1 Dec."
    manual = Collection(invoice=invoice, account=invoice.account, state="manual")
    assert (
        collection_text(invoice, manual, profile=None, now=after_due)
        == "Awaiting your bank transfer, overdue since 1 Dec."
    )
    declined = Collection(
        invoice=invoice,
        account=invoice.account,
        state="retrying",
        last_attempt_at=dt.datetime(2026, 12, 3, 6, tzinfo=UTC),
        last_failure="Your card was declined.",
        next_attempt_at=dt.datetime(2026, 12, 6, 6, tzinfo=UTC),
    )
    assert collection_text(invoice, declined, profile=None, now=NOW) == (
        "Card payment failed on 3 Dec (your card was declined). We will try again on 6 Dec."
    )
    exhausted = Collection(invoice=invoice, account=invoice.account, state="exhausted")
    sepa = PaymentProfile(payment_method_id="pm_sepa", payment_method_type="sepa_debit", payment_method_last4="3000")
    assert collection_text(invoice, exhausted, profile=sepa, now=NOW) == (
        "All retries failed: please pay now or update your payment method."
    )


# Receipts


def test_a_succeeded_payment_has_a_printable_receipt(northwind):
    account = northwind["account"]
    payment = payment_record(
        account=account,
        amount=Decimal("339.42"),
        provider="stripe",
        payment_method="card_ending_4242",
        reference="pi_3Nx",
    )
    response = owner(northwind).get(f"/portal/billing/payments/{payment.public_id}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert text_of(html, "receipt-payment") == payment.public_id
    assert text_of(html, "receipt-date") == "20 November 2026"
    assert text_of(html, "receipt-method") == "Card ending 4242"
    assert text_of(html, "receipt-reference") == "pi_3Nx"
    assert text_of(html, "receipt-amount") == "USD 339.42"
    assert f'<a href="/portal/invoices/{OCTOBER_INVOICE}/">{OCTOBER_INVOICE}</a>' in html
    assert "USD 289.42" in html
    assert text_of(html, "receipt-unapplied") == (
        "USD 50.00 is kept as your credit balance and pays your next invoice."
    )
    assert "Northwind Logistics" in html and "window.print()" in html


def test_another_accounts_receipt_and_a_failed_payment_are_not_found(book):
    northwind, globex = book["northwind"], book["globex"]
    theirs = payment_record(account=globex["account"], amount=Decimal("50.00"), provider="bank_transfer")
    failed = Payment.objects.create(
        public_id="pay_failed_1",
        account=northwind["account"],
        provider="stripe",
        amount=Decimal("289.42"),
        currency="USD",
        status=Payment.Status.FAILED,
        received_at=NOW,
        created_at=NOW,
        failure_message="Your card was declined.",
        invoice=Invoice.objects.filter(account=northwind["account"]).exclude(number=None).first(),
    )
    client = owner(northwind)
    assert client.get(f"/portal/billing/payments/{theirs.public_id}/").status_code == 404
    assert client.get(f"/portal/billing/payments/{failed.public_id}/").status_code == 404
    assert client.get("/portal/billing/payments/pay_999999/").status_code == 404
    # The failed attempt is listed, without a receipt.
    row = row_of(client.get("/portal/billing/").content.decode(), "data-payment", failed.public_id)
    assert row == f"20 November 2026 Stripe – USD 289.42 Failed (Your card was declined.) for {failed.invoice.number} –"


# The account-status banner, on every portal page


def test_a_past_due_then_suspended_account_sees_a_banner_on_every_page(northwind):
    client = owner(northwind)
    assert 'id="account-status"' not in client.get("/portal/").content.decode()

    clock.clock_set(at=dt.datetime(2026, 12, 2, 9, tzinfo=UTC))
    account_statuses_update()
    assert Account.objects.get(pk=northwind["account"].pk).status == "past_due"
    for path in ("/portal/", "/portal/invoices/", "/portal/billing/", "/portal/budgets/"):
        assert text_of(client.get(path).content.decode(), "account-status") == (
            f"Your account is past due: {OCTOBER_INVOICE} was due on 1 Dec. Pay it to avoid a suspension."
        )

    assert '<a href="/portal/billing/">See Billing</a></p>' in client.get("/portal/").content.decode()

    clock.clock_set(at=dt.datetime(2026, 12, 31, 9, tzinfo=UTC))
    account_statuses_update()
    assert Account.objects.get(pk=northwind["account"].pk).status == "suspended"
    for path in ("/portal/", "/portal/credit-notes/", "/portal/billing/"):
        assert text_of(client.get(path).content.decode(), "account-status") == (
            f"Your account is suspended because {OCTOBER_INVOICE} is unpaid. Pay it to lift the suspension."
        )


# The Stripe-hosted buttons appear only with Stripe configured and their views installed


def test_stripe_buttons_need_a_stripe_key_and_their_urls(northwind):
    card_on_file(northwind["account"])
    with override_settings(ROOT_URLCONF="tests.portal.stripe_urls", STRIPE_LIVE_MODE=False, STRIPE_TEST_SECRET_KEY=""):
        html = owner(northwind).get("/portal/billing/").content.decode()
        assert "Replace card" not in html and "Pay now" not in html
    with override_settings(ROOT_URLCONF="tests.portal.stripe_urls", STRIPE_TEST_SECRET_KEY="sk_test_123"):
        html = owner(northwind).get("/portal/billing/").content.decode()
        assert f'<form method="post" action="{reverse("portal:card_setup")}">' in html
        assert "Replace card" in html
        pay = reverse("portal:invoice_pay", args=[OCTOBER_INVOICE])
        assert f'<form method="post" action="{pay}">' in html
        assert "Pay now" in html
        # A member reads the page without buttons.
        reader = member(northwind["account"], "member").get("/portal/billing/").content.decode()
        assert "Replace card" not in reader and "Pay now" not in reader
    with override_settings(ROOT_URLCONF="tests.portal.stripe_urls_absent", STRIPE_TEST_SECRET_KEY="sk_test_123"):
        html = owner(northwind).get("/portal/billing/").content.decode()
        assert "Replace card" not in html and "Pay now" not in html
        assert text_of(html, "payment-method") == "Visa ending 4242, expires 08/2028"


# The new balance on the invoice page and its PDF


@pytest.fixture
def november_after_overpayment(northwind):
    """October overpaid by USD 50.00, then November closed on December 1: finalization applies the credit
    balance to INV-2026-000003 (USD 383.47), which leaves USD 333.47 due."""
    account = northwind["account"]
    payment_record(account=account, amount=Decimal("339.42"), provider="bank_transfer", reference="WIRE-9001")
    close(period=month_period(2026, 11), now=dt.datetime(2026, 12, 1, 0, 5, tzinfo=UTC))
    clock.clock_set(at=dt.datetime(2026, 12, 1, 9, tzinfo=UTC))
    invoice = Invoice.objects.get(account=account, period_start=month_period(2026, 11).start)
    assert (invoice.number, invoice.total, invoice.amount_paid, invoice.amount_due) == (
        "INV-2026-000003",
        Decimal("383.47"),
        Decimal("50.00"),
        Decimal("333.47"),
    )
    assert credit_balance(account) == Decimal("0")
    return invoice


def test_the_invoice_pdf_shows_the_credit_balance_applied_at_finalization(november_after_overpayment):
    invoice = november_after_overpayment
    document = document_ready(invoice=invoice)
    with document.file.open("rb") as handle:
        data = handle.read()
    lines = pdf_lines(data)
    assert "Total USD 383.47" in lines
    assert "Applied from credit balance USD 50.00" in lines
    assert "Amount due USD 333.47" in lines
    assert "Please pay USD 333.47 by 31 December 2026." in lines
    # The credit balance is not a payment made for the invoice.
    assert not any(line.startswith("Amount paid") for line in lines)
    assert "Payments applied" not in lines
    # Deterministic: the same invoice gives the same bytes.
    assert document_pdf_bytes(Document.objects.get(pk=document.pk)) == data


def test_the_invoice_pdf_lists_the_payments_applied(northwind):
    payment_record(
        account=northwind["account"], amount=Decimal("89.42"), provider="stripe", payment_method="card_ending_4242"
    )
    lines = pdf_lines(document_pdf_bytes(document_ready(invoice=northwind["invoice"])))
    assert "Amount paid USD 289.42" in lines
    assert "Amount credited USD 25.00" in lines
    assert "Amount due USD 200.00" in lines
    assert "Payments applied" in lines
    assert "5 November 2026 Bank transfer USD 200.00" in lines
    assert "20 November 2026 Card ending 4242 USD 89.42" in lines
    assert not any(line.startswith("Applied from credit balance") for line in lines)


def test_the_portal_invoice_page_shows_the_credit_balance_applied(northwind, november_after_overpayment):
    client = owner(northwind)
    html = client.get(f"/portal/invoices/{november_after_overpayment.number}/").content.decode()
    assert "Applied from credit balance" in html
    assert text_of(html, "balance-applied") == "USD 50.00"
    assert text_of(html, "paid") == "USD 0.00"
    assert text_of(html, "amount-due") == "USD 333.47"
    assert "Payments applied" not in html
    # October was paid by the payments themselves, each with its receipt.
    october = client.get(f"/portal/invoices/{OCTOBER_INVOICE}/").content.decode()
    assert 'id="balance-applied"' not in october
    assert text_of(october, "paid") == "USD 489.42"
    assert text_of(october, "amount-due") == "USD 0.00"
    wire = Payment.objects.get(reference="WIRE-9001")
    assert row_of(october, "data-payment", wire.public_id) == (
        "20 November 2026 Bank transfer USD 289.42 Receipt for the payment of 20 November 2026"
    )
