"""Recommendations worked out by hand: the usage of three closed months (September to November 2026) re-rated
on every plan the account could be on, and the advice it gives, to the cent.

Catalogue prices (billing/catalogue.py): Startup $99 a month, 3 tenants and 5,000 messages included, $29 a
tenant-month and $0.05 a message above; Business $299, 10 tenants and 25,000 messages, $19 and $0.03 above;
Enterprise $999, tenants unlimited, 100,000 messages. Annual Business: $3,588 a year less 10 % = $3,229.20,
$269.10 a month.
"""

import datetime as dt
from decimal import Decimal as D

import pytest

from insights.models import Recommendation
from insights.services import recommendations_refresh
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import JAN_1, event, ingest, subscribe
from tests.tenants.factories import TenantFactory

pytestmark = pytest.mark.django_db
UTC = dt.UTC
NOW = dt.datetime(2026, 12, 7, 9, tzinfo=UTC)
MONTHS = [(2026, 9), (2026, 10), (2026, 11)]
Kind = Recommendation.Kind


def messaging_account(plan, code, *, tenants, messages, name, sending=1):
    """On ``code`` since Jan 1, 2026 with ``tenants`` tenants; each month ``messages`` messages, sent by the first
    ``sending`` tenants (the others send nothing)."""
    account = AccountFactory(name=name)
    subscribe(account, plan(code))
    slug = name.lower().replace(" ", "")
    for i in range(tenants):
        TenantFactory(account=account, public_id=f"ten_{slug}_{i}", name=f"{name} {i}", activated_at=JAN_1)
    for year, month in MONTHS:
        at = dt.datetime(year, month, 10, 12, tzinfo=UTC)
        items = [
            event(f"m-{year}-{month}-{i}", f"ten_{slug}_{i}", "messages", messages // sending, at)
            for i in range(sending)
        ]
        ingest(account, items, now=at)
    return account


def by_kind(account, kind):
    return list(Recommendation.objects.filter(account=account, kind=kind))


def test_enterprise_account_with_8_tenants_and_20000_messages_is_told_business_saves_700(plan):
    account = messaging_account(plan, "messaging-enterprise", tenants=8, messages=20_000, name="Fabrikam")

    recommendations_refresh(account=account, now=NOW, months=3)

    [advice] = by_kind(account, Kind.PLAN)
    assert advice.plan_version.plan.code == "messaging-business"
    # Enterprise $999.00 a month; Business $299.00 (8 of 10 tenants, 20,000 of 25,000 messages included).
    assert (advice.current_monthly, advice.proposed_monthly) == (D("999.00"), D("299.00"))
    assert advice.saving_monthly == D("700.00")
    assert advice.saving_percent == D("70.07")  # 700 / 999
    assert advice.details["current"] == ["999.00", "999.00", "999.00"]
    assert advice.details["proposed"] == ["299.00", "299.00", "299.00"]
    assert "Sep 2026 – Nov 2026 (3 months)" in advice.evidence
    assert (advice.months_start, advice.months_end) == (dt.date(2026, 9, 1), dt.date(2026, 12, 1))
    # Annual Business: $269.10 a month, $29.90 below Business, $3,229.20 billed a year in advance.
    [annual] = by_kind(account, Kind.ANNUAL_TERMS)
    assert annual.plan_version.plan.code == "messaging-business-annual"
    assert (annual.current_monthly, annual.proposed_monthly, annual.saving_monthly) == (
        D("299.00"),
        D("269.10"),
        D("29.90"),
    )
    assert annual.details["billed_in_advance"] == "3229.20"
    assert annual.details["saving_against_current"] == "729.90"


def test_startup_account_with_7_tenants_and_10000_messages_is_told_business_saves_166(plan):
    account = messaging_account(plan, "messaging-startup", tenants=7, messages=10_000, name="Contoso")

    recommendations_refresh(account=account, now=NOW, months=3)

    [advice] = by_kind(account, Kind.PLAN)
    assert advice.plan_version.plan.code == "messaging-business"
    # Startup: $99 + 4 tenants × $29 + 5,000 messages × $0.05 = $465.00; Business $299.00.
    assert (advice.current_monthly, advice.proposed_monthly, advice.saving_monthly) == (
        D("465.00"),
        D("299.00"),
        D("166.00"),
    )
    assert advice.saving_percent == D("35.70")  # 166 / 465
    # 7 tenants of 3 included (233 %), 10,000 messages of 5,000 (200 %): far above the allowances.
    [right_size] = by_kind(account, Kind.RIGHT_SIZE)
    assert right_size.details["direction"] == "over"
    assert set(right_size.details["metrics"]) == {"tenants", "messages"}
    assert "$" not in right_size.title and "USD 366.00 a month above the allowance" in right_size.title  # 116 + 250


def test_an_idle_tenant_still_billed_is_flagged_with_its_tenant_month(plan):
    # Startup with 4 tenants, one above the 3 included at $29 a tenant-month; ten_contoso_3 has sent nothing.
    account = messaging_account(plan, "messaging-startup", tenants=4, messages=3_000, name="Contoso", sending=3)

    recommendations_refresh(account=account, now=NOW, months=3)

    [idle] = by_kind(account, Kind.IDLE_TENANT)
    assert idle.tenant.public_id == "ten_contoso_3"
    assert idle.saving_monthly == D("29.00")
    assert idle.title == (
        "Archive tenant Contoso 3 (ten_contoso_3): no usage recorded in the last 12 months, USD 29.00 a month"
    )
    # Startup with 4 tenants and 3,000 messages: $99 + $29 = $128.00 a month; without the tenant $99.00.
    assert (idle.current_monthly, idle.proposed_monthly) == (D("128.00"), D("99.00"))
    assert idle.saving_percent == D("22.66")  # 29 / 128


def test_a_premium_feature_billed_in_one_month_of_four_is_flagged(plan):
    # Basic: $50 a month, no premium feature included, $10 a feature-month. "sso" is used every month, "exports"
    # in September only: dropping it would have saved $10 of the four months' $250 + $10, $2.50 a month.
    account = AccountFactory(name="Tailspin")
    subscribe(account, plan("platform-basic"))
    TenantFactory(account=account, public_id="ten_tailspin", activated_at=JAN_1)
    for year, month in [(2026, 8), *MONTHS]:
        at = dt.datetime(year, month, 10, 12, tzinfo=UTC)
        items = [event(f"sso-{month}", "ten_tailspin", "premium_features", 1, at, feature="sso")]
        if month == 9:
            items.append(event("exports-9", "ten_tailspin", "premium_features", 1, at, feature="exports"))
        ingest(account, items, now=at)

    recommendations_refresh(account=account, now=NOW, months=4)

    [feature] = by_kind(account, Kind.FEATURE)
    assert feature.details == {"feature": "exports", "months_used": ["2026-09"]}
    assert feature.saving_monthly == D("2.50")
    # $60, $70, $60, $60: $62.50 a month on average; $60.00 without "exports".
    assert (feature.current_monthly, feature.proposed_monthly) == (D("62.50"), D("60.00"))
    assert feature.title == (
        "Premium feature “exports” is barely used: used in 1 of 4 months, USD 2.50 a month on average"
    )
