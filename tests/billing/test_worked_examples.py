"""Worked examples through the billing run, checked line by line to the cent.

Expected figures are worked out by hand in the comments; the catalogue prices are in docs/catalogue.md.
"""

import datetime as dt
from decimal import Decimal as D

import pytest
import time_machine

from billing.models import Invoice, Plan, PlanCharge
from billing.services.catalogue import ChargeSpec, TierSpec, plan_create, plan_version_create
from billing.services.subscriptions import subscription_change_plan
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import JAN_1, UTC, close, event, ingest, subscribe
from tests.tenants.factories import MasterPartnerFactory, TenantFactory

pytestmark = pytest.mark.django_db


def rows(breakdown, key):
    return [(row[key], D(row["quantity"]), D(row["amount"])) for row in breakdown]


def lines_of(invoice):
    return [
        (line.kind, line.description, line.quantity, line.included, line.billable, line.amount)
        for line in invoice.lines.order_by("position")
    ]


def test_business_worked_example_line_by_line(plan):
    account = AccountFactory(name="Northwind")
    subscribe(account, plan("messaging-business"))
    tenants = [TenantFactory(account=account, public_id=f"ten_nw_{i:02d}", activated_at=JAN_1) for i in range(12)]
    MasterPartnerFactory(account=account, public_id="prt_a", activated_at=JAN_1)
    MasterPartnerFactory(account=account, public_id="prt_b", activated_at=JAN_1)
    at = "2026-11-10T10:00:00Z"
    ingest(
        account,
        [
            event("m1", "ten_nw_00", "messages", 12400, at, partner_id="prt_a"),
            event("m2", "ten_nw_01", "messages", 18600, at, partner_id="prt_b"),
            # 40 GB held from the first instant of the month to its end: 40 GB-months.
            event("s1", "ten_nw_00", "storage_gb", 40, "2026-11-01T00:00:00Z"),
        ],
    )
    close()

    invoice = Invoice.objects.get(account=account)
    assert (invoice.status, invoice.number, invoice.currency) == ("finalized", "INV-2026-000001", "USD")
    assert lines_of(invoice) == [
        ("base_fee", "Business base fee", D(1), None, None, D("299.00")),
        # master partners are included without limit on Business
        ("usage", "Master partners", D(2), None, D(0), D("0.00")),
        # 31,000 messages, 25,000 included: 6,000 × $0.03
        ("usage", "Messages", D(31000), D(25000), D(6000), D("180.00")),
        # 40 GB-months, 10 included: 30 × $1.50
        ("usage", "Storage", D(40), D(10), D(30), D("45.00")),
        # 12 tenants live, 10 included: 2 × $19.00
        ("usage", "Active tenants", D(12), D(10), D(2), D("38.00")),
    ]
    # $299.00 + $38.00 + $180.00 + $45.00 = $562.00, no tax
    assert (invoice.subtotal, invoice.tax, invoice.total, invoice.amount_due) == (
        D("562.00"),
        D("0.00"),
        D("562.00"),
        D("562.00"),
    )

    messages = invoice.lines.get(metric__code="messages")
    # By quantity: 12,400 / 31,000 × $180 = $72.00 and 18,600 / 31,000 × $180 = $108.00.
    assert rows(messages.breakdown["tenants"], "tenant") == [
        ("ten_nw_00", D(12400), D("72.00")),
        ("ten_nw_01", D(18600), D("108.00")),
    ]
    assert rows(messages.breakdown["partners"], "partner") == [
        ("prt_a", D(12400), D("72.00")),
        ("prt_b", D(18600), D("108.00")),
    ]
    storage = invoice.lines.get(metric__code="storage_gb")
    assert rows(storage.breakdown["tenants"], "tenant") == [("ten_nw_00", D(40), D("45.00"))]
    # $38.00 over 12 tenants is $3.1666…: 8 tenants carry $3.17 and 4 carry $3.16 (8 × 3.17 + 4 × 3.16 = 38.00).
    tenant_shares = sorted(D(row["amount"]) for row in invoice.lines.get(metric__code="tenants").breakdown["tenants"])
    assert tenant_shares == [D("3.16")] * 4 + [D("3.17")] * 8
    for line in invoice.lines.filter(kind="usage").exclude(amount=0):
        assert (
            sum(D(row["amount"]) for row in line.breakdown["tenants"]) + D(line.breakdown.get("unattributed", "0"))
            == line.amount
        )
    assert len(tenants) == 12


def test_basic_platform_month(plan):
    account = AccountFactory(name="Tailspin")
    subscribe(account, plan("platform-basic"))
    TenantFactory(account=account, public_id="ten_ts", activated_at=JAN_1)
    at = "2026-11-12T08:00:00Z"
    ingest(
        account,
        [event("api1", "ten_ts", "api_requests", 3_400_000, at)]
        + [event(f"u{n}", "ten_ts", "active_users", 1, at, user_id=f"user-{n}") for n in range(61)]
        # 2.5 GB from the first instant to the end of the month: 2.5 GB-months
        + [event("s1", "ten_ts", "storage_gb", "2.5", "2026-11-01T00:00:00Z")],
    )
    close()

    invoice = Invoice.objects.get(account=account)
    assert lines_of(invoice) == [
        ("base_fee", "Basic base fee", D(1), None, None, D("50.00")),
        # 61 distinct users, 50 included: 11 × $2.00
        ("usage", "Active users", D(61), D(50), D(11), D("22.00")),
        # 3,400,000 requests, 1,000,000 included: 2,400,000 / 1,000 × $0.05
        ("usage", "API requests", D(3_400_000), D(1_000_000), D(2_400_000), D("120.00")),
        # no premium feature used (none included, $10 each)
        ("usage", "Premium features", D(0), D(0), D(0), D("0.00")),
        # 2.5 GB-months, 1 included: 1.5 × $2.00
        ("usage", "Storage", D("2.5"), D(1), D("1.5"), D("3.00")),
    ]
    # $50 + $22 + $120 + $3 = $195.00
    assert (invoice.subtotal, invoice.tax, invoice.total) == (D("195.00"), D("0.00"), D("195.00"))


def test_trial_ending_mid_month_prorates_by_the_exact_fraction(plan):
    account = AccountFactory(name="Contoso")
    # Business has a 30-day trial: started Oct 11 12:00, the trial ends Nov 10 12:00.
    subscription = subscribe(account, plan("messaging-business"), started_at=dt.datetime(2026, 10, 11, 12, tzinfo=UTC))
    assert subscription.trial_end == dt.datetime(2026, 11, 10, 12, tzinfo=UTC)
    TenantFactory(account=account, public_id="ten_co", activated_at=JAN_1)
    ingest(
        account,
        [
            event("in-trial", "ten_co", "messages", 10_000, "2026-11-05T09:00:00Z"),
            event("after-trial", "ten_co", "messages", 20_000, "2026-11-20T09:00:00Z"),
        ],
    )
    close()

    invoice = Invoice.objects.get(account=account)
    # The trial ends Nov 10 12:00, so the charged segment is Nov 10 12:00 → Dec 1: 20.5 of November's 30 days,
    # 41/60 of the month. The code prorates by the exact fraction of the month measured by the microsecond
    # (common.periods.Period.fraction_covered_by, a Fraction), never by whole days, and rounds once.
    assert lines_of(invoice) == [
        # In the trial (19/60 of the month) accumulating usage is shown and free: 25,000 × 19/60 = 7,916.67
        # included, the rest 2,083.33 is not charged.
        ("usage", "Messages (Nov 1–Nov 10) – free trial", D(10_000), D("7916.66666667"), D("2083.33333333"), D(0)),
        ("usage", "Storage (Nov 1–Nov 10) – free trial", D(0), D("3.16666667"), D(0), D(0)),
        # $299.00 × 41/60 = $204.31666… → $204.32
        ("base_fee", "Business base fee (Nov 10–Nov 30)", None, None, None, D("204.32")),
        ("usage", "Master partners (Nov 10–Nov 30)", D(0), None, D(0), D(0)),
        # 25,000 × 41/60 = 17,083.33 included; 20,000 − 17,083.33 = 2,916.67 × $0.03 = $87.50
        ("usage", "Messages (Nov 10–Nov 30)", D(20_000), D("17083.33333333"), D("2916.66666667"), D("87.50")),
        # 10 GB-months × 41/60 = 6.83 included
        ("usage", "Storage (Nov 10–Nov 30)", D(0), D("6.83333333"), D(0), D(0)),
        # monthly count: one tenant, 10 included
        ("usage", "Active tenants (Nov 10–Nov 30)", D(1), D(10), D(0), D(0)),
    ]
    # $204.32 + $87.50
    assert (invoice.subtotal, invoice.total) == (D("291.82"), D("291.82"))


def platform_usage(account, tenant, before, after, users, storage_gb):
    """API requests before and after the 15th, distinct users over the month, storage all month."""
    ingest(
        account,
        [
            event("api-before", tenant, "api_requests", before, "2026-11-10T10:00:00Z"),
            event("api-after", tenant, "api_requests", after, "2026-11-20T10:00:00Z"),
            event("s1", tenant, "storage_gb", storage_gb, "2026-11-01T00:00:00Z"),
        ]
        + [
            event(f"u{n}", tenant, "active_users", 1, "2026-11-12T10:00:00Z", user_id=f"user-{n}") for n in range(users)
        ],
    )


def test_upgrade_on_the_15th_rates_each_part_by_its_plan(plan):
    account = AccountFactory(name="Fabrikam")
    basic = subscribe(account, plan("platform-basic"))
    TenantFactory(account=account, public_id="ten_fab", activated_at=JAN_1)
    with time_machine.travel(dt.datetime(2026, 11, 15, tzinfo=UTC), tick=False):
        professional = subscription_change_plan(
            subscription=basic, plan_version=plan("platform-professional"), at=dt.datetime(2026, 11, 15, tzinfo=UTC)
        )
    basic.refresh_from_db()
    account.refresh_from_db()
    assert (basic.status, basic.ended_at) == ("cancelled", dt.datetime(2026, 11, 15, tzinfo=UTC))
    assert (professional.status, professional.started_at, professional.trial_end) == (
        "active",
        dt.datetime(2026, 11, 15, tzinfo=UTC),
        None,
    )
    assert account.status == "active"
    platform_usage(account, "ten_fab", before=1_000_000, after=3_000_000, users=230, storage_gb=12)
    close()

    invoice = Invoice.objects.get(account=account)
    # Basic Nov 1 → Nov 15 is 14/30 of the month, Professional Nov 15 → Dec 1 is 16/30.
    assert lines_of(invoice) == [
        # $50 × 14/30 = $23.333… → $23.33
        ("base_fee", "Basic base fee (Nov 1–Nov 14)", None, None, None, D("23.33")),
        # 230 users over the month: (230 − 50) × $2 = $360 × 14/30 = $168.00
        ("usage", "Active users (Nov 1–Nov 14)", D(230), D(50), D(180), D("168.00")),
        # 1,000,000 requests before the 15th, 1,000,000 × 14/30 = 466,666.67 included:
        # 533,333.33 / 1,000 × $0.05 = $26.666… → $26.67
        ("usage", "API requests (Nov 1–Nov 14)", D(1_000_000), D("466666.66666667"), D("533333.33333333"), D("26.67")),
        ("usage", "Premium features (Nov 1–Nov 14)", D(0), D(0), D(0), D(0)),
        # 12 GB for 14 days = 12 × 14/30 = 5.6 GB-months, 1 × 14/30 = 0.47 included:
        # 5.1333… × $2 = $10.2666… → $10.27
        ("usage", "Storage (Nov 1–Nov 14)", D("5.6"), D("0.46666667"), D("5.13333333"), D("10.27")),
        # $200 × 16/30 = $106.666… → $106.67
        ("base_fee", "Professional base fee (Nov 15–Nov 30)", None, None, None, D("106.67")),
        # (230 − 200) × $1.50 = $45 × 16/30 = $24.00
        ("usage", "Active users (Nov 15–Nov 30)", D(230), D(200), D(30), D("24.00")),
        # 3,000,000 after, 5,000,000 × 16/30 = 2,666,666.67 included: 333,333.33 / 1,000 × $0.04 = $13.33
        (
            "usage",
            "API requests (Nov 15–Nov 30)",
            D(3_000_000),
            D("2666666.66666667"),
            D("333333.33333333"),
            D("13.33"),
        ),
        ("usage", "Premium features (Nov 15–Nov 30)", D(0), D(3), D(0), D(0)),
        # 12 × 16/30 = 6.4 GB-months, 10 × 16/30 = 5.33 included: 1.0666… × $1.50 = $1.60
        ("usage", "Storage (Nov 15–Nov 30)", D("6.4"), D("5.33333333"), D("1.06666667"), D("1.60")),
    ]
    # 23.33 + 168.00 + 26.67 + 10.27 + 106.67 + 24.00 + 13.33 + 1.60 = 373.87
    assert (invoice.subtotal, invoice.total) == (D("373.87"), D("373.87"))
    assert invoice.snapshot["plans"] == [str(basic.plan_version), str(professional.plan_version)]


def enterprise_eu(account):
    """A negotiated messaging plan like the demo's (demo.book._custom_plan): graduated messages, a 10 %
    volume discount on usage and a €3,000 monthly commitment."""
    custom = plan_create(
        code=f"custom-{account.public_id}",
        name=f"Custom Enterprise – {account.name}",
        product=Plan.Product.MESSAGING,
        account=account,
    )
    return plan_version_create(
        plan=custom,
        currency=account.currency,
        base_fee=D("2500.00"),
        minimum_commitment=D("3000.00"),
        discount_percent=D("10"),
        term_months=36,
        charges=[
            ChargeSpec("tenants", included_quantity=None, pricing_model=PlanCharge.PricingModel.INCLUDED_ONLY),
            ChargeSpec("master_partners", included_quantity=None, pricing_model=PlanCharge.PricingModel.INCLUDED_ONLY),
            ChargeSpec(
                "messages",
                included_quantity=D("250000"),
                pricing_model=PlanCharge.PricingModel.GRADUATED,
                tiers=[
                    TierSpec(D("0"), D("100000"), D("0.008")),
                    TierSpec(D("100000"), D("1000000"), D("0.006")),
                    TierSpec(D("1000000"), None, D("0.004")),
                ],
            ),
            ChargeSpec("storage_gb", included_quantity=D("250"), unit_price=D("0.80")),
        ],
        publish=True,
    )


def test_custom_enterprise_minimum_commitment_is_topped_up_as_its_own_line(catalogue):
    account = AccountFactory(name="Globex", currency="EUR", tax_country="DE")
    subscribe(account, enterprise_eu(account))
    TenantFactory(account=account, public_id="ten_gx", activated_at=JAN_1)
    ingest(account, [event("m1", "ten_gx", "messages", 300_000, "2026-11-10T10:00:00Z")])
    close()

    invoice = Invoice.objects.get(account=account)
    assert [(line.kind, line.amount) for line in invoice.lines.order_by("position")] == [
        ("base_fee", D("2500.00")),
        ("usage", D(0)),  # master partners, included
        # 300,000 − 250,000 included = 50,000 in the first tier: 50,000 × €0.008 = €400.00
        ("usage", D("400.00")),
        ("usage", D(0)),  # storage
        ("usage", D(0)),  # tenants, included
        # 10 % of the usage (€400.00)
        ("discount", D("-40.00")),
        # €2,500 + €400 − €40 = €2,860, below the €3,000 commitment: top-up €140.00
        ("minimum_commitment", D("140.00")),
    ]
    top_up = invoice.lines.get(kind="minimum_commitment")
    assert top_up.description == "Minimum commitment top-up to 3,000.00 EUR"
    assert (invoice.currency, invoice.subtotal, invoice.discount_total, invoice.total) == (
        "EUR",
        D("3000.00"),
        D("40.00"),
        D("3000.00"),
    )


@pytest.mark.parametrize(
    ("account_fields", "tax_rate", "tax", "total"),
    [
        # $61.73 × 20 % = $12.346 → $12.35 (half up, once, on the subtotal)
        ({"tax_rate": D("20")}, D("20"), D("12.35"), D("74.08")),
        # reverse charge: the customer accounts for the tax; none is charged, whatever the rate on file
        ({"tax_rate": D("20"), "tax_reverse_charge": True, "tax_id": "DE123456789"}, D("0"), D("0.00"), D("61.73")),
    ],
)
def test_tax_on_the_subtotal(plan, account_fields, tax_rate, tax, total):
    account = AccountFactory(name="Initech", **account_fields)
    subscribe(account, plan("platform-basic"))
    TenantFactory(account=account, public_id="ten_in", activated_at=JAN_1)
    ingest(account, [event("api1", "ten_in", "api_requests", 1_234_567, "2026-11-10T10:00:00Z")])
    close()

    invoice = Invoice.objects.get(account=account)
    # $50 + 234,567 / 1,000 × $0.05 = $50 + $11.72835 → $50 + $11.73 = $61.73
    assert invoice.subtotal == D("61.73")
    assert (invoice.tax_rate, invoice.tax_reverse_charge, invoice.tax, invoice.total, invoice.amount_due) == (
        tax_rate,
        account.tax_reverse_charge,
        tax,
        total,
        total,
    )
