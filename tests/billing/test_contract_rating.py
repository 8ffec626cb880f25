"""Contracts through the rating engine and the billing run, worked by hand to the cent: volume-discount
tiers, prepaid credits drawn down then exhausted, a 36-month contract's yearly committed minimum and its
true-up, an early termination, and the account manager on the invoice.

The contracted account is on a negotiated plan: USD 2,000.00 a month, messages 100,000 included then
USD 0.01 each, so ``A(q) = (q − 100,000) × 0.01`` for ``q`` messages beyond the included ones. Contracts are
written as Finance admins leave them in the admin (no service creates them here).
"""

import datetime as dt
import io
from decimal import Decimal as D

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from pypdf import PdfReader

from billing.models import Contract, ContractDiscountTier, Invoice, Plan, PrepaidCredit, Subscription
from billing.rating.contracts import contracts_load
from billing.rating.engine import charges_estimate, charges_many
from billing.services.catalogue import ChargeSpec, plan_create, plan_version_create
from billing.services.documents import invoice_preview_pdf
from common.periods import month_period
from tests.accounts.factories import AccountFactory, StaffUserFactory
from tests.billing.cycle import UTC, close, event, ingest, subscribe
from tests.tenants.factories import TenantFactory
from usage.models import Metric

pytestmark = pytest.mark.django_db

JAN_2027 = dt.datetime(2027, 1, 1, tzinfo=UTC)
JAN_2030 = dt.datetime(2030, 1, 1, tzinfo=UTC)
JAN_11 = dt.datetime(2027, 1, 11, tzinfo=UTC)
PLAN_NAME = "Custom Enterprise – Globex"


def enterprise(account, *, unit_price=D("0.01"), included=D("100000"), version_of=None):
    """The negotiated plan (or its next version, with ``version_of``): USD 2,000.00 a month, messages."""
    custom = version_of or plan_create(
        code=f"custom-{account.public_id}", name=PLAN_NAME, product=Plan.Product.MESSAGING, account=account
    )
    return plan_version_create(
        plan=custom,
        currency="USD",
        base_fee=D("2000.00"),
        term_months=36,
        charges=[ChargeSpec("messages", included_quantity=included, unit_price=unit_price)],
        publish=True,
    )


def globex(name="Globex", **fields):
    """An account on the negotiated plan since January 1, 2027, with one tenant."""
    account = AccountFactory(name=name, **fields)
    subscribe(account, enterprise(account), started_at=JAN_2027, at=JAN_2027)
    TenantFactory(account=account, public_id=f"ten_{account.pk}", activated_at=JAN_2027)
    return account


def contract(account, **fields):
    """A 36-month contract from January 1, 2027 (to December 31, 2029)."""
    values = {
        "public_id": f"CT-{account.pk:06d}",
        "term_start": JAN_2027,
        "term_months": 36,
        "term_end": JAN_2030,
        "auto_renew": False,
        **fields,
    }
    return Contract.objects.create(account=account, **values)


def tiers(agreement, *pairs):
    messages = Metric.objects.get(code="messages")
    for threshold, percent in pairs:
        ContractDiscountTier.objects.create(contract=agreement, metric=messages, threshold=threshold, percent=percent)


def bill(account, year, month, messages=0):
    """Report ``messages`` on the 10th, close the month on the 1st of the next (finalized at once)."""
    period = month_period(year, month)
    if messages:
        at = period.start + dt.timedelta(days=9)
        ingest(
            account,
            [event(f"m-{year}-{month}", f"ten_{account.pk}", "messages", messages, at)],
            now=at + dt.timedelta(hours=1),
        )
    close(period=period, now=period.end + dt.timedelta(minutes=5))
    return Invoice.objects.get(account=account, period_start=period.start)


def lines_of(invoice):
    return [(line.kind, line.description, line.amount) for line in invoice.lines.order_by("position")]


def estimate_lines(estimate):
    return [(line.kind, line.description, line.amount) for line in estimate.lines]


def test_custom_enterprise_account_crossing_two_volume_discount_tiers(catalogue):
    account = globex(tax_rate=D("10"))
    tiers(contract(account), (D("200000"), D("10")), (D("500000"), D("15")))

    invoice = bill(account, 2027, 1, messages=600_000)

    assert lines_of(invoice) == [
        ("base_fee", f"{PLAN_NAME} base fee", D("2000.00")),
        # 600,000 − 100,000 included = 500,000 × USD 0.01
        ("usage", "Messages", D("5000.00")),
        # A(200,000) = 1,000, A(500,000) = 4,000, A(600,000) = 5,000:
        # 10 % × (4,000 − 1,000) + 15 % × (5,000 − 4,000) = 300.00 + 150.00
        ("discount", "Volume discount on Messages: 10% over 200,000, 15% over 500,000", D("-450.00")),
    ]
    # 2,000 + 5,000 − 450 = 6,550.00; tax 10 % of the subtotal
    assert (invoice.subtotal, invoice.discount_total, invoice.tax, invoice.total) == (
        D("6550.00"),
        D("450.00"),
        D("655.00"),
        D("7205.00"),
    )


def test_one_tier_reached_is_the_only_one_named(catalogue):
    account = globex()
    tiers(contract(account), (D("200000"), D("10")), (D("500000"), D("15")))
    ingest(account, [event("m1", f"ten_{account.pk}", "messages", 300_000, "2027-01-10T10:00:00Z")], now=JAN_11)

    estimate = charges_estimate(account=account, period=month_period(2027, 1), now=JAN_2027 + dt.timedelta(days=20))

    # A(300,000) = 2,000: 10 % × (2,000 − 1,000)
    assert estimate_lines(estimate)[-1] == ("discount", "Volume discount on Messages: 10% over 200,000", D("-100.00"))
    assert estimate.discount == D("100.00")


def test_each_plan_segment_gets_its_own_volume_discount(catalogue):
    """A plan change on January 16: each segment's messages line is discounted against its own quantity."""
    account = globex()
    first = enterprise(account, included=D("0"), version_of=Plan.objects.get(account=account))
    second = enterprise(account, included=D("0"), unit_price=D("0.02"), version_of=first.plan)
    tiers(contract(account), (D("200000"), D("10")), (D("500000"), D("15")))
    tenant = f"ten_{account.pk}"
    ingest(
        account,
        [
            event("m1", tenant, "messages", 300_000, "2027-01-10T10:00:00Z"),
            event("m2", tenant, "messages", 600_000, "2027-01-20T10:00:00Z"),
        ],
        now=dt.datetime(2027, 1, 21, tzinfo=UTC),
    )
    change = dt.datetime(2027, 1, 16, tzinfo=UTC)
    plans = [
        Subscription(account=account, plan_version=first, started_at=JAN_2027, ended_at=change),
        Subscription(account=account, plan_version=second, started_at=change),
    ]

    estimate = charges_many(
        accounts=[account],
        period=month_period(2027, 1),
        now=dt.datetime(2027, 2, 1, tzinfo=UTC),
        subscriptions={account.pk: plans},
    )[account.pk]

    assert estimate_lines(estimate) == [
        # 2,000 × 15/31 = 967.741… and 2,000 × 16/31 = 1,032.258…
        ("base_fee", f"{PLAN_NAME} base fee (Jan 1–Jan 15)", D("967.74")),
        ("usage", "Messages (Jan 1–Jan 15)", D("3000.00")),  # 300,000 × 0.01
        ("base_fee", f"{PLAN_NAME} base fee (Jan 16–Jan 31)", D("1032.26")),
        ("usage", "Messages (Jan 16–Jan 31)", D("12000.00")),  # 600,000 × 0.02
        # 10 % × (3,000 − 2,000)
        ("discount", "Volume discount on Messages (Jan 1–Jan 15): 10% over 200,000", D("-100.00")),
        # 10 % × (10,000 − 4,000) + 15 % × (12,000 − 10,000) = 600 + 300
        ("discount", "Volume discount on Messages (Jan 16–Jan 31): 10% over 200,000, 15% over 500,000", D("-900.00")),
    ]
    assert (estimate.subtotal, estimate.discount) == (D("16000.00"), D("1000.00"))


def test_prepaid_credit_drawn_down_then_exhausted(catalogue):
    account = globex()
    credit = PrepaidCredit.objects.create(
        contract=contract(account), amount=D("6000.00"), currency="USD", effective_at=JAN_2027
    )

    january = bill(account, 2027, 1, messages=600_000)
    # Usage 5,000.00, all paid by the credit; the base fee is not.
    assert lines_of(january) == [
        ("base_fee", f"{PLAN_NAME} base fee", D("2000.00")),
        ("usage", "Messages", D("5000.00")),
        ("prepaid_credit", "Prepaid credit applied (6,000.00 USD prepaid, 1,000.00 USD left)", D("-5000.00")),
    ]
    assert january.lines.get(kind="prepaid_credit").prepaid_credit == credit
    assert january.total == D("2000.00")
    # Rating January again (a draft re-rated, a preview) draws the same: its own invoice is not counted.
    again = charges_estimate(account=account, period=month_period(2027, 1), now=dt.datetime(2027, 2, 2, tzinfo=UTC))
    assert estimate_lines(again)[-1] == lines_of(january)[-1]

    february = bill(account, 2027, 2, messages=600_000)
    # 1,000.00 left of the credit; 4,000.00 of the usage billed.
    assert lines_of(february)[-1] == (
        "prepaid_credit",
        "Prepaid credit applied (6,000.00 USD prepaid, 0.00 USD left)",
        D("-1000.00"),
    )
    assert february.total == D("6000.00")  # 2,000 + 5,000 − 1,000

    march = bill(account, 2027, 3, messages=600_000)
    assert [kind for kind, _, _ in lines_of(march)] == ["base_fee", "usage"]
    assert march.total == D("7000.00")


def test_prepaid_credits_draw_first_to_expire_first(catalogue):
    account = globex()
    agreement = contract(account)
    march, june = dt.datetime(2027, 3, 1, tzinfo=UTC), dt.datetime(2027, 6, 1, tzinfo=UTC)
    open_ended = PrepaidCredit.objects.create(
        contract=agreement, amount=D("10000"), currency="USD", effective_at=JAN_2027
    )
    later = PrepaidCredit.objects.create(
        contract=agreement, amount=D("1000"), currency="USD", effective_at=JAN_2027, expires_at=june
    )
    sooner = PrepaidCredit.objects.create(
        contract=agreement, amount=D("500"), currency="USD", effective_at=JAN_2027, expires_at=march
    )
    # Not usable in January: expired at its start, or in effect only from February.
    PrepaidCredit.objects.create(
        contract=agreement,
        amount=D("900"),
        currency="USD",
        effective_at=dt.datetime(2026, 6, 1, tzinfo=UTC),
        expires_at=JAN_2027,
    )
    PrepaidCredit.objects.create(
        contract=agreement, amount=D("800"), currency="USD", effective_at=dt.datetime(2027, 2, 1, tzinfo=UTC)
    )
    ingest(account, [event("m1", f"ten_{account.pk}", "messages", 600_000, "2027-01-10T10:00:00Z")], now=JAN_11)

    estimate = charges_estimate(account=account, period=month_period(2027, 1), now=dt.datetime(2027, 2, 1, tzinfo=UTC))

    draws = [(line.prepaid_credit, line.amount) for line in estimate.lines if line.kind == "prepaid_credit"]
    # Usage 5,000.00: 500 (expires in March), 1,000 (June), then 3,500 of the one without expiry.
    assert draws == [(sooner, D("-500.00")), (later, D("-1000.00")), (open_ended, D("-3500.00"))]
    assert estimate.subtotal == D("2000.00")


def test_36_month_contract_yearly_commitment_true_up_in_the_last_month_of_the_year(catalogue):
    account = globex()
    agreement = contract(account, commitment_amount=D("30000.00"), commitment_period=Contract.CommitmentPeriod.YEAR)
    # Prepaid credit pays part of March's usage: the commitment counts spend before prepaid draws.
    PrepaidCredit.objects.create(
        contract=agreement, amount=D("500.00"), currency="USD", effective_at=dt.datetime(2027, 3, 1, tzinfo=UTC)
    )

    invoices = {month: bill(account, 2027, month, messages=200_000 if month == 3 else 0) for month in range(1, 13)}

    # March: 2,000 + (200,000 − 100,000) × 0.01 = 3,000, of which the credit pays 500.
    assert invoices[3].total == D("2500.00")
    assert [line.kind for line in invoices[11].lines.all()] == ["base_fee", "usage"]
    # Year 1 billed 12 × 2,000 + 1,000 = 25,000.00 before prepaid draws: 5,000.00 short of 30,000.00.
    assert lines_of(invoices[12]) == [
        ("base_fee", f"{PLAN_NAME} base fee", D("2000.00")),
        ("usage", "Messages", D("0.00")),
        (
            "minimum_commitment",
            "Commitment true-up: 30,000.00 USD committed for contract year 1 (Jan 2027 – Dec 2027), "
            "25,000.00 USD billed",
            D("5000.00"),
        ),
    ]
    assert invoices[12].total == D("7000.00")
    # Year 2 starts afresh: January 2028 has no true-up (its year ends with December 2028).
    january = charges_estimate(account=account, period=month_period(2028, 1), now=dt.datetime(2028, 2, 1, tzinfo=UTC))
    assert [line.kind for line in january.lines] == ["base_fee", "usage"]


def test_monthly_commitment_is_prorated_in_a_partial_first_month(catalogue):
    account = globex()
    start = dt.datetime(2027, 1, 16, tzinfo=UTC)
    contract(
        account,
        term_start=start,
        term_end=dt.datetime(2030, 1, 16, tzinfo=UTC),
        commitment_amount=D("6200.00"),
        commitment_period=Contract.CommitmentPeriod.MONTH,
    )

    january = charges_estimate(account=account, period=month_period(2027, 1), now=dt.datetime(2027, 2, 1, tzinfo=UTC))
    february = charges_estimate(account=account, period=month_period(2027, 2), now=dt.datetime(2027, 3, 1, tzinfo=UTC))

    # In force 16 of January's 31 days: 6,200 × 16/31 = 3,200.00; billed 2,000.00
    assert estimate_lines(january)[-1] == (
        "minimum_commitment",
        "Commitment true-up: 3,200.00 USD committed for January 2027 (Jan 16–Jan 31), 2,000.00 USD billed",
        D("1200.00"),
    )
    assert estimate_lines(february)[-1] == (
        "minimum_commitment",
        "Commitment true-up: 6,200.00 USD committed for February 2027, 2,000.00 USD billed",
        D("4200.00"),
    )


def test_early_termination_is_charged_with_the_last_month(catalogue):
    account = globex()
    agreement = contract(
        account,
        cancellation=Contract.Cancellation.EARLY_TERMINATION,
        early_termination_percent=D("50"),
        commitment_amount=D("6200.00"),
        commitment_period=Contract.CommitmentPeriod.MONTH,
    )
    # As the cancellation service leaves it: ended on March 15, charged 33,000.00.
    Contract.objects.filter(pk=agreement.pk).update(
        terminated_at=dt.datetime(2027, 3, 15, tzinfo=UTC), termination_fee=D("33000.00")
    )

    march = bill(account, 2027, 3)

    assert lines_of(march) == [
        ("base_fee", f"{PLAN_NAME} base fee", D("2000.00")),
        ("usage", "Messages", D("0.00")),
        # In force March 1–14: 6,200 × 14/31 = 2,800.00
        (
            "minimum_commitment",
            "Commitment true-up: 2,800.00 USD committed for March 2027 (Mar 1–Mar 14), 2,000.00 USD billed",
            D("800.00"),
        ),
        (
            "early_termination",
            f"Early termination of contract {agreement.public_id}, term to Dec 31, 2029",
            D("33000.00"),
        ),
    ]
    assert march.total == D("35800.00")
    # April: the contract is over.
    april = charges_estimate(account=account, period=month_period(2027, 4), now=dt.datetime(2027, 5, 1, tzinfo=UTC))
    assert [line.kind for line in april.lines] == ["base_fee", "usage"]


def test_the_invoice_names_the_account_manager(catalogue):
    manager = StaffUserFactory(
        username="dscully", first_name="Dana", last_name="Scully", email="dana@ledgerline.example"
    )
    account = globex()
    contract(account, account_manager=manager)
    other = globex(name="Initech")

    invoice = bill(account, 2027, 1)
    plain = Invoice.objects.get(account=other, period_start=JAN_2027)

    assert invoice.snapshot["account_manager"] == {"name": "Dana Scully", "email": "dana@ledgerline.example"}
    assert plain.snapshot["account_manager"] is None
    pdf = invoice_preview_pdf(invoice=invoice)
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "Your account manager: Dana Scully <dana@ledgerline.example>" in text
    assert invoice_preview_pdf(invoice=invoice) == pdf  # only snapshot data: the same bytes again
    plain_text = "".join(
        page.extract_text() for page in PdfReader(io.BytesIO(invoice_preview_pdf(invoice=plain))).pages
    )
    assert "account manager" not in plain_text


def test_a_manager_without_a_name_is_named_by_username(catalogue):
    account = globex()
    contract(account, account_manager=StaffUserFactory(username="amgr", email="amgr@ledgerline.example"))
    invoice = bill(account, 2027, 1)
    assert invoice.snapshot["account_manager"] == {"name": "amgr", "email": "amgr@ledgerline.example"}


def _contracted(count):
    """``count`` accounts whose contracts use everything at once in December 2027: tiers, a usable
    credit drawn before, and a whole-term commitment ending that month."""
    december = dt.datetime(2027, 12, 1, tzinfo=UTC)
    accounts = []
    for n in range(count):
        account = globex(name=f"Contracted {count}-{n}")
        agreement = contract(
            account,
            term_start=december,
            term_months=1,
            term_end=dt.datetime(2028, 1, 1, tzinfo=UTC),
            commitment_amount=D("9000.00"),
            commitment_period=Contract.CommitmentPeriod.TERM,
        )
        tiers(agreement, (D("200000"), D("10")))
        PrepaidCredit.objects.create(contract=agreement, amount=D("100"), currency="USD", effective_at=december)
        accounts.append(account)
    return accounts


def _queries(function):
    with CaptureQueriesContext(connection) as captured:
        function()
    return len(captured)


def test_contracts_load_in_a_fixed_number_of_queries(catalogue):
    few, many = _contracted(2), _contracted(7)
    plain = [globex(name=f"Plain {n}") for n in range(5)]
    december = month_period(2027, 12)

    # Contracts (with their managers), tiers, credits, earlier draws, earlier spend.
    assert _queries(lambda: contracts_load(accounts=few, period=december)) == 5
    assert _queries(lambda: contracts_load(accounts=many + plain, period=december)) == 5
    assert _queries(lambda: contracts_load(accounts=plain, period=december)) == 1
    loaded = contracts_load(accounts=many + plain, period=december)
    assert sorted(loaded) == sorted(a.pk for a in many)
    # Rating costs the same for 2 contracted accounts as for 7 (and a true-up each: 9,000 − 2,000).
    now = dt.datetime(2028, 1, 1, tzinfo=UTC)
    assert _queries(lambda: charges_many(accounts=few, period=december, now=now)) == _queries(
        lambda: charges_many(accounts=many, period=december, now=now)
    )
    estimates = charges_many(accounts=many, period=december, now=now)
    assert {e.lines[-1].amount for e in estimates.values()} == {D("7000.00")}
