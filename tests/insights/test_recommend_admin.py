"""The admin's recommendations: the book's biggest opportunities, read-only for every staff member who reads them,
the risks on their own, and "Re-rate these accounts now" (billing staff and finance admins), audited in the
account's history.

Fabrikam is on Enterprise ($999 a month, tenants unlimited, 100,000 messages) with 8 tenants and 20,000 messages a
month (``tests.insights.test_recommend_worked``): Business ($299, 10 tenants and 25,000 messages included) saves
$700.00 a month, 70.07 % of $999.00 (and Enterprise's allowances are far above its use: right-sizing to Business
saves the same); Business on annual terms ($269.10 a month) a further $29.90. Its 7 tenants that send nothing
cost nothing on Enterprise: idle, but no saving, so not among the opportunities.

Wayne is on Business with one tenant and 16,000, 19,000 then 22,000 messages in September to November: a trend
of 3,000 a month, 31,000 expected three months on, past Business's limit of 25,000 in about a month; re-rated at
31,000, November costs 6,000 × $0.03 = $180.00 more than its $299.00. Annual terms would save it $29.90 a month.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.test import Client

from accounts.permissions import BILLING_STAFF, FINANCE_ADMIN
from common.errors import BillingError
from insights.models import Recommendation
from insights.services import ERR_RERATE_DENIED, recommendations_refresh, recommendations_rerate
from tests.accounts.factories import AccountFactory, AccountUserFactory, StaffUserFactory
from tests.admin_html import table_rows
from tests.billing.cycle import JAN_1, event, ingest, subscribe
from tests.insights.test_recommend_worked import NOW, messaging_account
from tests.tenants.factories import TenantFactory

pytestmark = pytest.mark.django_db
UTC = dt.UTC
OPENED = NOW + dt.timedelta(hours=1)  # Dec 7, 2026 10:00 UTC
URL = "/admin/insights/recommendation/"
Kind = Recommendation.Kind
FABRIKAM_PLAN = [
    "Fabrikam",
    "Cheaper plan",
    "Move to Business: USD 700.00 a month less (70.07 %)",
    "USD 700.00",
    "70.07 %",
    "2026-09 – 2026-11 (3 months)",
    "2026-12-07 09:00 UTC",
]


@pytest.fixture(autouse=True)
def _frozen_time():
    with time_machine.travel(OPENED, tick=False):
        yield


@pytest.fixture
def book(plan):
    fabrikam = messaging_account(plan, "messaging-enterprise", tenants=8, messages=20_000, name="Fabrikam")
    recommendations_refresh(account=fabrikam, now=NOW, months=3)
    wayne = AccountFactory(name="Wayne")
    subscribe(wayne, plan("messaging-business"))
    TenantFactory(account=wayne, public_id="ten_wayne", name="Wayne Main", activated_at=JAN_1)
    for month, messages in ((9, 16_000), (10, 19_000), (11, 22_000)):
        at = dt.datetime(2026, month, 10, 12, tzinfo=UTC)
        ingest(wayne, [event(f"w-{month}", "ten_wayne", "messages", messages, at)], now=at)
    recommendations_refresh(account=wayne, now=NOW, months=3)
    return {"fabrikam": fabrikam, "wayne": wayne}


def staff(who: str) -> Client:
    if who == "superuser":
        user = StaffUserFactory(is_superuser=True)
    else:
        user = StaffUserFactory(groups=[Group.objects.get(name=BILLING_STAFF if who == "billing" else FINANCE_ADMIN)])
    client = Client()
    client.force_login(user)
    client.user = user
    return client


def rows(html: str) -> list[list[str]]:
    """The changelist's rows without the action checkbox's cell; the account cell reads "Name (acc_…)", cut to
    the name."""
    return [[row[1].split(" (acc_")[0], *row[2:]] for row in table_rows(html, "result_list")]


@pytest.mark.parametrize("who", ["superuser", "billing", "finance"])
def test_staff_read_the_books_biggest_opportunities_first(book, who):
    page = staff(who).get(URL)

    assert page.status_code == 200
    html = page.content.decode()
    listed = rows(html)
    assert listed[0] == FABRIKAM_PLAN
    # Enterprise's allowances are far above Fabrikam's use: Business is sized for it, the same $700.00. Then
    # annual terms, $29.90 a month for both (Fabrikam's on top of Business). No risk, no row without a saving.
    assert [(r[0], r[1], r[3], r[4]) for r in listed[1:]] == [
        ("Fabrikam", "Right-sizing", "USD 700.00", "70.07 %"),
        ("Fabrikam", "Annual terms", "USD 29.90", "10.00 %"),
        ("Wayne", "Annual terms", "USD 29.90", "10.00 %"),
    ]
    fabrikam = book["fabrikam"]
    assert f'href="/admin/accounts/account/{fabrikam.pk}/change/">Fabrikam ({fabrikam.public_id})</a>' in html
    assert "Re-rate these accounts now" in html


def test_the_risks_filter_lists_the_accounts_likely_to_outgrow_their_plan(book):
    html = staff("billing").get(URL, {"show": "risks"}).content.decode()

    assert rows(html) == [
        [
            "Wayne",
            "Likely to outgrow the plan",
            "Messages will pass Business's limit of 25,000 in about 1 month: 31,000 expected in 3 months, "
            "USD 180.00 a month more",
            "USD 180.00",
            "–",
            "2026-09 – 2026-11 (3 months)",
            "2026-12-07 09:00 UTC",
        ]
    ]
    assert "Fabrikam" not in html


def test_search_and_the_kind_filter(book):
    client = staff("finance")
    assert [r[0] for r in rows(client.get(URL, {"q": book["wayne"].public_id}).content.decode())] == ["Wayne"]
    assert rows(client.get(URL, {"q": "Move to Business"}).content.decode()) == [FABRIKAM_PLAN]
    annual = rows(client.get(URL, {"kind__exact": "annual_terms"}).content.decode())
    assert [(r[0], r[3]) for r in annual] == [("Fabrikam", "USD 29.90"), ("Wayne", "USD 29.90")]


def test_a_recommendations_page_shows_its_evidence_and_details(book):
    advice = Recommendation.objects.get(account=book["fabrikam"], kind=Kind.PLAN)

    page = staff("billing").get(f"{URL}{advice.pk}/change/")

    assert page.status_code == 200
    html = page.content.decode()
    assert "Your usage of Sep 2026 – Nov 2026 (3 months) re-rated by our billing engine" in html
    assert "on Business USD 299.00, USD 299.00, USD 299.00" in html
    assert '<pre id="recommendation-details">{\n  &quot;compared&quot;: {' in html
    assert (
        "&quot;current&quot;: [\n    &quot;999.00&quot;,\n    &quot;999.00&quot;,\n    &quot;999.00&quot;\n  ]" in html
    )
    assert "USD 999.00" in html and "USD 299.00" in html and "USD 700.00" in html
    assert 'name="_save"' not in html and "<textarea" not in html  # nothing to edit


@pytest.mark.parametrize("who", ["superuser", "billing", "finance"])
def test_nobody_adds_changes_or_deletes_a_recommendation(book, who):
    client = staff(who)
    advice = Recommendation.objects.get(account=book["fabrikam"], kind=Kind.PLAN)

    assert client.get(f"{URL}add/").status_code == 403
    assert client.post(f"{URL}add/", {"title": "Free money"}).status_code == 403
    changed = client.post(f"{URL}{advice.pk}/change/", {"title": "Free money", "saving_monthly": "1000000"})
    assert changed.status_code == 403
    assert client.get(f"{URL}{advice.pk}/delete/").status_code == 403
    assert client.post(f"{URL}{advice.pk}/delete/", {"post": "yes"}).status_code == 403
    assert "delete_selected" not in client.get(URL).content.decode()
    advice.refresh_from_db()
    assert (advice.title, advice.saving_monthly) == ("Move to Business: USD 700.00 a month less (70.07 %)", D("700"))


def test_a_customer_never_reaches_them(book):
    membership = AccountUserFactory(account=book["fabrikam"], role="owner")
    client = Client()
    client.force_login(membership.user)
    advice = Recommendation.objects.filter(account=book["fabrikam"]).first()
    for url in (URL, f"{URL}{advice.pk}/change/", f"{URL}?show=risks"):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_staff_without_a_group_neither_read_nor_re_rate_them(book):
    user = StaffUserFactory()
    client = Client()
    client.force_login(user)
    assert client.get(URL).status_code == 403
    old = set(Recommendation.objects.values_list("pk", flat=True))
    entries = book["wayne"].history.count()

    with pytest.raises(BillingError) as refused:
        recommendations_rerate(account=book["wayne"], actor=user)

    assert (refused.value.message, refused.value.status) == (ERR_RERATE_DENIED, 403)
    assert set(Recommendation.objects.values_list("pk", flat=True)) == old
    assert book["wayne"].history.count() == entries


@pytest.mark.parametrize("who", ["billing", "finance"])
def test_re_rating_replaces_the_rows_and_is_recorded_in_the_accounts_history(book, who):
    fabrikam, wayne = book["fabrikam"], book["wayne"]
    client = staff(who)
    # Fabrikam's first tenant sent its 20,000 messages every month since January, so the re-rating starts there.
    for month in range(1, 9):
        at = dt.datetime(2026, month, 10, 12, tzinfo=UTC)
        ingest(fabrikam, [event(f"m-2026-{month}-0", "ten_fabrikam_0", "messages", 20_000, at)], now=at)
    old = set(Recommendation.objects.values_list("pk", flat=True))
    # Both of Fabrikam's opportunities and Wayne's risk: two accounts.
    selected = list(Recommendation.objects.filter(account=fabrikam, kind__in=[Kind.PLAN, Kind.ANNUAL_TERMS]))
    selected.append(Recommendation.objects.get(account=wayne, kind=Kind.OUTGROW_RISK))

    response = client.post(
        f"{URL}?show=all",
        {"action": "rerate_now", "_selected_action": [r.pk for r in selected], "index": 0},
        follow=True,
    )

    assert response.status_code == 200
    new = list(Recommendation.objects.all())
    assert new and not old & {r.pk for r in new}
    assert {r.computed_at for r in new} == {OPENED}
    # Re-rated as the nightly run does: the last 12 closed months, back to January 2026 (subscribed on the 1st, used
    # since the 10th), so January to November, 11 months. On its own terms Enterprise's 60-day trial leaves January
    # and February free and bills March from the 2nd, $999 × 30/31 = $966.77; with eight months at $999.00,
    # $8,958.77 in all, $814.43 a month. Business at list price: $299.00 every month, $515.43 a month less.
    plan = Recommendation.objects.get(account=fabrikam, kind=Kind.PLAN)
    assert (plan.months_start, plan.months_end) == (dt.date(2026, 1, 1), dt.date(2026, 12, 1))
    assert (plan.current_monthly, plan.proposed_monthly, plan.saving_monthly) == (
        D("814.43"),
        D("299.00"),
        D("515.43"),
    )
    words = [str(m) for m in response.context["messages"]]
    assert words == [f"2 accounts re-rated: {len(new)} recommendations now."]
    for account in (fabrikam, wayne):
        entry = account.history.order_by("-history_id").first()
        written = Recommendation.objects.filter(account=account).count()
        assert (entry.history_type, entry.history_user, entry.history_date) == ("~", client.user, OPENED)
        assert entry.history_change_reason == f"recommendations re-rated: {written} written"
        assert entry.diff_against(entry.prev_record).changes == []
    history = client.get(f"/admin/accounts/account/{wayne.pk}/history/").content.decode()
    assert "recommendations re-rated:" in history and client.user.username in history


def test_the_cost_analysis_page_links_to_the_accounts_recommendations(book):
    fabrikam = book["fabrikam"]
    client = staff("billing")
    count = Recommendation.objects.filter(account=fabrikam).count()

    page = client.get(f"/admin/insights/accountcostanalysis/{fabrikam.pk}/change/").content.decode()

    link = f"{URL}?account__id__exact={fabrikam.pk}"
    assert f'<a id="analysis-recommendations" href="{link}">Recommendations of the last re-rating ({count})</a>' in (
        page
    )
    # The account's list has all of them: the advice and its idle tenants, which save nothing on Enterprise.
    html = client.get(link).content.decode()
    assert f"<h1>Recommendations: Fabrikam ({fabrikam.public_id})</h1>" in html
    listed = rows(html)
    assert len(listed) == count == 10  # plan, right-sizing, annual terms, 7 idle tenants
    assert {r[0] for r in listed} == {"Fabrikam"}
    assert listed[0] == FABRIKAM_PLAN
    assert [r[1] for r in listed].count("Idle tenant") == 7
