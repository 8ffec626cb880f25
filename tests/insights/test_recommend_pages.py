"""The portal's Recommendations page and the recommendations on the Cost analysis page.

Fabrikam is on Enterprise ($999 a month, tenants unlimited, 100,000 messages) with 8 tenants and 20,000 messages a
month (``tests.insights.test_recommend_worked``): on Business ($299, 10 tenants and 25,000 messages included) its
months cost $299.00, $700.00 a month less (70.07 % of $999.00); Business on annual terms ($3,588 a year less 10 %,
$269.10 a month) a further $29.90 less. Every role reads the advice; owners and admins may request the plan.

Wayne is on Business with one tenant and 16,000, 19,000 then 22,000 messages in September to November: a trend of
3,000 a month, 31,000 expected three months on, past Business's limit of 25,000 in about a month; re-rated at
31,000, November would cost 6,000 × $0.03 = $180.00 more than its $299.00.
"""

from __future__ import annotations

import datetime as dt
import html as html_lib
import re

import pytest
import time_machine
from django.test import Client

from insights.models import Recommendation
from insights.services import recommendations_refresh
from tests.accounts.factories import AccountFactory, AccountUserFactory
from tests.billing.cycle import JAN_1, event, ingest, subscribe
from tests.insights.test_recommend_worked import NOW, messaging_account
from tests.tenants.factories import TenantFactory

pytestmark = pytest.mark.django_db
UTC = dt.UTC
PASSWORD = "portal-pass-123"
OPENED = NOW + dt.timedelta(hours=1)  # Dec 7, 2026 10:00 UTC: recommendations made at 09:00 are fresh
URL = "/portal/recommendations/"
REQUEST_BUSINESS = '<a class="button secondary" href="/portal/plan/change/?plan=messaging-business">'
REQUEST_ANNUAL = '<a class="button secondary" href="/portal/plan/change/?plan=messaging-business-annual">'


@pytest.fixture(autouse=True)
def _frozen_time():
    with time_machine.travel(OPENED, tick=False):
        yield


@pytest.fixture
def fabrikam(plan):
    account = messaging_account(plan, "messaging-enterprise", tenants=8, messages=20_000, name="Fabrikam")
    recommendations_refresh(account=account, now=NOW, months=3)
    return account


@pytest.fixture
def wayne(plan):
    account = AccountFactory(name="Wayne")
    subscribe(account, plan("messaging-business"))
    TenantFactory(account=account, public_id="ten_wayne", name="Wayne Main", activated_at=JAN_1)
    for month, messages in ((9, 16_000), (10, 19_000), (11, 22_000)):
        at = dt.datetime(2026, month, 10, 12, tzinfo=UTC)
        ingest(account, [event(f"w-{month}", "ten_wayne", "messages", messages, at)], now=at)
    recommendations_refresh(account=account, now=NOW, months=3)
    return account


def signed_in(account, role: str) -> Client:
    membership = AccountUserFactory(account=account, role=role)
    client = Client()
    assert client.login(username=membership.user.username, password=PASSWORD)
    return client


def text(html: str) -> str:
    return html_lib.unescape(" ".join(re.sub(r"<[^>]+>", " ", html).split()))


def card(html: str, kind: str) -> str:
    """The words of the first card of ``kind``."""
    match = re.search(rf'<article class="card"[^>]*data-kind="{kind}".*?</article>', html, re.S)
    assert match, f"no {kind} card"
    return text(match.group(0))


@pytest.mark.parametrize("role", ["owner", "admin", "member"])
def test_every_role_sees_the_cards_with_their_figures(fabrikam, role):
    page = signed_in(fabrikam, role).get(URL)

    assert page.status_code == 200
    html = page.content.decode()
    assert '<a href="/portal/recommendations/" aria-current="page">Recommendations</a>' in html
    plan = card(html, "plan")
    assert plan.startswith("Cheaper plan Move to Business: USD 700.00 a month less (70.07 %)")
    assert "USD 700.00 a month less (70.07 %) USD 999.00 → USD 299.00 a month on Business" in plan
    assert "on your terms (Enterprise)" in plan  # the evidence
    assert "Months re-rated: Sep 2026 – Nov 2026 (3 months); re-rated on Dec 7, 2026 at 09:00 UTC" in plan
    annual = card(html, "annual_terms")
    assert "USD 29.90 a month less (10 %) USD 299.00 → USD 269.10 a month on Business (annual)" in annual
    assert "USD 3,229.20 billed a year in advance" in annual
    # The biggest saving first.
    assert html.index('data-kind="plan"') < html.index('data-kind="annual_terms"')
    assert "No limit of your plan is likely to be outgrown in the next three months." in text(html)
    # Fresh recommendations are not re-rated on opening.
    assert set(Recommendation.objects.filter(account=fabrikam).values_list("computed_at", flat=True)) == {NOW}


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_owners_and_admins_may_request_the_plan_advised(fabrikam, role):
    html = signed_in(fabrikam, role).get(URL).content.decode()

    assert html.count(REQUEST_BUSINESS) == 1 and html.count(REQUEST_ANNUAL) == 1
    # The link opens the request page with the plan chosen and previewed.
    change = signed_in(fabrikam, role).get("/portal/plan/change/?plan=messaging-business")
    assert change.status_code == 200
    assert '<option value="messaging-business" selected>Business</option>' in change.content.decode()


def test_a_member_sees_no_request_link(fabrikam):
    html = signed_in(fabrikam, "member").get(URL).content.decode()

    assert "USD 700.00" in html
    assert "Request this plan" not in html and "/portal/plan/change/" not in html


def test_another_accounts_user_sees_none_of_it(fabrikam, catalogue):
    other = AccountFactory(name="Contoso")

    for path in (URL, "/portal/analysis/"):
        html = signed_in(other, "owner").get(path).content.decode()
        assert "USD 700.00" not in html and "Move to Business" not in html and "Fabrikam" not in html
        assert 'data-kind="' not in html
    # Contoso has no subscription: nothing to re-rate, the empty state.
    words = text(signed_in(other, "owner").get(URL).content.decode())
    assert "No recommendations yet." in words and "at least one closed month" in words
    assert not Recommendation.objects.filter(account=other).exists()


def test_an_account_with_a_single_closed_month_reads_the_empty_state(plan):
    # Subscribed on November 1: one closed month, no advice needs fewer than three (and none fits better).
    account = AccountFactory(name="Initech")
    subscribe(account, plan("messaging-startup"), started_at=dt.datetime(2026, 11, 1, tzinfo=UTC))

    page = signed_in(account, "owner").get(URL)

    assert page.status_code == 200
    words = text(page.content.decode())
    assert "No recommendations yet." in words
    assert "Risks" not in words


def test_risks_are_in_their_own_section_with_the_extra_cost_expected(wayne):
    html = signed_in(wayne, "owner").get(URL).content.decode()

    risks = html[html.index('id="risks-heading"') :]
    risk = card(risks, "outgrow_risk")
    assert risk.startswith(
        "Likely to outgrow the plan Messages will pass Business's limit of 25,000 in about 1 month: "
        "31,000 expected in 3 months, USD 180.00 a month more"
    )
    assert "USD 180.00 a month more expected USD 299.00 → USD 479.00 a month at the usage expected" in risk
    assert "Request this plan" not in risk
    # Not among the ways to save.
    assert 'data-kind="outgrow_risk"' not in html[: html.index('id="risks-heading"')]


def test_stale_recommendations_are_re_rated_on_opening(plan):
    account = messaging_account(plan, "messaging-enterprise", tenants=8, messages=20_000, name="Fabrikam")
    recommendations_refresh(account=account, now=NOW - dt.timedelta(days=2), months=3)
    old = set(Recommendation.objects.filter(account=account).values_list("pk", flat=True))

    html = signed_in(account, "member").get(URL).content.decode()

    rows = list(Recommendation.objects.filter(account=account))
    assert rows and not old & {r.pk for r in rows}
    assert {r.computed_at for r in rows} == {OPENED}
    # Re-rated over the last 12 closed months, less those before the account's first usage (September): Enterprise
    # 999.00 a month, Business 299.00, 700.00 less (70.07 %).
    plan_card = card(html, "plan")
    assert "USD 700.00 a month less (70.07 %) USD 999.00 → USD 299.00 a month on Business" in plan_card
    assert "Months re-rated: Sep 2026 – Nov 2026 (3 months); re-rated on Dec 7, 2026 at 10:00 UTC" in plan_card


def test_the_analysis_page_shows_the_top_card_and_the_forecast_summary(fabrikam):
    page = signed_in(fabrikam, "member").get("/portal/analysis/")

    assert page.status_code == 200
    html = page.content.decode()
    assert '<a href="/portal/analysis/" aria-current="page">Analysis</a>' in html
    assert "Move to Business: USD 700.00 a month less (70.07 %)" in card(html, "plan")
    assert html.index('data-kind="plan"') < html.index('data-kind="annual_terms"')
    assert html.count('<article class="card"') <= 3
    assert '<a href="/portal/recommendations/">All recommendations</a>' in html
    # December on Enterprise: its $999.00 base fee; no usage yet, and 100,000 messages included.
    summary = re.search(r'<section class="card"[^>]*id="forecast-summary".*?</section>', html, re.S)
    assert summary and text(summary.group(0)) == (
        "Forecast for December 2026 USD 999.00 expected before tax at the month's end, range USD 999.00 to "
        "USD 999.00 (USD 999.00 so far) The forecast, day by day"
    )
    assert "Request this plan" not in html  # a member


def test_the_analysis_page_reads_the_stored_recommendations_without_re_rating(plan):
    account = messaging_account(plan, "messaging-enterprise", tenants=8, messages=20_000, name="Fabrikam")
    recommendations_refresh(account=account, now=NOW - dt.timedelta(days=2), months=3)
    before = list(Recommendation.objects.filter(account=account).values_list("pk", "computed_at"))

    html = signed_in(account, "owner").get("/portal/analysis/").content.decode()

    assert list(Recommendation.objects.filter(account=account).values_list("pk", "computed_at")) == before
    plan_card = card(html, "plan")
    assert "re-rated on Dec 5, 2026 at 09:00 UTC" in plan_card
    assert REQUEST_BUSINESS in html  # an owner may request it from here too


def test_the_page_needs_a_signed_in_user():
    response = Client().get(URL)
    assert (response.status_code, response["Location"]) == (302, "/portal/login/?next=/portal/recommendations/")
