"""Customer-facing reads of an account's subscription: what it is on (plan, fees, limits and included quantities,
trial, period, pending cancellation, contract term, account manager, the open plan change), which plans it may
move to, and what its own usage of the last closed months would have cost on each of them.

The costs are the rating engine's (``billing.rating.engine.charges_many`` rating the account as if it had been on
another plan for the whole month), never an estimate by hand: the same arithmetic that writes the invoices, with
the account's contract (volume tiers, prepaid credits, commitments) applied as on a real month. A month's figure
is its subtotal before tax without late-usage lines (usage of still earlier months reported late belongs to
those months, not to the comparison). A yearly plan bills its year's base fee in advance in the month the year
starts; to compare month with month its figure carries one twelfth of that year's fee (after the annual
discount), as the engine bills it.

The portal's Plan page and ``GET /v1/subscription`` read these.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Q

from accounts.models import Account
from billing.models import Contract, Plan, PlanChangeRequest, PlanCharge, PlanVersion, Subscription
from billing.rating.engine import ChargeLine, charges_many, is_yearly
from common import clock
from common.money import round_money
from common.periods import Period, month_containing, previous_month

ZERO = Decimal(0)
MONTHS_IN_YEAR = 12
# The comparison's months: the last closed ones (the running month is not over).
COMPARED_MONTHS = 3
# What the rating engine reads of a version, loaded once for all the months it rates.
RATED_WITH = ("charges__metric", "charges__tiers")
OPEN_CHANGE_STATES = (PlanChangeRequest.State.PENDING, PlanChangeRequest.State.SCHEDULED)


@dataclass(frozen=True)
class MetricTerms:
    """What a plan version includes, limits and charges for one metric."""

    code: str
    name: str
    unit: str  # the billing unit as customers read it: "per 1", "per tenant-month", …
    included: Decimal | None  # None: unlimited
    limit: Decimal | None  # None: no limit
    limit_window: str  # period | hour
    pricing_model: str
    unit_price: Decimal | None  # per-unit pricing only: the price per billing unit

    @property
    def charges_overage(self) -> bool:
        return self.pricing_model != PlanCharge.PricingModel.INCLUDED_ONLY


@dataclass(frozen=True)
class AccountManager:
    name: str
    email: str


@dataclass(frozen=True)
class ContractTerm:
    """The contract in force, as the customer sees it."""

    contract: Contract
    start: dt.datetime
    end: dt.datetime  # exclusive
    months: int
    auto_renew: bool
    commitment_amount: Decimal | None
    commitment_period: str
    cancellation: str
    account_manager: AccountManager | None

    @property
    def last_day(self) -> dt.date:
        return Period(self.start, self.end).last_day


@dataclass(frozen=True)
class SubscriptionSummary:
    account: Account
    subscription: Subscription | None  # the live one, else the last that ended; None: never subscribed
    metrics: list[MetricTerms] = field(default_factory=list)
    contract: ContractTerm | None = None
    open_change: PlanChangeRequest | None = None

    @property
    def version(self) -> PlanVersion | None:
        return None if self.subscription is None else self.subscription.plan_version

    @property
    def is_live(self) -> bool:
        return self.subscription is not None and self.subscription.status != Subscription.Status.CANCELLED

    @property
    def current_period(self) -> Period | None:
        if self.subscription is None:
            return None
        return Period(self.subscription.current_period_start, self.subscription.current_period_end)

    @property
    def account_manager(self) -> AccountManager | None:
        return None if self.contract is None else self.contract.account_manager


@dataclass(frozen=True)
class MonthCost:
    period: Period
    amount: Decimal


@dataclass(frozen=True)
class PlanCost:
    """What the account's usage of each compared month would have cost on ``version``."""

    version: PlanVersion
    is_current: bool
    months: list[MonthCost]
    average: Decimal | None  # None: no month to compare
    difference: Decimal | None  # the average less the current plan's; None for the current plan itself
    yearly_fee: Decimal | None  # a yearly plan's fee for a year, after its annual discount (the engine's lines)


@dataclass(frozen=True)
class PlanCosts:
    currency: str
    periods: list[Period]
    current: PlanCost | None
    options: list[PlanCost]


def _live_or_last(account: Account) -> Subscription | None:
    subscriptions = Subscription.objects.filter(account=account).select_related("plan_version__plan")
    live = subscriptions.exclude(status=Subscription.Status.CANCELLED).order_by("-started_at", "-pk").first()
    return live or subscriptions.order_by("-started_at", "-pk").first()


def metric_terms(version: PlanVersion) -> list[MetricTerms]:
    """The version's charges, one per metric, in the metrics' order."""
    charges = PlanCharge.objects.filter(plan_version=version).select_related("metric").order_by("metric__code")
    return [
        MetricTerms(
            code=charge.metric.code,
            name=charge.metric.name,
            unit=charge.metric.get_billing_unit_display(),
            included=charge.included_quantity,
            limit=charge.limit,
            limit_window=charge.limit_window,
            pricing_model=charge.pricing_model,
            unit_price=charge.unit_price,
        )
        for charge in charges
    ]


def contract_term(*, account: Account, at: dt.datetime) -> ContractTerm | None:
    """The account's contract whose term holds ``at`` (not ended early before it); the latest if several."""
    contract = (
        Contract.objects.filter(account=account, term_start__lte=at, term_end__gt=at)
        .filter(Q(terminated_at__isnull=True) | Q(terminated_at__gt=at))
        .select_related("account_manager")
        .order_by("-term_start", "-pk")
        .first()
    )
    if contract is None:
        return None
    manager = None
    if contract.account_manager is not None:
        user = contract.account_manager
        manager = AccountManager(name=(user.get_full_name() or user.get_username()).strip(), email=user.email or "")
    return ContractTerm(
        contract=contract,
        start=contract.term_start,
        end=contract.term_end,
        months=contract.term_months,
        auto_renew=contract.auto_renew,
        commitment_amount=contract.commitment_amount,
        commitment_period=contract.commitment_period if contract.commitment_amount is not None else "",
        cancellation=contract.cancellation,
        account_manager=manager,
    )


def open_plan_change(*, account: Account) -> PlanChangeRequest | None:
    """The account's change waiting for approval or for its moment (at most one)."""
    return (
        PlanChangeRequest.objects.filter(account=account, state__in=OPEN_CHANGE_STATES)
        .select_related("from_version__plan", "to_version__plan")
        .first()
    )


def subscription_summary(*, account: Account, now: dt.datetime | None = None) -> SubscriptionSummary:
    """What ``account`` is on: its live subscription (else the last that ended), the plan version's limits and
    included quantities, the contract in force and the open plan change."""
    now = now or clock.now()
    subscription = _live_or_last(account)
    return SubscriptionSummary(
        account=account,
        subscription=subscription,
        metrics=[] if subscription is None else metric_terms(subscription.plan_version),
        contract=contract_term(account=account, at=now),
        open_change=open_plan_change(account=account),
    )


def _latest_published(plans: list[Plan], currency: str) -> list[PlanVersion]:
    """Each plan's highest published version in ``currency`` (none for a plan without one)."""
    versions = (
        PlanVersion.objects.filter(plan__in=plans, currency=currency, published_at__isnull=False)
        .select_related("plan")
        .prefetch_related(*RATED_WITH)
        .order_by("plan_id", "-version")
    )
    latest: dict[int, PlanVersion] = {}
    for version in versions:
        latest.setdefault(version.plan_id, version)
    return list(latest.values())


def plan_options(*, account: Account) -> list[PlanVersion]:
    """The plans ``account`` may move to: the latest published version of each active public plan of its
    subscription's product and its currency, and of the account's own custom plans; never a price-on-request
    entry (those are negotiated into a custom plan) nor the version it is on. In the catalogue's order."""
    subscription = _live_or_last(account)
    if subscription is None or subscription.status == Subscription.Status.CANCELLED:
        return []
    product = subscription.plan_version.plan.product
    plans = list(
        Plan.objects.filter(product=product, is_active=True).filter(
            Q(kind=Plan.Kind.PUBLIC) | Q(kind=Plan.Kind.CUSTOM, account=account)
        )
    )
    versions = [
        version
        for version in _latest_published(plans, account.currency)
        if not version.price_on_request and version.pk != subscription.plan_version_id
    ]
    return sorted(versions, key=lambda v: (v.plan.kind != Plan.Kind.CUSTOM, v.plan.display_order, v.plan.code))


def compared_months(*, account: Account, months: int = COMPARED_MONTHS, now: dt.datetime | None = None) -> list[Period]:
    """The last ``months`` closed months, oldest first, back to the first the account was subscribed in."""
    now = now or clock.now()
    first = Subscription.objects.filter(account=account).order_by("started_at").values_list("started_at", flat=True)
    started = first.first()
    if started is None:
        return []
    periods: list[Period] = []
    month = previous_month(month_containing(now))
    while len(periods) < months and month.end > started:
        periods.append(month)
        month = previous_month(month)
    return list(reversed(periods))


def _year_fee_line(line: ChargeLine) -> bool:
    """A yearly plan's base fee for a year, or its annual discount (billed whole in the year's first month)."""
    version = line.plan_version
    return version is not None and is_yearly(version) and (line.kind == "base_fee" or line.of_base_fee)


def _month_cost(account: Account, version: PlanVersion, month: Period) -> tuple[Decimal, Decimal | None]:
    """The engine's figure for ``month`` had the account been on ``version`` all month, and for a yearly version
    its fee for the year (after the annual discount)."""
    hypothetical = Subscription(
        account=account,
        plan_version=version,
        started_at=month.start,
        current_period_start=month.start,
        current_period_end=month.end,
        status=Subscription.Status.ACTIVE,
    )
    estimate = charges_many(
        accounts=[account], period=month, now=month.end, subscriptions={account.pk: [hypothetical]}
    )[account.pk]
    lines = [line for line in estimate.lines if line.kind != "late_usage"]
    year_lines = [line for line in lines if _year_fee_line(line)]
    other = sum((line.amount for line in lines if not _year_fee_line(line)), ZERO)
    if not year_lines:
        return round_money(other, account.currency), None
    year_fee = sum((line.amount for line in year_lines), ZERO)
    return round_money(other + year_fee / MONTHS_IN_YEAR, account.currency), year_fee


def _plan_cost(account: Account, version: PlanVersion, periods: list[Period], *, is_current: bool) -> PlanCost:
    months = []
    yearly_fee = None
    for month in periods:
        amount, year_fee = _month_cost(account, version, month)
        months.append(MonthCost(period=month, amount=amount))
        yearly_fee = year_fee if year_fee is not None else yearly_fee
    average = round_money(sum((m.amount for m in months), ZERO) / len(months), account.currency) if months else None
    return PlanCost(
        version=version, is_current=is_current, months=months, average=average, difference=None, yearly_fee=yearly_fee
    )


def plan_costs(*, account: Account, months: int = COMPARED_MONTHS, now: dt.datetime | None = None) -> PlanCosts:
    """For the current plan and each of ``plan_options``: what the account's own usage of each of the last
    ``months`` closed months would have cost on it (rated by the engine), their average, and the difference of
    that average to the current plan's."""
    now = now or clock.now()
    subscription = _live_or_last(account)
    periods = compared_months(account=account, months=months, now=now)
    if subscription is None or subscription.status == Subscription.Status.CANCELLED:
        return PlanCosts(currency=account.currency, periods=periods, current=None, options=[])
    current_version = (
        PlanVersion.objects.select_related("plan").prefetch_related(*RATED_WITH).get(pk=subscription.plan_version_id)
    )
    current = _plan_cost(account, current_version, periods, is_current=True)
    options = []
    for version in plan_options(account=account):
        cost = _plan_cost(account, version, periods, is_current=False)
        difference = None
        if cost.average is not None and current.average is not None:
            difference = cost.average - current.average
        options.append(
            PlanCost(
                version=cost.version,
                is_current=False,
                months=cost.months,
                average=cost.average,
                difference=difference,
                yearly_fee=cost.yearly_fee,
            )
        )
    return PlanCosts(currency=account.currency, periods=periods, current=current, options=options)
