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
    def last_day(self) -> dt.date:
        """The UTC day of the period's last instant: for a period ending at midnight (a month, a quarter,
        a year), the day before ``end``."""
        return (self.end - _ONE_MICROSECOND).astimezone(UTC).date()

    @property
    def label(self) -> str:
        if self == month_period(self.start.year, self.start.month):
            return f"{self.start:%Y-%m}"
        return f"{self.start:%Y-%m-%d %H:%M} – {self.end:%Y-%m-%d %H:%M} UTC"


_ONE_MICROSECOND = dt.timedelta(microseconds=1)


def _micros(delta: dt.timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _calendar_months(year: int, month: int, count: int) -> Period:
    """``count`` whole calendar months (UTC) from the first of ``month``."""
    years_on, end_month_index = divmod(month - 1 + count, 12)
    return Period(
        dt.datetime(year, month, 1, tzinfo=UTC), dt.datetime(year + years_on, end_month_index + 1, 1, tzinfo=UTC)
    )


def month_period(year: int, month: int) -> Period:
    return _calendar_months(year, month, 1)


def quarter_period(year: int, quarter: int) -> Period:
    """Calendar quarter ``quarter`` (1 to 4) of ``year``: January–March is the first."""
    if not 1 <= quarter <= 4:
        raise ValueError(f"A quarter is 1 to 4, got {quarter!r}.")
    return _calendar_months(year, 3 * quarter - 2, 3)


def year_period(year: int) -> Period:
    return _calendar_months(year, 1, 12)


def _utc(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        raise ValueError(ERR_NAIVE)
    return moment.astimezone(UTC)


def month_containing(moment: dt.datetime) -> Period:
    moment = _utc(moment)
    return month_period(moment.year, moment.month)


def quarter_containing(moment: dt.datetime) -> Period:
    moment = _utc(moment)
    return quarter_period(moment.year, (moment.month + 2) // 3)


def year_containing(moment: dt.datetime) -> Period:
    return year_period(_utc(moment).year)


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
