"""The customer's Plan page and plan changes in the portal: the current plan with its limits, trial, period and
contract; the catalogue plans beside it with what the account's own usage of the last three closed months would
have cost on each (the rating engine's figures); owners and admins preview and request a change and withdraw it;
billing users and members only read; another account's change is a 404; refusals come back on the page.

Vandelay is on Startup (USD 99.00 a month; 3 tenants included, then USD 29.00 each; 5,000 messages included, then
USD 0.05 each) since January 1, 2026 (a 14-day trial, to January 15), with 7 tenants and 10,000 messages in each of
August, September and October. The portal is read on November 16, 2026 at 00:00 UTC: November has 30 days, 15
behind and 15 ahead.

- On Startup each of those months costs 99 + 4 × 29 + 5,000 × 0.05 = 99 + 116 + 250 = USD 465.00.
- On Business (USD 299.00; 10 tenants and 25,000 messages included) each costs USD 299.00: USD 166.00 less.
- On Startup (annual) (USD 1,188.00 a year less 10 %: 1,069.20, a twelfth of it 89.10 a month) each costs
  89.10 + 116 + 250 = USD 455.10.
- A change to Business now: Startup Nov 1–15 (99 × 15/30 = 49.50), its 4 extra tenants for half the month
  (116 × 15/30 = 58.00), Business Nov 16–30 (299 × 15/30 = 149.50; its 10 tenants cover the 7): USD 257.00,
  against USD 215.00 on Startup as things stand (99 + 116; no messages yet in November): USD 42.00 more.
"""

import datetime as dt
import re
from decimal import Decimal as D

import pytest
import time_machine
from django.test import Client
from django.utils.html import escape

from accounts.models import AccountUser
from billing.models import Contract, PlanChangeRequest, Subscription
from billing.rating.engine import charges_estimate
from billing.selectors_subscription import plan_costs
from billing.services.plan_changes import plan_change_request
from billing.services.subscriptions import subscription_change_plan
from common.periods import month_period
from tests.accounts.factories import AccountFactory, StaffUserFactory
from tests.billing.cycle import JAN_1, close, event, ingest, subscribe
from tests.disputes.factories import portal_user
from tests.tenants.factories import MasterPartnerFactory, TenantFactory

pytestmark = pytest.mark.django_db
UTC = dt.UTC
NOV_16 = dt.datetime(2026, 11, 16, tzinfo=UTC)
Role = AccountUser.Role
CHANGERS = [Role.OWNER, Role.ADMIN]
READERS = [Role.BILLING, Role.MEMBER]


def vandelay(plan, code="messaging-startup", *, tenants=7, partners=0, name="Vandelay", messages=10_000):
    account = AccountFactory(name=name, billing_emails=["ap@vandelay.example"], tax_rate=D("0"))
    subscribe(account, plan(code), started_at=JAN_1)
    slug = name.lower()
    for n in range(tenants):
        TenantFactory(account=account, public_id=f"ten_{slug}_{n}", activated_at=JAN_1)
    for n in range(partners):
        MasterPartnerFactory(account=account, public_id=f"prt_{slug}_{n}", activated_at=JAN_1)
    for month in (8, 9, 10):
        at = dt.datetime(2026, month, 15, 10, tzinfo=UTC)
        items = [event(f"{slug}-{month}", f"ten_{slug}_0", "messages", messages, at.isoformat())]
        ingest(account, items, now=dt.datetime(2026, month, 28, tzinfo=UTC))
    return account


@pytest.fixture(autouse=True)
def _november_16():
    with time_machine.travel(NOV_16, tick=False):
        yield


@pytest.fixture
def account(plan):
    return vandelay(plan)


def signed_in(account, role) -> Client:
    client = Client()
    client.force_login(portal_user(account, role))
    return client


def text_of(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</(?:dd|p|span|section|div|table)>', html, re.S)
    assert match, element_id
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split())


def row_of(html: str, value: str, attribute: str = "data-plan") -> str:
    match = re.search(rf'<tr {attribute}="{value}"[^>]*>(.*?)</tr>', html, re.S)
    assert match, value
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split())


def live(account) -> Subscription:
    return account.subscriptions.exclude(status=Subscription.Status.CANCELLED).get()


# --- The figures -------------------------------------------------------------------------------------------


def test_the_comparison_rates_the_accounts_own_usage_of_the_last_three_closed_months(account):
    costs = plan_costs(account=account)

    assert [f"{p.start:%Y-%m}" for p in costs.periods] == ["2026-08", "2026-09", "2026-10"]
    assert costs.current.version.plan.code == "messaging-startup"
    assert [m.amount for m in costs.current.months] == [D("465.00")] * 3
    assert costs.current.average == D("465.00")
    by_code = {cost.version.plan.code: cost for cost in costs.options}
    business = by_code["messaging-business"]
    assert ([m.amount for m in business.months], business.average, business.difference) == (
        [D("299.00")] * 3,
        D("299.00"),
        D("-166.00"),
    )
    annual = by_code["messaging-startup-annual"]
    assert ([m.amount for m in annual.months], annual.yearly_fee) == ([D("455.10")] * 3, D("1069.20"))
    # The current plan is not an option; price-on-request entries never are.
    assert "messaging-startup" not in by_code and "messaging-custom-enterprise" not in by_code


def test_a_months_usage_reported_late_is_left_out_of_the_later_month(plan):
    """Usage reported after its month was invoiced belongs to that month: the later month's figure is its own."""
    account = vandelay(plan, messages=5_000)  # all included: 99 + 116 = 215.00 a month
    close(period=month_period(2026, 8), now=dt.datetime(2026, 9, 1, 0, 5, tzinfo=UTC))
    late = [event("late-aug", "ten_vandelay_1", "messages", 2_000, "2026-08-20T10:00:00Z")]
    ingest(account, late, now=dt.datetime(2026, 9, 2, tzinfo=UTC))  # within the grace period: billed in September

    september = charges_estimate(
        account=account, period=month_period(2026, 9), now=dt.datetime(2026, 10, 1, tzinfo=UTC)
    )
    assert [(line.kind, line.amount) for line in september.lines if line.kind == "late_usage"] == [
        ("late_usage", D("100.00"))  # 2,000 × 0.05: August's 5,000 already filled what Startup includes
    ]

    costs = plan_costs(account=account)

    assert [m.amount for m in costs.current.months] == [D("215.00")] * 3


# --- The Plan page -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", CHANGERS + READERS)
def test_everyone_reads_the_plan_its_limits_and_the_comparison(account, role):
    page = signed_in(account, role).get("/portal/plan/")

    assert page.status_code == 200
    html = page.content.decode()
    assert text_of(html, "current-plan-name") == "Startup"
    assert text_of(html, "current-base-fee") == "USD 99.00 a month"
    assert text_of(html, "trial-end") == "Ended Jan 15, 2026"
    assert text_of(html, "current-period") == "Nov 1, 2026 – Nov 30, 2026"
    limits = {m: row_of(html, m, "data-metric") for m in ("tenants", "messages")}
    assert limits["tenants"] == "Active tenants 3 3 USD 29.00 per tenant-month"
    assert limits["messages"] == "Messages 5,000 5,000 USD 0.05 each"
    assert row_of(html, "messaging-startup").startswith("Startup Current USD 99.00 a month USD 465.00 USD 465.00")
    assert row_of(html, "messaging-business").startswith(
        "Business USD 299.00 a month USD 299.00 USD 299.00 USD 299.00 USD 299.00 −USD 166.00 less"
    )
    assert "USD 1,069.20 a year after the discount" in row_of(html, "messaging-startup-annual")
    previews = re.findall(r'href="/portal/plan/change/\?plan=([a-z-]+)"', html)
    if role in CHANGERS:
        assert "messaging-business" in previews and "messaging-startup" not in previews
    else:
        assert previews == []
        assert "Your account's owner and admins can change the plan." in html


def test_the_plan_page_shows_the_contract_term_and_the_account_manager(account):
    manager = StaffUserFactory(username="dscully", first_name="Dana", last_name="Scully", email="dana@ll.example")
    Contract.objects.create(
        account=account,
        public_id="CT-000001",
        reference="MSA-0142",
        term_start=JAN_1,
        term_months=36,
        term_end=dt.datetime(2029, 1, 1, tzinfo=UTC),
        auto_renew=False,
        commitment_amount=D("3000.00"),
        commitment_period=Contract.CommitmentPeriod.YEAR,
        account_manager=manager,
    )
    html = signed_in(account, Role.MEMBER).get("/portal/plan/").content.decode()

    assert text_of(html, "contract-term") == "Jan 1, 2026 – Dec 31, 2028 (36 months)"
    assert text_of(html, "contract-commitment") == "USD 3,000.00 per contract year, before tax"
    assert "Dana Scully" in text_of(html, "account-manager")
    assert "dana@ll.example" in html


def test_the_nav_links_to_the_plan_page(account):
    html = signed_in(account, Role.MEMBER).get("/portal/plan/").content.decode()
    assert '<a href="/portal/plan/" aria-current="page">Plan</a>' in html


# --- Changing the plan -------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", CHANGERS)
def test_owners_and_admins_preview_a_change_with_its_prorated_lines(account, role):
    page = signed_in(account, role).get("/portal/plan/change/?plan=messaging-business&timing=now")

    assert page.status_code == 200
    html = page.content.decode()
    lines = re.findall(
        r'<tr><th scope="row" data-label="Charge">(.*?)</th><td data-label="From">(.*?)</td>'
        r'<td data-label="To">(.*?)</td><td class="num" data-label="Amount">(.*?)</td></tr>',
        html,
    )
    assert ("Startup base fee (Nov 1–Nov 15)", "Nov 1, 2026", "Nov 15, 2026", "USD 49.50") in lines
    assert ("Business base fee (Nov 16–Nov 30)", "Nov 16, 2026", "Nov 30, 2026", "USD 149.50") in lines
    assert text_of(html, "preview-current") == "USD 215.00"
    assert text_of(html, "preview-new") == "USD 257.00"
    assert text_of(html, "preview-difference") == "+USD 42.00"
    assert 'id="request-change"' in html


def test_a_refused_downgrade_says_why_and_offers_no_request(plan):
    crowded = vandelay(plan, "messaging-business", tenants=3, partners=12, name="Crowded")
    html = signed_in(crowded, Role.OWNER).get("/portal/plan/change/?plan=messaging-startup&timing=now").content
    html = html.decode()

    assert escape("Master partners: 12 this month, and Startup allows 10; remove 2 before moving.") in html
    assert 'id="request-change"' not in html
    refused = signed_in(crowded, Role.ADMIN).post(
        "/portal/plan/change/", {"plan": "messaging-startup", "timing": "now"}
    )
    assert refused.status_code == 400
    assert not PlanChangeRequest.objects.exists()


def test_an_upgrade_that_waits_for_approval_is_requested_and_withdrawn(account, settings):
    settings.SUBSCRIPTIONS_UPGRADES_APPLY_AT_ONCE = False
    owner = signed_in(account, Role.OWNER)

    response = owner.post(
        "/portal/plan/change/", {"plan": "messaging-business", "timing": "now", "note": "More tenants coming."}
    )

    assert response.status_code == 302 and response["Location"] == "/portal/plan/"
    change = PlanChangeRequest.objects.get()
    assert (change.state, change.channel, change.note, change.to_version.plan.code) == (
        "pending",
        "portal",
        "More tenants coming.",
        "messaging-business",
    )
    assert change.requested_by.email == "owner@vandelay.example"
    html = owner.get("/portal/plan/").content.decode()
    assert (
        f"Plan change {change.public_id} requested: Startup → Business. Waiting for approval by our billing team."
        in html
    )
    assert text_of(html, "open-change-state") == "Waiting for approval"
    assert live(account).plan_version.plan.code == "messaging-startup"
    assert "Preview change" not in html  # one change at a time

    again = owner.post("/portal/plan/change/", {"plan": "messaging-enterprise", "timing": "now"})
    assert again.status_code == 409

    withdrawn = owner.post(f"/portal/plan/changes/{change.public_id}/cancel/")
    assert withdrawn.status_code == 302
    change.refresh_from_db()
    assert change.state == "cancelled"
    html = owner.get("/portal/plan/").content.decode()
    assert f"Plan change {change.public_id} withdrawn: your plan stays Startup." in html


def test_an_upgrade_that_need_not_wait_applies_at_once(account, settings):
    settings.SUBSCRIPTIONS_UPGRADES_APPLY_AT_ONCE = True
    admin = signed_in(account, Role.ADMIN)

    admin.post("/portal/plan/change/", {"plan": "messaging-business", "timing": "now"})

    assert PlanChangeRequest.objects.get().state == "applied"
    html = admin.get("/portal/plan/").content.decode()
    assert "Your plan is now Business." in html
    assert text_of(html, "current-plan-name") == "Business"
    tenants = row_of(html, "tenants", "data-metric")
    assert tenants == "Active tenants 10 10 USD 19.00 per tenant-month"


def test_a_change_at_the_end_of_the_period_is_scheduled(account, settings):
    settings.SUBSCRIPTIONS_UPGRADES_APPLY_AT_ONCE = True
    owner = signed_in(account, Role.OWNER)

    owner.post("/portal/plan/change/", {"plan": "messaging-business", "timing": "period_end"})

    change = PlanChangeRequest.objects.get()
    assert (change.state, change.effective_at) == ("scheduled", dt.datetime(2026, 12, 1, tzinfo=UTC))
    html = owner.get("/portal/plan/").content.decode()
    assert "Scheduled for Dec 1, 2026: your plan becomes Business then." in html
    assert "Approved: your plan becomes Business on Dec 1, 2026." in html


@pytest.mark.parametrize("role", READERS)
def test_billing_users_and_members_may_not_change_the_plan(account, plan, role, settings):
    settings.SUBSCRIPTIONS_UPGRADES_APPLY_AT_ONCE = False
    change = plan_change_request(
        account=account,
        to_version=plan("messaging-business"),
        timing="now",
        actor=portal_user(account, Role.OWNER),
        channel="portal",
    )
    client = signed_in(account, role)

    assert client.get("/portal/plan/change/?plan=messaging-business").status_code == 403
    assert client.post("/portal/plan/change/", {"plan": "messaging-enterprise", "timing": "now"}).status_code == 403
    assert client.post(f"/portal/plan/changes/{change.public_id}/cancel/").status_code == 403
    change.refresh_from_db()
    assert change.state == "pending"
    html = client.get("/portal/plan/").content.decode()
    assert text_of(html, "open-change-state") == "Waiting for approval"
    assert "Withdraw" not in html


def test_another_accounts_change_is_not_found(account, plan, settings):
    settings.SUBSCRIPTIONS_UPGRADES_APPLY_AT_ONCE = False
    other = vandelay(plan, name="Kramerica")
    theirs = plan_change_request(
        account=other,
        to_version=plan("messaging-business"),
        timing="now",
        actor=portal_user(other, Role.OWNER),
        channel="portal",
    )

    assert signed_in(account, Role.OWNER).post(f"/portal/plan/changes/{theirs.public_id}/cancel/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.state == "pending"


def test_an_unknown_plan_is_a_field_error(account):
    response = signed_in(account, Role.OWNER).post("/portal/plan/change/", {"plan": "messaging-gold", "timing": "now"})
    assert response.status_code == 400
    assert "Choose one of the plans listed." in response.content.decode()


# --- The invoice -------------------------------------------------------------------------------------------


def test_the_invoice_names_the_account_manager_and_each_lines_span(plan):
    account = vandelay(plan, tenants=3, messages=1_000)
    Contract.objects.create(
        account=account,
        public_id="CT-000002",
        term_start=JAN_1,
        term_months=36,
        term_end=dt.datetime(2029, 1, 1, tzinfo=UTC),
        account_manager=StaffUserFactory(username="amgr", first_name="Ann", last_name="Grey", email="ann@ll.example"),
    )
    subscription_change_plan(subscription=live(account), plan_version=plan("messaging-business"), at=NOV_16)
    close()
    invoice = account.invoices.get(period_start=dt.datetime(2026, 11, 1, tzinfo=UTC))

    html = signed_in(account, Role.MEMBER).get(f"/portal/invoices/{invoice.number}/").content.decode()

    assert "Ann Grey" in text_of(html, "account-manager") and "ann@ll.example" in html
    assert 'Startup base fee (Nov 1–Nov 15) <span class="muted line-span">(Nov 1, 2026 – Nov 15, 2026)</span>' in html
    assert (
        'Business base fee (Nov 16–Nov 30) <span class="muted line-span">(Nov 16, 2026 – Nov 30, 2026)</span>' in html
    )
