"""Forecasts of an account's usage and charges: the running month at its end, and the next three months.

Every figure is a range (``low ≤ expected ≤ high``), and every money figure is priced by the rating engine that
writes the invoices (``billing.rating.engine.rate``) from projected quantities: the forecast never does price
arithmetic of its own. Amounts are the invoice's subtotal (before tax). The model math is in the pure functions
below (``project_days``, ``project_months``, ``quantile``); the selectors load usage and call them.

The running month (``month_forecast``), per metric:

- *Sums and counts* (messages, API requests): the **weekday pattern**. From the last 13 weeks of complete UTC days
  (91 days ending yesterday, from the metric's first day with usage), each weekday's factor is its mean over the
  mean of all days (the seven factors average 1). The month's *level* is the complete days so far divided by the
  sum of their weekday factors (no complete day yet: the last 28 days', the same way). Each day left, today
  included, is expected at level × its weekday's factor; today counts at least what it has already used.
  The range comes from the spread of past weeks: the 7-day blocks of the history (counted back from yesterday),
  each divided by the block before it; the empirical 10 % and 90 % quantiles of these ratios (linear interpolation)
  scale the days left, giving an ~80 % interval (with fewer than 4 ratios: ×0.7 to ×1.3), never narrower than
  ×0.95 to ×1.05 (a steady history is no promise of a steady month). Always ``so far ≤ low ≤ expected ≤ high``.
- *Storage* (time-weighted GB-months): the current level is held to the month's end; the range holds instead the
  lowest and the highest daily average level of the last 28 complete days (and the current level).
- *Monthly counts* (active users, premium features, maxima): the count so far is a floor; expected is the larger of
  it and the median of the last 3 complete months, high the larger of that and their maximum, low the count so far.
  *Tenants and master partners*: those live so far (they are billed for the month once live), no range.

Late usage from earlier months, already reported this month, is kept as it is (it is billed on this invoice). The
charges are the engine's subtotal of the month with these quantities under the account's own segments (plan
versions, trial) and contract: usage still to come is billed under the plan in force at the end of the month.

The next months (``next_months_forecast``): each metric's monthly quantity over the complete months before the
running one (up to 24, from its first month with usage) is projected by ``project_months``:

- with 12 months or more, a **seasonal model**: (level + trend × t) × the month-of-year factor. The trend is a
  least-squares line; each month-of-year's factor is the mean ratio of its months to the line (the 12 factors
  average 1); the line is fitted again to the series divided by its factors, five times over. The range is the
  10 % and 90 % quantiles of the in-sample residuals (actual − fitted), widened by √(n / (n − 14)) for the
  14 fitted parameters (fewer than 20 months: ±20 % of the expected figure), and by √h for the h-th month ahead;
- with 2 to 11 months, a **damped trend** (Holt's linear method, α = 0.5, β = 0.3, damping φ = 0.8): the range
  from the 10 % and 90 % quantiles of its one-step-ahead errors (fewer than 3 errors: ±20 %), widened by √h;
- one month: flat, ±20 %; none: zero. Quantities are never negative.

The charges of each month are priced by the engine under the subscriptions in force at the end of the running
month (their trials and yearly fees included) and the contract in force in that month.

Accuracy (``forecast_accuracy``): the daily forecasts recorded (``insights.models.Forecast``) against the
subtotal of the month's issued invoice: error = actual − expected (positive: the bill was higher), in money and as
a percentage of the actual, and whether the actual fell in the forecast's range.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from accounts.models import Account
from billing.models import Invoice, Subscription
from billing.rating.contracts import contracts_load
from billing.rating.engine import (
    MONTHLY_COUNTS,
    Estimate,
    _prior_lines,
    charges_estimate,
    charges_many,
    plan_segments,
    rate,
)
from common import clock
from common.periods import Period, month_containing, month_period, next_month, previous_month
from insights.models import Forecast
from usage.models import Metric
from usage.selectors import MetricUsage, daily_usage, gauge_current_level, period_usage_many

ZERO = Decimal(0)
ONE = Decimal(1)
QUANTUM = Decimal("0.00000001")  # quantities to 8 places, as the usage selectors give them
PERCENT = Decimal("0.01")

HISTORY_DAYS = 91  # 13 weeks of complete days: the weekday pattern and the weeks' spread
LEVEL_FALLBACK_DAYS = 28  # the level before the month has a complete day; storage's range of levels
WEEK = 7
LOW_QUANTILE, HIGH_QUANTILE = Decimal("0.1"), Decimal("0.9")  # an ~80 % interval
MIN_RATIOS = 4
DEFAULT_WEEK_SPREAD = (Decimal("0.7"), Decimal("1.3"))
MIN_WEEK_SPREAD = Decimal("0.05")  # the days left are never given a range narrower than ±5 %
COUNT_HISTORY_MONTHS = 3  # monthly counts of the running month: the median and maximum of these months
MONTH_HISTORY = 24
SEASONAL_MIN_MONTHS = 12
SEASONAL_PARAMETERS = 14  # a level, a trend and 12 month-of-year factors
SEASONAL_RESIDUALS_MIN_MONTHS = 20
SEASONAL_ITERATIONS = 5
ALPHA, BETA, PHI = Decimal("0.5"), Decimal("0.3"), Decimal("0.8")
MIN_ERRORS = 3
DEFAULT_MONTH_SPREAD = Decimal("0.2")

DayValue = tuple[dt.date, Decimal]
MonthValue = tuple[dt.date, Decimal]


# --- The model: pure functions -------------------------------------------------------------------------------


def quantile(values: Sequence[Decimal], q: Decimal) -> Decimal:
    """The empirical ``q`` quantile (0 ≤ q ≤ 1) of ``values``, interpolating linearly between order statistics
    (the usual "type 7" definition). Raises ValueError on an empty sequence."""
    if not values:
        raise ValueError("A quantile of nothing.")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def median(values: Sequence[Decimal]) -> Decimal:
    return quantile(values, Decimal("0.5"))


def weekday_factors(days: Sequence[DayValue]) -> list[Decimal]:
    """Monday-first factors of each weekday: its mean over the mean of all ``days`` (they average 1 over the
    weekdays seen). A weekday not seen, or no usage at all, gives 1."""
    if not days:
        return [ONE] * WEEK
    overall = sum((v for _, v in days), ZERO) / len(days)
    if overall <= 0:
        return [ONE] * WEEK
    sums, counts = [ZERO] * WEEK, [0] * WEEK
    for day, value in days:
        sums[day.weekday()] += value
        counts[day.weekday()] += 1
    return [(sums[w] / counts[w]) / overall if counts[w] else ONE for w in range(WEEK)]


def week_ratios(days: Sequence[DayValue]) -> list[Decimal]:
    """Each complete 7-day block of ``days`` (counted back from the last day) divided by the block before it
    (blocks after an empty one are left out): how far one week's level strays from the last."""
    totals = []
    end = len(days)
    while end - WEEK >= 0:
        totals.append(sum((v for _, v in days[end - WEEK : end]), ZERO))
        end -= WEEK
    totals.reverse()
    return [b / a for a, b in zip(totals, totals[1:], strict=False) if a > 0]


def week_spread(ratios: Sequence[Decimal]) -> tuple[Decimal, Decimal]:
    """The 10 % and 90 % quantiles of ``ratios``, widened to at least 0.95 and 1.05 (fewer than ``MIN_RATIOS``:
    0.7 and 1.3)."""
    if len(ratios) < MIN_RATIOS:
        return DEFAULT_WEEK_SPREAD
    low = min(quantile(ratios, LOW_QUANTILE), ONE - MIN_WEEK_SPREAD)
    high = max(quantile(ratios, HIGH_QUANTILE), ONE + MIN_WEEK_SPREAD)
    return low, high


@dataclass(frozen=True)
class DayProjection:
    """A month-end projection of an accumulating metric: the month's totals, and each day left expected."""

    expected: Decimal
    low: Decimal
    high: Decimal
    level: Decimal  # an average day's usage this month
    factors: list[Decimal]  # Monday first
    spread: tuple[Decimal, Decimal]
    days: list[dt.date]  # today, then the rest of the month
    expected_days: list[Decimal]


def project_days(
    *,
    history: Sequence[DayValue],
    observed: Sequence[DayValue],
    today_so_far: Decimal,
    remaining: Sequence[dt.date],
) -> DayProjection:
    """Project an accumulating metric to the month's end. ``history``: the complete days (oldest first) the weekday
    pattern and the spread come from; ``observed``: this month's complete days; ``today_so_far``: today's usage up
    to now; ``remaining``: today and the days after it in the month (none once the month is over)."""
    factors = weekday_factors(history)
    weight = sum((factors[d.weekday()] for d, _ in observed), ZERO)
    if weight > 0:
        level = sum((v for _, v in observed), ZERO) / weight
    else:
        recent = history[-LEVEL_FALLBACK_DAYS:]
        weight = sum((factors[d.weekday()] for d, _ in recent), ZERO)
        level = sum((v for _, v in recent), ZERO) / weight if weight > 0 else ZERO
    expected_days = [level * factors[d.weekday()] for d in remaining]
    low_scale, high_scale = week_spread(week_ratios(history))
    observed_total = sum((v for _, v in observed), ZERO)

    def total(scale: Decimal) -> Decimal:
        if not expected_days:
            return observed_total + today_so_far
        today = max(today_so_far, expected_days[0] * scale)
        return (observed_total + today + sum(expected_days[1:], ZERO) * scale).quantize(QUANTUM)

    return DayProjection(
        expected=total(ONE),
        low=total(low_scale),
        high=total(high_scale),
        level=level,
        factors=factors,
        spread=(low_scale, high_scale),
        days=list(remaining),
        expected_days=[v.quantize(QUANTUM) for v in expected_days],
    )


def add_months(month: dt.date, count: int) -> dt.date:
    years, index = divmod(month.month - 1 + count, 12)
    return dt.date(month.year + years, index + 1, 1)


@dataclass(frozen=True)
class MonthProjection:
    """The next months of a monthly series, with the method used and the fit over the history."""

    method: str  # seasonal | damped_trend | flat | none
    months: list[dt.date]
    expected: list[Decimal]
    low: list[Decimal]
    high: list[Decimal]
    fitted: list[Decimal] = field(default_factory=list)  # over the history (seasonal: in-sample; damped: one-step)
    seasonal_factors: list[Decimal] = field(default_factory=list)  # January first (seasonal model only)


def _line(ys: Sequence[Decimal]) -> tuple[Decimal, Decimal]:
    """Least-squares intercept and slope of ``ys`` against t = 0, 1, 2, …"""
    n = len(ys)
    t_mean = Decimal(n - 1) / 2
    y_mean = sum(ys, ZERO) / n
    spread = sum(((Decimal(t) - t_mean) ** 2 for t in range(n)), ZERO)
    slope = sum(((Decimal(t) - t_mean) * (y - y_mean) for t, y in enumerate(ys)), ZERO) / spread if spread else ZERO
    return y_mean - slope * t_mean, slope


def _ranged(
    expected: list[Decimal], errors: Sequence[Decimal], widen: Decimal, min_errors: int
) -> tuple[list[Decimal], list[Decimal]]:
    """Low and high of each month ahead (h = 1, 2, …) from additive ``errors``: their 10 % and 90 % quantiles
    (widened by ``widen`` and √h), or ±20 % of the expected figure with fewer than ``min_errors``."""
    lows, highs = [], []
    below = above = None
    if len(errors) >= min_errors:
        below = min(quantile(errors, LOW_QUANTILE), ZERO) * widen
        above = max(quantile(errors, HIGH_QUANTILE), ZERO) * widen
    for h, value in enumerate(expected, start=1):
        if below is None or above is None:
            lows.append(max(value * (1 - DEFAULT_MONTH_SPREAD), ZERO))
            highs.append(value * (1 + DEFAULT_MONTH_SPREAD))
            continue
        root = Decimal(h).sqrt()
        lows.append(max(value + below * root, ZERO))
        highs.append(value + above * root)
    return lows, highs


def _seasonal(history: Sequence[MonthValue], months: list[dt.date]) -> MonthProjection:
    ys = [v for _, v in history]
    n = len(ys)
    month_of = [m.month - 1 for m, _ in history]
    factors = [ONE] * 12
    intercept, slope = _line(ys)
    for _ in range(SEASONAL_ITERATIONS):
        ratios: list[list[Decimal]] = [[] for _ in range(12)]
        for t, y in enumerate(ys):
            trend = intercept + slope * t
            if trend > 0:
                ratios[month_of[t]].append(y / trend)
        raw = [sum(r, ZERO) / len(r) if r else ONE for r in ratios]
        mean = sum(raw, ZERO) / 12
        factors = [f / mean for f in raw] if mean > 0 else [ONE] * 12
        intercept, slope = _line([y / factors[month_of[t]] if factors[month_of[t]] else y for t, y in enumerate(ys)])
    fitted = [max((intercept + slope * t) * factors[month_of[t]], ZERO) for t in range(n)]
    expected = [max((intercept + slope * (n - 1 + h)) * factors[m.month - 1], ZERO) for h, m in enumerate(months, 1)]
    dof = n - SEASONAL_PARAMETERS
    if n >= SEASONAL_RESIDUALS_MIN_MONTHS and dof > 0:
        errors = [y - f for y, f in zip(ys, fitted, strict=True)]
        low, high = _ranged(expected, errors, (Decimal(n) / dof).sqrt(), 1)
    else:
        low, high = _ranged(expected, [], ONE, 1)
    return MonthProjection("seasonal", months, expected, low, high, fitted, factors)


def _damped(history: Sequence[MonthValue], months: list[dt.date]) -> MonthProjection:
    ys = [v for _, v in history]
    # Started from the first two months: the level at the second, the trend their difference.
    level, trend = ys[1], ys[1] - ys[0]
    fitted: list[Decimal] = [ys[0], ys[1]]
    errors: list[Decimal] = []
    for y in ys[2:]:
        forecast = level + PHI * trend
        fitted.append(max(forecast, ZERO))
        errors.append(y - forecast)
        previous = level
        level = ALPHA * y + (1 - ALPHA) * (level + PHI * trend)
        trend = BETA * (level - previous) + (1 - BETA) * PHI * trend
    expected = []
    damping = ZERO
    for h in range(1, len(months) + 1):
        damping += PHI**h
        expected.append(max(level + damping * trend, ZERO))
    low, high = _ranged(expected, errors, ONE, MIN_ERRORS)
    return MonthProjection("damped_trend", months, expected, low, high, fitted)


def project_months(*, history: Sequence[MonthValue], horizon: int = 3) -> MonthProjection:
    """The ``horizon`` months after ``history`` (consecutive months, oldest first, each the first of its month,
    with its quantity): the seasonal model with 12 months or more, a damped trend with 2 to 11, flat with one."""
    if not history:
        return MonthProjection("none", [], [], [], [])
    months = [add_months(history[-1][0], h) for h in range(1, horizon + 1)]
    if len(history) >= SEASONAL_MIN_MONTHS:
        projection = _seasonal(history, months)
    elif len(history) >= 2:
        projection = _damped(history, months)
    else:
        value = max(history[0][1], ZERO)
        expected = [value] * horizon
        low, high = _ranged(expected, [], ONE, 1)
        projection = MonthProjection("flat", months, expected, low, high, [value])
    return MonthProjection(
        projection.method,
        months,
        [v.quantize(QUANTUM) for v in projection.expected],
        [min(v, e).quantize(QUANTUM) for v, e in zip(projection.low, projection.expected, strict=True)],
        [max(v, e).quantize(QUANTUM) for v, e in zip(projection.high, projection.expected, strict=True)],
        projection.fitted,
        projection.seasonal_factors,
    )


# --- Reads ---------------------------------------------------------------------------------------------------


def is_accumulating(metric: Metric) -> bool:
    """Sums and counts of events: what the weekday pattern projects."""
    return metric.source == Metric.Source.EVENTS and metric.aggregation in ("sum", "count")


def is_monthly_count(metric: Metric) -> bool:
    return metric.source != Metric.Source.EVENTS or metric.aggregation in MONTHLY_COUNTS


@dataclass
class MetricForecast:
    """One metric's projection for a month: its quantity so far (zero for a month to come) and at the end."""

    metric: Metric
    method: str  # weekday_pattern | current_level | count_so_far | count_history | a month model's name
    so_far: Decimal
    expected: Decimal
    low: Decimal
    high: Decimal
    # The running month's accumulating metrics: every day's usage, so far then expected, with its range.
    days: list[dt.date] = field(default_factory=list)
    actual_days: list[Decimal] = field(default_factory=list)  # the days so far (today's partial included)
    expected_days: list[Decimal] = field(default_factory=list)  # the days left, today first
    low_days: list[Decimal] = field(default_factory=list)
    high_days: list[Decimal] = field(default_factory=list)

    @property
    def code(self) -> str:
        return self.metric.code


@dataclass
class Charges:
    """A month's subtotal (before tax) priced by the engine for the expected quantities and both ends of the
    range, with the engine's estimates (lines) behind them."""

    currency: str
    expected: Decimal
    low: Decimal
    high: Decimal
    estimate: Estimate | None = None  # the expected quantities priced


@dataclass
class MonthForecast:
    account: Account
    period: Period
    now: dt.datetime
    days_observed: int  # complete days of the month so far
    so_far: Decimal  # the subtotal if the month closed now (the engine's estimate)
    charges: Charges
    metrics: list[MetricForecast]

    @property
    def currency(self) -> str:
        return self.charges.currency


@dataclass
class NextMonth:
    period: Period
    method: str
    charges: Charges
    metrics: list[MetricForecast]


@dataclass
class ForecastCheck:
    """One recorded forecast against the bill."""

    made_on: dt.date
    expected: Decimal
    low: Decimal
    high: Decimal
    actual: Decimal
    error: Decimal  # actual − expected: positive when the bill was higher than forecast
    error_percent: Decimal | None  # of the actual; None when the actual is zero
    in_range: bool


@dataclass
class MonthAccuracy:
    period: Period
    currency: str
    invoice_number: str | None
    actual: Decimal
    checks: list[ForecastCheck]

    @property
    def halfway(self) -> ForecastCheck | None:
        """The forecast made nearest the middle of the month (the 15th)."""
        if not self.checks:
            return None
        middle = self.period.start.date() + dt.timedelta(days=14)
        return min(self.checks, key=lambda c: (abs((c.made_on - middle).days), c.made_on))

    @property
    def in_range_share(self) -> Decimal | None:
        """The percentage of the month's forecasts whose range held the actual."""
        if not self.checks:
            return None
        held = sum(1 for c in self.checks if c.in_range)
        return (Decimal(held * 100) / len(self.checks)).quantize(PERCENT)

    @property
    def mean_absolute_error_percent(self) -> Decimal | None:
        values = [abs(c.error_percent) for c in self.checks if c.error_percent is not None]
        return (sum(values, ZERO) / len(values)).quantize(PERCENT) if values else None


def _series(account: Account, period: Period, now: dt.datetime) -> dict[str, list[tuple[dt.date, Decimal, Decimal]]]:
    """Per event metric, (day, usage, average level for gauges) of the 3 months before ``period`` and of
    ``period`` up to ``now``, oldest first."""
    months = [previous_month(previous_month(previous_month(period))), previous_month(previous_month(period))]
    months += [previous_month(period), period]
    result: dict[str, list[tuple[dt.date, Decimal, Decimal]]] = {}
    for month in months:
        usage = daily_usage(account=account, period=month, now=now)
        per_day = month.hours / 24
        for entry in usage.metrics:
            rows = result.setdefault(entry.metric.code, [])
            rows.extend((day, value, value * per_day) for day, value in zip(usage.days, entry.totals, strict=True))
    return result


def _from_first_use(rows: Sequence[tuple[dt.date, Decimal, Decimal]]) -> list[tuple[dt.date, Decimal, Decimal]]:
    for i, row in enumerate(rows):
        if row[1] > 0:
            return list(rows[i:])
    return []


def _scaled(usage: MetricUsage, quantity: Decimal) -> MetricUsage:
    """``usage`` with its month's own part replaced by ``quantity`` (late usage kept), tenants and partners
    scaled alike."""
    regular = usage.quantity - usage.late_quantity
    share = quantity / regular if regular else ZERO
    return MetricUsage(
        metric=usage.metric,
        quantity=quantity + usage.late_quantity,
        late_quantity=usage.late_quantity,
        by_tenant={t: (q * share).quantize(QUANTUM) for t, q in usage.by_tenant.items()},
        by_partner={p: (q * share).quantize(QUANTUM) for p, q in usage.by_partner.items()},
        unit_hours=None if usage.unit_hours is None else usage.unit_hours * share,
        late_by_month=dict(usage.late_by_month),
    )


def _price_running(estimate: Estimate, quantities: dict[str, Decimal]) -> Estimate:
    """The engine's estimate of the running month with ``quantities`` (each metric's own part of the month) in
    place of the usage so far: the usage still to come goes to the month's last segment."""
    usage = {code: _scaled(u, quantities.get(code, u.quantity - u.late_quantity)) for code, u in estimate.usage.items()}
    segments, period = estimate.segments, estimate.period
    segment_usage: dict[int, dict[str, MetricUsage]] = {}
    if len(segments) > 1 or (segments and (segments[0].start != period.start or segments[0].end != period.end)):
        for index, segment in enumerate(segments):
            segment_usage[index] = {}
            for code, whole in estimate.usage.items():
                if is_monthly_count(whole.metric):
                    continue
                lines = [line for line in estimate.usage_lines(code) if line.start == segment.start]
                measured = sum((line.quantity or ZERO for line in lines), ZERO)
                if index == len(segments) - 1:
                    measured += quantities.get(code, whole.quantity - whole.late_quantity) - (
                        whole.quantity - whole.late_quantity
                    )
                segment_usage[index][code] = MetricUsage(metric=whole.metric, quantity=max(measured, ZERO))
    late_months = {m for u in usage.values() for m in u.late_by_month}
    account = estimate.account
    prior = _prior_lines([account.pk], late_months) if late_months else {}
    return rate(
        account=account,
        period=period,
        segments=segments,
        usage=usage,
        segment_usage=segment_usage,
        prior=prior,
        contract=estimate.contract,
    )


def _charges(priced: Sequence[Estimate], currency: str) -> Charges:
    expected, low, high = (e.subtotal for e in priced)
    # Pricing is monotone in the quantities; the sort only guards the order a contract's credits might bend.
    low, high = min(low, expected), max(high, expected)
    return Charges(currency=currency, expected=expected, low=low, high=high, estimate=priced[0])


def _monthly_quantities(account: Account, periods: Sequence[Period], now: dt.datetime) -> dict[str, list[MonthValue]]:
    """Each metric's billed quantity in each of ``periods`` (whole months before ``now``)."""
    result: dict[str, list[MonthValue]] = {}
    for period in periods:
        usage = period_usage_many(account_ids=[account.pk], period=period, now=min(now, period.end))[account.pk]
        for code, entry in usage.items():
            result.setdefault(code, []).append((period.start.date(), entry.quantity))
    return result


def _months_before(period: Period, count: int) -> list[Period]:
    months = []
    month = period
    for _ in range(count):
        month = previous_month(month)
        months.append(month)
    return list(reversed(months))


def month_forecast(*, account: Account, now: dt.datetime | None = None) -> MonthForecast:
    """The running month at its end, per metric and in money, with ranges (see the module's docstring)."""
    now = now or clock.now()
    period = month_containing(now)
    # The usage until ``now`` only: a forecast made (or recomputed) after the fact must not see the rest of the month.
    until_now = period_usage_many(account_ids=[account.pk], period=period, now=now, until=now)
    estimate = charges_many(accounts=[account], period=period, now=now, usage=until_now)[account.pk]
    today = now.astimezone(dt.UTC).date()
    day_start = dt.datetime.combine(today, dt.time(), tzinfo=dt.UTC)
    remaining = []
    day = today
    while day <= period.last_day:
        remaining.append(day)
        day += dt.timedelta(days=1)
    series = _series(account, period, now)
    counts_history = _monthly_quantities(account, _months_before(period, COUNT_HISTORY_MONTHS), now)
    hours_left = Decimal(int((period.end - now).total_seconds())) / 3600
    days_observed = (day_start - period.start).days

    metrics: list[MetricForecast] = []
    for code, usage in sorted(estimate.usage.items(), key=lambda item: item[1].metric.name):
        metric = usage.metric
        so_far = usage.quantity - usage.late_quantity
        rows = series.get(code, [])
        if is_accumulating(metric):
            past = _from_first_use([r for r in rows if r[0] < today])[-HISTORY_DAYS:]
            observed = [(d, v) for d, v, _ in rows if period.start.date() <= d < today]
            today_so_far = sum((v for d, v, _ in rows if d == today), ZERO)
            projection = project_days(
                history=[(d, v) for d, v, _ in past],
                observed=observed,
                today_so_far=today_so_far,
                remaining=remaining,
            )
            # Usage reported for later in the month (ahead of now) is in the month's quantity but in no day.
            ahead = so_far - sum((v for _, v in observed), ZERO) - today_so_far
            low_scale, high_scale = projection.spread
            metrics.append(
                MetricForecast(
                    metric=metric,
                    method="weekday_pattern",
                    so_far=so_far,
                    expected=projection.expected + ahead,
                    low=projection.low + ahead,
                    high=projection.high + ahead,
                    days=[d for d, _ in observed] + projection.days,
                    actual_days=[v for _, v in observed] + ([today_so_far] if remaining else []),
                    expected_days=projection.expected_days,
                    low_days=[(v * low_scale).quantize(QUANTUM) for v in projection.expected_days],
                    high_days=[(v * high_scale).quantize(QUANTUM) for v in projection.expected_days],
                )
            )
        elif metric.aggregation == Metric.Aggregation.TIME_WEIGHTED:
            level = gauge_current_level(account=account, metric=metric, now=now)
            levels = [lvl for d, _, lvl in rows if d < today][-LEVEL_FALLBACK_DAYS:] + [level]
            share = hours_left / period.hours
            metrics.append(
                MetricForecast(
                    metric=metric,
                    method="current_level",
                    so_far=so_far,
                    expected=(so_far + level * share).quantize(QUANTUM),
                    low=(so_far + min(levels) * share).quantize(QUANTUM),
                    high=(so_far + max(levels) * share).quantize(QUANTUM),
                )
            )
        elif metric.source != Metric.Source.EVENTS:
            metrics.append(MetricForecast(metric, "count_so_far", so_far, so_far, so_far, so_far))
        else:
            past_counts = [q for _, q in counts_history.get(code, [])]
            expected = max(so_far, median(past_counts)) if past_counts else so_far
            high = max(expected, max(past_counts)) if past_counts else so_far
            metrics.append(MetricForecast(metric, "count_history", so_far, expected, so_far, high))

    priced = [
        _price_running(estimate, {m.code: getattr(m, end) for m in metrics}) for end in ("expected", "low", "high")
    ]
    return MonthForecast(
        account=account,
        period=period,
        now=now,
        days_observed=days_observed,
        so_far=estimate.subtotal,
        charges=_charges(priced, account.currency),
        metrics=metrics,
    )


def _future_subscriptions(estimate: Estimate) -> list[Subscription]:
    """The subscriptions of the running month's segments, each once, in start order."""
    found: list[Subscription] = []
    for segment in estimate.segments:
        if not any(s is segment.subscription for s in found):
            found.append(segment.subscription)
    return found


def _price_month(
    account: Account, period: Period, subscriptions: list[Subscription], quantities: dict[str, Decimal]
) -> Estimate:
    """The engine's estimate of a month to come with ``quantities`` (accumulating usage shared among the month's
    segments by their length)."""
    metrics = {m.code: m for m in Metric.objects.all()}
    usage = {code: MetricUsage(metric=metric, quantity=quantities.get(code, ZERO)) for code, metric in metrics.items()}
    segments = plan_segments(subscriptions, period)
    segment_usage: dict[int, dict[str, MetricUsage]] = {}
    if len(segments) > 1 or (segments and (segments[0].start != period.start or segments[0].end != period.end)):
        for index, segment in enumerate(segments):
            share = Decimal(segment.fraction.numerator) / Decimal(segment.fraction.denominator)
            segment_usage[index] = {
                code: MetricUsage(metric=u.metric, quantity=(u.quantity * share).quantize(QUANTUM))
                for code, u in usage.items()
                if not is_monthly_count(u.metric)
            }
    contract = contracts_load(accounts=[account], period=period).get(account.pk)
    return rate(
        account=account,
        period=period,
        segments=segments,
        usage=usage,
        segment_usage=segment_usage,
        prior={},
        contract=contract,
        subscriptions=subscriptions,
    )


def next_months_forecast(*, account: Account, months: int = 3, now: dt.datetime | None = None) -> list[NextMonth]:
    """The ``months`` months after the running one, per metric and in money, with ranges (see the module's
    docstring). Reads up to 24 complete months of usage."""
    now = now or clock.now()
    running = month_containing(now)
    history = _monthly_quantities(account, _months_before(running, MONTH_HISTORY), now)
    estimate = charges_estimate(account=account, period=running, now=now)
    subscriptions = [s for s in _future_subscriptions(estimate) if s.ended_at is None or s.ended_at > running.end]
    metrics = {m.code: m for m in Metric.objects.all()}
    projections: dict[str, MonthProjection] = {}
    for code, rows in history.items():
        started = next((i for i, (_, q) in enumerate(rows) if q > 0), None)
        projections[code] = project_months(history=rows[started:] if started is not None else [], horizon=months)
    periods = []
    period = running
    for _ in range(months):
        period = next_month(period)
        periods.append(period)
    result = []
    for h, period in enumerate(periods):
        forecasts = []
        for code, projection in sorted(projections.items(), key=lambda item: metrics[item[0]].name):
            if projection.method == "none":
                forecasts.append(MetricForecast(metrics[code], "none", ZERO, ZERO, ZERO, ZERO))
                continue
            forecasts.append(
                MetricForecast(
                    metrics[code],
                    projection.method,
                    ZERO,
                    projection.expected[h],
                    projection.low[h],
                    projection.high[h],
                )
            )
        priced = [
            _price_month(account, period, subscriptions, {m.code: getattr(m, end) for m in forecasts})
            for end in ("expected", "low", "high")
        ]
        methods = {f.method for f in forecasts if f.method != "none"}
        method = "seasonal" if "seasonal" in methods else "damped_trend" if "damped_trend" in methods else "flat"
        if not methods:
            method = "none"
        result.append(
            NextMonth(period=period, method=method, charges=_charges(priced, account.currency), metrics=forecasts)
        )
    return result


ISSUED = (Invoice.Status.FINALIZED, Invoice.Status.PAID, Invoice.Status.UNCOLLECTIBLE)


def issued_invoices(*, account: Account, months: Sequence[dt.date]) -> dict[dt.date, Invoice]:
    """The issued (not draft, not void) invoice of each of ``months`` (firsts of months) that has one."""
    starts = [month_period(m.year, m.month).start for m in months]
    rows = Invoice.objects.filter(account=account, period_start__in=starts, status__in=ISSUED)
    return {invoice.period_start.astimezone(dt.UTC).date(): invoice for invoice in rows}


def forecast_check(row: Forecast, actual: Decimal) -> ForecastCheck:
    error = actual - row.expected
    percent = (error * 100 / actual).quantize(PERCENT) if actual else None
    return ForecastCheck(
        made_on=row.made_on,
        expected=row.expected,
        low=row.low,
        high=row.high,
        actual=actual,
        error=error,
        error_percent=percent,
        in_range=row.low <= actual <= row.high,
    )


def forecast_accuracy(*, account: Account, months: int = 6, now: dt.datetime | None = None) -> list[MonthAccuracy]:
    """The last ``months`` months before the running one that have an issued invoice, newest first: each recorded
    forecast of the month against the invoice's subtotal (before tax)."""
    now = now or clock.now()
    periods = _months_before(month_containing(now), months)
    invoices = issued_invoices(account=account, months=[p.start.date() for p in periods])
    rows = Forecast.objects.filter(account=account, month__in=list(invoices)).order_by("month", "made_on")
    by_month: dict[dt.date, list[Forecast]] = {}
    for row in rows:
        by_month.setdefault(row.month, []).append(row)
    result = []
    for period in reversed(periods):
        invoice = invoices.get(period.start.date())
        if invoice is None:
            continue
        result.append(
            MonthAccuracy(
                period=period,
                currency=invoice.currency,
                invoice_number=invoice.number,
                actual=invoice.subtotal,
                checks=[forecast_check(row, invoice.subtotal) for row in by_month.get(period.start.date(), [])],
            )
        )
    return result
