"""Writes for subscriptions.

Periods are calendar months in UTC, half-open. The first period runs from the start of the
subscription to the first of the next month (the base fee of a partial month is prorated when it is
rated); every later period is a whole month. A subscription started in the past (migrated from
another system) begins in the month containing now.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import IntegrityError, transaction

from accounts.models import Account
from accounts.services import account_set_status
from billing.models import PlanVersion, Subscription
from common import clock
from common.audit import stamp
from common.errors import BillingError
from common.periods import month_containing
from common.services import public_id_next

ERR_NOT_PUBLISHED = "Plan version {version} is not published yet."
ERR_PRICE_ON_REQUEST = "{plan} is priced on request: subscribe the account to a custom plan negotiated for it."
ERR_PLAN_INACTIVE = "{plan} takes no new subscriptions."
ERR_CUSTOM_OTHER_ACCOUNT = "{plan} is a custom plan of another account."
ERR_CURRENCY = "The plan is priced in {plan_currency} but the account is billed in {account_currency}."
ERR_ALREADY_SUBSCRIBED = "Account {account} already has a live subscription ({subscription})."
ERR_ALREADY_CANCELLED = "Subscription {subscription} is already cancelled."


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
    """Cancel at the end of the current period (default, still billed) or immediately at ``at``."""
    if subscription.status == Subscription.Status.CANCELLED:
        raise BillingError(ERR_ALREADY_CANCELLED.format(subscription=subscription.public_id), code="already_cancelled")
    now = clock.now()
    subscription.cancelled_at = now
    if at_period_end:
        subscription.cancel_at_period_end = True
        subscription.cancel_at = subscription.current_period_end
        stamp(subscription, actor=actor, reason="cancel at period end")
        subscription.save(update_fields=["cancelled_at", "cancel_at_period_end", "cancel_at", "updated_at"])
        return subscription
    subscription.status = Subscription.Status.CANCELLED
    subscription.ended_at = max(at or now, subscription.started_at)
    subscription.full_clean()
    stamp(subscription, actor=actor, reason="cancelled immediately")
    subscription.save(update_fields=["cancelled_at", "status", "ended_at", "updated_at"])
    account_set_status(
        account=subscription.account, status=Account.Status.CANCELLED, reason="subscription cancelled", actor=actor
    )
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
    past-due or suspended one so (it never passes through cancelled). Requests, approval and the rules of who
    may change what are ``billing.services.plan_changes``'."""
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
    subscription.status, subscription.ended_at = Subscription.Status.CANCELLED, at
    subscription.full_clean()
    stamp(subscription, actor=actor, reason=f"plan changed to {plan_version}")
    subscription.save(update_fields=["status", "ended_at", "updated_at"])
    remaining_trial = subscription.trial_end if subscription.trial_end and subscription.trial_end > at else None
    return subscription_create(
        account=subscription.account,
        plan_version=plan_version,
        started_at=at,
        trial_days=0,
        trial_end=remaining_trial,
        set_account_status=False,
        actor=actor,
    )
