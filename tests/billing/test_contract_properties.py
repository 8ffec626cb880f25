"""Properties of contract pricing (billing/rating/contracts.py): prepaid draws never exceed what is left of
a credit nor what they pay for, and over any run of months a credit gives at most its amount; volume
discounts are never negative, never more than the charge, and grow with the tiers' percentages."""

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from billing.rating.contracts import CreditBalance, DiscountTier, credits_draw, volume_discount
from billing.rating.tiers import ChargeTerms, Tier, overage_amount

money = st.decimals(min_value=0, max_value=1_000_000, places=2, allow_nan=False, allow_infinity=False)
quantity = st.decimals(min_value=0, max_value=10_000_000, places=3, allow_nan=False, allow_infinity=False)
percent = st.decimals(min_value=Decimal("0.01"), max_value=100, places=2)


@st.composite
def balances(draw):
    amounts = draw(st.lists(st.decimals(min_value=Decimal("0.01"), max_value=100_000, places=2), max_size=5))
    return [CreditBalance(amount, draw(st.decimals(min_value=0, max_value=amount, places=2))) for amount in amounts]


@st.composite
def discount_tiers(draw):
    thresholds = draw(st.lists(quantity, min_size=1, max_size=4, unique=True))
    return [DiscountTier(t, draw(percent)) for t in sorted(thresholds)]


@st.composite
def monotone_terms(draw):
    """Per-unit or graduated pricing: the charge never falls as the quantity grows."""
    included = draw(st.one_of(st.just(Decimal(0)), quantity))
    unit_size = draw(st.sampled_from([Decimal(1), Decimal(1000)]))
    if draw(st.booleans()):
        return ChargeTerms(
            "per_unit", included, unit_size, unit_price=draw(st.decimals(min_value=0, max_value=5, places=4))
        )
    bounds = sorted(draw(st.lists(st.integers(min_value=1, max_value=5_000_000), max_size=3, unique=True)))
    lowers, uppers = [0, *bounds], [*bounds, None]
    tiers = [
        Tier(
            Decimal(lower),
            None if upper is None else Decimal(upper),
            draw(st.decimals(min_value=0, max_value=5, places=4)),
        )
        for lower, upper in zip(lowers, uppers, strict=True)
    ]
    return ChargeTerms("graduated", included, unit_size, tiers=tiers)


@given(charges=money, credits=balances())
def test_draws_never_exceed_the_credit_left_nor_the_charges(charges, credits):
    draws = credits_draw(charges, credits)
    assert all(0 < d.amount <= d.balance.remaining and d.left == d.balance.remaining - d.amount for d in draws)
    drawn = sum((d.amount for d in draws), Decimal(0))
    # Greedy: everything that can be paid is, up to the charges.
    assert drawn == min(charges, sum((c.remaining for c in credits), Decimal(0)))


@given(amount=st.decimals(min_value=Decimal("0.01"), max_value=100_000, places=2), months=st.lists(money, max_size=12))
def test_over_the_months_a_credit_gives_at_most_its_amount(amount, months):
    remaining, total = amount, Decimal(0)
    for charges in months:
        draws = credits_draw(charges, [CreditBalance(amount, remaining)])
        this_month = sum((d.amount for d in draws), Decimal(0))
        assert this_month <= charges
        remaining -= this_month
        total += this_month
    assert 0 <= remaining and total == amount - remaining <= amount


@given(terms=monotone_terms(), q=quantity, tiers=discount_tiers())
def test_discount_is_never_more_than_the_charge(terms, q, tiers):
    discount = volume_discount(lambda x: overage_amount(terms, x), q, tiers)
    assert 0 <= discount <= overage_amount(terms, q)


@given(q=quantity, tiers=discount_tiers(), unit_price=st.decimals(min_value=0, max_value=5, places=4))
def test_discount_holds_under_volume_pricing_too(q, tiers, unit_price):
    """Volume pricing can charge less for more: the discount is still within [0, charge]."""
    terms = ChargeTerms(
        "volume",
        Decimal(0),
        tiers=[Tier(Decimal(0), Decimal(1000), unit_price * 2), Tier(Decimal(1000), None, unit_price)],
    )
    assert 0 <= volume_discount(lambda x: overage_amount(terms, x), q, tiers) <= overage_amount(terms, q)


@given(terms=monotone_terms(), q=quantity, tiers=discount_tiers(), data=st.data())
def test_discount_grows_with_the_percentages(terms, q, tiers, data):
    index = data.draw(st.integers(min_value=0, max_value=len(tiers) - 1))
    higher = data.draw(st.decimals(min_value=tiers[index].percent, max_value=100, places=2))
    raised = [*tiers[:index], DiscountTier(tiers[index].threshold, higher), *tiers[index + 1 :]]

    def amount_of(x):
        return overage_amount(terms, x)

    assert volume_discount(amount_of, q, tiers) <= volume_discount(amount_of, q, raised)


@given(terms=monotone_terms(), tiers=discount_tiers(), quantities=st.lists(quantity, min_size=2, max_size=2))
def test_discount_grows_with_the_quantity(terms, tiers, quantities):
    low, high = sorted(quantities)

    def amount_of(x):
        return overage_amount(terms, x)

    assert volume_discount(amount_of, low, tiers) <= volume_discount(amount_of, high, tiers)
