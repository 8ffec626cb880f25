"""Money: ``Decimal`` amounts with an explicit ISO 4217 currency, rounded in one place.

Rules (also in docs/architecture.md):
- Amounts are ``Decimal``; floats are refused.
- Unit prices keep ``UNIT_PRICE_DECIMAL_PLACES`` places; stored amounts keep ``AMOUNT_DECIMAL_PLACES``.
- A monetary total is rounded once, to the currency's minor unit, half up (commercial rounding),
  by ``round_money``. Nothing else rounds money.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

# Field sizes shared by every money column.
AMOUNT_MAX_DIGITS = 18
AMOUNT_DECIMAL_PLACES = 4
UNIT_PRICE_MAX_DIGITS = 20
UNIT_PRICE_DECIMAL_PLACES = 8
QUANTITY_MAX_DIGITS = 24
QUANTITY_DECIMAL_PLACES = 8
# What those columns hold (exclusive bounds): an amount below 10^14, a quantity below 10^16.
AMOUNT_LIMIT = Decimal(10) ** (AMOUNT_MAX_DIGITS - AMOUNT_DECIMAL_PLACES)
QUANTITY_LIMIT = Decimal(10) ** (QUANTITY_MAX_DIGITS - QUANTITY_DECIMAL_PLACES)

# Supported currencies and their minor units (ISO 4217 exponent).
CURRENCY_MINOR_UNITS: dict[str, int] = {
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "CHF": 2,
    "CAD": 2,
    "AUD": 2,
    "SEK": 2,
    "NOK": 2,
    "DKK": 2,
    "JPY": 0,
}
CURRENCY_CHOICES = [(code, code) for code in CURRENCY_MINOR_UNITS]
DEFAULT_CURRENCY = "USD"

ERR_UNKNOWN_CURRENCY = "Unsupported currency {currency!r}; use one of: {choices}."
ERR_NOT_DECIMAL = "Money amounts must be Decimal (or int/str), never float: got {value!r}."


class UnknownCurrency(ValueError):
    pass


def minor_unit(currency: str) -> int:
    try:
        return CURRENCY_MINOR_UNITS[currency]
    except KeyError:
        raise UnknownCurrency(
            ERR_UNKNOWN_CURRENCY.format(currency=currency, choices=", ".join(CURRENCY_MINOR_UNITS))
        ) from None


def to_decimal(value: Decimal | int | str) -> Decimal:
    """Convert an exact value to Decimal. Floats are rejected: they cannot represent cents."""
    if isinstance(value, bool) or isinstance(value, float):
        raise TypeError(ERR_NOT_DECIMAL.format(value=value))
    if isinstance(value, Decimal):
        return value
    try:
        return Decimal(value)
    except (InvalidOperation, ValueError) as exc:
        raise TypeError(ERR_NOT_DECIMAL.format(value=value)) from exc


def round_money(amount: Decimal | int | str, currency: str) -> Decimal:
    """Round an amount to the currency's minor unit, half up. The project's only money rounding."""
    places = minor_unit(currency)
    quantum = Decimal(1).scaleb(-places)
    return to_decimal(amount).quantize(quantum, rounding=ROUND_HALF_UP)


def format_money(amount: Decimal, currency: str, *, unit_price: bool = False) -> str:
    """Human display, e.g. ``USD 1,234.50``, ``JPY 1,200``. Display only; never parse it back.

    Amounts show the currency's minor unit. A unit price (``unit_price=True``) keeps the places it has
    beyond the minor unit, up to ``UNIT_PRICE_DECIMAL_PLACES`` (``USD 0.0085``, ``USD 0.03``)."""
    places = minor_unit(currency)
    if not unit_price:
        return f"{currency} {round_money(amount, currency):,.{places}f}"
    value = to_decimal(amount).quantize(Decimal(1).scaleb(-UNIT_PRICE_DECIMAL_PLACES), rounding=ROUND_HALF_UP)
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)  # "n", "N" and "F" mark NaN and infinity, which no unit price is
    needed = max(-exponent, places)
    return f"{currency} {value:,.{needed}f}"


def format_quantity(quantity: Decimal | int | str) -> str:
    """Human display of a quantity: thousands separated, no trailing zeros (``33,518``, ``36.7314``)."""
    return f"{to_decimal(quantity).normalize():,f}"


def amount_fits(amount: Decimal) -> bool:
    """Whether an amount fits the money columns (``AMOUNT_LIMIT``, either sign)."""
    return abs(amount) < AMOUNT_LIMIT


def largest_amount(currency: str) -> Decimal:
    """The largest amount of ``currency`` the money columns hold, to its minor unit."""
    return AMOUNT_LIMIT - Decimal(1).scaleb(-minor_unit(currency))


def allocate(amount: Decimal, weights: dict, currency: str) -> dict:
    """Split a rounded ``amount`` over ``weights`` in proportion, to the minor unit, so the shares add up
    to ``amount`` exactly (largest remainder; ties go to the larger weight, then the first key)."""
    total_weight = sum(weights.values(), Decimal(0))
    if not weights or total_weight <= 0:
        return {key: round_money(0, currency) for key in weights}
    unit = Decimal(1).scaleb(-minor_unit(currency))
    minor_total = int((round_money(amount, currency) / unit).to_integral_value())
    exact = {k: Decimal(minor_total) * w / total_weight for k, w in weights.items()}
    floors = {k: int(v.to_integral_value(rounding="ROUND_FLOOR")) for k, v in exact.items()}
    leftover = minor_total - sum(floors.values())
    order = sorted(weights, key=lambda k: (-(exact[k] - floors[k]), -weights[k], list(weights).index(k)))
    for key in order[:leftover]:
        floors[key] += 1
    return {k: round_money(Decimal(v) * unit, currency) for k, v in floors.items()}
