"""Quantities as people read them: one rule per metric, used by the portal, the PDFs and the e-mails.

Customer-facing only: the admin shows staff the exact quantity, without trailing zeros
(``common.money.format_quantity``). Display only: stored and billed quantities keep their
``QUANTITY_DECIMAL_PLACES`` (8) places, and every amount is computed from them; nothing here is parsed
back or rounds what is billed.

The rule (also in docs/billing.md, "How quantities are shown"):

- gauges (storage, in GB-months): always 2 decimals (``40.00``, ``36.73``), so a column of them lines up
  and no figure looks more exact than another;
- counts (events counted, unique values, tenants, master partners): whole numbers (``12``);
- sums and maxima of reported quantities (messages, API requests), and a quantity of no metric: whole
  numbers, or up to 2 decimals without trailing zeros when a fractional quantity was reported (``31,000``,
  ``2.5``), so it is not hidden;
- always rounded half up and thousands separated.

Where figures are meant to add up — tenants' shares of a metric, included plus billable — the shown
figures add up to the shown total: shares are rounded by largest remainder (``format_parts``) and the
billable quantity is the shown quantity less the shown included one (``format_usage``).
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any, Protocol, TypeVar

from common.money import QUANTITY_DECIMAL_PLACES

K = TypeVar("K")
# Stored quantities keep 8 places: a billable quantity within this of quantity − included is that difference.
STORED_QUANTUM = Decimal(1).scaleb(-QUANTITY_DECIMAL_PLACES)

# Decimals shown: gauges always 2; reported sums and maxima (and quantities of no metric) up to 2.
GAUGE_PLACES = 2
DEFAULT_PLACES = 2


class MetricLike(Protocol):
    source: str
    aggregation: str


def quantity_places(metric: MetricLike | None) -> tuple[int, bool]:
    """How many decimals a quantity of ``metric`` is shown with, and whether always that many (else
    trailing zeros are dropped)."""
    if metric is None:
        return DEFAULT_PLACES, False
    if metric.source != "events" or metric.aggregation in ("count", "unique_count"):
        return 0, True
    if metric.aggregation == "time_weighted":
        return GAUGE_PLACES, True
    return DEFAULT_PLACES, False


def _text(value: Decimal, places: int, fixed: bool) -> str:
    text = f"{value:,.{places}f}"
    if places and not fixed:
        text = text.rstrip("0").rstrip(".")
    return text[1:] if text.startswith("-") and not text.strip("-0.,") else text


def _rounded(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def format_metric_quantity(value: Decimal | int | str | None, metric: MetricLike | None = None) -> str:
    """``value`` shown by ``metric``'s rule: ``format_metric_quantity(Decimal("36.72811234"), storage)`` → ``36.73``;
    without a metric, up to 2 decimals (``format_metric_quantity(Decimal("20.000"))`` → ``20``)."""
    if value is None or value == "":
        return ""
    places, fixed = quantity_places(metric)
    return _text(_rounded(Decimal(value), places), places, fixed)


def adds_up(metric: MetricLike | None) -> bool:
    """Whether the tenants' quantities of ``metric`` add up to the account's (not for unique values seen in
    several tenants, nor for maxima)."""
    return metric is None or metric.aggregation not in ("unique_count", "max") or metric.source != "events"


def format_parts(parts: dict[K, Decimal], metric: MetricLike | None = None) -> dict[K, str]:
    """Parts of one total (e.g. each tenant's storage), rounded so that the shown parts add up to their
    total as shown: largest remainder, ties to the larger part, then the first. A metric whose parts do not
    add up (``adds_up``) has each part rounded on its own."""
    if not parts or not adds_up(metric):
        return {key: format_metric_quantity(value, metric) for key, value in parts.items()}
    places, fixed = quantity_places(metric)
    unit = Decimal(1).scaleb(-places)
    exact = {key: Decimal(value) / unit for key, value in parts.items()}
    floors = {key: value.to_integral_value(rounding=ROUND_FLOOR) for key, value in exact.items()}
    target = sum(exact.values(), Decimal(0)).to_integral_value(rounding=ROUND_HALF_UP)
    leftover = int(target - sum(floors.values(), Decimal(0)))
    if not 0 <= leftover <= len(parts):  # negative parts: no meaningful sharing, round each
        return {key: format_metric_quantity(value, metric) for key, value in parts.items()}
    keys = list(parts)
    order = sorted(keys, key=lambda k: (-(exact[k] - floors[k]), -exact[k], keys.index(k)))
    for key in order[:leftover]:
        floors[key] += 1
    return {key: _text(floors[key] * unit, places, fixed) for key in keys}


def format_usage(
    *, quantity: Decimal | None, included: Decimal | None, billable: Decimal | None, metric: MetricLike | None
) -> dict[str, Any]:
    """A usage line's quantity, included and billable quantity as shown. Where the billable quantity is the
    quantity beyond the included one, it is shown as the shown quantity less the shown included one, so the
    three read as a sum even when the included quantity was prorated."""
    places, fixed = quantity_places(metric)
    shown = {
        "quantity": format_metric_quantity(quantity, metric),
        "included": format_metric_quantity(included, metric),
        "billable": format_metric_quantity(billable, metric),
    }
    if (
        quantity is not None
        and included is not None
        and billable is not None
        and billable > 0
        and abs(billable - (quantity - included)) <= STORED_QUANTUM
    ):
        shown["billable"] = _text(_rounded(quantity, places) - _rounded(included, places), places, fixed)
    return shown
