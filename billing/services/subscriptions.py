"""Writes for subscriptions.

Periods are calendar months in UTC, half-open. The first period runs from the start of the
subscription to the first of the next month (the base fee of a partial month is prorated when it is
rated); every later period is a whole month. A subscription started in the past (migrated from
another system) begins in the month containing now. A yearly plan's base fee is paid for the
subscription year (from the trial's end, or the start), so "the end of the period" of a yearly plan
is the end of that paid year.

A cancellation is announced: the account's billing contacts get the ``subscription`` e-mail, and a
cancellation at the period's end records one ``billing.subscription_updated`` when it is asked for
(when it takes effect, or for an immediate one, the account's move to cancelled records its own). A
plan change waiting or scheduled for the account is withdrawn by a cancellation, and no plan change
can be made while a cancellation is pending (409 ``cancellation_pending``): withdraw it first.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import IntegrityError, transaction

from accounts.models import Account
from accounts.services import account_set_status
from billing.models import PlanVersion, Subscription
from billing.rating.engine import is_yearly, subscription_year
from billing.services.emails.queueing import email_queue_account_notice
from billing.services.plan_change_notices import plan_changes_withdraw_open
from common import clock
from common.audit import stamp
from common.errors import BillingError
from common.formats import iso_utc
from common.outbox import outbox_emit
from common.periods import month_containing
from common.services import public_id_next

ERR_NOT_PUBLISHED = "Plan version {version} is not published yet."
ERR_PRICE_ON_REQUEST = "{plan} is priced on request: subscribe the account to a custom plan negotiated for it."
ERR_PLAN_INACTIVE = "{plan} takes no new subscriptions."
ERR_CUSTOM_OTHER_ACCOUNT = "{plan} is a custom plan of another account."
ERR_CURRENCY = "The plan is priced in {plan_currency} but the account is billed in {account_currency}."
ERR_ALREADY_SUBSCRIBED = "Account {account} already has a live subscription ({subscription})."
ERR_ALREADY_CANCELLED = "Subscription {subscription} is already cancelled."
ERR_CANCELLATION_PENDING = (
    "Subscription {subscription} is set to end on {date}: withdraw the cancellation before changing its plan."
)


def subscription_paid_period_end(subscription: Subscription, at: dt.datetime) -> dt.datetime:
    """The end of the period that is paid for at ``at``: the month (``current_period_end``, or the end of the
    month holding ``at`` if the period has not rolled yet), or for a yearly plan the subscription year (from the
    trial's end, or the start; the trial's end itself while ``at`` is still in the trial)."""
    if not is_yearly(subscription.plan_version):
        return max(subscription.current_period_end, month_containing(at).end)
    year = subscription_year(subscription, at)
    return year.end if year is not None else (subscription.trial_end or subscription.started_at)


def _plan(subscription: Subscription) -> dict[str, Any]:
    version = subscription.plan_version
    return {"code": version.plan.code, "name": version.plan.name, "version": version.version}


def _announce_cancellation(subscription: Subscription, *, event: str, actor: Any, now: dt.datetime) -> None:
    """The ``subscription`` e-mail to the billing contacts; for a cancellation at the period's end also the
    ``billing.subscription_updated`` event (an immediate one records the account's move to cancelled)."""
    account = subscription.account
    ends = subscription.cancel_at or subscription.ended_at
    assert ends is not None
    email_queue_account_notice(
        account=account,
        kind="subscription",
        context={
            "event": event,
            "subscription_id": subscription.public_id,
            "plan": subscription.plan_version.plan.name,
            "ends_at": iso_utc(ends),
            "end_date": ends.date().isoformat(),
        },
        now=now,
        dedup_key=f"subscription:{subscription.pk}:{event}:{iso_utc(now)}",
        requested_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    if event != "cancellation_scheduled":
        return
    outbox_emit(
        type="billing.subscription_updated",
        account_id=account.pk,
        dedup_key=f"cancellation:{subscription.pk}:{iso_utc(now)}",
        data={
            "account_id": account.public_id,
            "subscription_id": subscription.public_id,
            "plan": _plan(subscription),
            "status": subscription.status,
            "account_status": account.status,
            "cancel_at_period_end": subscription.cancel_at_period_end,
            "cancel_at": iso_utc(ends),
            "effective_date": iso_utc(ends),
        },
        now=now,
    )


def _withdraw_plan_changes(subscription: Subscription, *, actor: Any, now: dt.datetime) -> None:
    plan_changes_withdraw_open(
        account=subscription.account, reason="The subscription is cancelled.", actor=actor, now=now
    )


def subscription_check(*, account: Account, plan_version: PlanVersion) -> None:
    """Raise ``BillingError`` unless ``account`` may subscribe to ``plan_version`` now."""
    plan = plan_version.plan
    if not plan_version.is_published:
        raise BillingError(
            ERR_NOT_PUBLISHED.format(version=plan_version), code="plan_not_published", field="plan_version"
        )
    if plan_version.price_on_request:
        raise BillingError(ERR_PRICE_ON_REQUEST.format(plan=plan.name), code="price_on_request", field="plan_version")
    if not plan.is_active:
        raise BillingError(ERR_PLAN_INACTIVE.format(plan=plan.name), code="plan_inactive", field="plan_version")
    if plan.account_id is not None and plan.account_id != account.pk:
        raise BillingError(
            ERR_CUSTOM_OTHER_ACCOUNT.format(plan=plan.name), code="plan_not_available", field="plan_version"
        )
    if plan_version.currency != account.currency:
        raise BillingError(
            ERR_CURRENCY.format(plan_currency=plan_version.currency, account_currency=account.currency),
            code="currency_mismatch",
            field="plan_version",
        )
    live = account.subscriptions.exclude(status=Subscription.Status.CANCELLED).first()
    if live is not None:
        raise BillingError(
            ERR_ALREADY_SUBSCRIBED.format(account=account.public_id, subscription=live.public_id),
            code="already_subscribed",
            status=409,
        )


@transaction.atomic
def subscription_create(
    *,
    account: Account,
    plan_version: PlanVersion,
    started_at: dt.datetime | None = None,
    trial_days: int | None = None,
    trial_end: dt.datetime | None = None,
    set_account_status: bool = True,
    actor: Any = None,
) -> Subscription:
    """Subscribe ``account`` to ``plan_version``. The plan's trial applies unless ``trial_days`` (or an exact
    ``trial_end``) overrides it. ``set_account_status=False`` (a plan change) leaves the account's status alone."""
    # Serialise subscription changes per account; the partial unique index is the last guard.
    Account.objects.select_for_update().filter(pk=account.pk).first()
    subscription_check(account=account, plan_version=plan_version)
    now = clock.now()
    started_at = started_at or now
    if trial_end is None:
        days = plan_version.trial_days if trial_days is None else trial_days
        trial_end = started_at + dt.timedelta(days=days) if days else None
    in_trial = trial_end is not None and trial_end > now
    # A backdated subscription's current period is the month containing now.
    month = month_containing(max(started_at, now))
    subscription = Subscription(
        public_id=public_id_next(prefix="sub"),
        account=account,
        plan_version=plan_version,
        status=Subscription.Status.TRIALING if in_trial else Subscription.Status.ACTIVE,
        started_at=started_at,
        trial_end=trial_end,
        current_period_start=max(started_at, month.start),
        current_period_end=month.end,
    )
    subscription.full_clean()
    stamp(subscription, actor=actor, reason="created")
    try:
        with transaction.atomic():
            subscription.save()
    except IntegrityError:  # a concurrent subscription won the race
        raise BillingError(
            ERR_ALREADY_SUBSCRIBED.format(account=account.public_id, subscription="concurrent"),
            code="already_subscribed",
            status=409,
        ) from None
    # A plan change (or a new subscription) never lifts a collection status: a past-due or suspended account
    # stays so until what is overdue is paid (billing.services.account_status) or staff reactivate it.
    account.refresh_from_db(fields=["status"])
    if set_account_status and account.status not in (Account.Status.PAST_DUE, Account.Status.SUSPENDED):
        account_set_status(
            account=account,
            status=Account.Status.TRIALING if in_trial else Account.Status.ACTIVE,
            reason=f"subscribed to {plan_version}",
            actor=actor,
        )
    return subscription


@transaction.atomic
def subscription_cancel(
    *, subscription: Subscription, at_period_end: bool = True, at: dt.datetime | None = None, actor: Any = None
) -> Subscription:
    """Cancel at the end of the current period (default, still billed; a yearly plan's paid year) or immediately
    at ``at``. Announced to the billing contacts; a plan change waiting for the account is withdrawn."""
    if subscription.status == Subscription.Status.CANCELLED:
        raise BillingError(ERR_ALREADY_CANCELLED.format(subscription=subscription.public_id), code="already_cancelled")
    now = clock.now()
    subscription.cancelled_at = now
    _withdraw_plan_changes(subscription, actor=actor, now=now)
    if at_period_end:
        subscription.cancel_at_period_end = True
        subscription.cancel_at = subscription_paid_period_end(subscription, now)
        stamp(subscription, actor=actor, reason="cancel at period end")
        subscription.save(update_fields=["cancelled_at", "cancel_at_period_end", "cancel_at", "updated_at"])
        _announce_cancellation(subscription, event="cancellation_scheduled", actor=actor, now=now)
        return subscription
    subscription.status = Subscription.Status.CANCELLED
    subscription.ended_at = max(at or now, subscription.started_at)
    subscription.full_clean()
    stamp(subscription, actor=actor, reason="cancelled immediately")
    subscription.save(update_fields=["cancelled_at", "status", "ended_at", "updated_at"])
    account_set_status(
        account=subscription.account, status=Account.Status.CANCELLED, reason="subscription cancelled", actor=actor
    )
    _announce_cancellation(subscription, event="cancelled", actor=actor, now=now)
    return subscription


ERR_CHANGE_NOT_LIVE = "Subscription {subscription} is cancelled: subscribe the account again instead."
ERR_CHANGE_BEFORE_START = "A plan change at {at} would be before the subscription started ({started})."


@transaction.atomic
def subscription_change_plan(
    *, subscription: Subscription, plan_version: PlanVersion, at: dt.datetime, actor: Any = None
) -> Subscription:
    """Move the account to ``plan_version`` from ``at``: the old subscription ends at ``at`` and a new one starts
    there, with what is left of a running trial (no new trial). The month is rated in segments, each by the plan
    in force. The account's status does not move: an active account stays active, a trialing one trialing, a
    past-due or suspended one so (it never passes through cancelled; ``account_set_status`` is not called); a
    past-due subscription's successor is past due too. Refused while a cancellation is pending (409
    ``cancellation_pending``): the change would silently drop it. Requests, approval and the rules of who may
    change what are ``billing.services.plan_changes``'."""
    Account.objects.select_for_update().filter(pk=subscription.account_id).first()
    subscription = Subscription.objects.select_for_update().select_related("account").get(pk=subscription.pk)
    if subscription.status == Subscription.Status.CANCELLED:
        raise BillingError(
            ERR_CHANGE_NOT_LIVE.format(subscription=subscription.public_id), code="already_cancelled", status=409
        )
    if at < subscription.started_at:
        raise BillingError(
            ERR_CHANGE_BEFORE_START.format(at=at.isoformat(), started=subscription.started_at.isoformat()),
            code="invalid_change_time",
            field="at",
        )
    if subscription.cancel_at is not None:
        raise BillingError(
            ERR_CANCELLATION_PENDING.format(
                subscription=subscription.public_id, date=subscription.cancel_at.date().isoformat()
            ),
            code="cancellation_pending",
            status=409,
        )
    previous_status = subscription.status
    subscription.status, subscription.ended_at = Subscription.Status.CANCELLED, at
    subscription.full_clean()
    stamp(subscription, actor=actor, reason=f"plan changed to {plan_version}")
    subscription.save(update_fields=["status", "ended_at", "updated_at"])
    remaining_trial = subscription.trial_end if subscription.trial_end and subscription.trial_end > at else None
    new = subscription_create(
        account=subscription.account,
        plan_version=plan_version,
        started_at=at,
        trial_days=0,
        trial_end=remaining_trial,
        set_account_status=False,
        actor=actor,
    )
    if previous_status == Subscription.Status.PAST_DUE:
        new.status = Subscription.Status.PAST_DUE
        stamp(new, actor=actor, reason="past due, as the subscription it replaces")
        new.save(update_fields=["status", "updated_at"])
    return new
