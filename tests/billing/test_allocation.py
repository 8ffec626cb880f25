"""Department allocation of an issued invoice (``billing.allocation``), worked by hand: messages of two
departments' partners, a partner without a department, a tenant's own department, a discount and tax, every
split by largest remainder to the cent."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.allocation import (
    UNALLOCATED,
    allocate_document,
    department_order,
    invoice_allocation,
    month_allocation,
    split,
)
from billing.models import Invoice, PlanCharge
from billing.services.catalogue import ChargeSpec
from common.periods import month_period
from tenants.services import tenant_update
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import JAN_1, NOVEMBER, close, event, ingest, subscribe
from tests.billing.factories import PlanVersionFactory
from tests.tenants.factories import MasterPartnerFactory, TenantFactory

pytestmark = pytest.mark.django_db
UTC = dt.UTC
AT = "2026-11-10T10:00:00Z"


def worked_month(*, name: str = "Northwind") -> Invoice:
    """November 2026 for an account on a plan of $100.00 a month, $0.01 a message, 10 % off usage, 20 % tax:

    - tenant ten_nw (no department): 1,000 messages for prt_log (Logistics), 600 for prt_proc (Procurement),
      500 for prt_free (no department) and 56 with no partner;
    - tenant ten_lab (department Procurement): 400 messages with no partner.

    Logistics 1,000 messages, Procurement 600 + 400 = 1,000, Unallocated 500 + 56 = 556; 2,556 in all.
    Usage $25.56; discount 10 % = −$2.556 → −$2.56; subtotal $100.00 + $25.56 − $2.56 = $123.00;
    tax 20 % = $24.60; total $147.60."""
    account = AccountFactory(name=name, tax_rate=D("20"))
    version = PlanVersionFactory(
        base_fee=D("100.00"),
        discount_percent=D("10"),
        charges=[
            ChargeSpec(
                "messages",
                included_quantity=D("0"),
                pricing_model=PlanCharge.PricingModel.PER_UNIT,
                unit_price=D("0.01"),
            )
        ],
    )
    subscribe(account, version)
    TenantFactory(account=account, public_id=f"ten_nw_{account.pk}", name="Northwind EU", activated_at=JAN_1)
    lab_tenant = TenantFactory(
        account=account, public_id=f"ten_lab_{account.pk}", name="Northwind Lab", activated_at=JAN_1
    )
    tenant_update(tenant=lab_tenant, data={"department": "Procurement"})
    for public_id, department in (("prt_log", "Logistics"), ("prt_proc", "Procurement"), ("prt_free", "")):
        MasterPartnerFactory(account=account, public_id=public_id, name=public_id, department=department)
    nw, lab = f"ten_nw_{account.pk}", f"ten_lab_{account.pk}"
    ingest(
        account,
        [
            event(f"{account.pk}-1", nw, "messages", 1000, AT, partner_id="prt_log"),
            event(f"{account.pk}-2", nw, "messages", 600, AT, partner_id="prt_proc"),
            event(f"{account.pk}-3", nw, "messages", 500, AT, partner_id="prt_free"),
            event(f"{account.pk}-4", nw, "messages", 56, AT),
            event(f"{account.pk}-5", lab, "messages", 400, AT),
        ],
    )
    close()
    return Invoice.objects.get(account=account, period_start=NOVEMBER.start)


def test_the_worked_month_is_invoiced_as_worked_out(catalogue):
    invoice = worked_month()
    assert [(line.kind, line.amount) for line in invoice.lines.order_by("position")] == [
        ("base_fee", D("100.00")),
        ("usage", D("25.56")),
        ("discount", D("-2.56")),
    ]
    assert (invoice.subtotal, invoice.tax, invoice.total) == (D("123.00"), D("24.60"), D("147.60"))


def test_departments_add_up_to_the_invoice_with_the_cents_worked_by_hand(catalogue):
    invoice = worked_month()
    allocation = invoice_allocation(invoice)
    base, usage, discount = allocation.lines
    # Usage by quantity: 1,000 / 1,000 / 556 messages at $0.01.
    assert usage.quantities == {"Logistics": D(1000), "Procurement": D(1000), UNALLOCATED: D(556)}
    assert usage.amounts == {"Logistics": D("10.00"), "Procurement": D("10.00"), UNALLOCATED: D("5.56")}
    # Base fee by the usage charges 10.00 : 10.00 : 5.56: exact 39.1236, 39.1236, 21.7527; floors 39.12 + 39.12
    # + 21.75 = 99.99; the cent left goes to the largest remainder, a tie of Logistics and Procurement (.36 each,
    # equal weights): the first by name, Logistics.
    assert base.amounts == {"Logistics": D("39.13"), "Procurement": D("39.12"), UNALLOCATED: D("21.75")}
    # Discount −2.56: exact −1.0016, −1.0016, −0.5569; floors −1.01, −1.01, −0.56 = −2.58; two cents back to the
    # largest remainders (Logistics and Procurement).
    assert discount.amounts == {"Logistics": D("-1.00"), "Procurement": D("-1.00"), UNALLOCATED: D("-0.56")}
    # Tax 24.60: exact 9.6244, 9.6244, 5.3513; floors 9.62 + 9.62 + 5.35 = 24.59; the tie again to Logistics.
    assert allocation.tax == {"Logistics": D("9.63"), "Procurement": D("9.62"), UNALLOCATED: D("5.35")}
    # Logistics 10.00 + 39.13 − 1.00 + 9.63 = 57.76; Procurement 10.00 + 39.12 − 1.00 + 9.62 = 57.74;
    # Unallocated 5.56 + 21.75 − 0.56 + 5.35 = 32.10; 57.76 + 57.74 + 32.10 = 147.60.
    assert allocation.totals() == {"Logistics": D("57.76"), "Procurement": D("57.74"), UNALLOCATED: D("32.10")}
    assert sum(allocation.totals().values()) == invoice.total


def test_the_month_allocation_lists_messages_and_cost_per_department(catalogue):
    invoice = worked_month()
    result = month_allocation(account=invoice.account, period=NOVEMBER)
    assert result.invoice == invoice
    assert [(r.department, r.message_count, r.usage, r.fees, r.discounts, r.tax, r.total) for r in result.rows] == [
        ("Logistics", D(1000), D("10.00"), D("39.13"), D("-1.00"), D("9.63"), D("57.76")),
        ("Procurement", D(1000), D("10.00"), D("39.12"), D("-1.00"), D("9.62"), D("57.74")),
        (UNALLOCATED, D(556), D("5.56"), D("21.75"), D("-0.56"), D("5.35"), D("32.10")),
    ]


def test_a_month_without_an_issued_invoice_has_no_rows(catalogue):
    invoice = worked_month()
    result = month_allocation(account=invoice.account, period=month_period(2026, 10))
    assert (result.invoice, result.rows, result.total) == (None, [], D(0))


def test_without_usage_the_base_fee_and_tax_are_unallocated(catalogue):
    account = AccountFactory(tax_rate=D("20"))
    subscribe(account, PlanVersionFactory(base_fee=D("10.00")))
    TenantFactory(account=account, activated_at=JAN_1)
    close()
    invoice = Invoice.objects.get(account=account)
    # $10.00 + 20 % = $12.00, all of it Unallocated.
    assert invoice_allocation(invoice).totals() == {UNALLOCATED: D("12.00")}


def test_a_partner_without_department_falls_back_to_its_tenants_department(catalogue):
    invoice = worked_month()
    tenant_update(tenant=invoice.account.tenants.get(name="Northwind EU"), data={"department": "Logistics"})
    usage = invoice_allocation(invoice).lines[1]
    # ten_nw is Logistics now: its 500 messages for prt_free and 56 without a partner join prt_log's 1,000.
    assert usage.quantities == {"Logistics": D(1556), "Procurement": D(1000)}
    assert usage.amounts == {"Logistics": D("15.56"), "Procurement": D("10.00")}


def test_departments_are_ordered_by_name_with_unallocated_last():
    assert department_order(["sales", UNALLOCATED, "Logistics", "Ops"]) == ["Logistics", "Ops", "sales", UNALLOCATED]


def test_a_split_without_positive_weights_goes_to_unallocated():
    assert split(D("3.00"), {"Sales": D(0)}, "USD") == {UNALLOCATED: D("3.00")}


# --- Properties ----------------------------------------------------------------------------------------------

departments = st.sampled_from(["Logistics", "Procurement", "Sales", "Support", UNALLOCATED])
quantities = st.dictionaries(departments, st.integers(min_value=0, max_value=10**7).map(D), min_size=1, max_size=5)
cents = st.integers(min_value=0, max_value=10**9).map(lambda c: D(c) / 100)


@settings(max_examples=300, deadline=None)
@given(
    usage=st.lists(st.tuples(cents, quantities), min_size=0, max_size=4),
    others=st.lists(st.integers(min_value=-(10**8), max_value=10**9).map(lambda c: D(c) / 100), max_size=3),
    tax=cents,
)
def test_every_split_adds_up_exactly_and_is_within_a_cent_of_its_exact_share(usage, others, tax):
    usage_shares, other_shares, tax_shares = allocate_document(usage=usage, others=others, tax=tax, currency="USD")
    # Each usage line: shares add up to the line, each within a cent of amount × quantity / total quantity.
    for (amount, weights), shares in zip(usage, usage_shares, strict=True):
        assert sum(shares.values()) == amount
        total = sum(weights.values())
        for department, share in shares.items():
            exact = amount * weights[department] / total if total > 0 else amount
            assert abs(share - exact) < D("0.01")
    weights: dict = {}
    for shares in usage_shares:
        for department, share in shares.items():
            weights[department] = weights.get(department, D(0)) + share
    positive = sum(w for w in weights.values() if w > 0)
    # The other lines and tax: in proportion to the usage allocation, adding up exactly.
    for amount, shares in [*zip(others, other_shares, strict=True), (tax, tax_shares)]:
        assert sum(shares.values()) == amount
        for department, share in shares.items():
            exact = amount * weights[department] / positive if positive > 0 else amount
            assert abs(share - exact) < D("0.01")
    # The document: every department's figures add up to lines + tax.
    grand = sum((sum(s.values()) for s in [*usage_shares, *other_shares, tax_shares]), D(0))
    assert grand == sum((a for a, _ in usage), D(0)) + sum(others, D(0)) + tax
