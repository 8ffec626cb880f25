"""Database constraints hold even when the service layer is bypassed."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from accounts.models import Account, Budget
from billing.models import Plan, PlanCharge, PlanVersion, PriceTier, Subscription
from billing.services.catalogue import ChargeSpec, TierSpec, plan_charge_set_tiers, plan_version_create
from common.errors import BillingError
from tenants.models import Tenant
from tests.accounts.factories import AccountFactory
from tests.billing.factories import PlanFactory, PlanVersionFactory
from usage.models import Metric

pytestmark = pytest.mark.django_db

D = Decimal
UTC = dt.UTC


def violates(constraint_name):
    return pytest.raises(IntegrityError, match=constraint_name)


@pytest.fixture
def tiered_charge(catalogue):
    version = plan_version_create(
        plan=PlanFactory(),
        currency="USD",
        base_fee=D("0"),
        charges=[
            ChargeSpec(
                "messages",
                pricing_model=PlanCharge.PricingModel.GRADUATED,
                tiers=[TierSpec(D("0"), D("1000"), D("0.05")), TierSpec(D("1000"), None, D("0.03"))],
            ),
        ],
    )
    return version.charges.get()


def test_overlapping_tiers_are_rejected_by_the_database(tiered_charge):
    with transaction.atomic(), violates("price_tier_no_overlap"):
        PriceTier.objects.create(
            charge=tiered_charge, lower_bound=D("500"), upper_bound=D("1500"), unit_price=D("0.04")
        )


def test_tiers_of_different_charges_may_share_ranges(tiered_charge, catalogue):
    other = plan_version_create(
        plan=PlanFactory(),
        currency="USD",
        base_fee=D("0"),
        charges=[
            ChargeSpec(
                "messages",
                pricing_model=PlanCharge.PricingModel.VOLUME,
                tiers=[TierSpec(D("0"), D("1000"), D("0.02")), TierSpec(D("1000"), None, D("0.01"))],
            ),
        ],
    ).charges.get()
    assert other.tiers.count() == 2


def test_tier_upper_bound_must_exceed_lower(tiered_charge):
    with transaction.atomic(), violates("price_tier_bounds_ordered"):
        PriceTier.objects.create(
            charge=tiered_charge, lower_bound=D("5000"), upper_bound=D("5000"), unit_price=D("0.01")
        )


@pytest.mark.parametrize(
    "tiers, code",
    [
        ([], "tiers_empty"),
        ([TierSpec(D("1"), None, D("1"))], "tiers_start"),
        ([TierSpec(D("0"), D("10"), D("1")), TierSpec(D("20"), None, D("1"))], "tiers_gap"),
        ([TierSpec(D("0"), D("10"), D("1")), TierSpec(D("5"), None, D("1"))], "tiers_gap"),
        ([TierSpec(D("0"), D("10"), D("1"))], "tiers_open_end"),
        ([TierSpec(D("0"), None, D("1")), TierSpec(D("10"), None, D("1"))], "tiers_open_end"),
    ],
)
def test_service_refuses_tier_ladders_with_gaps_overlaps_or_open_ends(catalogue, tiers, code):
    version = plan_version_create(
        plan=PlanFactory(),
        currency="USD",
        base_fee=D("0"),
        charges=[
            ChargeSpec(
                "messages", pricing_model=PlanCharge.PricingModel.GRADUATED, tiers=[TierSpec(D("0"), None, D("0.05"))]
            ),
        ],
    )
    charge = version.charges.get()
    with pytest.raises(BillingError) as exc:
        plan_charge_set_tiers(charge=charge, tiers=tiers)
    assert exc.value.code == code
    assert list(charge.tiers.values_list("lower_bound", "upper_bound")) == [(D("0"), None)]


def test_published_versions_are_frozen(tiered_charge):
    version = tiered_charge.plan_version
    from billing.services.catalogue import plan_version_publish, plan_version_update

    plan_version_publish(plan_version=version)
    with pytest.raises(BillingError) as exc:
        plan_version_update(plan_version=version, data={"base_fee": D("1.00")})
    assert exc.value.code == "plan_version_published"
    version.refresh_from_db()
    assert version.base_fee == D("0")


def test_per_unit_charge_needs_a_price(catalogue):
    version = PlanVersionFactory(publish=False)
    with transaction.atomic(), violates("plan_charge_per_unit_has_price"):
        PlanCharge.objects.create(
            plan_version=version, metric=Metric.objects.get(code="messages"), pricing_model="per_unit", unit_price=None
        )


def test_subscription_period_must_end_after_it_starts(catalogue, plan):
    account = AccountFactory()
    start = dt.datetime(2026, 10, 1, tzinfo=UTC)
    with transaction.atomic(), violates("subscription_period_ordered"):
        Subscription.objects.create(
            public_id="sub_999999",
            account=account,
            plan_version=plan("messaging-business"),
            started_at=start,
            current_period_start=start,
            current_period_end=start,
        )


def test_one_live_subscription_per_account(catalogue, plan):
    account = AccountFactory()
    start = dt.datetime(2026, 10, 1, tzinfo=UTC)
    end = dt.datetime(2026, 11, 1, tzinfo=UTC)
    fields = dict(
        account=account,
        plan_version=plan("messaging-business"),
        started_at=start,
        current_period_start=start,
        current_period_end=end,
    )
    Subscription.objects.create(public_id="sub_900001", **fields)
    with transaction.atomic(), violates("subscription_one_live_per_account"):
        Subscription.objects.create(public_id="sub_900002", **fields)


def test_tenant_cannot_be_archived_before_activation():
    account = AccountFactory()
    start = dt.datetime(2026, 10, 1, tzinfo=UTC)
    with transaction.atomic(), violates("tenant_archived_after_activated"):
        Tenant.objects.create(
            account=account, public_id="ten_x", name="X", status="archived", activated_at=start, archived_at=start
        )


@pytest.mark.parametrize("currency", ["", "XYZ"])
def test_account_currency_must_be_present_and_supported(currency):
    with transaction.atomic(), violates("account_currency_supported"):
        Account.objects.create(
            public_id="acc_999999", name="No currency", currency=currency, billing_emails=["a@example.com"]
        )


def test_plan_version_and_budget_need_a_currency(catalogue):
    plan = PlanFactory()
    with transaction.atomic(), violates("plan_version_currency_supported"):
        PlanVersion.objects.create(plan=plan, version=1, currency="", base_fee=D("1"))
    with transaction.atomic(), violates("budget_currency_supported"):
        Budget.objects.create(account=AccountFactory(), name="b", amount=D("1"), currency="", alert_thresholds=[100])


def test_plan_version_needs_a_price_unless_on_request(catalogue):
    plan = PlanFactory()
    with transaction.atomic(), violates("plan_version_priced"):
        PlanVersion.objects.create(plan=plan, version=1, currency="USD", base_fee=None, price_on_request=False)


def test_custom_plans_belong_to_exactly_one_account():
    with transaction.atomic(), violates("plan_custom_iff_account"):
        Plan.objects.create(code="custom-x", name="X", product="messaging", kind="custom", account=None)


def test_reverse_charge_requires_a_tax_id():
    with transaction.atomic(), violates("account_reverse_charge_has_tax_id"):
        Account.objects.create(
            public_id="acc_999998",
            name="EU",
            currency="EUR",
            billing_emails=["a@example.com"],
            tax_reverse_charge=True,
            tax_id="",
        )


def test_budget_amount_must_be_positive():
    with transaction.atomic(), violates("budget_amount_positive"):
        Budget.objects.create(account=AccountFactory(), name="b", amount=D("0"), currency="USD", alert_thresholds=[100])
