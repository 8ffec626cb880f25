"""The standard catalogue, figure by figure, as sold."""

from decimal import Decimal

import pytest

from billing.models import Plan, PlanCharge
from billing.services.catalogue_loader import catalogue_load
from usage.models import Metric

pytestmark = pytest.mark.django_db

D = Decimal


def charges(version):
    return {c.metric.code: c for c in version.charges.select_related("metric")}


def test_loading_twice_creates_nothing_the_second_time(catalogue):
    again = catalogue_load()
    assert (again.metrics_created, again.plans_created) == (0, 0)
    assert Plan.objects.count() == 10
    assert Metric.objects.count() == 7


def test_metrics_measure_as_documented(catalogue):
    m = {x.code: x for x in Metric.objects.all()}
    assert (m["api_requests"].aggregation, m["api_requests"].billing_unit) == ("sum", "per_thousand")
    assert m["api_requests"].price_unit_size == D(1000)
    assert (m["storage_gb"].aggregation, m["storage_gb"].billing_unit) == ("time_weighted", "per_gb_month")
    assert (m["active_users"].aggregation, m["active_users"].aggregation_property) == ("unique_count", "user_id")
    assert m["active_users"].billing_unit == "per_user_month"
    assert (m["premium_features"].aggregation_property, m["premium_features"].billing_unit) == (
        "feature",
        "per_feature_month",
    )
    assert (m["messages"].aggregation, m["messages"].billing_unit) == ("sum", "per_unit")
    assert (m["tenants"].source, m["tenants"].billing_unit) == ("tenants", "per_tenant_month")
    assert m["master_partners"].source == "partners"


@pytest.mark.parametrize(
    "code, base_fee, storage_gb, users, api_per_hour",
    [
        ("platform-basic", D("50.00"), D("1"), D("50"), D("5000")),
        ("platform-professional", D("200.00"), D("10"), D("200"), D("20000")),
    ],
)
def test_tenant_platform_plans(plan, code, base_fee, storage_gb, users, api_per_hour):
    version = plan(code)
    assert version.base_fee == base_fee
    assert version.currency == "USD"
    assert version.is_published
    c = charges(version)
    assert (c["storage_gb"].included_quantity, c["storage_gb"].limit) == (storage_gb, storage_gb)
    assert (c["active_users"].included_quantity, c["active_users"].limit) == (users, users)
    assert (c["api_requests"].limit, c["api_requests"].limit_window) == (api_per_hour, "hour")


def test_tenant_platform_enterprise_is_priced_on_request(plan):
    version = plan("platform-enterprise")
    assert version.price_on_request is True
    assert version.base_fee is None
    c = charges(version)
    assert c["storage_gb"].included_quantity == D("100")
    assert c["active_users"].included_quantity == D("1000")
    assert c["api_requests"].limit == D("100000")
    assert "All features" in version.features
    assert version.support_level == "Dedicated support"


def test_tenant_platform_overage_rates(plan):
    basic = charges(plan("platform-basic"))
    assert basic["storage_gb"].unit_price == D("2.00")
    assert basic["active_users"].unit_price == D("2.00")
    assert basic["api_requests"].unit_price == D("0.05")  # per 1,000 requests
    assert basic["api_requests"].included_quantity == D("1000000")
    assert basic["premium_features"].unit_price == D("10.00")
    pro = charges(plan("platform-professional"))
    assert (pro["storage_gb"].unit_price, pro["active_users"].unit_price, pro["api_requests"].unit_price) == (
        D("1.50"),
        D("1.50"),
        D("0.04"),
    )


@pytest.mark.parametrize(
    "code, base_fee, trial_days, tenants, partners, messages, tenant_rate, message_rate, storage_rate",
    [
        ("messaging-startup", D("99.00"), 14, D("3"), D("10"), D("5000"), D("29.00"), D("0.05"), D("2.00")),
        ("messaging-business", D("299.00"), 30, D("10"), D("50"), D("25000"), D("19.00"), D("0.03"), D("1.50")),
    ],
)
def test_messaging_plans(
    plan, code, base_fee, trial_days, tenants, partners, messages, tenant_rate, message_rate, storage_rate
):
    version = plan(code)
    assert (version.base_fee, version.trial_days, version.currency) == (base_fee, trial_days, "USD")
    c = charges(version)
    assert (c["tenants"].included_quantity, c["tenants"].limit, c["tenants"].unit_price) == (
        tenants,
        tenants,
        tenant_rate,
    )
    assert c["master_partners"].limit == partners
    assert (c["messages"].included_quantity, c["messages"].unit_price) == (messages, message_rate)
    assert c["storage_gb"].unit_price == storage_rate


def test_messaging_enterprise_includes_unlimited_tenants_and_partners(plan):
    version = plan("messaging-enterprise")
    assert (version.base_fee, version.trial_days) == (D("999.00"), 60)
    assert version.support_level == "24/7 phone support"
    c = charges(version)
    assert (c["tenants"].included_quantity, c["tenants"].limit) == (None, None)
    assert c["tenants"].pricing_model == PlanCharge.PricingModel.INCLUDED_ONLY
    assert (c["master_partners"].included_quantity, c["master_partners"].limit) == (None, None)
    assert (c["messages"].included_quantity, c["messages"].unit_price) == (D("100000"), D("0.01"))
    assert c["storage_gb"].unit_price == D("1.00")


def test_custom_enterprise_is_a_negotiated_catalogue_entry(plan):
    version = plan("messaging-custom-enterprise")
    assert version.price_on_request is True
    assert {"Negotiated pricing", "Volume discounts", "Multi-year terms"} <= set(version.features)


@pytest.mark.parametrize(
    "code, name, monthly_code, base_fee",
    [
        # 12 × $99.00, 12 × $299.00, 12 × $999.00
        ("messaging-startup-annual", "Startup (annual)", "messaging-startup", D("1188.00")),
        ("messaging-business-annual", "Business (annual)", "messaging-business", D("3588.00")),
        ("messaging-enterprise-annual", "Enterprise (annual)", "messaging-enterprise", D("11988.00")),
    ],
)
def test_annual_messaging_plans_bill_twelve_months_a_year_ten_percent_off(plan, code, name, monthly_code, base_fee):
    version = plan(code)
    monthly = plan(monthly_code)
    assert (version.plan.name, version.base_fee, version.billing_interval) == (name, base_fee, "year")
    assert (version.annual_discount_percent, version.trial_days, version.currency) == (D("10"), 0, "USD")
    assert version.is_published
    assert version.features[-1] == "Billed yearly, 10% off"
    assert version.support_level == monthly.support_level

    def terms(v):
        return {
            code: (c.pricing_model, c.included_quantity, c.limit, c.limit_window, c.unit_price)
            for code, c in charges(v).items()
        }

    assert terms(version) == terms(monthly)


def test_annual_plans_are_listed_after_the_monthly_ones_and_before_custom_enterprise(catalogue):
    assert list(Plan.objects.filter(product="messaging").values_list("code", flat=True)) == [
        "messaging-startup",
        "messaging-business",
        "messaging-enterprise",
        "messaging-startup-annual",
        "messaging-business-annual",
        "messaging-enterprise-annual",
        "messaging-custom-enterprise",
    ]
