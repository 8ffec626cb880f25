from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.money import CURRENCY_MINOR_UNITS, UnknownCurrency, format_money, format_quantity, round_money

amounts = st.decimals(
    min_value=Decimal("-1e12"), max_value=Decimal("1e12"), allow_nan=False, allow_infinity=False, places=6
)
currencies = st.sampled_from(sorted(CURRENCY_MINOR_UNITS))


def test_round_money_rounds_half_up_to_the_cent():
    assert round_money(Decimal("2.345"), "USD") == Decimal("2.35")
    assert round_money(Decimal("2.344999"), "USD") == Decimal("2.34")
    assert round_money(Decimal("-2.345"), "USD") == Decimal("-2.35")


def test_round_money_uses_the_currency_minor_unit():
    assert round_money(Decimal("1234.5"), "JPY") == Decimal("1235")
    assert str(round_money(Decimal("7"), "EUR")) == "7.00"


def test_round_money_refuses_floats():
    with pytest.raises(TypeError, match="never float"):
        round_money(0.1, "USD")


def test_round_money_refuses_unknown_currency():
    with pytest.raises(UnknownCurrency, match="Unsupported currency 'XXX'"):
        round_money(Decimal("1"), "XXX")


def test_format_money_groups_thousands():
    assert format_money(Decimal("1234567.891"), "USD") == "USD 1,234,567.89"


def test_format_money_shows_stored_amounts_at_the_minor_unit():
    assert format_money(Decimal("618.3800"), "USD") == "USD 618.38"
    assert format_money(Decimal("1200.0000"), "JPY") == "JPY 1,200"
    assert format_money(Decimal("0.0000"), "EUR") == "EUR 0.00"


def test_format_money_keeps_the_places_a_unit_price_needs():
    assert format_money(Decimal("0.00850000"), "USD", unit_price=True) == "USD 0.0085"
    assert format_money(Decimal("0.03000000"), "USD", unit_price=True) == "USD 0.03"
    assert format_money(Decimal("1500.00000000"), "USD", unit_price=True) == "USD 1,500.00"
    assert format_money(Decimal("12.00000000"), "JPY", unit_price=True) == "JPY 12"


def test_format_quantity_drops_trailing_zeros_and_groups_thousands():
    assert format_quantity(Decimal("33518.00000000")) == "33,518"
    assert format_quantity(Decimal("36.73141570")) == "36.7314157"
    assert format_quantity(Decimal("0E-8")) == "0"
    assert format_quantity(Decimal("1E+3")) == "1,000"
    with pytest.raises(TypeError, match="never float"):
        format_quantity(0.5)


@given(st.decimals(min_value=0, max_value=Decimal("1e15"), allow_nan=False, allow_infinity=False, places=8))
def test_format_quantity_reads_back_as_the_same_number(quantity):
    assert Decimal(format_quantity(quantity).replace(",", "")) == quantity


@given(amounts, currencies)
def test_rounding_is_idempotent_and_within_half_a_minor_unit(amount, currency):
    rounded = round_money(amount, currency)
    assert round_money(rounded, currency) == rounded
    half_unit = Decimal(1).scaleb(-CURRENCY_MINOR_UNITS[currency]) / 2
    assert abs(rounded - amount) <= half_unit
    assert -rounded.as_tuple().exponent == CURRENCY_MINOR_UNITS[currency]


@given(amounts, currencies)
def test_rounding_is_symmetric_around_zero(amount, currency):
    assert round_money(-amount, currency) == -round_money(amount, currency)
