"""Budgets: what an account has spent in a budget's period, and the alerts recorded as it crosses thresholds.

Spend (see docs/billing.md, "Budgets and alerts") is what the account pays, tax included, in the budget's
current period — a calendar month, quarter or year in UTC, ``[start, end)``:
- the running month counts with its estimated charges (``charges_many``: the figures ``/v1/billing/usage/current``
  shows and the invoice will show);
- earlier months of a quarter or year count with their non-void invoices' totals (a month counts from its
  invoice on; credit notes do not lower spend).

Crossing a threshold (``spend × 100 >= amount × threshold``) records one ``billing.budget_alert`` outbox event
per budget, period and threshold; the ``dedup_key`` makes a second evaluation a no-op, as in
``billing.quotas``. Reads and the write live together here, as they do there, because the alert rule and the
figures the portal shows must not drift apart.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Sum

from accounts.models import Budget
from billing.models import Invoice
from billing.rating.engine import charges_many
from common.formats import iso_utc, money_string
from common.models import OutboxEvent
from common.money import round_money
from common.outbox import outbox_emit
from common.periods import Period, month_containing, quarter_containing, year_containing

ALERT_TYPE = "billing.budget_alert"
ZERO = Decimal(0)
# Accounts priced per ``charges_many`` call: its query count is fixed, its memory grows with the batch.
ACCOUNTS_PER_BATCH = 200


def budget_period(*, kind: str, now: dt.datetime) -> Period:
    """The calendar month, quarter or year (UTC) containing ``now``."""
    if kind == Budget.Period.MONTHLY:
        return month_containing(now)
    if kind == Budget.Period.QUARTERLY:
        return quarter_containing(now)
    if kind == Budget.Period.YEARLY:
        return year_containing(now)
    raise ValueError(f"Unknown budget period {kind!r}.")


def dedup_prefix(budget: Budget, period: Period) -> str:
    return f"budget_alert:{budget.pk}:{budget.period}:{period.start:%Y-%m-%d}:"


@dataclass
class BudgetStatus:
    budget: Budget
    period: Period
    spend: Decimal
    alerts_sent: list[int] = field(default_factory=list)

    @property
    def percentage(self) -> Decimal:
        return (self.spend * 100 / self.budget.amount).quantize(Decimal("0.1"))

    @property
    def reached(self) -> list[int]:
        """The thresholds the spend has crossed (reached counts as crossed)."""
        return [t for t in self.budget.alert_thresholds if self.spend * 100 >= self.budget.amount * t]


def _batches(items: list, size: int) -> Iterable[list]:
    for index in range(0, len(items), size):
        yield items[index : index + size]


def budget_statuses(*, budgets: Iterable[Budget], now: dt.datetime, with_alerts: bool = False) -> list[BudgetStatus]:
    """Each budget (``account`` loaded) with its current period and spend; ``with_alerts`` adds the
    thresholds already alerted this period. A fixed number of queries per batch of accounts."""
    budgets = list(budgets)
    if not budgets:
        return []
    month = month_containing(now)
    accounts = list({b.account_id: b.account for b in budgets}.values())
    estimated: dict[int, Decimal] = {}
    for batch in _batches(accounts, ACCOUNTS_PER_BATCH):
        for account_id, estimate in charges_many(accounts=batch, period=month, now=now).items():
            estimated[account_id] = estimate.total

    periods = {b.pk: budget_period(kind=b.period, now=now) for b in budgets}
    earliest = min(p.start for p in periods.values())
    invoiced: dict[tuple[int, str], list[tuple[dt.datetime, Decimal]]] = defaultdict(list)
    if earliest < month.start:
        rows = (
            Invoice.objects.filter(
                account_id__in=[a.pk for a in accounts], period_start__gte=earliest, period_start__lt=month.start
            )
            .exclude(status=Invoice.Status.VOID)
            .values("account_id", "currency", "period_start")
            .annotate(total=Sum("total"))
            .order_by()
        )
        for row in rows:
            invoiced[(row["account_id"], row["currency"])].append((row["period_start"], row["total"]))

    statuses = []
    for budget in budgets:
        period = periods[budget.pk]
        earlier = sum(
            (total for start, total in invoiced.get((budget.account_id, budget.currency), []) if start >= period.start),
            ZERO,
        )
        running = estimated[budget.account_id] if budget.account.currency == budget.currency else ZERO
        statuses.append(
            BudgetStatus(budget=budget, period=period, spend=round_money(earlier + running, budget.currency))
        )

    if with_alerts:
        prefixes = {dedup_prefix(s.budget, s.period): s for s in statuses}
        keys = OutboxEvent.objects.filter(
            type=ALERT_TYPE, account_id__in=[a.pk for a in accounts], dedup_key__startswith="budget_alert:"
        ).values_list("dedup_key", flat=True)
        for key in keys:
            if key is None:  # excluded by the filter; the column itself is nullable
                continue
            prefix, _, threshold = key.rpartition(":")
            status = prefixes.get(f"{prefix}:")
            if status is not None:
                status.alerts_sent.append(int(threshold))
        for status in statuses:
            status.alerts_sent.sort()
    return statuses


def budgets_evaluate(*, account_ids: Iterable[int] | None = None, now: dt.datetime) -> list[OutboxEvent]:
    """Record the budget alerts newly reached by the active budgets (of ``account_ids``, or all). Idempotent:
    each budget, period and threshold alerts at most once, whoever evaluates and however often."""
    budgets = Budget.objects.filter(is_active=True).select_related("account").order_by("account_id", "pk")
    if account_ids is not None:
        budgets = budgets.filter(account_id__in=list(account_ids))
    recorded = []
    for status in budget_statuses(budgets=budgets, now=now):
        budget = status.budget
        remaining_days = max((status.period.end - now) // dt.timedelta(days=1), 0)
        for threshold in status.reached:
            data = {
                "account_id": budget.account.public_id,
                "budget_name": budget.name,
                "threshold_percentage": threshold,
                "current_usage": money_string(status.spend, budget.currency),
                "budget_limit": money_string(budget.amount, budget.currency),
                "currency": budget.currency,
                "period_remaining_days": remaining_days,
                "period": {"start": iso_utc(status.period.start), "end": iso_utc(status.period.end)},
            }
            event = outbox_emit(
                type=ALERT_TYPE,
                account_id=budget.account_id,
                data=data,
                now=now,
                dedup_key=f"{dedup_prefix(budget, status.period)}{threshold}",
            )
            if event is not None:
                recorded.append(event)
    return recorded
