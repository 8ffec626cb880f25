"""Advice built from re-rated months (``insights.rerate``): which plan would have been cheapest, annual terms,
allowances far from use, premium features, idle tenants and partners, and limits about to be outgrown.

The builders (``advice_for``) are pure: they read an ``AccountRerate`` and the loaded inputs of ``AdviceInputs``
and return unsaved ``Advice``; every amount in them is the rating engine's (a month re-rated on a plan, or
re-rated with a tenant, partner or feature taken out, or with a projected quantity), never priced here.
``advice_inputs_many`` loads those inputs for a chunk of accounts in a fixed number of queries.

Rules:
- Months: the account's last closed months (at most 12, back to the month it was first subscribed in, and none
  before its first usage or first invoice); plan, right-sizing and trend advice need at least ``MIN_MONTHS`` of them.
- *Current*: the months on the account's own terms (its subscriptions, its contract), averaged month with month
  (a yearly fee as one twelfth).
- *Plan*: the cheapest plan that fits, among the plans the account may move to (``plan_options``'s rule: the
  latest published version of each active public plan of its product and currency, and its own custom plans;
  never a price-on-request one) on the **same billing interval** as its current plan, each re-rated for the whole
  of every month at list price (no trial, no contract). A plan fits when none of its limits per period (tenants,
  partners, messages, storage, users…) was exceeded in any month re-rated; limits per hour (API requests) throttle,
  they are not checked here. Advised when it is cheaper than the current figure: saving = current − plan, a
  month, and in percent of the current figure.
- *Annual terms* (accounts on a monthly plan): the cheapest fitting yearly plan, when it costs less a month than
  the plan advised (or, without one, the current terms). ``current_monthly`` is that monthly figure and the saving
  is the further saving of the yearly terms over it; ``details`` has the year's fee billed in advance and the
  saving against the account's own terms.
- *Right-sizing*: a metric whose average use is under ``UNDER_SHARE`` or over ``OVER_SHARE`` of what the current
  plan includes (one advice for the allowances far above use, one for those far below), with the cheapest fitting
  plan that is sized for the use (smaller allowances, resp. allowances covering the average use) if cheaper.
  Allowances far above use are only advised on when such a cheaper plan exists.
- *Premium features*: a feature billed (a premium feature-month above what the plan includes) in at most a
  quarter of the months re-rated; saving: the months re-rated again without it, averaged. And a plan of the same
  interval including every premium feature the account pays for, when it is cheaper than the current figure
  and not the plan advised already.
- *Idle tenants / partners*: live for ``IDLE_DAYS`` days or more with no usage in the last ``IDLE_DAYS`` days,
  yet counted in the last month re-rated (a tenant is a tenant-month on messaging plans); saving: the last month
  re-rated on the current plan without it (one after another: each tenant's saving is what archiving it adds
  to archiving those listed before it). A partner included without charge saves nothing but frees the limit.
- *Outgrow risk*: a per-period limit of the current plan that the least-squares trend of the last (up to six)
  months crosses within ``HORIZON_MONTHS`` months; ``saving_monthly`` holds the extra cost a month at the
  projected use on the current plan (the last month re-rated at that quantity), ``proposed_monthly`` that cost.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db.models import Max, Min, Q

from accounts.models import Account
from billing.models import Invoice, Plan, PlanCharge, PlanVersion, Subscription
from billing.rating.engine import is_yearly
from common.money import format_money, format_quantity
from common.periods import Period
from insights.models import Recommendation
from insights.rerate import RATED_WITH, AccountRerate, MonthFigure, rate_on
from tenants.models import MasterPartner, Tenant
from usage.models import UsageRollup, UsageUniqueValue
from usage.selectors import MetricUsage

ZERO = Decimal(0)
HUNDRED = Decimal(100)
CENT = Decimal("0.01")
Kind = Recommendation.Kind
MAX_MONTHS = 12
MIN_MONTHS = 3
UNDER_SHARE = Decimal("0.25")
OVER_SHARE = Decimal("1.50")
IDLE_DAYS = 30
RARE_SHARE = Decimal("0.25")  # a premium feature billed in at most this share of the months is "barely used"
TREND_MONTHS = 6
HORIZON_MONTHS = 3
TENANTS, PARTNERS, FEATURES = "tenants", "master_partners", "premium_features"


@dataclass
class Advice:
    """One recommendation, not saved yet (``insights.services`` writes them)."""

    kind: str
    title: str
    evidence: str
    saving_monthly: Decimal
    current_monthly: Decimal | None = None
    proposed_monthly: Decimal | None = None
    saving_percent: Decimal | None = None
    plan_version: PlanVersion | None = None
    tenant: Tenant | None = None
    partner: MasterPartner | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IdleSource:
    """A tenant or master partner with the hour of its last usage (None: never used)."""

    obj: Tenant | MasterPartner
    last_used: dt.datetime | None


@dataclass
class AdviceInputs:
    """What the builders read besides the re-rated months, for one account."""

    version: PlanVersion  # the live subscription's
    options: list[PlanVersion]  # the plans it may move to (any interval), charges loaded
    first_started: dt.datetime  # the first subscription's start, or the first usage or invoice when later
    idle_tenants: list[IdleSource] = field(default_factory=list)
    idle_partners: list[IdleSource] = field(default_factory=list)
    features: dict[str, set[int]] = field(default_factory=dict)  # premium feature → indexes of months it was used


# ----------------------------------------------------------------------------------------------------- loading


def _latest_versions(plans: Sequence[Plan]) -> dict[tuple[int, str], PlanVersion]:
    rows = (
        PlanVersion.objects.filter(plan__in=plans, published_at__isnull=False, price_on_request=False)
        .select_related("plan")
        .prefetch_related(*RATED_WITH)
        .order_by("plan_id", "currency", "-version")
    )
    latest: dict[tuple[int, str], PlanVersion] = {}
    for version in rows:
        latest.setdefault((version.plan_id, version.currency), version)
    return latest


def advice_inputs_many(*, accounts: Sequence[Account], now: dt.datetime) -> dict[int, AdviceInputs]:
    """The inputs of ``advice_for`` for every account of ``accounts`` with a live subscription: its plan, the plans
    it may move to, when it was first subscribed, its idle tenants and partners, and the months each premium
    feature was used in (over the last ``MAX_MONTHS`` months). A fixed number of queries."""
    ids = [a.pk for a in accounts]
    live: dict[int, Subscription] = {}
    for subscription in (
        Subscription.objects.filter(account_id__in=ids)
        .exclude(status=Subscription.Status.CANCELLED)
        .select_related("plan_version__plan")
        .prefetch_related(*(f"plan_version__{p}" for p in RATED_WITH))
        .order_by("account_id", "-started_at", "-pk")
    ):
        live.setdefault(subscription.account_id, subscription)
    if not live:
        return {}
    first = dict(
        Subscription.objects.filter(account_id__in=live)
        .values("account_id")
        .annotate(first=Min("started_at"))
        .values_list("account_id", "first")
    )
    # Months before the account's first usage or first invoice (whichever is earlier) are not re-rated: an account
    # brought over from another system has no usage here for them, and re-rating empty months would advise on them.
    history_since = now - dt.timedelta(days=31 * (MAX_MONTHS + 1))
    evidence = dict(
        UsageRollup.objects.filter(account_id__in=live, hour__gte=history_since)
        .values("account_id")
        .annotate(first=Min("hour"))
        .values_list("account_id", "first")
    )
    for account_id, start in (
        Invoice.objects.filter(account_id__in=live, period_start__gte=history_since)
        .values("account_id")
        .annotate(first=Min("period_start"))
        .values_list("account_id", "first")
    ):
        evidence[account_id] = min(evidence.get(account_id, start), start)
    for account_id, seen in evidence.items():
        first[account_id] = max(first[account_id], seen)
    products = {s.plan_version.plan.product for s in live.values()}
    plans = list(
        Plan.objects.filter(product__in=products, is_active=True).filter(
            Q(kind=Plan.Kind.PUBLIC) | Q(kind=Plan.Kind.CUSTOM, account_id__in=live)
        )
    )
    latest = _latest_versions(plans)
    by_product: dict[tuple[str, str], list[PlanVersion]] = defaultdict(list)
    for version in sorted(latest.values(), key=lambda v: (v.plan.display_order, v.plan.code)):
        by_product[(version.plan.product, version.currency)].append(version)

    idle_before = now - dt.timedelta(days=IDLE_DAYS)
    tenant_last = dict(
        UsageRollup.objects.filter(account_id__in=live, hour__gte=history_since)
        .values("tenant_id")
        .annotate(last=Max("hour"))
        .values_list("tenant_id", "last")
    )
    partner_last = dict(
        UsageRollup.objects.filter(account_id__in=live, hour__gte=history_since, partner_id__isnull=False)
        .values("partner_id")
        .annotate(last=Max("hour"))
        .values_list("partner_id", "last")
    )
    idle_tenants: dict[int, list[IdleSource]] = defaultdict(list)
    for tenant in Tenant.objects.filter(account_id__in=live, activated_at__lte=idle_before, archived_at__isnull=True):
        last = tenant_last.get(tenant.pk)
        if last is None or last < idle_before:
            idle_tenants[tenant.account_id].append(IdleSource(tenant, last))
    idle_partners: dict[int, list[IdleSource]] = defaultdict(list)
    for partner in MasterPartner.objects.filter(
        account_id__in=live, activated_at__lte=idle_before, deactivated_at__isnull=True
    ):
        last = partner_last.get(partner.pk)
        if last is None or last < idle_before:
            idle_partners[partner.account_id].append(IdleSource(partner, last))
    feature_months: dict[int, dict[str, set[dt.date]]] = defaultdict(lambda: defaultdict(set))
    for account_id, value, month in (
        UsageUniqueValue.objects.filter(
            account_id__in=live, metric__code=FEATURES, usage_month__gte=history_since.date()
        )
        .values_list("account_id", "value", "usage_month")
        .distinct()
    ):
        feature_months[account_id][value].add(month)

    result = {}
    for account in accounts:
        subscription = live.get(account.pk)
        if subscription is None:
            continue
        version = subscription.plan_version
        options = [
            v
            for v in by_product[(version.plan.product, account.currency)]
            if v.pk != version.pk and (v.plan.kind == Plan.Kind.PUBLIC or v.plan.account_id == account.pk)
        ]
        result[account.pk] = AdviceInputs(
            version=version,
            options=options,
            first_started=first[account.pk],
            idle_tenants=sorted(idle_tenants.get(account.pk, []), key=lambda s: s.obj.public_id),
            idle_partners=sorted(idle_partners.get(account.pk, []), key=lambda s: s.obj.public_id),
            features={k: {m.toordinal() for m in v} for k, v in feature_months.get(account.pk, {}).items()},
        )
    return result


# ----------------------------------------------------------------------------------------------------- helpers


def _money(amount: Decimal, currency: str) -> str:
    return format_money(amount, currency)


def percent(part: Decimal, whole: Decimal) -> Decimal | None:
    """``part`` as a percentage of ``whole``, to two places (None when ``whole`` is nothing)."""
    if not whole:
        return None
    return (part * HUNDRED / whole).quantize(CENT, rounding=ROUND_HALF_UP)


def _share(part: Decimal, whole: Decimal) -> str:
    return f"{(part * HUNDRED / whole).quantize(Decimal(1), rounding=ROUND_HALF_UP)} %"


def _month_label(period: Period) -> str:
    return f"{period.start:%b %Y}"


def _months_words(rerate: AccountRerate) -> str:
    periods = rerate.periods
    span = (
        _month_label(periods[0]) if len(periods) == 1 else f"{_month_label(periods[0])} – {_month_label(periods[-1])}"
    )
    return f"{span} ({len(periods)} month{'s' if len(periods) != 1 else ''})"


def _amounts(figures: Sequence[MonthFigure]) -> list[str]:
    return [f"{f.monthly:.2f}" for f in figures]


def _figures_words(figures: Sequence[MonthFigure], currency: str) -> str:
    return ", ".join(_money(f.monthly, currency) for f in figures)


def _month_keys(rerate: AccountRerate) -> list[str]:
    return [f"{p.start:%Y-%m}" for p in rerate.periods]


def _period_limits(version: PlanVersion) -> list[PlanCharge]:
    return [c for c in version.charges.all() if c.limit is not None and c.limit_window == PlanCharge.LimitWindow.PERIOD]


def _quantity(usage: dict[str, MetricUsage], code: str) -> Decimal:
    entry = usage.get(code)
    if entry is None:
        return ZERO
    return entry.quantity - entry.late_quantity


def misfits(version: PlanVersion, rerate: AccountRerate) -> list[str]:
    """The limits of ``version`` the re-rated months exceeded, in words (empty: it fits)."""
    problems = []
    for charge in _period_limits(version):
        code = charge.metric.code
        peak = max((_quantity(u, code) for u in rerate.usage), default=ZERO)
        if charge.limit is not None and peak > charge.limit:
            problems.append(f"{charge.metric.name}: {format_quantity(peak)} of {format_quantity(charge.limit)}")
    return problems


def _fit_words(version: PlanVersion, rerate: AccountRerate) -> str:
    parts = []
    for charge in _period_limits(version):
        peak = max((_quantity(u, charge.metric.code) for u in rerate.usage), default=ZERO)
        parts.append(f"{charge.metric.name.lower()} at most {format_quantity(peak)} of {format_quantity(charge.limit)}")
    if not parts:
        return f"{version.plan.name} has no limit per month."
    return f"{version.plan.name} fits its limits every month: " + "; ".join(parts) + "."


@dataclass(frozen=True)
class Option:
    version: PlanVersion
    figures: list[MonthFigure]
    average: Decimal


def fitting_options(rerate: AccountRerate, versions: Sequence[PlanVersion]) -> list[Option]:
    """The versions that fit the re-rated months, cheapest first (by the monthly average)."""
    options = []
    for version in versions:
        figures = rerate.plans.get(version.pk)
        if not figures or misfits(version, rerate):
            continue
        options.append(Option(version, figures, rerate.average(figures)))
    return sorted(options, key=lambda o: (o.average, o.version.plan.display_order, o.version.plan.code))


def _same_interval(inputs: AdviceInputs, *, yearly: bool) -> list[PlanVersion]:
    return [v for v in inputs.options if is_yearly(v) == yearly]


def _reduced(usage: dict[str, MetricUsage], code: str, *, tenant: int | None = None, by: Decimal) -> dict:
    """``usage`` with ``by`` fewer of ``code`` (and ``tenant``'s share of it gone, when given)."""
    entry = usage.get(code)
    if entry is None:
        return usage
    by_tenant = dict(entry.by_tenant)
    if tenant is not None:
        by_tenant.pop(tenant, None)
    return {**usage, code: replace(entry, quantity=max(entry.quantity - by, ZERO), by_tenant=by_tenant)}


def _with_quantity(usage: dict[str, MetricUsage], code: str, quantity: Decimal) -> dict:
    entry = usage[code]
    return {**usage, code: replace(entry, quantity=quantity + entry.late_quantity)}


# ------------------------------------------------------------------------------------------------------- advice


def plan_advice(rerate: AccountRerate, inputs: AdviceInputs) -> Advice | None:
    currency = rerate.account.currency
    current = rerate.current_average
    candidates = fitting_options(rerate, _same_interval(inputs, yearly=is_yearly(inputs.version)))
    if not candidates or candidates[0].average >= current:
        return None
    best = candidates[0]
    saving = current - best.average
    name = best.version.plan.name
    return Advice(
        kind=Kind.PLAN,
        title=f"Move to {name}: {_money(saving, currency)} a month less ({percent(saving, current)} %)",
        evidence=(
            f"Your usage of {_months_words(rerate)} re-rated by our billing engine: on your terms "
            f"({inputs.version.plan.name}) {_figures_words(rerate.current, currency)}; on {name} "
            f"{_figures_words(best.figures, currency)}. {_fit_words(best.version, rerate)}"
        ),
        saving_monthly=saving,
        current_monthly=current,
        proposed_monthly=best.average,
        saving_percent=percent(saving, current),
        plan_version=best.version,
        details={
            "months": _month_keys(rerate),
            "current": _amounts(rerate.current),
            "proposed": _amounts(best.figures),
            "proposed_billed": [f"{f.billed:.2f}" for f in best.figures],
            "plan": best.version.plan.code,
            "interval": best.version.billing_interval,
            "compared": {o.version.plan.code: f"{o.average:.2f}" for o in candidates},
        },
    )


def annual_terms_advice(rerate: AccountRerate, inputs: AdviceInputs, plan: Advice | None) -> Advice | None:
    if is_yearly(inputs.version):
        return None
    currency = rerate.account.currency
    yearly = fitting_options(rerate, _same_interval(inputs, yearly=True))
    if not yearly:
        return None
    best = yearly[0]
    base = plan.proposed_monthly if plan is not None and plan.proposed_monthly is not None else rerate.current_average
    base_name = plan.plan_version.plan.name if plan is not None and plan.plan_version else "your current terms"
    if best.average >= base:
        return None
    further = base - best.average
    year_fee = next((f.year_fee for f in best.figures if f.year_fee is not None), ZERO)
    name = best.version.plan.name
    return Advice(
        kind=Kind.ANNUAL_TERMS,
        title=(
            f"Annual terms: {name} costs {_money(best.average, currency)} a month, a further "
            f"{_money(further, currency)} less than {base_name}; {_money(year_fee, currency)} billed a year in advance"
        ),
        evidence=(
            f"Your usage of {_months_words(rerate)} re-rated on {name}, its year's fee after the annual discount "
            f"counted as one twelfth a month: {_figures_words(best.figures, currency)}. "
            f"{_fit_words(best.version, rerate)}"
        ),
        saving_monthly=further,
        current_monthly=base,
        proposed_monthly=best.average,
        saving_percent=percent(further, base),
        plan_version=best.version,
        details={
            "months": _month_keys(rerate),
            "proposed": _amounts(best.figures),
            "compared_with": base_name,
            "billed_in_advance": f"{year_fee:.2f}",
            "saving_against_current": f"{rerate.current_average - best.average:.2f}",
            "plan": best.version.plan.code,
        },
    )


def right_size_advice(rerate: AccountRerate, inputs: AdviceInputs) -> list[Advice]:
    currency = rerate.account.currency
    version = inputs.version
    n = len(rerate.usage)
    under, over = [], []
    for charge in version.charges.all():
        included = charge.included_quantity
        if included is None or included <= 0 or charge.pricing_model == PlanCharge.PricingModel.INCLUDED_ONLY:
            continue
        average = sum((_quantity(u, charge.metric.code) for u in rerate.usage), ZERO) / n
        if average < included * UNDER_SHARE:
            under.append((charge, average))
        elif average > included * OVER_SHARE:
            over.append((charge, average))
    current = rerate.current_average
    fitting = fitting_options(rerate, _same_interval(inputs, yearly=is_yearly(version)))
    result = []
    for direction, rows in (("under", under), ("over", over)):
        if not rows:
            continue

        def sized(option: Option, direction: str = direction, rows: list = rows) -> bool:
            charges = {c.metric.code: c for c in option.version.charges.all()}
            for charge, average in rows:
                other = charges.get(charge.metric.code)
                other_included = None if other is None else other.included_quantity
                if direction == "under" and (other_included is not None and other_included >= charge.included_quantity):
                    return False
                if direction == "over" and other_included is not None and other_included < average:
                    return False
            return True

        proposal = next((o for o in fitting if sized(o) and o.average < current), None)
        if direction == "under" and proposal is None:
            continue  # an allowance above use that no cheaper plan trims is nothing to act on
        words = "; ".join(
            f"{c.metric.name} {format_quantity(avg.quantize(CENT))} a month on average, "
            f"{_share(avg, c.included_quantity)} of the {format_quantity(c.included_quantity)} included"
            for c, avg in rows
        )
        if direction == "under":
            title = f"{version.plan.name} includes far more than you use: " + ", ".join(c.metric.name for c, _ in rows)
        else:
            overage = (
                sum(
                    (
                        sum(
                            (
                                line.amount
                                for line in f.lines
                                if line.kind == "usage" and line.metric_code in {c.metric.code for c, _ in rows}
                            ),
                            ZERO,
                        )
                        for f in rerate.current
                    ),
                    ZERO,
                )
                / n
            )
            title = (
                f"You use far more than {version.plan.name} includes: "
                + ", ".join(c.metric.name for c, _ in rows)
                + f" ({_money(overage, currency)} a month above the allowance on average)"
            )
        evidence = f"{_months_words(rerate)}: {words}."
        advice = Advice(
            kind=Kind.RIGHT_SIZE,
            title=title,
            evidence=evidence,
            saving_monthly=ZERO,
            current_monthly=current,
            details={
                "direction": direction,
                "metrics": {
                    c.metric.code: {"average": f"{avg:f}", "included": f"{c.included_quantity:f}"} for c, avg in rows
                },
            },
        )
        if proposal is not None:
            saving = current - proposal.average
            advice.title += (
                f"; {proposal.version.plan.name} is sized for it and saves {_money(saving, currency)} a month"
            )
            advice.evidence += f" On {proposal.version.plan.name}: {_figures_words(proposal.figures, currency)}."
            advice.saving_monthly = saving
            advice.proposed_monthly = proposal.average
            advice.saving_percent = percent(saving, current)
            advice.plan_version = proposal.version
        result.append(advice)
    return result


def feature_advice(rerate: AccountRerate, inputs: AdviceInputs, plan: Advice | None) -> list[Advice]:
    currency = rerate.account.currency
    version = inputs.version
    charge = next((c for c in version.charges.all() if c.metric.code == FEATURES), None)
    if charge is None or charge.pricing_model == PlanCharge.PricingModel.INCLUDED_ONLY:
        return []
    months = [p.start.date().toordinal() for p in rerate.periods]
    n = len(months)
    paid = [
        sum((line.amount for line in f.lines if line.kind == "usage" and line.metric_code == FEATURES), ZERO)
        for f in rerate.current
    ]
    result = []
    for feature, used in sorted(inputs.features.items()):
        used_months = [i for i, m in enumerate(months) if m in used]
        billed_months = [i for i in used_months if paid[i] > 0]
        if not billed_months or Decimal(len(used_months)) > RARE_SHARE * n:
            continue
        # What the months it was billed in come to without it, on the plan (the engine's figure both ways).
        saved = ZERO
        for i in billed_months:
            usage = rerate.usage[i]
            with_it = rate_on(account=rerate.account, version=version, period=rerate.periods[i], usage=usage)
            without = rate_on(
                account=rerate.account,
                version=version,
                period=rerate.periods[i],
                usage=_reduced(usage, FEATURES, by=Decimal(1)),
            )
            saved += with_it.monthly - without.monthly
        saving = (saved / n).quantize(CENT, rounding=ROUND_HALF_UP)
        if saving <= 0:
            continue
        result.append(
            Advice(
                kind=Kind.FEATURE,
                title=f"Premium feature “{feature}” is barely used: used in {len(used_months)} of {n} months, "
                f"{_money(saving, currency)} a month on average",
                evidence=(
                    f"{_months_words(rerate)}: “{feature}” was used in "
                    + ", ".join(_month_label(rerate.periods[i]) for i in used_months)
                    + f" and billed as a premium feature-month above what {version.plan.name} includes; without it "
                    f"those months come to {_money(saved, currency)} less."
                ),
                saving_monthly=saving,
                current_monthly=rerate.current_average,
                proposed_monthly=rerate.current_average - saving,
                saving_percent=percent(saving, rerate.current_average),
                details={"feature": feature, "months_used": [_month_keys(rerate)[i] for i in used_months]},
            )
        )
    # A plan including what it pays for.
    average_paid = sum(paid, ZERO) / n
    if average_paid > 0:
        peak = max(_quantity(u, FEATURES) for u in rerate.usage)
        for option in fitting_options(rerate, _same_interval(inputs, yearly=is_yearly(version))):
            other = next((c for c in option.version.charges.all() if c.metric.code == FEATURES), None)
            includes = other is not None and (
                other.pricing_model == PlanCharge.PricingModel.INCLUDED_ONLY
                or (other.included_quantity is not None and other.included_quantity >= peak)
                or other.included_quantity is None
            )
            if not includes or option.average >= rerate.current_average:
                continue
            if plan is not None and plan.plan_version is not None and plan.plan_version.pk == option.version.pk:
                break
            saving = rerate.current_average - option.average
            result.append(
                Advice(
                    kind=Kind.FEATURE,
                    title=f"{option.version.plan.name} includes the premium features you pay for: "
                    f"{_money(saving, currency)} a month less",
                    evidence=(
                        f"{_months_words(rerate)}: you paid {_money(average_paid, currency)} a month on average "
                        f"for up to {format_quantity(peak)} premium features; on {option.version.plan.name} "
                        f"{_figures_words(option.figures, currency)}."
                    ),
                    saving_monthly=saving,
                    current_monthly=rerate.current_average,
                    proposed_monthly=option.average,
                    saving_percent=percent(saving, rerate.current_average),
                    plan_version=option.version,
                    details={"plan": option.version.plan.code, "proposed": _amounts(option.figures)},
                )
            )
            break
    return result


def _last_used_words(source: IdleSource) -> str:
    if source.last_used is None:
        return "no usage recorded in the last 12 months"
    return f"no usage since {source.last_used:%b} {source.last_used.day}, {source.last_used.year}"


def idle_advice(rerate: AccountRerate, inputs: AdviceInputs, now: dt.datetime) -> list[Advice]:
    currency = rerate.account.currency
    version = inputs.version
    codes = {c.metric.code for c in version.charges.all()}
    period = rerate.periods[-1]
    usage = rerate.usage[-1]
    result = []
    for code, sources, kind in (
        (TENANTS, inputs.idle_tenants, Kind.IDLE_TENANT),
        (PARTNERS, inputs.idle_partners, Kind.IDLE_PARTNER),
    ):
        if code not in codes or not sources:
            continue
        before = rate_on(account=rerate.account, version=version, period=period, usage=usage)
        for source in sources:
            entry = usage.get(code)
            counted = entry is not None and (code == PARTNERS or source.obj.pk in entry.by_tenant)
            if not counted:
                continue
            usage = _reduced(usage, code, tenant=source.obj.pk if code == TENANTS else None, by=Decimal(1))
            after = rate_on(account=rerate.account, version=version, period=period, usage=usage)
            saving = before.monthly - after.monthly
            before = after
            what = "Archive tenant" if kind == Kind.IDLE_TENANT else "Deactivate master partner"
            counted_as = "a tenant-month" if kind == Kind.IDLE_TENANT else "a master partner against the plan's limit"
            title = f"{what} {source.obj.name} ({source.obj.public_id}): {_last_used_words(source)}"
            title += f", {_money(saving, currency)} a month" if saving > 0 else ", nothing charged for it but its limit"
            result.append(
                Advice(
                    kind=kind,
                    title=title[:200],
                    evidence=(
                        f"Live since {source.obj.activated_at:%b} {source.obj.activated_at.day}, "
                        f"{source.obj.activated_at.year}, {_last_used_words(source)} (as of {now:%b} {now.day}); "
                        f"{_month_label(period)} counted it as {counted_as} on {version.plan.name}; re-rated "
                        f"without it, that month comes to {_money(saving, currency)} less."
                    ),
                    saving_monthly=max(saving, ZERO),
                    current_monthly=rerate.current_average,
                    proposed_monthly=rerate.current_average - max(saving, ZERO),
                    saving_percent=percent(max(saving, ZERO), rerate.current_average),
                    tenant=source.obj if kind == Kind.IDLE_TENANT else None,  # type: ignore[arg-type]
                    partner=source.obj if kind == Kind.IDLE_PARTNER else None,  # type: ignore[arg-type]
                    details={"last_used": source.last_used.isoformat() if source.last_used else None},
                )
            )
    return result


def _trend(values: Sequence[Decimal]) -> tuple[Decimal, Decimal]:
    """Least-squares line through ``values`` at x = 0, 1, …: (value at the last x, slope)."""
    n = len(values)
    xs = [Decimal(i) for i in range(n)]
    mean_x = sum(xs, ZERO) / n
    mean_y = sum(values, ZERO) / n
    spread = sum(((x - mean_x) ** 2 for x in xs), ZERO)
    slope = sum(((x - mean_x) * (y - mean_y) for x, y in zip(xs, values, strict=True)), ZERO) / spread
    return mean_y + slope * (xs[-1] - mean_x), slope


def outgrow_advice(rerate: AccountRerate, inputs: AdviceInputs) -> list[Advice]:
    currency = rerate.account.currency
    version = inputs.version
    usage = rerate.usage[-TREND_MONTHS:]
    periods = rerate.periods[-TREND_MONTHS:]
    if len(usage) < MIN_MONTHS:
        return []
    result = []
    for charge in _period_limits(version):
        code = charge.metric.code
        limit = charge.limit
        assert limit is not None
        values = [_quantity(u, code) for u in usage]
        level, slope = _trend(values)
        if slope <= 0:
            continue
        projected = level + slope * HORIZON_MONTHS
        if projected <= limit:
            continue
        months_left = max((limit - level) / slope, ZERO)
        if charge.metric.aggregation == "unique_count" or charge.metric.source != "events":
            projected = projected.to_integral_value(rounding="ROUND_CEILING")
        else:
            projected = projected.quantize(CENT, rounding=ROUND_HALF_UP)
        last = rerate.usage[-1]
        now_cost = rate_on(account=rerate.account, version=version, period=rerate.periods[-1], usage=last)
        then_cost = rate_on(
            account=rerate.account,
            version=version,
            period=rerate.periods[-1],
            usage=_with_quantity(last, code, projected),
        )
        extra = max(then_cost.monthly - now_cost.monthly, ZERO)
        months_to_limit = max(int(months_left.to_integral_value(rounding="ROUND_CEILING")), 1)
        passes = (
            f"is past {version.plan.name}'s limit of {format_quantity(limit)} already"
            if values[-1] > limit
            else f"will pass {version.plan.name}'s limit of {format_quantity(limit)} in about "
            f"{months_to_limit} month{'s' if months_to_limit != 1 else ''}"
        )
        result.append(
            Advice(
                kind=Kind.OUTGROW_RISK,
                title=(
                    f"{charge.metric.name} {passes}: {format_quantity(projected)} expected in {HORIZON_MONTHS} months"
                    + (f", {_money(extra, currency)} a month more" if extra else "")
                )[:200],
                evidence=(
                    f"{charge.metric.name} per month, "
                    + ", ".join(f"{_month_label(p)} {format_quantity(v)}" for p, v in zip(periods, values, strict=True))
                    + f": a trend of {format_quantity(slope.quantize(CENT, rounding=ROUND_HALF_UP))} a month"
                    + " (least squares)."
                    + (
                        f" Re-rated at {format_quantity(projected)}, {_month_label(rerate.periods[-1])} comes to "
                        f"{_money(then_cost.monthly, currency)} instead of {_money(now_cost.monthly, currency)}."
                    )
                ),
                saving_monthly=extra,
                current_monthly=now_cost.monthly,
                proposed_monthly=then_cost.monthly,
                details={
                    "metric": code,
                    "limit": f"{limit:f}",
                    "values": [f"{v:f}" for v in values],
                    "projected": f"{projected:f}",
                    "slope": f"{slope.quantize(CENT, rounding=ROUND_HALF_UP):f}",
                },
            )
        )
    return result


def advice_for(*, rerate: AccountRerate, inputs: AdviceInputs, now: dt.datetime) -> list[Advice]:
    """Every piece of advice for one re-rated account (pure: no queries)."""
    if not rerate.periods:
        return []
    result: list[Advice] = []
    if len(rerate.periods) >= MIN_MONTHS:
        plan = plan_advice(rerate, inputs)
        if plan is not None:
            result.append(plan)
        annual = annual_terms_advice(rerate, inputs, plan)
        if annual is not None:
            result.append(annual)
        result.extend(right_size_advice(rerate, inputs))
        result.extend(outgrow_advice(rerate, inputs))
    else:
        plan = None
    result.extend(feature_advice(rerate, inputs, plan))
    result.extend(idle_advice(rerate, inputs, now))
    return result
