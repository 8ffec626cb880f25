"""Tier arithmetic of the pricing engine: plain arithmetic on Decimals, no I/O.

Rules (also in docs/architecture.md):
- Included quantity is deducted first; the pricing model prices the rest (the overage), whose quantity is
  turned into price units (÷ 1,000 for per-thousand metrics).
- per unit: units × price. package: every started package (of ``package_size`` billed units) costs the
  package price. graduated: each tier prices the units inside it, plus its flat fee once reached.
  volume: all units at the price of the tier the total falls in, plus that tier's flat fee.
  Tier bounds are billed quantities of overage, ``[lower, upper)``: a total equal to a tier's lower bound is
  in that tier in both models (volume prices it there; graduated has reached it and owes its flat fee).
- A line's amount is rounded once, half up to the currency's minor unit (``round_money``), after the
  exact computation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from fractions import Fraction

ZERO = Decimal(0)


@dataclass(frozen=True)
class Tier:
    lower: Decimal
    upper: Decimal | None
    unit_price: Decimal
    flat_fee: Decimal = ZERO


@dataclass(frozen=True)
class ChargeTerms:
    pricing_model: str
    included: Decimal | None  # None: unlimited included
    price_unit_size: Decimal = Decimal(1)
    unit_price: Decimal | None = None
    package_size: Decimal | None = None
    package_price: Decimal | None = None
    tiers: Sequence[Tier] = ()


def billable_quantity(quantity: Decimal, included: Decimal | None) -> Decimal:
    if included is None:
        return ZERO
    return max(quantity - included, ZERO)


def graduated_amount(units: Decimal, tiers: Sequence[Tier], unit_size: Decimal) -> Decimal:
    if units <= 0:
        return ZERO
    total = ZERO
    for tier in tiers:
        if units < tier.lower:  # tier not reached; a total equal to ``lower`` is in the tier, as for volume
            break
        top = units if tier.upper is None else min(units, tier.upper)
        total += (top - tier.lower) / unit_size * tier.unit_price + tier.flat_fee
    return total


def volume_amount(units: Decimal, tiers: Sequence[Tier], unit_size: Decimal) -> Decimal:
    if units <= 0:
        return ZERO
    for tier in tiers:
        if tier.lower <= units and (tier.upper is None or units < tier.upper):
            return units / unit_size * tier.unit_price + tier.flat_fee
    return ZERO


def overage_amount(terms: ChargeTerms, quantity: Decimal) -> Decimal:
    """Exact (unrounded) charge for ``quantity`` billed units under ``terms``."""
    billable = billable_quantity(quantity, terms.included)
    model = terms.pricing_model
    if model == "included_only" or billable == 0:
        return ZERO
    if model == "per_unit":
        return billable / terms.price_unit_size * (terms.unit_price or ZERO)
    if model == "package":
        if not terms.package_size:
            raise ValueError("A package-priced charge needs a package size.")
        packages = (billable / terms.package_size).to_integral_value(rounding=ROUND_CEILING)
        return packages * (terms.package_price or ZERO)
    if model == "graduated":
        return graduated_amount(billable, terms.tiers, terms.price_unit_size)
    if model == "volume":
        return volume_amount(billable, terms.tiers, terms.price_unit_size)
    raise ValueError(f"Unknown pricing model {model!r}")


def prorate(amount: Decimal, fraction: Fraction) -> Decimal:
    """``amount`` × an exact fraction of a period, unrounded."""
    return amount * Decimal(fraction.numerator) / Decimal(fraction.denominator)
