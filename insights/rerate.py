"""Re-rating: what the usage of an account's closed months cost on its own terms, and would have cost on other plans.

``rerate_many`` takes many accounts, months and plan versions at once. For each month it reads the accounts' usage
once (``usage.selectors.period_usage_many``, the rating engine's loader) and prices it:

- *current*: on the account's actual terms, exactly as the billing run does — its real subscriptions in the month
  (plan changes, trials), its contract (volume tiers, commitments, prepaid credits), through
  ``billing.rating.engine.charges_many`` handed the usage already read;
- *each plan version*: with a hypothetical subscription to that version for the whole month (no trial, no
  contract: a catalogue plan's list price), through the engine's pure ``rate()``.

So every figure is the engine's arithmetic, the one that writes invoices; nothing here prices anything itself.
A fixed number of queries per chunk of accounts and month, whatever the number of accounts or plans.

A month's figure is its subtotal before tax with the late-usage lines left out: late usage on an invoice is
usage of still earlier months, reported after they were invoiced; it belongs to those months, not to this one.
Two figures are kept per month:

- ``billed``: what the invoice shows (for the current terms) or would show (a plan): a yearly plan bills its
  year's fee whole, in the month the year starts (for a hypothetical whole-month subscription: every month);
- ``monthly``: month with month, a yearly fee counted as one twelfth of the year's fee after its annual discount,
  as the Plan page compares plans (``billing.selectors_subscription``).

For an account that never had a yearly plan both are the same.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from accounts.models import Account
from billing.models import PlanVersion, Subscription
from billing.rating.engine import ChargeLine, Estimate, charges_many, is_yearly, plan_segments, rate
from common.money import round_money
from common.periods import Period
from usage.selectors import MetricUsage, period_usage_many

ZERO = Decimal(0)
MONTHS_IN_YEAR = 12
# What the engine reads of a version: load versions with these prefetched, once for all months.
RATED_WITH = ("charges__metric", "charges__tiers")


@dataclass(frozen=True)
class MonthFigure:
    """One month priced on one set of terms."""

    period: Period
    billed: Decimal  # the subtotal before tax, late-usage lines left out
    monthly: Decimal  # the same with a yearly fee counted as one twelfth of the year's (after discount)
    year_fee: Decimal | None = None  # a yearly plan's fee for a year after its discount (hypothetical plans only)
    lines: tuple[ChargeLine, ...] = ()


@dataclass
class AccountRerate:
    """An account's months re-rated: usage, the current figure and each plan version's."""

    account: Account
    periods: list[Period]
    usage: list[dict[str, MetricUsage]] = field(default_factory=list)  # per month, as the engine read it
    current: list[MonthFigure] = field(default_factory=list)
    current_versions: list[list[PlanVersion]] = field(default_factory=list)  # per month: the versions in force
    plans: dict[int, list[MonthFigure]] = field(default_factory=dict)  # version pk → per month

    def average(self, figures: Sequence[MonthFigure]) -> Decimal:
        """The monthly figures' average, rounded to the currency."""
        if not figures:
            return ZERO
        return round_money(sum((f.monthly for f in figures), ZERO) / len(figures), self.account.currency)

    @property
    def current_average(self) -> Decimal:
        return self.average(self.current)


def _year_fee_line(line: ChargeLine) -> bool:
    """A yearly version's base fee for a year, a credit for its unused time, or its annual discount."""
    version = line.plan_version
    return version is not None and is_yearly(version) and (line.kind == "base_fee" or line.of_base_fee)


def _net_year_fee(version: PlanVersion, currency: str) -> Decimal:
    """A yearly version's fee for a year after its annual discount, as the engine bills it."""
    fee = version.base_fee or ZERO
    return fee - round_money(fee * version.annual_discount_percent / 100, currency)


def _figure(estimate: Estimate, *, hypothetical: bool) -> MonthFigure:
    """The month's two figures from an estimate (late-usage lines left out)."""
    currency = estimate.currency
    lines = tuple(line for line in estimate.lines if line.kind != "late_usage")
    billed = round_money(sum((line.amount for line in lines), ZERO), currency)
    if not any(s.charged and is_yearly(s.version) for s in estimate.segments):
        return MonthFigure(period=estimate.period, billed=billed, monthly=billed, lines=lines)
    other = sum((line.amount for line in lines if not _year_fee_line(line)), ZERO)
    if hypothetical:
        year_fee = sum((line.amount for line in lines if _year_fee_line(line)), ZERO)
        monthly = round_money(other + year_fee / MONTHS_IN_YEAR, currency)
        return MonthFigure(period=estimate.period, billed=billed, monthly=monthly, year_fee=year_fee, lines=lines)
    # Real terms: each charged yearly segment carries a twelfth of its version's year, for its share of the month.
    share = sum(
        (
            _net_year_fee(s.version, currency)
            / MONTHS_IN_YEAR
            * Decimal(s.fraction.numerator)
            / Decimal(s.fraction.denominator)
            for s in estimate.segments
            if s.charged and is_yearly(s.version)
        ),
        ZERO,
    )
    return MonthFigure(period=estimate.period, billed=billed, monthly=round_money(other + share, currency), lines=lines)


def whole_month(account: Account, version: PlanVersion, period: Period) -> Subscription:
    """A subscription to ``version`` for the whole of ``period``, without a trial (never saved)."""
    return Subscription(
        account=account,
        plan_version=version,
        started_at=period.start,
        current_period_start=period.start,
        current_period_end=period.end,
        status=Subscription.Status.ACTIVE,
    )


def _moved(subscription: Subscription, period: Period) -> Subscription:
    """A copy of the unsaved whole-month ``subscription`` (``whole_month``) for the whole of ``period`` instead:
    what ``whole_month`` returns for it, without building the model instance again (a re-rating makes thousands)."""
    moved = copy.copy(subscription)
    moved.started_at = moved.current_period_start = period.start
    moved.current_period_end = period.end
    return moved


def rate_on(
    *,
    account: Account,
    version: PlanVersion,
    period: Period,
    usage: dict[str, MetricUsage],
    subscription: Subscription | None = None,
) -> MonthFigure:
    """``usage`` of ``period`` priced by the engine on ``version`` for the whole month (no queries once the version's
    charges are loaded). Late usage is not priced: the figure leaves it out. ``subscription``: that whole-month
    subscription (``whole_month(account, version, period)``), when the caller has made it already."""
    segments = plan_segments([subscription or whole_month(account, version, period)], period)
    estimate = rate(account=account, period=period, segments=segments, usage=usage, segment_usage={}, prior={})
    return _figure(estimate, hypothetical=True)


def rerate_many(
    *,
    accounts: Sequence[Account],
    periods: Sequence[Period],
    versions: Mapping[int, Sequence[PlanVersion]],
    now: dt.datetime,
    since: dict[int, dt.datetime] | None = None,
) -> dict[int, AccountRerate]:
    """Re-rate each account's ``periods`` (closed months, oldest first) on its own terms and on each of
        ``versions[account.pk]`` (loaded with ``RATED_WITH`` prefetched). An account without a subscription in a month
        still gets that month (its current figure is then what its invoice would be: nothing), unless ``since`` gives
    the moment it was first subscribed: months ending by then are left out for it.

        Queries: per month, the usage reads and ``charges_many``'s loaders (subscriptions, cuts, late-usage history,
        contracts), whatever the number of accounts and versions."""
    accounts = list(accounts)
    result = {a.pk: AccountRerate(account=a, periods=[]) for a in accounts}
    since = since or {}
    # One hypothetical subscription per account and version, moved to each month (``_moved``).
    hypothetical: dict[tuple[int, int], Subscription] = {}
    for period in periods:
        rated = [a for a in accounts if a.pk not in since or since[a.pk] < period.end]
        if not rated:
            continue
        at = max(now, period.end)  # as the billing run closes a month
        usage = period_usage_many(account_ids=[a.pk for a in rated], period=period, now=at)
        estimates = charges_many(accounts=rated, period=period, now=at, usage=usage)
        for account in rated:
            entry = result[account.pk]
            estimate = estimates[account.pk]
            entry.periods.append(period)
            entry.usage.append(usage[account.pk])
            entry.current.append(_figure(estimate, hypothetical=False))
            in_force: list[PlanVersion] = []
            for segment in estimate.segments:
                if not any(v.pk == segment.version.pk for v in in_force):
                    in_force.append(segment.version)
            entry.current_versions.append(in_force)
            for version in versions.get(account.pk, ()):
                key = (account.pk, version.pk)
                if key in hypothetical:
                    subscription = _moved(hypothetical[key], period)
                else:
                    subscription = hypothetical[key] = whole_month(account, version, period)
                figure = rate_on(
                    account=account, version=version, period=period, usage=usage[account.pk], subscription=subscription
                )
                entry.plans.setdefault(version.pk, []).append(figure)
    return result
