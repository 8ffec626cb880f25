"""From a recommendation to a plan-change request, in real Chromium: Fabrikam's owner opens the Cost analysis page,
reads that Business would have cost USD 700.00 a month less, follows "Request this plan" to the plan-change
request page with Business chosen, and asks for it; the move waits for approval by billing staff (a downgrade).

Fabrikam is on Enterprise (USD 999.00 a month, tenants unlimited, 100,000 messages included) with 8 tenants and
20,000 messages a month in September to November (``tests.insights.test_recommend_worked``): on Business
(USD 299.00, 10 tenants and 25,000 messages included) those months cost USD 299.00 each, 700.00 a month less
(70.07 % of 999.00).
"""

import datetime as dt

import pytest
from playwright.sync_api import expect

from accounts.services import account_user_create
from billing.models import PlanChangeRequest
from common import clock
from insights.services import recommendations_refresh
from tests.insights.test_recommend_worked import NOW, messaging_account

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]
PASSWORD = "portal-pass-123"
OPENED = NOW + dt.timedelta(hours=1)  # the recommendations of 09:00 are fresh at 10:00


def test_an_owner_follows_a_recommendation_to_a_plan_change_request(live_server, page, plan, artifacts):
    account = messaging_account(plan, "messaging-enterprise", tenants=8, messages=20_000, name="Fabrikam")
    recommendations_refresh(account=account, now=NOW, months=3)
    account_user_create(account=account, email="owner@fabrikam.example", role="owner", password=PASSWORD)
    clock.clock_set(at=OPENED, allow_backwards=True)
    base = live_server.url

    page.goto(f"{base}/portal/login/")
    page.get_by_label("E-mail address").fill("owner@fabrikam.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Analysis").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Cost analysis")
    expect(nav.get_by_role("link", name="Analysis")).to_have_attribute("aria-current", "page")

    # The biggest saving first: Business, USD 700.00 a month less.
    advice = page.locator('#savings article[data-kind="plan"]')
    expect(advice.get_by_role("heading", level=3)).to_have_text("Move to Business: USD 700.00 a month less (70.07 %)")
    expect(advice.locator(".saving")).to_have_text("USD 700.00 a month less (70.07 %)")
    expect(advice.locator(".change")).to_have_text("USD 999.00 → USD 299.00 a month on Business")
    expect(advice).to_contain_text("Months re-rated: Sep 2026 – Nov 2026 (3 months)")
    expect(page.locator("#savings article").first).to_have_attribute("data-kind", "plan")
    expect(page.locator("#forecast-summary")).to_contain_text("Forecast for December 2026")
    page.screenshot(path=str(artifacts / "portal-analysis-recommendations.png"), full_page=True)

    # … follows it to the request page, Business chosen and previewed for a change now.
    advice.get_by_role("link", name="Request this plan").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Change plan")
    expect(page.get_by_label("New plan")).to_have_value("messaging-business")
    expect(page.get_by_label("Now: both plans are prorated on this month's invoice")).to_be_checked()
    expect(page.locator("#preview-heading")).to_have_text("Preview: Enterprise → Business")
    expect(page.locator("#preview-approval")).to_have_text("It waits for approval by our billing team")
    page.get_by_label("Note for our billing team (optional)").fill("As the cost analysis recommends.")
    page.get_by_role("button", name="Request change").click()

    # The request is confirmed on the Plan page.
    expect(page.get_by_role("heading", level=1)).to_have_text("Plan")
    change = PlanChangeRequest.objects.select_related("from_version__plan", "to_version__plan").get()
    expect(page.locator(".messages[role=status]")).to_have_text(
        f"Plan change {change.public_id} requested: Enterprise → Business. Waiting for approval by our billing team."
    )
    expect(page.locator("#open-change-state")).to_have_text("Waiting for approval")
    page.screenshot(path=str(artifacts / "portal-recommendation-requested.png"), full_page=True)
    assert change.account_id == account.pk
    assert change.from_version.plan.code == "messaging-enterprise"
    assert change.to_version == plan("messaging-business")
    assert (change.state, change.channel, change.note) == ("pending", "portal", "As the cost analysis recommends.")
