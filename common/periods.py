"""Half-open time periods ``[start, end)`` in UTC.

Invariant: ``start < end`` and both are timezone-aware. A moment ``t`` is in the period when
``start <= t < end``, so consecutive months share no instant and together cover all time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

UTC = dt.UTC

ERR_NAIVE = "Period bounds must be timezone-aware."
ERR_ORDER = "A period must end after it starts (start < end)."


@dataclass(frozen=True, order=True)
class Period:
    start: dt.datetime
    end: dt.datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError(ERR_NAIVE)
        if not self.start < self.end:
            raise ValueError(ERR_ORDER)

    def __contains__(self, moment: dt.datetime) -> bool:
        return self.start <= moment < self.end

    @property
    def duration(self) -> dt.timedelta:
        return self.end - self.start

    @property
    def hours(self) -> Decimal:
        return Decimal(int(self.duration.total_seconds())) / Decimal(3600)

    def overlap(self, other: Period) -> Period | None:
        start = max(self.start, other.start)
        end = min(self.end, other.end)
        return Period(start, end) if start < end else None

    def fraction_covered_by(self, other: Period) -> Fraction:
        """Share of this period, by the microsecond, that ``other`` covers: an exact fraction in [0, 1].

        Exact so that prorating over any split of a period adds up to the whole before the one rounding.
        """
        part = self.overlap(other)
        if part is None:
            return Fraction(0)
        return Fraction(_micros(part.duration), _micros(self.duration))

    @property
    def label(self) -> str:
        if self == month_period(self.start.year, self.start.month):
            return f"{self.start:%Y-%m}"
        return f"{self.start:%Y-%m-%d %H:%M} – {self.end:%Y-%m-%d %H:%M} UTC"


def _micros(delta: dt.timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def month_period(year: int, month: int) -> Period:
    start = dt.datetime(year, month, 1, tzinfo=UTC)
    end = dt.datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return Period(start, end)


def month_containing(moment: dt.datetime) -> Period:
    if moment.tzinfo is None:
        raise ValueError(ERR_NAIVE)
    moment = moment.astimezone(UTC)
    return month_period(moment.year, moment.month)


def next_month(period: Period) -> Period:
    return month_containing(period.end)


def previous_month(period: Period) -> Period:
    return month_containing(period.start - dt.timedelta(microseconds=1))


def parse_month(text: str) -> Period:
    """``'2026-10'`` → October 2026. Raises ValueError with a readable message."""
    try:
        year_text, month_text = text.split("-")
        year, month = int(year_text), int(month_text)
        if not 1 <= month <= 12 or not 1970 <= year <= 9998:
            raise ValueError
    except ValueError:
        raise ValueError(f"Expected a month as YYYY-MM, got {text!r}.") from None
    return month_period(year, month)
