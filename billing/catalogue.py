"""The standard catalogue, as data. ``catalogue_load`` (in ``billing.services.catalogue_loader``)
creates whatever of it is missing and never touches what exists, so it is safe to run on every deploy.

Prices are USD. Quantities are billed quantities (see ``billing.models.catalogue``). API requests are
priced per 1,000 and limited per hour; storage is metered in GB-hours and billed per GB-month.
The per-metric overage rates of the tenant platform plans are this catalogue's list prices.
The annual messaging plans (``billing_interval`` year) charge twelve months' base fee once a year, in advance,
less ``annual_discount_percent``; their usage is billed monthly, as on the monthly plans.
"""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

from billing.models import Plan, PlanCharge, PlanVersion
from billing.services.catalogue import ChargeSpec
from usage.models import Metric

A = Metric.Aggregation
U = Metric.BillingUnit
PER_UNIT = PlanCharge.PricingModel.PER_UNIT
INCLUDED_ONLY = PlanCharge.PricingModel.INCLUDED_ONLY
HOUR = PlanCharge.LimitWindow.HOUR
YEAR = PlanVersion.Interval.YEAR
BILLED_YEARLY = "Billed yearly, 10% off"

METRICS: list[dict[str, Any]] = [
    dict(
        code="api_requests",
        name="API requests",
        unit="request",
        aggregation=A.SUM,
        billing_unit=U.PER_THOUSAND,
        description="Requests served by the tenant's API. Priced per 1,000; limited per hour.",
    ),
    dict(
        code="storage_gb",
        name="Storage",
        unit="GB",
        aggregation=A.TIME_WEIGHTED,
        billing_unit=U.PER_GB_MONTH,
        description="Stored data reported as a gauge in GB; metered in GB-hours, billed per GB-month.",
    ),
    dict(
        code="active_users",
        name="Active users",
        unit="user",
        aggregation=A.UNIQUE_COUNT,
        aggregation_property="user_id",
        billing_unit=U.PER_USER_MONTH,
        description="Distinct user_id values seen in the month.",
    ),
    dict(
        code="premium_features",
        name="Premium features",
        unit="feature",
        aggregation=A.UNIQUE_COUNT,
        aggregation_property="feature",
        billing_unit=U.PER_FEATURE_MONTH,
        description="Distinct premium features used in the month.",
    ),
    dict(
        code="messages",
        name="Messages",
        unit="message",
        aggregation=A.SUM,
        billing_unit=U.PER_UNIT,
        description="Messages sent; events carry partner_id for the master-partner breakdown.",
    ),
    dict(
        code="tenants",
        name="Active tenants",
        unit="tenant",
        source=Metric.Source.TENANTS,
        aggregation=A.UNIQUE_COUNT,
        billing_unit=U.PER_TENANT_MONTH,
        description="Tenants live at any moment of the month; each counts as one tenant-month.",
    ),
    dict(
        code="master_partners",
        name="Master partners",
        unit="partner",
        source=Metric.Source.PARTNERS,
        aggregation=A.UNIQUE_COUNT,
        billing_unit=U.PER_PARTNER_MONTH,
        description="Master partners active at any moment of the month.",
    ),
]


def _platform(storage, storage_rate, users, user_rate, api_included, api_per_hour, api_rate, features, feature_rate):
    return [
        ChargeSpec("storage_gb", included_quantity=D(storage), limit=D(storage), unit_price=D(storage_rate)),
        ChargeSpec("active_users", included_quantity=D(users), limit=D(users), unit_price=D(user_rate)),
        ChargeSpec(
            "api_requests",
            included_quantity=D(api_included),
            limit=D(api_per_hour),
            limit_window=HOUR,
            unit_price=D(api_rate),
        ),
        ChargeSpec("premium_features", included_quantity=None, pricing_model=INCLUDED_ONLY)
        if features is None
        else ChargeSpec("premium_features", included_quantity=D(features), unit_price=D(feature_rate)),
    ]


def _messaging(tenants, tenant_rate, partners, messages, message_rate, storage, storage_rate):
    return [
        ChargeSpec("tenants", included_quantity=None, pricing_model=INCLUDED_ONLY)
        if tenants is None
        else ChargeSpec("tenants", included_quantity=D(tenants), limit=D(tenants), unit_price=D(tenant_rate)),
        ChargeSpec(
            "master_partners",
            included_quantity=None,
            pricing_model=INCLUDED_ONLY,
            limit=None if partners is None else D(partners),
        ),
        ChargeSpec("messages", included_quantity=D(messages), limit=D(messages), unit_price=D(message_rate)),
        ChargeSpec("storage_gb", included_quantity=D(storage), unit_price=D(storage_rate)),
    ]


PLANS: list[dict[str, Any]] = [
    # Tenant platform
    dict(
        code="platform-basic",
        name="Basic",
        product=Plan.Product.TENANT_PLATFORM,
        display_order=1,
        base_fee=D("50.00"),
        trial_days=0,
        support_level="Email support",
        features=["Standard features", "1 GB storage", "50 users", "5,000 API requests/hour", "Email support"],
        charges=_platform("1", "2.00", "50", "2.00", "1000000", "5000", "0.05", "0", "10.00"),
    ),
    dict(
        code="platform-professional",
        name="Professional",
        product=Plan.Product.TENANT_PLATFORM,
        display_order=2,
        base_fee=D("200.00"),
        trial_days=0,
        support_level="Priority email support",
        features=[
            "Advanced features",
            "10 GB storage",
            "200 users",
            "20,000 API requests/hour",
            "Priority email support",
        ],
        charges=_platform("10", "1.50", "200", "1.50", "5000000", "20000", "0.04", "3", "8.00"),
    ),
    dict(
        code="platform-enterprise",
        name="Enterprise",
        product=Plan.Product.TENANT_PLATFORM,
        display_order=3,
        base_fee=None,
        price_on_request=True,
        trial_days=0,
        support_level="Dedicated support",
        features=["All features", "100 GB storage", "1,000 users", "100,000 API requests/hour", "Dedicated support"],
        charges=_platform("100", "1.00", "1000", "1.00", "25000000", "100000", "0.03", None, None),
    ),
    # Account messaging
    dict(
        code="messaging-startup",
        name="Startup",
        product=Plan.Product.MESSAGING,
        display_order=1,
        base_fee=D("99.00"),
        trial_days=14,
        support_level="Email support",
        features=["3 tenants", "10 master partners", "5,000 messages/month", "Email support"],
        charges=_messaging("3", "29.00", "10", "5000", "0.05", "1", "2.00"),
    ),
    dict(
        code="messaging-business",
        name="Business",
        product=Plan.Product.MESSAGING,
        display_order=2,
        base_fee=D("299.00"),
        trial_days=30,
        support_level="Priority support",
        features=["10 tenants", "50 master partners", "25,000 messages/month", "Priority support"],
        charges=_messaging("10", "19.00", "50", "25000", "0.03", "10", "1.50"),
    ),
    dict(
        code="messaging-enterprise",
        name="Enterprise",
        product=Plan.Product.MESSAGING,
        display_order=3,
        base_fee=D("999.00"),
        trial_days=60,
        support_level="24/7 phone support",
        features=["Unlimited tenants", "Unlimited master partners", "100,000 messages/month", "24/7 phone support"],
        charges=_messaging(None, None, None, "100000", "0.01", "100", "1.00"),
    ),
    # Yearly: twelve months' base fee, billed in advance once a year, 10% off; usage as on the monthly plan.
    dict(
        code="messaging-startup-annual",
        name="Startup (annual)",
        product=Plan.Product.MESSAGING,
        display_order=4,
        base_fee=D("1188.00"),
        billing_interval=YEAR,
        annual_discount_percent=D("10"),
        trial_days=0,
        support_level="Email support",
        features=["3 tenants", "10 master partners", "5,000 messages/month", "Email support", BILLED_YEARLY],
        charges=_messaging("3", "29.00", "10", "5000", "0.05", "1", "2.00"),
    ),
    dict(
        code="messaging-business-annual",
        name="Business (annual)",
        product=Plan.Product.MESSAGING,
        display_order=5,
        base_fee=D("3588.00"),
        billing_interval=YEAR,
        annual_discount_percent=D("10"),
        trial_days=0,
        support_level="Priority support",
        features=["10 tenants", "50 master partners", "25,000 messages/month", "Priority support", BILLED_YEARLY],
        charges=_messaging("10", "19.00", "50", "25000", "0.03", "10", "1.50"),
    ),
    dict(
        code="messaging-enterprise-annual",
        name="Enterprise (annual)",
        product=Plan.Product.MESSAGING,
        display_order=6,
        base_fee=D("11988.00"),
        billing_interval=YEAR,
        annual_discount_percent=D("10"),
        trial_days=0,
        support_level="24/7 phone support",
        features=[
            "Unlimited tenants",
            "Unlimited master partners",
            "100,000 messages/month",
            "24/7 phone support",
            BILLED_YEARLY,
        ],
        charges=_messaging(None, None, None, "100000", "0.01", "100", "1.00"),
    ),
    dict(
        code="messaging-custom-enterprise",
        name="Custom Enterprise",
        product=Plan.Product.MESSAGING,
        display_order=7,
        base_fee=None,
        price_on_request=True,
        trial_days=0,
        support_level="24/7 phone support",
        features=["Negotiated pricing", "Volume discounts", "Minimum commitment", "Multi-year terms"],
        charges=_messaging(None, None, None, "100000", "0.01", "100", "1.00"),
    ),
]
