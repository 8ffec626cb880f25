"""Properties of rating: totals add up, proration over any split of a month adds up to the whole fee,
graduated and volume tiers agree on where a tier starts (billing/rating.py: tiers are ``[lower, upper)``)."""

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import Account
from billing.models import PlanVersion, Subscription
from billing.rating.engine import MONTHLY_COUNTS, plan_segments, rate
from billing.rating.tiers import ChargeTerms, Tier, graduated_amount, overage_amount, prorate, volume_amount
from common.money import round_money
from tests.billing.cycle import NOVEMBER
from usage.models import Metric
from usage.selectors import MetricUsage

pytestmark = pytest.mark.django_db
CENT = Decimal("0.01")
HALF_CENT = Decimal("0.005")
MONTH_MICROS = 30 * 86_400 * 1_000_000  # November
PLANS = ["messaging-business", "platform-basic", "platform-professional"]
DB_EXAMPLES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def half_up(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


@pytest.fixture
def versions(plan):
    """Catalogue plan versions with their charges loaded once, so rating an example runs no query."""
    ids = [plan(code).pk for code in PLANS]
    rows = PlanVersion.objects.filter(pk__in=ids).select_related("plan")
    rows = rows.prefetch_related("charges__metric", "charges__tiers")
    return {version.plan.code: version for version in rows}


@pytest.fixture
def metrics(catalogue):
    return {metric.code: metric for metric in Metric.objects.all()}


def moment(micros: int) -> dt.datetime:
    return NOVEMBER.start + dt.timedelta(microseconds=micros)


def consecutive(versions_in_order, cuts, trial_micros=None):
    """Subscriptions one after another over November, changing plan at each cut."""
    bounds = [NOVEMBER.start, *(moment(c) for c in cuts), NOVEMBER.end]
    subscriptions = []
    for version, start, end in zip(versions_in_order, bounds[:-1], bounds[1:], strict=True):
        subscriptions.append(
            Subscription(plan_version=version, started_at=start, ended_at=None if end == NOVEMBER.end else end)
        )
    if trial_micros is not None:
        subscriptions[0].trial_end = moment(trial_micros)
    return subscriptions


cut_points = st.lists(st.integers(min_value=1, max_value=MONTH_MICROS - 1), max_size=5, unique=True).map(sorted)
quantity = st.decimals(min_value=0, max_value=10_000_000, places=3, allow_nan=False, allow_infinity=False)


@DB_EXAMPLES
@given(
    data=st.data(),
    cuts=cut_points,
    trial=st.one_of(st.none(), st.integers(min_value=1, max_value=MONTH_MICROS - 1)),
    tax_rate=st.decimals(min_value=0, max_value=100, places=3),
    reverse_charge=st.booleans(),
)
def test_total_is_the_sum_of_the_lines_plus_tax(versions, metrics, data, cuts, trial, tax_rate, reverse_charge):
    chosen = [versions[data.draw(st.sampled_from(PLANS))] for _ in range(len(cuts) + 1)]
    segments = plan_segments(consecutive(chosen, cuts, trial), NOVEMBER)
    usage = {code: MetricUsage(metric=m, quantity=data.draw(quantity)) for code, m in metrics.items()}
    segment_usage = {}
    for index in range(len(segments)):
        segment_usage[index] = {
            code: MetricUsage(metric=m, quantity=data.draw(quantity))
            for code, m in metrics.items()
            if m.source == "events" and m.aggregation not in MONTHLY_COUNTS
        }
    account = Account(currency="USD", tax_rate=tax_rate, tax_reverse_charge=reverse_charge)

    estimate = rate(
        account=account, period=NOVEMBER, segments=segments, usage=usage, segment_usage=segment_usage, prior={}
    )

    lines = sum((line.amount for line in estimate.lines), Decimal(0))
    assert all(line.amount == line.amount.quantize(CENT) for line in estimate.lines)
    assert estimate.subtotal == lines
    assert estimate.tax == (Decimal(0) if reverse_charge else half_up(lines * tax_rate / 100))
    assert estimate.total == lines + estimate.tax


@DB_EXAMPLES
@given(cuts=cut_points, code=st.sampled_from(PLANS))
def test_base_fee_prorated_over_any_split_of_the_month_adds_up_to_the_fee(versions, cuts, code):
    version = versions[code]
    segments = plan_segments(consecutive([version] * (len(cuts) + 1), cuts), NOVEMBER)
    assert sum((s.fraction for s in segments), Fraction(0)) == 1  # exact, by the microsecond

    estimate = rate(
        account=Account(currency="USD"), period=NOVEMBER, segments=segments, usage={}, segment_usage={}, prior={}
    )

    fees = [line.amount for line in estimate.lines if line.kind == "base_fee"]
    assert len(fees) == len(segments)
    # Each line is rounded once, half up: off by at most half a cent, so n lines by at most n × $0.005.
    assert abs(sum(fees) - version.base_fee) <= len(fees) * HALF_CENT


@given(
    fee=st.decimals(min_value=0, max_value=1_000_000, places=2),
    cuts=cut_points,
)
def test_exact_proration_rounded_per_line_stays_within_half_a_cent_a_line(fee, cuts):
    bounds = [0, *cuts, MONTH_MICROS]
    fractions = [Fraction(b - a, MONTH_MICROS) for a, b in zip(bounds, bounds[1:], strict=False)]
    exact = sum((prorate(fee, f) for f in fractions), Decimal(0))
    assert abs(exact - fee) < Decimal("1e-20")  # unrounded shares add up to the fee
    rounded = sum(round_money(prorate(fee, f), "USD") for f in fractions)
    assert abs(rounded - fee) <= len(fractions) * HALF_CENT


widths = st.lists(st.integers(min_value=1, max_value=1_000_000), min_size=1, max_size=4)
prices = st.decimals(min_value=0, max_value=1, places=4)
flat_fees = st.decimals(min_value=0, max_value=100, places=2)


@st.composite
def tier_tables(draw):
    """Contiguous tiers from 0, the last open-ended, as services.catalogue.validate_tiers requires."""
    tiers, lower = [], Decimal(0)
    for width in draw(widths):
        tiers.append(Tier(lower, lower + width, draw(prices), draw(flat_fees)))
        lower += width
    tiers.append(Tier(lower, None, draw(prices), draw(flat_fees)))
    return tiers


unit_sizes = st.sampled_from([Decimal(1), Decimal(1000)])


@given(tiers=tier_tables(), unit=unit_sizes, data=st.data())
def test_inside_the_first_tier_graduated_and_volume_agree(tiers, unit, data):
    first = tiers[0]
    units = data.draw(st.decimals(min_value=Decimal("0.001"), max_value=first.upper - Decimal("0.001"), places=3))
    expected = units / unit * first.unit_price + first.flat_fee
    assert graduated_amount(units, tiers, unit) == volume_amount(units, tiers, unit) == expected


@given(tiers=tier_tables(), unit=unit_sizes)
def test_at_a_tier_boundary_both_models_start_the_next_tier(tiers, unit):
    """A quantity equal to a tier's lower bound is in that tier (``[lower, upper)``): volume prices all of it
    at that tier, graduated has filled every tier below and reached this one (its flat fee is due)."""
    for k, tier in enumerate(tiers[1:], start=1):
        boundary = tier.lower
        below = tiers[:k]
        full_tiers = sum(((t.upper - t.lower) / unit * t.unit_price + t.flat_fee for t in below), Decimal(0))
        assert volume_amount(boundary, tiers, unit) == boundary / unit * tier.unit_price + tier.flat_fee
        assert graduated_amount(boundary, tiers, unit) == full_tiers + tier.flat_fee


@given(tiers=tier_tables(), unit=unit_sizes, units=st.decimals(min_value=0, max_value=10_000_000, places=3))
def test_one_price_and_no_flat_fees_make_graduated_and_volume_identical(tiers, unit, units):
    price = tiers[0].unit_price
    flat = [Tier(t.lower, t.upper, price, Decimal(0)) for t in tiers]
    terms = {model: ChargeTerms(model, Decimal(0), unit, tiers=flat) for model in ("graduated", "volume")}
    assert overage_amount(terms["graduated"], units) == overage_amount(terms["volume"], units) == units / unit * price
