"""Step 5 of the cycle: subscriptions roll into the new month, trials end, unpaid accounts fall past due and
then suspended, and settled ones are active again (``billing.services.account_status``).

Runs after every billing run and daily (``billing.tasks.lifecycle_update_task``); every change is
audited with its reason. Idempotent: running it twice changes nothing the second time.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.utils import timezone

from accounts.models import Account
from accounts.services import account_set_status
from billing.models import Subscription
from billing.services.account_status import account_statuses_update
from billing.services.contracts import contracts_renew_due
from billing.services.plan_changes import plan_changes_apply_due
from billing.services.trials import (
    REASON_INVOICE,
    WITHOUT_PAYMENT_METHOD_CANCEL,
    WITHOUT_PAYMENT_METHOD_INVOICE,
    trial_end_cancel,
    trial_end_rule,
    trials_notify_due,
)
from common import clock
from common.audit import stamp
from common.bulk import bulk_update_fields
from common.periods import Period, month_containing

logger = logging.getLogger(__name__)
LIVE = [Subscription.Status.TRIALING, Subscription.Status.ACTIVE, Subscription.Status.PAST_DUE]
ROLL_BATCH = 2000


def _save_rolled(subscriptions: list[Subscription]) -> None:
    """What ``save(update_fields=[period, updated_at])`` does for each: the row, then its history row."""
    if not subscriptions:
        return
    bulk_update_fields(subscriptions, ["current_period_start", "current_period_end", "updated_at"])
    Subscription.history.bulk_history_create(subscriptions, update=True)


@transaction.atomic
def lifecycle_update(*, period: Period | None = None, now: dt.datetime | None = None) -> dict[str, int]:
    """Apply what the time ``now`` implies. Returns how many of each change were made."""
    now = now or clock.now()
    changes = {"cancelled": 0, "rolled": 0, "trials_ended": 0}
    current = month_containing(now)

    # Approved plan changes whose moment has come: the new plan is in force from its effective moment.
    changes["plan_changes_applied"] = plan_changes_apply_due(now=now)
    # Contract terms: renewal notices, renewals, terms that end the subscription.
    changes.update(contracts_renew_due(now=now))

    # Cancellations requested for the period's (or the paid year's, or the term's) end take effect; what came
    # before was billed in full.
    for sub in (
        Subscription.objects.select_for_update().filter(status__in=LIVE, cancel_at__lte=now).select_related("account")
    ):
        sub.status, sub.ended_at = Subscription.Status.CANCELLED, sub.cancel_at
        stamp(sub, reason="cancelled at period end", at=now)
        sub.save(update_fields=["status", "ended_at", "updated_at"])
        account_set_status(account=sub.account, status=Account.Status.CANCELLED, reason="subscription ended")
        changes["cancelled"] += 1

    # Live subscriptions move into the month containing now: every live subscription at each month's
    # start, so they are written in batches (one update and one insert of history rows each), as
    # ``save()`` would have written them one by one.
    batch: list[Subscription] = []
    for sub in (
        Subscription.objects.select_for_update()
        .filter(status__in=LIVE, current_period_end__lte=now)
        .iterator(chunk_size=ROLL_BATCH)
    ):
        sub.current_period_start, sub.current_period_end = max(current.start, sub.started_at), current.end
        # ``updated_at`` is ``auto_now``: the wall-clock time of the write, as ``save()`` would set it, not
        # the billing clock (that time goes on the history row through ``stamp``).
        sub.updated_at = timezone.now()
        stamp(sub, reason=f"period {current.label}", at=now)
        batch.append(sub)
        if len(batch) == ROLL_BATCH:
            _save_rolled(batch)
            changes["rolled"] += len(batch)
            batch = []
    _save_rolled(batch)
    changes["rolled"] += len(batch)

    # Trials that ended: the subscription and its account become active. With Stripe configured and no payment
    # method on file, SUBSCRIPTIONS_TRIAL_END_WITHOUT_PAYMENT_METHOD decides: "invoice" goes on (invoices are paid
    # by bank transfer until a card is added), "cancel" ends the subscription with its trial.
    ended = list(
        Subscription.objects.select_for_update(of=("self", "account"))
        .filter(status=Subscription.Status.TRIALING, trial_end__lte=now)
        .select_related("account", "plan_version__plan")
    )
    without_method = trial_end_rule([sub.account for sub in ended])
    changes["trials_cancelled"] = 0
    for sub in ended:
        rule = without_method.get(sub.account_id)
        if rule == WITHOUT_PAYMENT_METHOD_CANCEL:
            trial_end_cancel(subscription=sub, now=now)
            changes["trials_cancelled"] += 1
            continue
        sub.status = Subscription.Status.ACTIVE
        stamp(sub, reason=REASON_INVOICE if rule == WITHOUT_PAYMENT_METHOD_INVOICE else "trial ended", at=now)
        sub.save(update_fields=["status", "updated_at"])
        if sub.account.status == Account.Status.TRIALING:
            account_set_status(account=sub.account, status=Account.Status.ACTIVE, reason="trial ended")
        changes["trials_ended"] += 1

    # Trials ending soon: the customer is told what will be charged.
    changes["trial_notices"] = trials_notify_due(now=now)

    # Unpaid past the due date: past due; long overdue or out of retries: suspended; settled again: active.
    changes.update(account_statuses_update(now=now))
    if any(changes.values()):
        logger.info("Lifecycle at %s: %s", now.isoformat(), changes)
    return changes
