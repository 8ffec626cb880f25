"""Efficiency metrics (``insights.efficiency``): allowances used, idle tenants and master partners still billed,
paid premium features barely used, storage growth and the overage share of the bill, worked by hand on the
account of ``tests.insights.test_analysis_worked`` (November 2026) and on an account with an idle tenant."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest

from billing.models import PlanCharge
from billing.services.catalogue import ChargeSpec
from common.periods import month_period
from insights.analysis import cost_analysis
from insights.efficiency import efficiency, feature_usage, idle_sources
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import JAN_1, event, ingest, subscribe
from tests.billing.factories import PlanVersionFactory
from tests.insights.test_analysis_worked import DEC_10, NOV, OCT, worked_account
from tests.tenants.factories import MasterPartnerFactory, TenantFactory

pytestmark = pytest.mark.django_db
UTC = dt.UTC


@pytest.fixture
def worked(catalogue):
    account = worked_account()
    analysis = cost_analysis(account=account, start_month=OCT, end_month=NOV, now=DEC_10)
    return account, efficiency(account=account, analysis=analysis, now=DEC_10)


def test_allowance_use_per_metric(worked):
    _, result = worked
    assert result.month == NOV
    # 3 active users of 8 included: 37.5 %; messages 3,800 of 1,000; storage 3 of 1; features 2 of 1.
    assert [(a.metric_code, a.used, a.included, a.percent, a.over) for a in result.allowances] == [
        ("messages", D("3800"), D("1000"), D("380.0"), D("2800")),
        ("premium_features", D("2"), D("1"), D("200.0"), D("1")),
        ("storage_gb", D("3"), D("1"), D("300.0"), D("2")),
        ("active_users", D("3"), D("8"), D("37.5"), D("0")),
    ]


def test_overage_share_of_the_bill(worked):
    _, result = worked
    # Usage charges 28.00 + 10.00 + 4.00 + 1.50 + 0.00 = 43.50 of a 143.50 subtotal: 30.3 %.
    assert (result.overage.overage, result.overage.subtotal, result.overage.percent) == (
        D("43.50"),
        D("143.50"),
        D("30.3"),
    )


def test_storage_growth_month_over_month(worked):
    _, result = worked
    assert [(s.month, s.average_gb, s.growth_percent) for s in result.storage] == [
        (OCT, D("2.00"), None),
        (NOV, D("3.00"), D("50.0")),
    ]


def test_a_paid_premium_feature_barely_used_is_flagged(worked):
    account, result = worked
    assert [(f.feature, f.paid, f.cost, f.flag) for f in result.features] == [
        ("audit", True, D("10.00"), "barely_used"),
        ("sso", False, D("0"), ""),
    ]
    assert result.features[0].reason == "Paid for (USD 10.00) in November 2026 and used on 1 day (1 event)."
    again = feature_usage(account=account, period=month_period(2026, 11), now=DEC_10)
    assert [(f.feature, f.flag) for f in again] == [("audit", "barely_used"), ("sso", "")]


def test_no_tenant_of_the_worked_account_is_idle(worked):
    # Alpha last used it on November 12, Beta and Xpress on November 10: under 30 days before December 10.
    assert worked[1].idle == []


@pytest.fixture
def idle_account(catalogue):
    """Messages at $0.01 (none included) and tenants at $5.00 a tenant-month beyond 1 included. ten_busy sends
    100 messages for prt_busy on December 5; ten_idle last sent one on October 20 at 10:00; ten_new started on
    December 1 and has sent nothing yet; prt_idle never had usage. On December 10 the running month bills 3
    tenants, 2 beyond the allowance: $10.00, a third each (3.34 to the first tenant, 3.33 to the others)."""
    account = AccountFactory(name="Initech")
    version = PlanVersionFactory(
        base_fee=D("20.00"),
        charges=[
            ChargeSpec("messages", included_quantity=D("0"), pricing_model=PlanCharge.PricingModel.PER_UNIT,
                       unit_price=D("0.01")),
            ChargeSpec("tenants", included_quantity=D("1"), pricing_model=PlanCharge.PricingModel.PER_UNIT,
                       unit_price=D("5.00")),
        ],
    )  # fmt: skip
    subscribe(account, version, at=dt.datetime(2026, 10, 1, tzinfo=UTC))
    TenantFactory(account=account, public_id="ten_busy", name="Busy", activated_at=JAN_1)
    TenantFactory(account=account, public_id="ten_idle", name="Idle shop", activated_at=JAN_1)
    TenantFactory(account=account, public_id="ten_new", name="New", activated_at=dt.datetime(2026, 12, 1, tzinfo=UTC))
    MasterPartnerFactory(account=account, public_id="prt_busy", name="Busy partner", activated_at=JAN_1)
    MasterPartnerFactory(account=account, public_id="prt_idle", name="Quiet partner", activated_at=JAN_1)
    ingest(
        account,
        [event("old-1", "ten_idle", "messages", 1, "2026-10-20T10:00:00Z")],
        now=dt.datetime(2026, 10, 21, tzinfo=UTC),
    )
    ingest(
        account,
        [event("dec-1", "ten_busy", "messages", 100, "2026-12-05T10:00:00Z", partner_id="prt_busy")],
        now=dt.datetime(2026, 12, 6, tzinfo=UTC),
    )
    return account


def test_an_idle_tenant_and_partner_still_billed_are_flagged(idle_account):
    idle = idle_sources(account=idle_account, now=DEC_10)
    assert [(s.kind, s.public_id, s.name, s.idle_days, s.monthly_cost, s.billed_as) for s in idle] == [
        ("tenant", "ten_idle", "Idle shop", 50, D("3.33"), ["Active tenants"]),
        ("partner", "prt_idle", "Quiet partner", 343, D("0"), []),
    ]
    assert idle[0].last_usage_at == dt.datetime(2026, 10, 20, 10, tzinfo=UTC)
    assert idle[1].last_usage_at is None


def test_the_idle_window_is_a_parameter(idle_account):
    # Over 60 days, the tenant idle for 50 is not flagged; over 7, the new tenant (9 days, no usage) is.
    assert [s.public_id for s in idle_sources(account=idle_account, now=DEC_10, days=60)] == ["prt_idle"]
    assert [s.public_id for s in idle_sources(account=idle_account, now=DEC_10, days=7)] == [
        "ten_idle",
        "ten_new",
        "prt_idle",
    ]
