"""Trials: extended by staff, announced to the customer before they end, and what happens when one ends without
a payment method.

Rules (docs/billing.md, "Trials"):
- Billing staff may extend a running trial (``trial_extend``), with a reason, to at most 365 days after the
  subscription started; audited, with a ``billing.subscription_updated`` carrying the new ``trial_end``.
- ``SUBSCRIPTIONS_TRIAL_NOTICE_DAYS`` before a trial ends the billing contacts get the "trial ending" e-mail once per
  subscription and trial end (an extended trial is announced again): the end, the plan, its base fee, what it
  includes and what usage beyond costs, and — when Stripe is configured and the account has no payment method —
  a link to add a card; and the rating engine's estimate of the first full month after the trial, with the
  account's tenants and stored data as they are now and no usage yet.
- A trial that ends while Stripe is configured and the account has no payment method follows
  ``SUBSCRIPTIONS_TRIAL_END_WITHOUT_PAYMENT_METHOD`` (``trial_end_without_payment_method``): ``invoice`` (the
  subscription goes on; invoices are paid by bank transfer until a card is added) or ``cancel`` (it ends with
  the trial). The lifecycle step applies it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction

from accounts.models import Account
from accounts.services import account_set_status
from billing.models import EmailDelivery, PaymentProfile, PlanCharge, PlanVersion, Subscription
from billing.rating.engine import Estimate, charges_many
from billing.services.emails.queueing import email_queue_account_notice
from billing.services.plan_changes import plan_changes_withdraw_open, plan_json
from billing.services.stripe_gateway import stripe_enabled
from common import clock
from common.audit import stamp
from common.errors import BillingError
from common.formats import iso_utc, money_string
from common.money import format_money, format_quantity
from common.outbox import outbox_emit
from common.periods import Period, month_containing, next_month
from usage.models import Metric

ZERO = Decimal(0)
MAX_TRIAL = dt.timedelta(days=365)
WITHOUT_PAYMENT_METHOD_INVOICE = "invoice"
WITHOUT_PAYMENT_METHOD_CANCEL = "cancel"

ERR_NOT_TRIALING = "Subscription {subscription} is {status}, not in a trial: only a running trial can be extended."
ERR_NOT_LATER = "The trial ends at {current} already: choose a later end to extend it."
ERR_TOO_LONG = (
    "A trial may last at most 365 days from the subscription's start, so it may end at {latest} at the latest."
)
ERR_REASON = "Say why the trial is extended: the reason is kept with the change."
ERR_SETTING = "SUBSCRIPTIONS_TRIAL_END_WITHOUT_PAYMENT_METHOD must be “invoice” or “cancel”, not {value!r}."

REASON_INVOICE = "trial ended; no payment method: invoices are paid by bank transfer until a card is added"
REASON_CANCEL = "trial ended without a payment method"
MESSAGE_CANCELLED = (
    "The free trial ended with no payment method on file, so the subscription ended with it; nothing after the "
    "trial is billed. To carry on, get in touch with us: a new subscription can start once a card is on file."
)


def _user(actor: Any) -> Any:
    return actor if getattr(actor, "is_authenticated", False) else None


def _moment(moment: dt.datetime) -> str:
    """``10 November 2026, 12:00 UTC``."""
    utc = moment.astimezone(dt.UTC)
    return f"{utc.day} {utc:%B %Y}, {utc:%H:%M} UTC"


@transaction.atomic
def trial_extend(
    *, subscription: Subscription, until: dt.datetime, actor: Any, reason: str, now: dt.datetime | None = None
) -> Subscription:
    """Move the end of a running trial to ``until`` (later than now's end, at most 365 days after the start).
    Audited with ``reason``; one ``billing.subscription_updated`` per extension."""
    now = now or clock.now()
    reason = (reason or "").strip()
    if not reason:
        raise BillingError(ERR_REASON, code="reason_required", field="reason")
    subscription = (
        Subscription.objects.select_for_update(of=("self",))
        .select_related("account", "plan_version__plan")
        .get(pk=subscription.pk)
    )
    trial_end = subscription.trial_end
    if subscription.status != Subscription.Status.TRIALING or trial_end is None or trial_end <= now:
        status = subscription.get_status_display().lower()
        raise BillingError(
            ERR_NOT_TRIALING.format(subscription=subscription.public_id, status=status),
            code="not_trialing",
            status=409,
        )
    if until <= trial_end:
        raise BillingError(ERR_NOT_LATER.format(current=_moment(trial_end)), code="invalid_trial_end", field="until")
    latest = subscription.started_at + MAX_TRIAL
    if until > latest:
        raise BillingError(ERR_TOO_LONG.format(latest=_moment(latest)), code="invalid_trial_end", field="until")
    subscription.trial_end = until
    stamp(subscription, actor=_user(actor), reason=f"trial extended to {iso_utc(until)}: {reason}"[:500], at=now)
    subscription.save(update_fields=["trial_end", "updated_at"])
    row = subscription.history.order_by("-history_id").first()
    outbox_emit(
        type="billing.subscription_updated",
        account_id=subscription.account_id,
        dedup_key=f"trial_extend:{row.history_id if row else subscription.pk}",
        data={
            "account_id": subscription.account.public_id,
            "subscription_id": subscription.public_id,
            "plan": plan_json(subscription.plan_version),
            "status": subscription.status,
            "trial_end": iso_utc(until),
            "previous_trial_end": iso_utc(trial_end),
            "effective_date": iso_utc(now),
            "cancel_at_period_end": subscription.cancel_at_period_end,
            "reason": reason[:500],
        },
        now=now,
    )
    return subscription


# What the trial-ending e-mail says -------------------------------------------------------------------------


def base_fee_text(version: PlanVersion) -> str:
    """``USD 99.00 a month``; a yearly plan: ``USD 2,691.00 a year (USD 2,990.00 less the 10% annual discount)``."""
    currency = version.currency
    fee = version.base_fee or ZERO
    if version.billing_interval != PlanVersion.Interval.YEAR:
        return f"{format_money(fee, currency)} a month"
    discount = version.annual_discount_percent or ZERO
    if not discount:
        return f"{format_money(fee, currency)} a year"
    net = fee * (100 - discount) / 100
    return (
        f"{format_money(net, currency)} a year ({format_money(fee, currency)} less the "
        f"{discount.normalize():f}% annual discount)"
    )


def _amount_of(charge: PlanCharge, quantity: Decimal) -> str:
    """``5,000 messages``, ``1 GB-month of storage``: a quantity of the charge's metric."""
    metric = charge.metric
    name = metric.name.lower()
    if metric.billing_unit == Metric.BillingUnit.PER_GB_MONTH:
        return f"{format_quantity(quantity)} GB-month{'' if quantity == 1 else 's'} of {name}"
    return f"{format_quantity(quantity)} {name}"


def _rate_of(charge: PlanCharge, currency: str) -> str:
    """What a unit beyond the included quantity costs: ``USD 0.05 each``, ``USD 0.05 per 1,000``."""
    metric = charge.metric
    unit = "each" if metric.billing_unit == Metric.BillingUnit.PER_UNIT else metric.get_billing_unit_display()
    model = charge.pricing_model
    if model == PlanCharge.PricingModel.PER_UNIT:
        return f"{format_money(charge.unit_price or ZERO, currency, unit_price=True)} {unit}"
    if model == PlanCharge.PricingModel.PACKAGE:
        return (
            f"{format_money(charge.package_price or ZERO, currency)} per started block of "
            f"{format_quantity(charge.package_size or ZERO)}"
        )
    tiers = list(charge.tiers.all())
    if not tiers:
        return ""
    lowest = min(tier.unit_price for tier in tiers)
    return f"from {format_money(lowest, currency, unit_price=True)} {unit}, in tiers"


def _series(items: Iterable[str]) -> str:
    items = [item for item in items if item]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def charges_sentence(version: PlanVersion) -> str:
    """The plan's included quantities and overage rates in one sentence, e.g. "Each month includes 3 active
    tenants, up to 10 master partners, 5,000 messages and 1 GB-month of storage; beyond that, active tenants cost
    USD 29.00 per tenant-month, messages USD 0.05 each and storage USD 2.00 per GB-month."."""
    currency = version.currency
    included: list[str] = []
    beyond: list[str] = []
    for charge in sorted(version.charges.all(), key=lambda c: c.pk):
        name = charge.metric.name.lower()
        if charge.included_quantity is None:
            unlimited = charge.pricing_model == PlanCharge.PricingModel.INCLUDED_ONLY and charge.limit is not None
            included.append(f"up to {_amount_of(charge, charge.limit)}" if unlimited else f"unlimited {name}")
            continue
        if charge.included_quantity > 0:
            included.append(_amount_of(charge, charge.included_quantity))
        if charge.pricing_model != PlanCharge.PricingModel.INCLUDED_ONLY and (rate := _rate_of(charge, currency)):
            beyond.append(f"{name} {'cost ' if not beyond else ''}{rate}")
    sentence = f"Each month includes {_series(included)}" if included else "Nothing is included"
    if beyond:
        sentence += f"; beyond that, {_series(beyond)}"
    return sentence + "."


def first_full_month(trial_end: dt.datetime) -> Period:
    """The first calendar month wholly after the trial: the month of ``trial_end`` if the trial ends as it
    begins, else the next one."""
    month = month_containing(trial_end)
    return month if month.start == trial_end else next_month(month)


def _month_name(period: Period) -> str:
    return f"{period.start:%B %Y}"


def first_month_estimates(subscriptions: list[Subscription]) -> dict[int, Estimate]:
    """Subscription pk → the rating engine's figures for its first full month after the trial, as if that month
    closed with no more usage than now: the base fee (a yearly plan's year, less its annual discount), the
    tenants and partners live now, stored data held at its present level. One ``charges_many`` per month."""
    by_month: dict[Period, list[Subscription]] = {}
    for sub in subscriptions:
        assert sub.trial_end is not None
        by_month.setdefault(first_full_month(sub.trial_end), []).append(sub)
    estimates: dict[int, Estimate] = {}
    for month, subs in by_month.items():
        rated = charges_many(accounts=[sub.account for sub in subs], period=month, now=month.end)
        estimates.update({sub.pk: rated[sub.account_id] for sub in subs})
    return estimates


def trial_ending_context(
    subscription: Subscription, *, card_needed: bool, estimate: Estimate | None = None
) -> dict[str, Any]:
    """What the "trial ending" e-mail says (JSON values, kept on the delivery)."""
    version = subscription.plan_version
    assert subscription.trial_end is not None
    estimate_text = ""
    if estimate is not None:
        estimate_text = (
            f"{format_money(estimate.subtotal, estimate.currency)} for {_month_name(estimate.period)}, the first "
            f"full month, before tax and before usage beyond what is included (with the account's tenants and "
            f"stored data as they are now)"
        )
    return {
        "subscription_id": subscription.public_id,
        "plan_name": version.plan.name,
        "trial_end": iso_utc(subscription.trial_end),
        "trial_end_text": _moment(subscription.trial_end),
        "interval": version.billing_interval,
        "base_fee_text": base_fee_text(version),
        "charges_text": charges_sentence(version),
        "currency": version.currency,
        "first_month": _month_name(first_full_month(subscription.trial_end)),
        "first_month_estimate": money_string(estimate.subtotal, estimate.currency) if estimate is not None else None,
        "estimate_text": estimate_text,
        "card_needed": card_needed,
    }


def _accounts_with_payment_method(account_ids: Iterable[int]) -> set[int]:
    return set(
        PaymentProfile.objects.filter(account_id__in=list(account_ids))
        .exclude(payment_method_id="")
        .values_list("account_id", flat=True)
    )


def trials_notify_due(*, now: dt.datetime) -> int:
    """Queue the "trial ends soon" e-mail of every trial ending within the notice window. Returns how many."""
    days = int(settings.SUBSCRIPTIONS_TRIAL_NOTICE_DAYS)
    if days <= 0:
        return 0
    subscriptions = list(
        Subscription.objects.filter(
            status=Subscription.Status.TRIALING, trial_end__gt=now, trial_end__lte=now + dt.timedelta(days=days)
        )
        .select_related("account", "plan_version__plan")
        .prefetch_related("plan_version__charges__metric", "plan_version__charges__tiers")
        .order_by("trial_end", "pk")
    )
    if not subscriptions:
        return 0
    keys = {sub.pk: f"trial_ending:{sub.pk}:{iso_utc(sub.trial_end)}" for sub in subscriptions if sub.trial_end}
    sent_already = set(EmailDelivery.objects.filter(dedup_key__in=keys.values()).values_list("dedup_key", flat=True))
    due = [sub for sub in subscriptions if keys[sub.pk] not in sent_already]
    stripe = stripe_enabled()
    with_method = _accounts_with_payment_method(sub.account_id for sub in due) if stripe else set()
    estimates = first_month_estimates([sub for sub in due if sub.account.billing_emails])
    queued = 0
    for sub in due:
        card_needed = stripe and sub.account_id not in with_method
        if email_queue_account_notice(
            account=sub.account,
            kind="trial_ending",
            context=trial_ending_context(sub, card_needed=card_needed, estimate=estimates.get(sub.pk)),
            now=now,
            dedup_key=keys[sub.pk],
        ):
            queued += 1
    return queued


# A trial that ends without a payment method ---------------------------------------------------------------


def trial_end_rule(accounts: Iterable[Account]) -> dict[int, str]:
    """For the accounts whose trial ends now: the rule for each one that has no payment method while Stripe is
    configured (``invoice`` or ``cancel``); accounts that have one (or when Stripe is not configured) are left
    out: their trial simply ends."""
    if not stripe_enabled():
        return {}
    rule = settings.SUBSCRIPTIONS_TRIAL_END_WITHOUT_PAYMENT_METHOD
    if rule not in (WITHOUT_PAYMENT_METHOD_INVOICE, WITHOUT_PAYMENT_METHOD_CANCEL):
        raise BillingError(ERR_SETTING.format(value=rule), code="invalid_setting")
    ids = {account.pk for account in accounts}
    return dict.fromkeys(ids - _accounts_with_payment_method(ids), rule)


def trial_end_cancel(*, subscription: Subscription, now: dt.datetime) -> Subscription:
    """The ``cancel`` rule: a trial ended with no payment method, so the subscription ends at ``trial_end`` (nothing
    after the trial is billed) and the account is cancelled; as ``subscription_cancel`` does, a waiting plan change
    is withdrawn and the billing contacts get the ``subscription`` e-mail. One ``billing.subscription_updated``.
    (``subscription_cancel`` itself would date the change by the clock and give it its own reason.)"""
    assert subscription.trial_end is not None
    subscription.status, subscription.ended_at = Subscription.Status.CANCELLED, subscription.trial_end
    subscription.cancelled_at = now
    stamp(subscription, reason=REASON_CANCEL, at=now)
    subscription.save(update_fields=["status", "ended_at", "cancelled_at", "updated_at"])
    account_set_status(account=subscription.account, status=Account.Status.CANCELLED, reason=REASON_CANCEL)
    plan_changes_withdraw_open(account=subscription.account, reason="The subscription is cancelled.", now=now)
    email_queue_account_notice(
        account=subscription.account,
        kind="subscription",
        context={
            "event": "cancelled",
            "subscription_id": subscription.public_id,
            "plan": subscription.plan_version.plan.name,
            "ends_at": iso_utc(subscription.trial_end),
            "end_date": subscription.trial_end.date().isoformat(),
            "message": MESSAGE_CANCELLED,
        },
        now=now,
        dedup_key=f"subscription:{subscription.pk}:trial_end_cancel",
    )
    outbox_emit(
        type="billing.subscription_updated",
        account_id=subscription.account_id,
        dedup_key=f"trial_end_cancel:{subscription.pk}",
        data={
            "account_id": subscription.account.public_id,
            "subscription_id": subscription.public_id,
            "plan": plan_json(subscription.plan_version),
            "status": subscription.status,
            "trial_end": iso_utc(subscription.trial_end),
            "effective_date": iso_utc(subscription.trial_end),
            "cancel_at_period_end": False,
            "reason": REASON_CANCEL,
        },
        now=now,
    )
    return subscription
