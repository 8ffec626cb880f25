import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.periods import (
    Period,
    month_containing,
    month_period,
    next_month,
    parse_month,
    previous_month,
    quarter_containing,
    quarter_period,
    year_containing,
    year_period,
)

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


CONTAINING = {"month": month_containing, "quarter": quarter_containing, "year": year_containing}
kinds = st.sampled_from(sorted(CONTAINING))
# Moments in any fixed UTC offset: the calendar periods are UTC's whatever offset a moment is written in.
offset_moments = st.builds(
    lambda moment, minutes: moment.astimezone(dt.timezone(dt.timedelta(minutes=minutes))),
    moments,
    st.integers(min_value=-14 * 60, max_value=14 * 60),
)


def test_quarters_and_years_are_calendar_periods_in_utc():
    assert quarter_period(2026, 4) == Period(dt.datetime(2026, 10, 1, tzinfo=UTC), dt.datetime(2027, 1, 1, tzinfo=UTC))
    assert quarter_containing(dt.datetime(2026, 5, 31, 23, 59, tzinfo=UTC)) == quarter_period(2026, 2)
    assert year_period(2026) == Period(dt.datetime(2026, 1, 1, tzinfo=UTC), dt.datetime(2027, 1, 1, tzinfo=UTC))
    # 1 January 00:30 in Berlin is still 31 December in UTC.
    assert year_containing(dt.datetime(2027, 1, 1, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))) == year_period(
        2026
    )
    with pytest.raises(ValueError, match="quarter is 1 to 4"):
        quarter_period(2026, 5)
    with pytest.raises(ValueError, match="timezone-aware"):
        quarter_containing(dt.datetime(2026, 5, 1))  # noqa: DTZ001


def test_last_day_is_the_day_before_the_exclusive_end():
    assert month_period(2028, 2).last_day == dt.date(2028, 2, 29)
    assert quarter_period(2026, 4).last_day == dt.date(2026, 12, 31)
    assert year_period(2026).last_day == dt.date(2026, 12, 31)
    # A period ending inside a day ends on that day.
    assert Period(dt.datetime(2026, 1, 1, tzinfo=UTC), dt.datetime(2026, 1, 3, 12, tzinfo=UTC)).last_day == dt.date(
        2026, 1, 3
    )


@given(offset_moments, kinds)
def test_a_moment_lies_in_the_half_open_period_containing_it(moment, kind):
    period = CONTAINING[kind](moment)
    assert period.start <= moment < period.end
    assert moment in period
    assert period.end not in period
    assert period.end - dt.timedelta(microseconds=1) in period
    assert (period.start.day, period.start.hour, period.start.minute, period.start.second) == (1, 0, 0, 0)
    assert period.start.utcoffset() == dt.timedelta(0)


@given(moments, kinds)
def test_consecutive_periods_tile_time_without_gap_or_overlap(moment, kind):
    containing = CONTAINING[kind]
    period = containing(moment)
    following = containing(period.end)
    preceding = containing(period.start - dt.timedelta(microseconds=1))
    assert following.start == period.end
    assert preceding.end == period.start
    assert period.overlap(following) is None
    assert period.overlap(preceding) is None
    # Every instant of a period maps back to that same period, the last one included.
    assert containing(period.start) == containing(period.end - dt.timedelta(microseconds=1)) == period


@given(moments, kinds)
def test_last_day_is_the_day_before_end(moment, kind):
    period = CONTAINING[kind](moment)
    assert period.last_day == period.end.date() - dt.timedelta(days=1)
    assert period.last_day == (period.end - dt.timedelta(microseconds=1)).date()
    assert period.start.date() <= period.last_day


@given(moments)
def test_months_nest_in_quarters_and_quarters_in_years(moment):
    month, quarter, year = month_containing(moment), quarter_containing(moment), year_containing(moment)
    assert year.start <= quarter.start <= month.start and month.end <= quarter.end <= year.end
    # Three months make a quarter, four quarters make a year.
    first = month_containing(quarter.start)
    assert next_month(next_month(first)).end == quarter.end
    assert quarter_containing(quarter_containing(quarter_containing(year.start).end).end).end == (
        quarter_containing(year.end - dt.timedelta(microseconds=1)).start
    )
