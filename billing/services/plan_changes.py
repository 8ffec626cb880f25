"""Plan changes: previewed by the rating engine, requested by customers (portal, API) or staff (admin),
approved or declined by billing staff, applied at once or at the end of the billing period.

Rules (docs/billing.md, "Plan changes"):
- A change moves the account's live subscription to another published version of a plan of the same product and
  currency: the old subscription ends at the effective moment and a new one starts there (no new trial; what is
  left of a running trial carries over). The month is rated in segments, each by the plan in force, so the base
  fees are prorated by the second and usage is priced by the plan in force when it happened.
- Direction: by the monthly base fee (a yearly fee after its annual discount, divided by 12). Upgrades apply
  without waiting when ``SUBSCRIPTIONS_UPGRADES_APPLY_AT_ONCE`` is on; downgrades, changes at the same price and
  changes of contract (to or from a custom plan or a yearly plan, or while a contract is in force) always wait
  for billing staff (``billing.approve_plan_change``).
- Timing: ``now`` takes effect at once (at approval, for a change that waited); ``period_end`` at the end of the
  billing period (of the paid year for a yearly plan).
- Fit: a count the new plan limits without an overage price (e.g. master partners on Startup) that the month's
  usage exceeds refuses the change; usage above an included quantity that has an overage price is allowed and
  billed as overage — the preview lists both.
- A change never moves the account's status: past due and suspended stay so.
- No change while a cancellation is pending (409 ``cancellation_pending``); cancelling withdraws an open change.
- Every request, approval, decline, withdrawal and application is audited (history rows with actor and reason)
  and e-mailed to the account's billing contacts; each applied change records one ``billing.subscription_updated``.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from accounts.models import Account, ApiKey
from billing.models import Contract, Plan, PlanChangeRequest, PlanCharge, PlanVersion, Subscription
from billing.rating.engine import ChargeLine, Estimate, charges_many, terms_of
from billing.rating.tiers import overage_amount
from billing.services.plan_change_notices import acting_user as _user
from billing.services.plan_change_notices import change_notify as _notify
from billing.services.plan_change_notices import change_save as _save
from billing.services.plan_change_notices import change_withdraw as _withdraw
from billing.services.plan_change_notices import plan_changes_withdraw_open as plan_changes_withdraw_open
from billing.services.subscriptions import subscription_change_plan, subscription_paid_period_end
from common import clock
from common.errors import BillingError
from common.formats import iso_utc, money_string
from common.money import format_money, format_quantity, round_money
from common.outbox import outbox_emit
from common.periods import Period, month_containing, next_month
from common.services import public_id_next

ZERO = Decimal(0)
Timing = PlanChangeRequest.Timing
State = PlanChangeRequest.State
PERM_APPROVE = "billing.approve_plan_change"

ERR_NOT_LIVE = "Subscription {subscription} is cancelled: subscribe the account again instead."
ERR_NO_SUBSCRIPTION = "Account {account} has no live subscription to change."
ERR_SAME_VERSION = "The account is on {version} already."
ERR_OTHER_PRODUCT = "{plan} is a plan of another product ({product}); choose a {current} plan."
ERR_NOT_PUBLISHED = "Plan version {version} is not published yet."
ERR_PRICE_ON_REQUEST = "{plan} is priced on request: ask your account manager for a contract."
ERR_PLAN_INACTIVE = "{plan} takes no new subscriptions."
ERR_CUSTOM_OTHER_ACCOUNT = "{plan} is not available to this account."
ERR_CURRENCY = "{plan} is priced in {plan_currency} but the account is billed in {account_currency}."
ERR_TIMING = "Timing must be one of: now, period_end."
ERR_CANCELLATION_PENDING = (
    "The subscription is set to end on {date}; a plan change cannot be made while a cancellation is pending."
)
ERR_LIMIT = "{metric}: {quantity} this month, and {plan} allows {limit}; remove {excess} before moving."
ERR_CHANGE_PENDING = "Plan change {change} is already {state}: withdraw it (or wait for it) before asking again."
ERR_APPROVE_DENIED = "Only billing staff may approve or decline plan changes; {change} was not changed."
ERR_STAFF_DENIED = "Only billing staff may change a subscription's plan."
ERR_NOT_PENDING = "Plan change {change} is {state}: only a change waiting for approval can be {action}."
ERR_NOT_OPEN = "Plan change {change} is {state}: only a waiting or scheduled change can be withdrawn."
ERR_REASON = "Say why the change is declined: the customer reads it."
ERR_ENDS_FIRST = "The subscription is set to end on {date}, so it does not move to {plan}."
ERR_NO_LONGER_FITS = "Plan change {change} cannot apply any more: {reasons}"


@dataclass(frozen=True)
class PreviewLine:
    kind: str  # base_fee | usage | discount | minimum_commitment | prepaid_credit | late_usage | …
    description: str
    amount: Decimal
    first_day: dt.date
    last_day: dt.date


@dataclass(frozen=True)
class ChangePreview:
    """What a change would do, computed by the rating engine from the account's usage so far."""

    subscription: Subscription
    from_version: PlanVersion
    to_version: PlanVersion
    timing: str
    effective_at: dt.datetime
    direction: str
    needs_approval: bool
    currency: str
    period: Period  # the month the lines are for
    lines: list[PreviewLine] = field(default_factory=list)
    current_subtotal: Decimal = ZERO
    new_subtotal: Decimal = ZERO
    overage: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)

    @property
    def difference(self) -> Decimal:
        return self.new_subtotal - self.current_subtotal

    @property
    def allowed(self) -> bool:
        return not self.refusals

    def as_json(self) -> dict[str, Any]:
        return {
            "from_plan": plan_json(self.from_version),
            "to_plan": plan_json(self.to_version),
            "timing": self.timing,
            "effective_at": iso_utc(self.effective_at),
            "direction": self.direction,
            "needs_approval": self.needs_approval,
            "currency": self.currency,
            "period": {"start": iso_utc(self.period.start), "end": iso_utc(self.period.end)},
            "lines": [
                {
                    "kind": line.kind,
                    "description": line.description,
                    "amount": money_string(line.amount),
                    "first_day": line.first_day.isoformat(),
                    "last_day": line.last_day.isoformat(),
                }
                for line in self.lines
            ],
            "current_subtotal": money_string(self.current_subtotal),
            "new_subtotal": money_string(self.new_subtotal),
            "difference": money_string(self.difference),
            "overage": list(self.overage),
            "refusals": list(self.refusals),
        }


def plan_json(version: PlanVersion) -> dict[str, Any]:
    return {
        "code": version.plan.code,
        "name": version.plan.name,
        "version": version.version,
        "interval": version.billing_interval,
    }


def actor_label(actor: Any) -> str:
    """Who asked or decided, as e-mails and the admin show it."""
    if actor is None:
        return "Ledgerline"
    if isinstance(actor, ApiKey):
        return f"API key {actor.prefix}… ({actor.name})"[:200]
    name = (actor.get_full_name() or actor.get_username() or "").strip()
    return (f"{name} <{actor.email}>" if actor.email and name != actor.email else name or actor.email)[:200]


def monthly_base_fee(version: PlanVersion) -> Decimal:
    """The base fee per month: a yearly fee after its annual discount, divided by 12."""
    fee = version.base_fee or ZERO
    if version.billing_interval == PlanVersion.Interval.YEAR:
        fee = fee * (100 - version.annual_discount_percent) / 100 / 12
    return fee


def change_direction(from_version: PlanVersion, to_version: PlanVersion) -> str:
    old, new = monthly_base_fee(from_version), monthly_base_fee(to_version)
    if new > old:
        return PlanChangeRequest.Direction.UPGRADE
    if new < old:
        return PlanChangeRequest.Direction.DOWNGRADE
    return PlanChangeRequest.Direction.LATERAL


def _contract_in_force(account: Account, at: dt.datetime) -> bool:
    return (
        Contract.objects.filter(account=account, term_start__lte=at, term_end__gt=at)
        .exclude(terminated_at__lte=at)
        .exists()
    )


def _changes_contract(account: Account, from_version: PlanVersion, to_version: PlanVersion, at: dt.datetime) -> bool:
    versions = (from_version, to_version)
    return (
        any(v.plan.kind == Plan.Kind.CUSTOM for v in versions)
        or any(v.billing_interval == PlanVersion.Interval.YEAR for v in versions)
        or _contract_in_force(account, at)
    )


def needs_approval(*, account: Account, from_version: PlanVersion, to_version: PlanVersion, at: dt.datetime) -> bool:
    if _changes_contract(account, from_version, to_version, at):
        return True
    upgrade = change_direction(from_version, to_version) == PlanChangeRequest.Direction.UPGRADE
    return not (upgrade and settings.SUBSCRIPTIONS_UPGRADES_APPLY_AT_ONCE)


def paid_period_end(subscription: Subscription, at: dt.datetime) -> dt.datetime:
    """The end of the period ``at`` is in: the month, or for a yearly plan the paid subscription year."""
    return subscription_paid_period_end(subscription, at)


def _version_problems(account: Account, subscription: Subscription, version: PlanVersion) -> list[str]:
    plan = version.plan
    current = subscription.plan_version
    if version.pk == current.pk:
        return [ERR_SAME_VERSION.format(version=version)]
    if plan.product != current.plan.product:
        return [
            ERR_OTHER_PRODUCT.format(
                plan=plan.name, product=plan.get_product_display(), current=current.plan.get_product_display()
            )
        ]
    if not version.is_published:
        return [ERR_NOT_PUBLISHED.format(version=version)]
    if version.price_on_request:
        return [ERR_PRICE_ON_REQUEST.format(plan=plan.name)]
    if not plan.is_active:
        return [ERR_PLAN_INACTIVE.format(plan=plan.name)]
    if plan.account_id is not None and plan.account_id != account.pk:
        return [ERR_CUSTOM_OTHER_ACCOUNT.format(plan=plan.name)]
    if version.currency != account.currency:
        return [ERR_CURRENCY.format(plan=plan.name, plan_currency=version.currency, account_currency=account.currency)]
    return []


def _fit(estimate: Estimate, version: PlanVersion, currency: str) -> tuple[list[str], list[str]]:
    """Refusals (a limited count without an overage price exceeded) and overage notes (usage above what the new
    plan includes, with what a whole month of it costs), from the month's usage so far."""
    refusals: list[str] = []
    overage: list[str] = []
    for charge in version.charges.select_related("metric").prefetch_related("tiers"):
        usage = estimate.usage.get(charge.metric.code)
        if usage is None or not usage.quantity:
            continue
        quantity = usage.quantity
        name = charge.metric.name
        if charge.pricing_model == PlanCharge.PricingModel.INCLUDED_ONLY:
            if charge.limit is not None and quantity > charge.limit:
                refusals.append(
                    ERR_LIMIT.format(
                        metric=name,
                        quantity=format_quantity(quantity),
                        plan=version.plan.name,
                        limit=format_quantity(charge.limit),
                        excess=format_quantity(quantity - charge.limit),
                    )
                )
            continue
        included = charge.included_quantity
        if included is None or quantity <= included:
            continue
        cost = round_money(overage_amount(terms_of(charge), quantity), currency)
        overage.append(
            f"{name}: {format_quantity(quantity)} so far this month, {format_quantity(quantity - included)} above "
            f"the {format_quantity(included)} {version.plan.name} includes, billed as overage "
            f"({format_money(cost, currency)} for a whole month at this usage)."
        )
    return refusals, overage


def _preview_line(line: ChargeLine, period: Period) -> PreviewLine:
    start, end = line.start or period.start, line.end or period.end
    return PreviewLine(line.kind, line.description, line.amount, start.date(), Period(start, end).last_day)


def _subscription_copy(subscription: Subscription, *, ended_at: dt.datetime | None) -> Subscription:
    old = copy.copy(subscription)
    old.ended_at = ended_at
    return old


def _new_subscription(subscription: Subscription, version: PlanVersion, at: dt.datetime) -> Subscription:
    trial_end = subscription.trial_end if subscription.trial_end and subscription.trial_end > at else None
    month = month_containing(at)
    return Subscription(
        account=subscription.account,
        plan_version=version,
        status=Subscription.Status.TRIALING if trial_end else Subscription.Status.ACTIVE,
        started_at=at,
        trial_end=trial_end,
        current_period_start=at,
        current_period_end=month.end if month.end > at else next_month(month).end,
    )


def plan_change_preview(
    *, subscription: Subscription, to_version: PlanVersion, timing: str, now: dt.datetime | None = None
) -> ChangePreview:
    """What moving ``subscription`` to ``to_version`` with ``timing`` would do: the lines of the month it takes
    effect in (the running month, usage so far, for ``now``; the month after the period for ``period_end``),
    that month as things stand and with the change, overage and refusals. Raises ``BillingError`` for a change
    that can never be made (a cancelled subscription, a bad timing)."""
    now = now or clock.now()
    if timing not in Timing.values:
        raise BillingError(ERR_TIMING, code="invalid_timing", field="timing")
    if subscription.status == Subscription.Status.CANCELLED:
        raise BillingError(
            ERR_NOT_LIVE.format(subscription=subscription.public_id), code="already_cancelled", status=409
        )
    account = subscription.account
    from_version = subscription.plan_version
    effective_at = now if timing == Timing.NOW else paid_period_end(subscription, now)
    # The month shown: the running one for a change now, the first month on the new plan otherwise.
    period = month_containing(effective_at if timing == Timing.PERIOD_END else now)
    rated_at = now if period.start <= now < period.end else period.start
    old = _subscription_copy(subscription, ended_at=subscription.ended_at)
    new = _new_subscription(subscription, to_version, effective_at)
    before = _subscription_copy(subscription, ended_at=effective_at)
    estimates = {}
    for name, subscriptions in (("current", [old]), ("new", [before, new])):
        estimates[name] = charges_many(
            accounts=[account], period=period, now=rated_at, subscriptions={account.pk: subscriptions}
        )[account.pk]
    current, changed = estimates["current"], estimates["new"]
    refusals = _version_problems(account, subscription, to_version)
    if subscription.cancel_at is not None:
        refusals.append(
            ERR_CANCELLATION_PENDING.format(date=f"{subscription.cancel_at:%b} {subscription.cancel_at.day}")
        )
    overage: list[str] = []
    if not refusals:
        fit_refusals, overage = _fit(current, to_version, account.currency)
        refusals.extend(fit_refusals)
    return ChangePreview(
        subscription=subscription,
        from_version=from_version,
        to_version=to_version,
        timing=timing,
        effective_at=effective_at,
        direction=change_direction(from_version, to_version),
        needs_approval=needs_approval(account=account, from_version=from_version, to_version=to_version, at=now),
        currency=account.currency,
        period=period,
        lines=[_preview_line(line, period) for line in changed.lines],
        current_subtotal=current.subtotal,
        new_subtotal=changed.subtotal,
        overage=overage,
        refusals=refusals,
    )


def _live_subscription(account: Account) -> Subscription:
    subscription = (
        Subscription.objects.select_for_update()
        .select_related("account", "plan_version__plan")
        .filter(account=account)
        .exclude(status=Subscription.Status.CANCELLED)
        .order_by("-started_at")
        .first()
    )
    if subscription is None:
        raise BillingError(ERR_NO_SUBSCRIPTION.format(account=account.public_id), code="no_subscription", status=409)
    return subscription


def _open_change(account: Account) -> PlanChangeRequest | None:
    return PlanChangeRequest.objects.filter(account=account, state__in=[State.PENDING, State.SCHEDULED]).first()


def _check_no_cancellation(subscription: Subscription) -> None:
    if subscription.cancel_at is not None:
        raise BillingError(
            ERR_CANCELLATION_PENDING.format(date=f"{subscription.cancel_at:%b} {subscription.cancel_at.day}"),
            code="cancellation_pending",
            status=409,
        )


def _check_none_open(account: Account) -> None:
    existing = _open_change(account)
    if existing is not None:
        raise BillingError(
            ERR_CHANGE_PENDING.format(change=existing.public_id, state=existing.get_state_display().lower()),
            code="change_pending",
            status=409,
        )


def _refuse(preview: ChangePreview) -> None:
    if preview.refusals:
        raise BillingError(" ".join(preview.refusals), code="change_not_allowed", field="plan_version")


def _apply(change: PlanChangeRequest, *, actor: Any, now: dt.datetime) -> PlanChangeRequest:
    """Put the new plan in force from ``change.effective_at``; one ``billing.subscription_updated``."""
    subscription = change.subscription
    old_id = subscription.public_id
    assert change.effective_at is not None
    new = subscription_change_plan(
        subscription=subscription, plan_version=change.to_version, at=change.effective_at, actor=_user(actor)
    )
    change.apply()
    change.applied_at, change.new_subscription = now, new
    _save(change, actor=actor, reason=f"applied: {change.from_version} → {change.to_version}", now=now)
    outbox_emit(
        type="billing.subscription_updated",
        account_id=change.account_id,
        dedup_key=f"plan_change:{change.pk}",
        data={
            "account_id": change.account.public_id,
            "subscription_id": new.public_id,
            "previous_subscription_id": old_id,
            "change_id": change.public_id,
            "old_plan": plan_json(change.from_version),
            "new_plan": plan_json(change.to_version),
            "status": new.status,
            "account_status": change.account.status,
            "effective_date": iso_utc(change.effective_at),
            "cancel_at_period_end": new.cancel_at_period_end,
        },
        now=now,
    )
    _notify(change, "applied", now, actor)
    return change


def _approve_and_go(change: PlanChangeRequest, *, actor: Any, now: dt.datetime) -> PlanChangeRequest:
    """An approved change (or one that needs none): at once for ``now``, scheduled for ``period_end``."""
    if change.timing == Timing.NOW:
        change.effective_at = now
        return _apply(change, actor=actor, now=now)
    assert change.effective_at is not None  # set from the preview: the period's end
    change.schedule()
    _save(change, actor=actor, reason=f"scheduled for {iso_utc(change.effective_at)}", now=now)
    _notify(change, "scheduled", now, actor)
    return change


@transaction.atomic
def plan_change_request(
    *,
    account: Account,
    to_version: PlanVersion,
    timing: str,
    actor: Any,
    channel: str,
    note: str = "",
    now: dt.datetime | None = None,
) -> PlanChangeRequest:
    """Ask to move ``account`` to ``to_version``. Refused changes raise ``BillingError`` (400 naming
    ``plan_version`` or ``timing``; 409 ``change_pending`` while another change waits). A change that needs no
    approval is applied (timing ``now``) or scheduled (``period_end``) at once; others wait for billing staff."""
    now = now or clock.now()
    Account.objects.select_for_update().filter(pk=account.pk).first()
    subscription = _live_subscription(account)
    _check_none_open(account)
    _check_no_cancellation(subscription)
    preview = plan_change_preview(subscription=subscription, to_version=to_version, timing=timing, now=now)
    _refuse(preview)
    if getattr(_user(actor), "is_staff", False):
        channel = PlanChangeRequest.Channel.ADMIN  # staff ask on the customer's behalf: recorded as such
    change = PlanChangeRequest(
        public_id=public_id_next(prefix="chg"),
        account=account,
        subscription=subscription,
        from_version=subscription.plan_version,
        to_version=to_version,
        timing=timing,
        direction=preview.direction,
        needs_approval=preview.needs_approval,
        channel=channel,
        requested_by=_user(actor),
        requested_by_label=actor_label(actor),
        note=note.strip()[:2000],
        preview=preview.as_json(),
        requested_at=now,
        effective_at=preview.effective_at,
    )
    try:
        with transaction.atomic():
            _save(change, actor=actor, reason=f"requested: {change.from_version} → {to_version}", now=now)
    except IntegrityError:  # a concurrent request won
        raise BillingError(
            ERR_CHANGE_PENDING.format(change="(another request)", state="waiting"), code="change_pending", status=409
        ) from None
    _notify(change, "requested", now, actor)
    if not change.needs_approval:
        return _approve_and_go(change, actor=actor, now=now)
    return change


def _locked(change: PlanChangeRequest) -> PlanChangeRequest:
    return (
        PlanChangeRequest.objects.select_for_update()
        .select_related("account", "subscription__plan_version__plan", "from_version__plan", "to_version__plan")
        .get(pk=change.pk)
    )


def _check_approver(actor: Any, change: PlanChangeRequest) -> None:
    if not (getattr(actor, "is_authenticated", False) and actor.has_perm(PERM_APPROVE)):
        raise BillingError(ERR_APPROVE_DENIED.format(change=change.public_id), code="permission_denied", status=403)


@transaction.atomic
def plan_change_approve(
    *, change: PlanChangeRequest, actor: Any, note: str = "", now: dt.datetime | None = None
) -> PlanChangeRequest:
    """Billing staff approve a waiting change: applied at once (timing ``now``, from this moment) or scheduled
    for the period's end. The preview is computed again; a change that no longer fits is refused (409)."""
    now = now or clock.now()
    _check_approver(actor, change)
    change = _locked(change)
    if change.state != State.PENDING:
        raise BillingError(
            ERR_NOT_PENDING.format(
                change=change.public_id, state=change.get_state_display().lower(), action="approved"
            ),
            code="invalid_state",
            status=409,
        )
    subscription = Subscription.objects.select_for_update().select_related("account").get(pk=change.subscription_id)
    if subscription.status == Subscription.Status.CANCELLED:
        raise BillingError(
            ERR_NOT_LIVE.format(subscription=subscription.public_id), code="already_cancelled", status=409
        )
    _check_no_cancellation(subscription)
    preview = plan_change_preview(
        subscription=subscription, to_version=change.to_version, timing=change.timing, now=now
    )
    if preview.refusals:
        raise BillingError(
            ERR_NO_LONGER_FITS.format(change=change.public_id, reasons=" ".join(preview.refusals)),
            code="change_not_allowed",
            status=409,
        )
    change.subscription = subscription
    change.decided_by, change.decided_at, change.decision_note = _user(actor), now, note.strip()[:2000]
    change.preview, change.effective_at = preview.as_json(), preview.effective_at
    _save(change, actor=actor, reason="approved", now=now)
    _notify(change, "approved", now, actor)
    return _approve_and_go(change, actor=actor, now=now)


@transaction.atomic
def plan_change_decline(
    *, change: PlanChangeRequest, actor: Any, reason: str, now: dt.datetime | None = None
) -> PlanChangeRequest:
    """Billing staff decline a waiting change with a reason (the customer reads it); nothing else changes."""
    now = now or clock.now()
    _check_approver(actor, change)
    if not (reason or "").strip():
        raise BillingError(ERR_REASON, code="reason_required", field="reason")
    change = _locked(change)
    if change.state != State.PENDING:
        raise BillingError(
            ERR_NOT_PENDING.format(
                change=change.public_id, state=change.get_state_display().lower(), action="declined"
            ),
            code="invalid_state",
            status=409,
        )
    change.decline()
    change.decided_by, change.decided_at, change.decision_note = _user(actor), now, reason.strip()[:2000]
    _save(change, actor=actor, reason=f"declined: {change.decision_note}", now=now)
    _notify(change, "declined", now, actor)
    return change


@transaction.atomic
def plan_change_cancel(*, change: PlanChangeRequest, actor: Any, now: dt.datetime | None = None) -> PlanChangeRequest:
    """The customer (or staff) withdraws a change that waits for approval or for its moment."""
    now = now or clock.now()
    change = _locked(change)
    if not change.is_open:
        raise BillingError(
            ERR_NOT_OPEN.format(change=change.public_id, state=change.get_state_display().lower()),
            code="invalid_state",
            status=409,
        )
    change.cancel()
    _save(change, actor=actor, reason=f"withdrawn by {actor_label(actor)}", now=now)
    _notify(change, "cancelled", now, actor)
    return change


@transaction.atomic
def plan_change_staff(
    *,
    subscription: Subscription,
    to_version: PlanVersion,
    timing: str,
    actor: Any,
    note: str,
    now: dt.datetime | None = None,
) -> PlanChangeRequest:
    """The admin's "Change plan": billing staff decide, so the change is recorded as requested and approved by
    them and applied (or scheduled) at once — audited and e-mailed like any other."""
    now = now or clock.now()
    if not (getattr(actor, "is_authenticated", False) and actor.has_perm(PERM_APPROVE)):
        raise BillingError(ERR_STAFF_DENIED, code="permission_denied", status=403)
    account = subscription.account
    Account.objects.select_for_update().filter(pk=account.pk).first()
    subscription = _live_subscription(account)
    _check_none_open(account)
    _check_no_cancellation(subscription)
    preview = plan_change_preview(subscription=subscription, to_version=to_version, timing=timing, now=now)
    _refuse(preview)
    change = PlanChangeRequest(
        public_id=public_id_next(prefix="chg"),
        account=account,
        subscription=subscription,
        from_version=subscription.plan_version,
        to_version=to_version,
        timing=timing,
        direction=preview.direction,
        needs_approval=False,
        channel=PlanChangeRequest.Channel.ADMIN,
        requested_by=_user(actor),
        requested_by_label=actor_label(actor),
        note=(note or "").strip()[:2000],
        preview=preview.as_json(),
        requested_at=now,
        decided_by=_user(actor),
        decided_at=now,
        decision_note=(note or "").strip()[:2000],
        effective_at=preview.effective_at,
    )
    _save(change, actor=actor, reason=f"changed by staff: {change.from_version} → {to_version}", now=now)
    return _approve_and_go(change, actor=actor, now=now)


def plan_changes_apply_due(*, now: dt.datetime) -> int:
    """Apply every scheduled change whose moment has come (called by the lifecycle step before periods roll).
    A change that cannot apply any more (its subscription ended, or is set to end, meanwhile) is withdrawn and the
    customer told why; one change's failure never stops the others. Returns how many were applied."""
    applied = 0
    for change in (
        PlanChangeRequest.objects.select_for_update(skip_locked=True)
        .filter(state=State.SCHEDULED, effective_at__lte=now)
        .select_related("account", "subscription", "from_version__plan", "to_version__plan")
        .order_by("effective_at", "pk")
    ):
        subscription = change.subscription
        if subscription.status == Subscription.Status.CANCELLED:
            _withdraw(change, reason="The subscription ended before the change.", actor=None, now=now)
            continue
        if subscription.cancel_at is not None:
            ends = subscription.cancel_at
            reason = ERR_ENDS_FIRST.format(date=f"{ends:%b} {ends.day}, {ends.year}", plan=change.to_version.plan.name)
            _withdraw(change, reason=reason, actor=None, now=now)
            continue
        try:
            with transaction.atomic():
                _apply(change, actor=None, now=now)
        except BillingError as exc:
            change.refresh_from_db()
            _withdraw(change, reason=exc.message, actor=None, now=now)
            continue
        applied += 1
    return applied
