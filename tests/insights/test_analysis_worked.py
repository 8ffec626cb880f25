"""Cost analysis (``insights.analysis.cost_analysis``) of two invoiced months worked by hand: per charge, per
tenant, per master partner, per premium feature, unit costs and the month-over-month change in words, every
figure to the cent and adding up to the invoices.

The account (``worked_account``): base fee $100.00 a month; messages 1,000 included then $0.01; API requests
$0.05 per 1,000 (none included); active users 8 included then $2.00; premium features 1 included then
$10.00; storage 1 GB-month included then $2.00; tax 10 %. Tenants Alpha (ten_alpha) and Beta (ten_beta);
master partner Xpress (prt_xpress).

October 2026
- messages: Alpha 1,000 for Xpress + 500 without a partner, Beta 500: 2,000, 1,000 beyond → $10.00; Alpha
  1,500/2,000 → $7.50, Beta $2.50; Xpress 1,000/2,000 → $5.00, no partner $5.00.
- API requests: Alpha 30,000 → 30 × $0.05 = $1.50 (Alpha).
- active users: u1, u2 (Alpha), u3 (Beta): 3 of 8 → $0.00.
- premium features (Alpha): sso on 5 days (5 events), audit on 1 day (1 event): 2, 1 beyond → $10.00; the
  allowance covers sso (used most), so audit is paid for: $10.00 (Alpha).
- storage: Beta holds 2 GB all month: 2 GB-months, 1 beyond → $2.00 (Beta).
- subtotal $100.00 + 10.00 + 1.50 + 10.00 + 2.00 = $123.50; tax $12.35; total $135.85.
- tenants' usage: Alpha 7.50 + 1.50 + 10.00 = $19.00, Beta 2.50 + 2.00 = $4.50. The base fee by 19.00 : 4.50:
  10,000 ¢ × 19/23.5 = 8,085.1 and × 4.5/23.5 = 1,914.9; the cent left goes to Beta (.9 > .1): Alpha $80.85,
  Beta $19.15. Alpha $99.85, Beta $23.65 (= $123.50).
- partners' usage: Xpress $5.00, no partner $18.50; base fee 5 : 18.5 → 2,127.66 / 7,872.34 ¢, the cent to
  Xpress: $21.28 / $78.72. Xpress $26.28, no partner $97.22.

November 2026: the same, but Beta sends 2,300 messages and holds 3 GB.
- messages 3,800, 2,800 beyond → $28.00; Alpha 2,800 ¢ × 1,500/3,800 = 1,105.26, Beta 1,694.74, the cent to
  Beta: $11.05 / $16.95; Xpress 2,800 × 1,000/3,800 = 736.84, no partner 2,063.16, the cent to Xpress: $7.37 /
  $20.63.
- storage 3 GB-months, 2 beyond → $4.00 (Beta).
- subtotal $100.00 + 28.00 + 1.50 + 10.00 + 4.00 = $143.50; tax $14.35; total $157.85.
- tenants' usage: Alpha 11.05 + 1.50 + 10.00 = $22.55, Beta 16.95 + 4.00 = $20.95. Base fee 22.55 : 20.95 →
  5,183.91 / 4,816.09 ¢, the cent to Alpha: $51.84 / $48.16. Alpha $74.39, Beta $69.11 (= $143.50).
- partners' usage: Xpress $7.37, no partner 20.63 + 1.50 + 10.00 + 4.00 = $36.13; base fee → 1,694.25 /
  8,305.75 ¢, the cent to no partner: $16.94 / $83.06. Xpress $24.31, no partner $119.19.
- against October: +$20.00 (+16.2 %): messages +$18.00 (Beta +$14.45, Alpha +$3.55), storage +$2.00 (Beta).
- unit costs: a message $28.00 / 3,800 = $0.0074 (all in: $143.50 / 3,800 = $0.0378); 1,000 API requests
  $1.50 / 30 = $0.0500 (all in $4.7833); an active user $0.00 (all in $143.50 / 3 = $47.8333).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest

from billing.models import Invoice, PlanCharge
from billing.services.catalogue import ChargeSpec
from common.periods import month_period
from insights.analysis import INVOICED, NO_SOURCE, cost_analysis
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import JAN_1, close, event, ingest, subscribe
from tests.billing.factories import PlanVersionFactory
from tests.tenants.factories import MasterPartnerFactory, TenantFactory

pytestmark = pytest.mark.django_db
UTC = dt.UTC
OCTOBER = month_period(2026, 10)
NOVEMBER = month_period(2026, 11)
DEC_10 = dt.datetime(2026, 12, 10, 9, tzinfo=UTC)
OCT, NOV = dt.date(2026, 10, 1), dt.date(2026, 11, 1)


def _per_unit(code: str, included: str, price: str) -> ChargeSpec:
    return ChargeSpec(
        code, included_quantity=D(included), pricing_model=PlanCharge.PricingModel.PER_UNIT, unit_price=D(price)
    )


def _month_events(account, month: int, beta_messages: int, beta_gb: int, ids: str = "") -> list[dict]:
    p = f"{account.pk}-{month}"
    alpha, beta = f"ten_{ids}alpha", f"ten_{ids}beta"
    at = f"2026-{month:02d}-10T10:00:00Z"
    items = [
        event(f"{p}-m1", alpha, "messages", 1000, at, partner_id="prt_xpress"),
        event(f"{p}-m2", alpha, "messages", 500, at),
        event(f"{p}-m3", beta, "messages", beta_messages, at),
        event(f"{p}-a1", alpha, "api_requests", 30000, at),
        event(f"{p}-u1", alpha, "active_users", 1, at, user_id="u1"),
        event(f"{p}-u2", alpha, "active_users", 1, at, user_id="u2"),
        event(f"{p}-u3", beta, "active_users", 1, at, user_id="u3"),
        event(f"{p}-s1", beta, "storage_gb", beta_gb, f"2026-{month:02d}-01T00:00:00Z"),
        event(f"{p}-f0", alpha, "premium_features", 1, f"2026-{month:02d}-12T10:00:00Z", feature="audit"),
    ]
    items += [
        event(f"{p}-f{day}", alpha, "premium_features", 1, f"2026-{month:02d}-0{day}T10:00:00Z", feature="sso")
        for day in range(5, 10)
    ]
    return items


def worked_account(name: str = "Globex", ids: str = ""):
    """The account above, with October and November 2026 invoiced (finalized at once). ``ids`` goes into the
    tenants' public ids (``ten_<ids>alpha``), for a second such account."""
    account = AccountFactory(name=name, tax_rate=D("10"))
    version = PlanVersionFactory(
        base_fee=D("100.00"),
        charges=[
            _per_unit("messages", "1000", "0.01"),
            _per_unit("api_requests", "0", "0.05"),
            _per_unit("active_users", "8", "2.00"),
            _per_unit("premium_features", "1", "10.00"),
            _per_unit("storage_gb", "1", "2.00"),
        ],
    )
    subscribe(account, version, at=dt.datetime(2026, 10, 1, tzinfo=UTC))
    TenantFactory(account=account, public_id=f"ten_{ids}alpha", name="Alpha", activated_at=JAN_1)
    TenantFactory(account=account, public_id=f"ten_{ids}beta", name="Beta", activated_at=JAN_1)
    MasterPartnerFactory(account=account, public_id="prt_xpress", name="Xpress", activated_at=JAN_1)
    ingest(account, _month_events(account, 10, 500, 2, ids), now=dt.datetime(2026, 10, 31, 12, tzinfo=UTC))
    close(period=OCTOBER, now=dt.datetime(2026, 11, 1, 0, 5, tzinfo=UTC))
    ingest(account, _month_events(account, 11, 2300, 3, ids), now=dt.datetime(2026, 11, 30, 12, tzinfo=UTC))
    close(period=NOVEMBER, now=dt.datetime(2026, 12, 1, 0, 5, tzinfo=UTC))
    return account


@pytest.fixture
def analysis(catalogue):
    account = worked_account()
    return cost_analysis(account=account, start_month=OCT, end_month=NOV, now=DEC_10)


def _tenants(rows) -> dict:
    return {r.public_id: (r.usage, r.total) for r in rows}


def test_the_months_are_their_invoices_to_the_cent(analysis):
    october, november = analysis.months
    invoices = Invoice.objects.filter(account=analysis.account).order_by("period_start")
    assert [(m.status, m.invoice_number) for m in analysis.months] == [(INVOICED, i.number) for i in invoices]
    assert (october.subtotal, october.tax, october.total) == (D("123.50"), D("12.35"), D("135.85"))
    assert (november.subtotal, november.tax, november.total) == (D("143.50"), D("14.35"), D("157.85"))
    assert (analysis.subtotal, analysis.tax, analysis.total) == (D("267.00"), D("26.70"), D("293.70"))
    assert (analysis.credited, analysis.net) == (D("0"), D("267.00"))


def test_cost_per_charge(analysis):
    november = analysis.months[1]
    assert [(c.key, c.amount, c.quantity) for c in november.charges] == [
        ("messages", D("28.00"), D("3800")),
        ("premium_features", D("10.00"), D("2")),
        ("storage_gb", D("4.00"), D("3")),
        ("api_requests", D("1.50"), D("30000")),
        ("active_users", D("0.00"), D("3")),
        ("base_fee", D("100.00"), None),
    ]
    assert {c.key: c.amount for c in analysis.charges} == {
        "messages": D("38.00"),
        "api_requests": D("3.00"),
        "active_users": D("0.00"),
        "premium_features": D("20.00"),
        "storage_gb": D("6.00"),
        "base_fee": D("200.00"),
    }


def test_cost_per_tenant_adds_up_to_each_invoice(analysis):
    october, november = analysis.months
    assert _tenants(october.tenants) == {"ten_alpha": (D("19.00"), D("99.85")), "ten_beta": (D("4.50"), D("23.65"))}
    assert _tenants(november.tenants) == {"ten_alpha": (D("22.55"), D("74.39")), "ten_beta": (D("20.95"), D("69.11"))}
    assert _tenants(analysis.tenants) == {"ten_alpha": (D("41.55"), D("174.24")), "ten_beta": (D("25.45"), D("92.76"))}
    assert [t.label for t in november.tenants] == ["Alpha (ten_alpha)", "Beta (ten_beta)"]
    assert november.tenants[1].by_charge == {"messages": D("16.95"), "storage_gb": D("4.00")}


def test_cost_per_partner_adds_up_to_each_invoice(analysis):
    october, november = analysis.months
    assert _tenants(october.partners) == {NO_SOURCE: (D("18.50"), D("97.22")), "prt_xpress": (D("5.00"), D("26.28"))}
    assert _tenants(november.partners) == {
        NO_SOURCE: (D("36.13"), D("119.19")),
        "prt_xpress": (D("7.37"), D("24.31")),
    }
    assert sum(p.total for p in analysis.partners) == D("267.00")


def test_premium_features_which_are_paid_for_and_how_much_they_were_used(analysis):
    november = analysis.months[1]
    assert [(f.feature, f.events, f.days, f.tenants, f.paid, f.cost) for f in november.features] == [
        ("audit", 1, 1, 1, True, D("10.00")),
        ("sso", 5, 5, 1, False, D("0")),
    ]
    assert [(f.feature, f.events, f.days, f.months_paid, f.cost) for f in analysis.features] == [
        ("audit", 2, 2, 2, D("20.00")),
        ("sso", 10, 10, 0, D("0")),
    ]


def test_unit_costs_where_the_metric_is_billed(analysis):
    november = analysis.months[1]
    assert [(u.label, u.metric_cost, u.all_in) for u in november.unit_costs] == [
        ("per message", D("0.0074"), D("0.0378")),
        ("per 1,000 API requests", D("0.0500"), D("4.7833")),
        ("per active user", D("0.0000"), D("47.8333")),
    ]


def test_the_month_over_month_change_is_explained(analysis):
    october, november = analysis.months
    assert october.change is None  # September has no invoice to compare with
    change = november.change
    assert (change.delta, change.percent) == (D("20.00"), D("16.2"))
    assert [(m.key, m.delta, m.tenant.key if m.tenant else None) for m in change.charges] == [
        ("messages", D("18.00"), "ten_beta"),
        ("storage_gb", D("2.00"), "ten_beta"),
    ]
    assert change.charges[0].tenant.delta == D("14.45")
    assert [(m.key, m.delta) for m in change.tenants] == [("ten_beta", D("45.46")), ("ten_alpha", D("-25.46"))]
    assert change.explanation == (
        "Up USD 20.00 (+16.2 %) from October 2026: Messages +USD 18.00, mostly Beta (ten_beta) +USD 14.45; "
        "Storage +USD 2.00, mostly Beta (ten_beta) +USD 2.00."
    )


def test_the_running_month_is_an_estimate(catalogue):
    account = worked_account()
    result = cost_analysis(account=account, start_month=NOV, end_month=dt.date(2026, 12, 1), now=DEC_10)
    november, december = result.months
    assert (december.status, december.invoice_number, december.subtotal) == ("estimate", None, D("100.00"))
    assert result.includes_estimate
    # November is compared with October, the month before the range.
    assert november.change is not None and november.change.delta == D("20.00")


def test_a_range_the_analysis_refuses(catalogue):
    account = AccountFactory()
    with pytest.raises(ValueError, match="ends before it starts"):
        cost_analysis(account=account, start_month=NOV, end_month=OCT, now=DEC_10)
    with pytest.raises(ValueError, match="at most 24 months"):
        cost_analysis(account=account, start_month=dt.date(2024, 11, 1), end_month=NOV, now=DEC_10)
    with pytest.raises(ValueError, match="after the running month"):
        cost_analysis(account=account, start_month=NOV, end_month=dt.date(2027, 1, 1), now=DEC_10)
