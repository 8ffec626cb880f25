"""The admin's contracts (Finance admins add and change them, billing staff only see them; the term's end is
computed; a document must be a PDF by its content and is downloaded by staff who may see the contract) and the
subscription page's "Extend trial" and "Cancel" (an intermediate page each; "Cancel" shows the contract's rule,
the end and the early-termination charge to the cent before staff confirm with a reason)."""

import copy
import datetime as dt
import html
from decimal import Decimal as D

import pytest
import time_machine
from django.contrib import admin
from django.contrib.auth.context_processors import PermWrapper
from django.core.files.uploadedfile import SimpleUploadedFile
from django.template.loader import render_to_string
from django.test import Client
from django.urls import include, path

from billing.admin.subscription_terms import SubscriptionTermsAdminMixin
from billing.admin.subscriptions import SubscriptionAdmin
from billing.models import Contract, ContractDocument, Subscription
from billing.services.contracts import ERR_CANCEL_REASON, ERR_CREDIT_CURRENCY, ERR_DOCUMENT_TYPE, contract_save
from billing.services.trials import ERR_NOT_TRIALING, ERR_REASON
from tests.accounts.factories import AccountFactory, StaffUserFactory
from tests.billing.cycle import subscribe
from tests.billing.test_contracts import JAN_2027, JAN_2028, JAN_2030, globex
from tests.disputes.factories import billing_staff, finance_admin
from usage.models import Metric

pytestmark = pytest.mark.django_db
UTC = dt.UTC
NOV_2 = dt.datetime(2026, 11, 2, tzinfo=UTC)
ADD = "/admin/billing/contract/add/"


def _terms_site() -> admin.AdminSite:
    """The admin with the subscription page's terms views, until ``SubscriptionAdmin`` inherits the mixin."""
    if issubclass(SubscriptionAdmin, SubscriptionTermsAdminMixin):
        return admin.site
    site = copy.copy(admin.site)
    site._registry = dict(admin.site._registry)
    terms_admin = type("SubscriptionTermsAdmin", (SubscriptionTermsAdminMixin, SubscriptionAdmin), {})
    site._registry[Subscription] = terms_admin(Subscription, site)
    return site


# Used by the tests marked ``pytest.mark.urls(__name__)``: this site's admin first, then the project's URLs.
urlpatterns = [path("admin/", _terms_site().urls), path("", include("config.urls"))]
terms_urls = pytest.mark.urls(__name__)


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def management(prefix: str, total: int = 0, initial: int = 0) -> dict:
    return {
        f"{prefix}-TOTAL_FORMS": total,
        f"{prefix}-INITIAL_FORMS": initial,
        f"{prefix}-MIN_NUM_FORMS": 0,
        f"{prefix}-MAX_NUM_FORMS": 1000,
    }


def form_data(account, **fields) -> dict:
    return {
        "account": account.pk,
        "reference": "MSA-0142",
        "term_start_0": "2027-01-01",
        "term_start_1": "00:00:00",
        "term_months": 36,
        "auto_renew": "on",
        "renewal_notice_days": 60,
        "commitment_amount": "30000.00",
        "commitment_period": "year",
        "cancellation": "term_end",
        "early_termination_percent": "",
        "account_manager": "",
        "notes": "",
        **management("discount_tiers"),
        **management("prepaid_credits"),
        **management("documents"),
        **fields,
    }


def change_url(contract) -> str:
    return f"/admin/billing/contract/{contract.pk}/change/"


PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def test_a_finance_admin_adds_a_contract_with_its_tiers_credit_and_document_and_its_term_end_is_computed(catalogue):
    account = globex()
    fiona = finance_admin()
    messages = Metric.objects.get(code="messages")
    inlines = {
        **management("discount_tiers", total=2),
        "discount_tiers-0-metric": messages.pk,
        "discount_tiers-0-threshold": "200000",
        "discount_tiers-0-percent": "10",
        "discount_tiers-1-metric": messages.pk,
        "discount_tiers-1-threshold": "500000",
        "discount_tiers-1-percent": "15",
        **management("prepaid_credits", total=1),
        "prepaid_credits-0-amount": "6000.00",
        "prepaid_credits-0-currency": "USD",
        "prepaid_credits-0-effective_at_0": "2027-01-01",
        "prepaid_credits-0-effective_at_1": "00:00:00",
        "prepaid_credits-0-description": "Signing credit",
        **management("documents", total=1),
        "documents-0-upload": SimpleUploadedFile("MSA-0142.pdf", PDF, content_type="application/pdf"),
    }

    response = logged_in(fiona).post(ADD, form_data(account, **inlines))

    assert response.status_code == 302, response.content.decode()[:2000]
    contract = Contract.objects.get(account=account)
    assert (contract.term_start, contract.term_end) == (JAN_2027, JAN_2030)  # 36 months later
    assert contract.public_id.startswith("ct_")
    assert contract.commitment_amount == D("30000.00")
    assert list(contract.discount_tiers.values_list("threshold", "percent")) == [
        (D("200000"), D("10")),
        (D("500000"), D("15")),
    ]
    [credit] = contract.prepaid_credits.all()
    assert (credit.amount, credit.currency, credit.effective_at) == (D("6000.00"), "USD", JAN_2027)
    [document] = contract.documents.all()
    assert (document.name, document.size, document.uploaded_by) == ("MSA-0142.pdf", len(PDF), fiona)
    rows = list(contract.history.order_by("history_id").values_list("history_user", "history_change_reason"))
    assert rows[0] == (fiona.pk, "created: 36 months from 2027-01-01")
    assert rows[-1] == (fiona.pk, "document attached: MSA-0142.pdf")
    listing = logged_in(fiona).get("/admin/billing/contract/?q=Globex").content.decode()
    assert "2027-01-01 – 2029-12-31 (36 months)" in listing
    assert "USD 30,000.00 per contract year" in listing


def test_an_overlapping_term_is_shown_on_the_form_and_nothing_is_saved(catalogue):
    account = globex()
    existing = contract_save(contract=Contract(account=account, term_start=JAN_2027, term_months=36), actor=None)

    response = logged_in(finance_admin()).post(ADD, form_data(account, term_start_0="2028-01-01"))

    assert response.status_code == 200
    page = html.unescape(response.content.decode())
    assert f"has contract {existing.public_id} for 2027-01-01 – 2029-12-31, which overlaps this term" in page
    assert Contract.objects.filter(account=account).count() == 1


def test_billing_staff_see_contracts_but_may_not_add_or_change_them(catalogue):
    account = globex()
    contract = contract_save(contract=Contract(account=account, term_start=JAN_2027, term_months=36), actor=None)
    bianca = logged_in(billing_staff())

    assert bianca.get(ADD).status_code == 403
    assert bianca.post(ADD, form_data(account)).status_code == 403
    view = bianca.get(change_url(contract))
    assert view.status_code == 200 and 'name="_save"' not in view.content.decode()
    assert bianca.post(change_url(contract), form_data(account, reference="changed")).status_code == 403
    contract.refresh_from_db()
    assert contract.reference == ""


def test_a_document_must_be_a_pdf_and_staff_download_it(catalogue):
    account = globex()
    contract = contract_save(contract=Contract(account=account, term_start=JAN_2027, term_months=36), actor=None)
    fiona = logged_in(finance_admin())
    upload = {
        **management("documents", total=1),
        "documents-0-id": "",
        "documents-0-contract": contract.pk,
    }

    # A text file named like a PDF is still not one: its content is checked.
    fake = SimpleUploadedFile("signed.pdf", b"Dear customer, ...", content_type="application/pdf")
    response = fiona.post(change_url(contract), form_data(account, **upload, **{"documents-0-upload": fake}))

    assert response.status_code == 200
    assert ERR_DOCUMENT_TYPE.format(name="signed.pdf") in html.unescape(response.content.decode())
    assert not ContractDocument.objects.exists()

    pdf = PDF
    real = SimpleUploadedFile("MSA-0142 signed.pdf", pdf, content_type="application/pdf")
    response = fiona.post(change_url(contract), form_data(account, **upload, **{"documents-0-upload": real}))

    assert response.status_code == 302
    document = ContractDocument.objects.get(contract=contract)
    assert (document.name, document.size) == ("MSA-0142 signed.pdf", len(pdf))
    assert contract.history.first().history_change_reason == "document attached: MSA-0142 signed.pdf"
    url = f"/admin/billing/contract/{contract.pk}/documents/{document.token}/"
    bianca = logged_in(billing_staff())
    assert url in bianca.get(change_url(contract)).content.decode()
    download = bianca.get(url)
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == pdf
    assert download["Content-Type"] == "application/pdf"
    assert download["Content-Disposition"].startswith("attachment;")
    assert logged_in(StaffUserFactory(username="nobody")).get(url).status_code == 403


def test_tiers_and_prepaid_credits_are_saved_through_the_services(catalogue):
    account = globex()
    contract = contract_save(contract=Contract(account=account, term_start=JAN_2027, term_months=36), actor=None)
    fiona = logged_in(finance_admin())
    messages = Metric.objects.get(code="messages")
    tier = {
        **management("discount_tiers", total=1),
        "discount_tiers-0-id": "",
        "discount_tiers-0-contract": contract.pk,
        "discount_tiers-0-metric": messages.pk,
        "discount_tiers-0-threshold": "200000",
        "discount_tiers-0-percent": "10",
    }

    def credit(currency):
        return {
            **management("prepaid_credits", total=1),
            "prepaid_credits-0-id": "",
            "prepaid_credits-0-contract": contract.pk,
            "prepaid_credits-0-amount": "6000.00",
            "prepaid_credits-0-currency": currency,
            "prepaid_credits-0-effective_at_0": "2027-01-01",
            "prepaid_credits-0-effective_at_1": "00:00:00",
            "prepaid_credits-0-description": "Prepaid with the order",
        }

    # A credit in another currency than the account's is refused, and nothing of the page is saved.
    refused = fiona.post(change_url(contract), form_data(account, **tier, **credit("EUR")), follow=True)
    assert ERR_CREDIT_CURRENCY.format(account_currency="USD") in html.unescape(refused.content.decode())
    assert not contract.discount_tiers.exists() and not contract.prepaid_credits.exists()

    response = fiona.post(change_url(contract), form_data(account, **tier, **credit("USD")))

    assert response.status_code == 302
    [saved] = contract.discount_tiers.all()
    assert (saved.metric, saved.threshold, saved.percent) == (messages, D("200000"), D("10"))
    [prepaid] = contract.prepaid_credits.all()
    assert (prepaid.amount, prepaid.currency) == (D("6000.00"), "USD")
    reasons = [row.history_change_reason for row in contract.history.order_by("history_id")]
    assert "volume-discount tier saved: 10 % over 200000" in reasons
    assert "prepaid credit saved: 6000.00 USD prepaid" in reasons


# The subscription's "Extend trial" and "Cancel" --------------------------------------------------------


@terms_urls
def test_the_buttons_are_offered_to_staff_who_may_change_subscriptions(plan):
    account = AccountFactory(name="Vandelay")
    subscription = subscribe(account, plan("messaging-startup"), started_at=NOV_2, at=NOV_2)
    bianca, viewer = billing_staff(), StaffUserFactory(username="viewer")

    buttons = render_to_string(
        "admin/billing/subscription/_terms_buttons.html", {"original": subscription, "perms": PermWrapper(bianca)}
    )
    assert f'href="/admin/billing/subscription/{subscription.pk}/extend-trial/"' in buttons
    assert f'href="/admin/billing/subscription/{subscription.pk}/cancel/"' in buttons
    nothing = render_to_string(
        "admin/billing/subscription/_terms_buttons.html", {"original": subscription, "perms": PermWrapper(viewer)}
    )
    assert nothing.strip() == ""
    assert logged_in(viewer).get(f"/admin/billing/subscription/{subscription.pk}/cancel/").status_code == 403


@terms_urls
def test_billing_staff_extend_a_trial_with_a_date_and_a_reason(plan):
    account = AccountFactory(name="Vandelay")
    subscription = subscribe(account, plan("messaging-startup"), started_at=NOV_2, at=NOV_2)  # ends Nov 16
    url = f"/admin/billing/subscription/{subscription.pk}/extend-trial/"
    bianca = logged_in(billing_staff())

    with time_machine.travel(dt.datetime(2026, 11, 10, tzinfo=UTC), tick=False):
        page = bianca.get(url).content.decode()
        assert "2026-11-16 00:00 UTC" in page
        refused = bianca.post(url, {"last_day": "2026-11-29", "reason": ""})
        assert ERR_REASON in html.unescape(refused.content.decode())
        response = bianca.post(url, {"last_day": "2026-11-29", "reason": "Security review"})

    assert response.status_code == 302
    subscription.refresh_from_db()
    assert subscription.trial_end == dt.datetime(2026, 11, 30, tzinfo=UTC)  # the day after the last day
    assert subscription.history.first().history_change_reason == (
        "trial extended to 2026-11-30T00:00:00Z: Security review"
    )

    paying = subscribe(AccountFactory(name="Paying"), plan("messaging-business"))  # trial over long ago
    other = f"/admin/billing/subscription/{paying.pk}/extend-trial/"
    not_trialing = ERR_NOT_TRIALING.format(subscription=paying.public_id, status="active")
    assert not_trialing in html.unescape(bianca.get(other).content.decode())
    refused = bianca.post(other, {"last_day": "2026-12-29", "reason": "Goodwill"})
    assert not_trialing in html.unescape(refused.content.decode())
    paying.refresh_from_db()
    assert paying.trial_end == dt.datetime(2026, 1, 31, tzinfo=UTC)


@terms_urls
def test_cancel_shows_the_early_termination_charge_then_ends_the_subscription(catalogue):
    account = globex()
    contract = contract_save(
        contract=Contract(
            account=account,
            term_start=JAN_2027,
            term_months=36,
            commitment_amount=D("30000.00"),
            commitment_period=Contract.CommitmentPeriod.YEAR,
            cancellation=Contract.Cancellation.EARLY_TERMINATION,
            early_termination_percent=D("50"),
        ),
        actor=None,
    )
    subscription = account.subscriptions.get()
    url = f"/admin/billing/subscription/{subscription.pk}/cancel/"
    staff = billing_staff()

    with time_machine.travel(JAN_2028, tick=False):
        bianca = logged_in(staff)  # signed in then: a session from today would have expired by 2028
        page = html.unescape(bianca.get(url).content.decode())
        assert "Now, with an early-termination charge" in page
        assert "<strong>USD 30,000.00</strong>" in page
        assert "USD 30,000.00 per contract year × 2 contract years still ahead" in page
        key = "early_termination|2028-01-01|30000.00"
        assert f'name="shown" value="{key}"' in page
        refused = bianca.post(url, {"reason": "", "shown": key})
        assert ERR_CANCEL_REASON in html.unescape(refused.content.decode())
        response = bianca.post(url, {"reason": "Acquired by Initech", "shown": key})

    assert response.status_code == 302
    subscription.refresh_from_db()
    contract.refresh_from_db()
    assert (subscription.status, subscription.ended_at) == (Subscription.Status.CANCELLED, JAN_2028)
    assert (contract.terminated_at, contract.termination_fee) == (JAN_2028, D("30000.00"))


@terms_urls
def test_cancel_to_the_term_end_asks_for_a_confirmation_of_the_figures_shown(catalogue):
    account = globex()
    contract_save(contract=Contract(account=account, term_start=JAN_2027, term_months=36), actor=None)
    subscription = account.subscriptions.get()
    url = f"/admin/billing/subscription/{subscription.pk}/cancel/"
    staff = billing_staff()

    with time_machine.travel(dt.datetime(2028, 6, 10, tzinfo=UTC), tick=False):
        bianca = logged_in(staff)
        page = html.unescape(bianca.get(url).content.decode())
        assert "At the end of the contract's term" in page and "2030-01-01 00:00 UTC" in page
        stale = bianca.post(url, {"reason": "Moving on", "shown": "term_end|2029-01-01T00:00:00+00:00|"})
        assert "The figures changed since they were shown" in html.unescape(stale.content.decode())
        response = bianca.post(url, {"reason": "Moving on", "shown": "term_end|2030-01-01T00:00:00+00:00|"})

    assert response.status_code == 302
    subscription.refresh_from_db()
    assert (subscription.status, subscription.cancel_at) == (Subscription.Status.ACTIVE, JAN_2030)
