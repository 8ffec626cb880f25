import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.periods import Period, month_containing, month_period, next_month, parse_month, previous_month

UTC = dt.UTC
# hypothesis takes naive bounds and attaches the time zone itself.
moments = st.datetimes(
    min_value=dt.datetime(2000, 1, 1),  # noqa: DTZ001
    max_value=dt.datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)


def test_month_period_is_half_open():
    october = month_period(2026, 10)
    assert october.start == dt.datetime(2026, 10, 1, tzinfo=UTC)
    assert october.end == dt.datetime(2026, 11, 1, tzinfo=UTC)
    assert october.start in october
    assert october.end not in october
    assert october.end - dt.timedelta(microseconds=1) in october


def test_december_rolls_into_next_year():
    assert month_period(2026, 12).end == dt.datetime(2027, 1, 1, tzinfo=UTC)


def test_hours_in_a_month():
    assert month_period(2026, 10).hours == Decimal(744)
    assert month_period(2026, 2).hours == Decimal(672)


def test_period_rejects_wrong_order_and_naive_bounds():
    start = dt.datetime(2026, 1, 2, tzinfo=UTC)
    with pytest.raises(ValueError, match="end after it starts"):
        Period(start, start)
    with pytest.raises(ValueError, match="timezone-aware"):
        Period(dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 2))  # noqa: DTZ001


def test_parse_month_explains_bad_input():
    assert parse_month("2026-10") == month_period(2026, 10)
    with pytest.raises(ValueError, match="YYYY-MM"):
        parse_month("2026-13")


@given(moments)
def test_every_moment_lies_in_exactly_one_month(moment):
    month = month_containing(moment)
    assert moment in month
    assert moment not in next_month(month)
    assert moment not in previous_month(month)
    assert next_month(month).start == month.end
    assert previous_month(month).end == month.start


@given(moments, st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=20))
def test_fractions_of_any_split_of_a_period_sum_to_one(moment, cuts):
    month = month_containing(moment)
    seconds = int(month.duration.total_seconds())
    points = sorted({c % seconds for c in cuts} - {0})
    bounds = [month.start] + [month.start + dt.timedelta(seconds=p) for p in points] + [month.end]
    parts = [Period(a, b) for a, b in zip(bounds, bounds[1:], strict=False)]
    assert sum(month.fraction_covered_by(p) for p in parts) == 1
    assert sum((p.duration for p in parts), dt.timedelta()) == month.duration
