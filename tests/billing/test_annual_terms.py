"""Yearly plan terms: the base fee once a year in advance, with its annual discount; usage monthly in arrears.

Business (annual) is $3,588.00 a year (12 × $299.00), 10 % off: $358.80, so $3,229.20 paid for the year; it
includes 25,000 messages a month, then $0.03 each, as Business does. Enterprise (annual) is $11,988.00 a year,
10 % off ($1,198.80). 2027 has 365 days. Figures are worked by hand in the comments.
"""

import datetime as dt
from decimal import Decimal as D

import pytest
import time_machine

from billing.models import Contract, Invoice, PrepaidCredit
from billing.rating.engine import charges_estimate
from billing.services.plan_changes import plan_change_preview
from billing.services.subscriptions import subscription_cancel, subscription_change_plan, subscription_create
from common.periods import month_period
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import JAN_1, UTC, close, event, ingest, subscribe
from tests.tenants.factories import TenantFactory

pytestmark = pytest.mark.django_db


def at(*args):
    return dt.datetime(*args, tzinfo=UTC)


JAN_2027 = month_period(2027, 1)
FEB_2027 = month_period(2027, 2)
MAR_2027 = month_period(2027, 3)
APR_2027 = month_period(2027, 4)
YEAR_2027 = (at(2027, 1, 1), at(2028, 1, 1))


def lines_of(invoice):
    return [
        (line.kind, line.description, line.quantity, line.included, line.billable, line.amount)
        for line in invoice.lines.order_by("position")
    ]


def close_month(period):
    """Close ``period`` at 00:05 on the next month's first day."""
    close(period=period, now=period.end + dt.timedelta(minutes=5))
    return period


def invoice_for(account, period):
    return Invoice.objects.get(account=account, period_start=period.start)


def messages(account, txn, quantity, when):
    """``quantity`` messages at ``when`` (ISO, UTC), reported an hour later."""
    moment = dt.datetime.fromisoformat(when)
    ingest(account, [event(txn, "ten_an", "messages", quantity, when)], now=moment + dt.timedelta(hours=1))


def annual_account(plan, code="messaging-business-annual", started_at=YEAR_2027[0], trial_days=None):
    """An account with one tenant, subscribed to ``code`` from ``started_at`` (as of then)."""
    account = AccountFactory(name="Tailspin", tax_rate=D(0))
    TenantFactory(account=account, public_id="ten_an", activated_at=started_at)
    with time_machine.travel(started_at, tick=False):
        subscription = subscription_create(
            account=account, plan_version=plan(code), started_at=started_at, trial_days=trial_days
        )
    return account, subscription


def test_the_year_is_billed_in_its_first_month_with_the_annual_discount_and_january_overage(plan):
    account, _ = annual_account(plan)
    messages(account, "jan", 30_000, "2027-01-10T10:00:00Z")
    invoice = invoice_for(account, close_month(JAN_2027))

    assert lines_of(invoice) == [
        # the whole year in advance: 12 × $299.00
        ("base_fee", "Business (annual) base fee, Jan 1, 2027 – Dec 31, 2027", D(1), None, None, D("3588.00")),
        # 10 % of $3,588.00
        ("discount", "Annual plan discount 10% on the base fee", None, None, None, D("-358.80")),
        ("usage", "Master partners", D(0), None, D(0), D(0)),
        # 30,000 messages, 25,000 included (monthly, as on Business): 5,000 × $0.03
        ("usage", "Messages", D(30_000), D(25_000), D(5_000), D("150.00")),
        ("usage", "Storage", D(0), D(10), D(0), D(0)),
        ("usage", "Active tenants", D(1), D(10), D(0), D(0)),
    ]
    fee, discount = invoice.lines.order_by("position")[:2]
    assert (fee.period_start, fee.period_end) == YEAR_2027
    assert (discount.period_start, discount.period_end) == YEAR_2027
    assert fee.unit_price == D("3588.00")
    # $3,588.00 − $358.80 + $150.00
    assert (invoice.subtotal, invoice.discount_total, invoice.tax, invoice.total) == (
        D("3379.20"),
        D("358.80"),
        D("0.00"),
        D("3379.20"),
    )


def test_the_months_after_the_first_bill_only_usage(plan):
    account, _ = annual_account(plan)
    messages(account, "feb", 30_000, "2027-02-10T10:00:00Z")
    close_month(JAN_2027)
    invoice = invoice_for(account, close_month(FEB_2027))

    assert lines_of(invoice) == [
        ("usage", "Master partners", D(0), None, D(0), D(0)),
        # 5,000 messages over the 25,000 included: $150.00
        ("usage", "Messages", D(30_000), D(25_000), D(5_000), D("150.00")),
        ("usage", "Storage", D(0), D(10), D(0), D(0)),
        ("usage", "Active tenants", D(1), D(10), D(0), D(0)),
    ]
    assert (invoice.subtotal, invoice.discount_total, invoice.total) == (D("150.00"), D("0.00"), D("150.00"))


def test_the_next_year_is_billed_in_the_month_it_starts(plan):
    account, _ = annual_account(plan, started_at=at(2026, 3, 20))
    estimate = charges_estimate(account=account, period=MAR_2027, now=at(2027, 4, 1))
    fees = [(line.kind, line.description, line.amount, line.start, line.end) for line in estimate.lines[:2]]
    assert fees == [
        (
            "base_fee",
            "Business (annual) base fee, Mar 20, 2027 – Mar 19, 2028",
            D("3588.00"),
            at(2027, 3, 20),
            at(2028, 3, 20),
        ),
        ("discount", "Annual plan discount 10% on the base fee", D("-358.80"), at(2027, 3, 20), at(2028, 3, 20)),
    ]
    april = charges_estimate(account=account, period=APR_2027, now=at(2027, 5, 1))
    assert [line.kind for line in april.lines if line.kind != "usage"] == []


def test_a_change_to_enterprise_annual_credits_the_unused_time_and_charges_the_new_year(plan):
    account, business = annual_account(plan)
    close_month(JAN_2027)
    close_month(FEB_2027)
    change_at = at(2027, 3, 15)
    with time_machine.travel(change_at, tick=False):
        enterprise = subscription_change_plan(
            subscription=business, plan_version=plan("messaging-enterprise-annual"), at=change_at
        )
    messages(account, "mar-before", 10_000, "2027-03-05T10:00:00Z")
    messages(account, "mar-after", 62_000, "2027-03-20T10:00:00Z")
    invoice = invoice_for(account, close_month(MAR_2027))

    # March has 31 days: Mar 1 → Mar 15 is 14/31 on Business (annual), Mar 15 → Apr 1 17/31 on Enterprise (annual).
    assert enterprise.started_at == change_at
    assert lines_of(invoice) == [
        # No base fee: the year was paid in January. Unused: Mar 15, 2027 → Jan 1, 2028 is 292 of 365 days;
        # ($3,588.00 − $358.80) × 292/365 = $3,229.20 × 0.8 = $2,583.36
        ("base_fee", "Unused time on Business (annual), Mar 15, 2027 – Dec 31, 2027", None, None, None, D("-2583.36")),
        ("usage", "Master partners (Mar 1–Mar 14)", D(0), None, D(0), D(0)),
        # 10,000 messages, 25,000 × 14/31 = 11,290.32 included: nothing to pay
        ("usage", "Messages (Mar 1–Mar 14)", D(10_000), D("11290.32258065"), D(0), D(0)),
        ("usage", "Storage (Mar 1–Mar 14)", D(0), D("4.51612903"), D(0), D(0)),
        ("usage", "Active tenants (Mar 1–Mar 14)", D(1), D(10), D(0), D(0)),
        # The new year from the change: Mar 15, 2027 → Mar 15, 2028, in advance
        ("base_fee", "Enterprise (annual) base fee, Mar 15, 2027 – Mar 14, 2028", D(1), None, None, D("11988.00")),
        # 10 % of $11,988.00
        ("discount", "Annual plan discount 10% on the base fee", None, None, None, D("-1198.80")),
        ("usage", "Master partners (Mar 15–Mar 31)", D(0), None, D(0), D(0)),
        # 62,000 messages, 100,000 × 17/31 = 54,838.71 included: 7,161.29 × $0.01 = $71.6129… → $71.61
        ("usage", "Messages (Mar 15–Mar 31)", D(62_000), D("54838.70967742"), D("7161.29032258"), D("71.61")),
        ("usage", "Storage (Mar 15–Mar 31)", D(0), D("54.83870968"), D(0), D(0)),
        ("usage", "Active tenants (Mar 15–Mar 31)", D(1), None, D(0), D(0)),
    ]
    credit = invoice.lines.get(description__startswith="Unused time")
    assert (credit.period_start, credit.period_end, credit.plan_version.plan.code) == (
        change_at,
        at(2028, 1, 1),
        "messaging-business-annual",
    )
    # −$2,583.36 + $11,988.00 − $1,198.80 + $71.61
    assert (invoice.subtotal, invoice.discount_total, invoice.total) == (D("8277.45"), D("1198.80"), D("8277.45"))

    april = invoice_for(account, close_month(APR_2027))
    assert [line.kind for line in april.lines.all()] == ["usage"] * 4  # the new year is paid


def test_a_change_at_the_first_of_a_month_credits_on_that_month(plan):
    account, business = annual_account(plan)
    change_at = APR_2027.start
    with time_machine.travel(change_at, tick=False):
        subscription_change_plan(subscription=business, plan_version=plan("messaging-enterprise-annual"), at=change_at)

    march = charges_estimate(account=account, period=MAR_2027, now=APR_2027.start)
    assert [line.kind for line in march.lines] == ["usage"] * 4  # no credit before the change
    april = charges_estimate(account=account, period=APR_2027, now=APR_2027.end)
    fees = [(line.kind, line.description, line.amount) for line in april.lines if line.kind != "usage"]
    assert fees == [
        # Apr 1, 2027 → Jan 1, 2028 is 275 of 365 days: $3,229.20 × 275/365 = $2,432.9589… → $2,432.96
        ("base_fee", "Unused time on Business (annual), Apr 1, 2027 – Dec 31, 2027", D("-2432.96")),
        ("base_fee", "Enterprise (annual) base fee, Apr 1, 2027 – Mar 31, 2028", D("11988.00")),
        ("discount", "Annual plan discount 10% on the base fee", D("-1198.80")),
    ]


def test_a_cancellation_runs_to_the_end_of_the_year_and_is_not_credited(plan):
    account, business = annual_account(plan)
    with time_machine.travel(at(2027, 3, 15), tick=False):
        subscription_cancel(subscription=business, at_period_end=False, at=at(2027, 3, 15))

    march = charges_estimate(account=account, period=MAR_2027, now=APR_2027.start)
    assert [line.kind for line in march.lines] == ["usage"] * 4


def test_a_trial_moves_the_year_to_the_month_the_trial_ends(plan):
    # Started Jan 10, 2027 with a 30-day trial: it ends Feb 9, and the first year runs Feb 9, 2027 → Feb 9, 2028.
    account, subscription = annual_account(plan, started_at=at(2027, 1, 10), trial_days=30)
    assert subscription.trial_end == at(2027, 2, 9)

    january = invoice_for(account, close_month(JAN_2027))
    assert [line.kind for line in january.lines.all() if line.kind != "usage"] == []
    assert january.total == D("0.00")

    february = invoice_for(account, close_month(FEB_2027))
    assert lines_of(february) == [
        ("usage", "Messages (Feb 1–Feb 8) – free trial", D(0), D("7142.85714286"), D(0), D(0)),
        ("usage", "Storage (Feb 1–Feb 8) – free trial", D(0), D("2.85714286"), D(0), D(0)),
        ("base_fee", "Business (annual) base fee, Feb 9, 2027 – Feb 8, 2028", D(1), None, None, D("3588.00")),
        ("discount", "Annual plan discount 10% on the base fee", None, None, None, D("-358.80")),
        ("usage", "Master partners (Feb 9–Feb 28)", D(0), None, D(0), D(0)),
        # 25,000 × 20/28 included
        ("usage", "Messages (Feb 9–Feb 28)", D(0), D("17857.14285714"), D(0), D(0)),
        ("usage", "Storage (Feb 9–Feb 28)", D(0), D("7.14285714"), D(0), D(0)),
        ("usage", "Active tenants (Feb 9–Feb 28)", D(1), D(10), D(0), D(0)),
    ]
    fee = february.lines.get(kind="base_fee")
    assert (fee.period_start, fee.period_end) == (at(2027, 2, 9), at(2028, 2, 9))
    # $3,588.00 − $358.80
    assert february.total == D("3229.20")


def test_prepaid_credits_pay_the_usage_not_the_annual_discount(plan):
    account, _ = annual_account(plan)
    agreement = Contract.objects.create(
        account=account,
        public_id="CT-ANNUAL",
        term_start=YEAR_2027[0],
        term_months=12,
        term_end=YEAR_2027[1],
        auto_renew=False,
    )
    PrepaidCredit.objects.create(contract=agreement, amount=D("1000.00"), currency="USD", effective_at=YEAR_2027[0])
    messages(account, "jan", 30_000, "2027-01-10T10:00:00Z")

    estimate = charges_estimate(account=account, period=JAN_2027, now=FEB_2027.start)
    fees = [(line.kind, line.amount) for line in estimate.lines if line.kind != "usage" or line.amount]
    assert fees == [
        ("base_fee", D("3588.00")),
        ("discount", D("-358.80")),
        ("usage", D("150.00")),
        # the usage only: the annual discount is the base fee's, not a usage charge to set against the credit
        ("prepaid_credit", D("-150.00")),
    ]
    # $3,588.00 − $358.80 + $150.00 − $150.00
    assert (estimate.subtotal, estimate.discount) == (D("3229.20"), D("358.80"))


def test_a_monthly_plan_is_billed_as_before(plan):
    account, _ = annual_account(plan, code="messaging-business", started_at=at(2026, 12, 1))
    messages(account, "jan", 30_000, "2027-01-10T10:00:00Z")
    invoice = invoice_for(account, close_month(JAN_2027))

    assert lines_of(invoice) == [
        ("base_fee", "Business base fee", D(1), None, None, D("299.00")),
        ("usage", "Master partners", D(0), None, D(0), D(0)),
        ("usage", "Messages", D(30_000), D(25_000), D(5_000), D("150.00")),
        ("usage", "Storage", D(0), D(10), D(0), D(0)),
        ("usage", "Active tenants", D(1), D(10), D(0), D(0)),
    ]
    fee = invoice.lines.get(kind="base_fee")
    assert (fee.period_start, fee.period_end) == (JAN_2027.start, JAN_2027.end)
    # $299.00 + $150.00
    assert invoice.total == D("449.00")


def test_a_preview_of_business_to_business_annual_shows_the_yearly_fee(plan):
    account = AccountFactory(name="Litware", tax_rate=D(0))
    business = subscribe(account, plan("messaging-business"), started_at=JAN_1)
    now = at(2026, 11, 15)

    preview = plan_change_preview(
        subscription=business, to_version=plan("messaging-business-annual"), timing="now", now=now
    )

    fees = [(line.kind, line.description, line.amount, line.first_day, line.last_day) for line in preview.lines]
    fees = [f for f in fees if f[0] != "usage"]
    assert fees == [
        # $299.00 × 14/30 = $139.533… → $139.53
        ("base_fee", "Business base fee (Nov 1–Nov 14)", D("139.53"), dt.date(2026, 11, 1), dt.date(2026, 11, 14)),
        (
            "base_fee",
            "Business (annual) base fee, Nov 15, 2026 – Nov 14, 2027",
            D("3588.00"),
            dt.date(2026, 11, 15),
            dt.date(2027, 11, 14),
        ),
        (
            "discount",
            "Annual plan discount 10% on the base fee",
            D("-358.80"),
            dt.date(2026, 11, 15),
            dt.date(2027, 11, 14),
        ),
    ]
    # $139.53 + $3,588.00 − $358.80, no usage
    assert preview.new_subtotal == D("3368.73")
    assert preview.current_subtotal == D("299.00")
