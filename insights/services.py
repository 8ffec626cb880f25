"""Insights' writes: re-rating accounts and replacing their recommendations.

``recommendations_refresh`` re-rates one account's last closed months (``insights.rerate``), builds its advice
(``insights.recommendations``) and replaces the account's ``Recommendation`` rows in one transaction.
``recommendations_refresh_accounts`` does the same for a chunk of accounts (a fixed number of queries per chunk,
one transaction per chunk); the nightly task fans the chunks of ``recommendations_book_chunks`` out as tasks, and
``recommendations_refresh_book`` runs them one after another in this process (the demo). ``recommendations_rerate``
is staff's "re-rate now" from the admin: the same for one account, recorded in the account's history.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from django.db import transaction

from accounts.models import Account
from billing.models import Subscription
from common import clock
from common.errors import BillingError
from common.periods import Period, month_containing, previous_month
from insights.models import Recommendation
from insights.recommendations import MAX_MONTHS, Advice, advice_for, advice_inputs_many
from insights.rerate import rerate_many

CHUNK = 200
# Re-rating changes nothing the customer owes, and a customer's own visit re-rates stale recommendations too, so
# whoever may read the recommendations may re-rate them (billing staff and finance admins).
PERM_RERATE = "insights.view_recommendation"
ERR_RERATE_DENIED = "You do not have permission to re-rate accounts."


def closed_months(*, now: dt.datetime, months: int = MAX_MONTHS) -> list[Period]:
    """The last ``months`` closed calendar months before ``now``, oldest first."""
    periods: list[Period] = []
    month = previous_month(month_containing(now))
    while len(periods) < months:
        periods.append(month)
        month = previous_month(month)
    return list(reversed(periods))


def _rows(
    account: Account, advice: Sequence[Advice], periods: Sequence[Period], now: dt.datetime
) -> list[Recommendation]:
    start, end = periods[0].start.date(), periods[-1].end.date()
    return [
        Recommendation(
            account=account,
            kind=a.kind,
            title=a.title[:200],
            evidence=a.evidence,
            details=a.details,
            plan_version=a.plan_version,
            tenant=a.tenant,
            partner=a.partner,
            currency=account.currency,
            current_monthly=a.current_monthly,
            proposed_monthly=a.proposed_monthly,
            saving_monthly=a.saving_monthly,
            saving_percent=a.saving_percent,
            months_start=start,
            months_end=end,
            computed_at=now,
        )
        for a in advice
    ]


def _refresh_chunk(accounts: Sequence[Account], *, now: dt.datetime, months: int) -> int:
    """Re-rate ``accounts`` and replace their recommendations (one transaction). Returns the rows written."""
    inputs = advice_inputs_many(accounts=accounts, now=now)
    periods = closed_months(now=now, months=months)
    live = [a for a in accounts if a.pk in inputs]
    versions = {a.pk: [inputs[a.pk].version, *inputs[a.pk].options] for a in live}
    rerated = rerate_many(
        accounts=live,
        periods=periods,
        versions=versions,
        now=now,
        since={a.pk: inputs[a.pk].first_started for a in live},
    )
    rows: list[Recommendation] = []
    for account in live:
        entry = rerated[account.pk]
        if not entry.periods:
            continue
        advice = advice_for(rerate=entry, inputs=inputs[account.pk], now=now)
        rows.extend(_rows(account, advice, entry.periods, now))
    with transaction.atomic():
        # Two re-ratings of an account at once (a customer's visit and the nightly run) take turns here, so the
        # second one's delete sees the first one's rows: never two sets of recommendations.
        list(Account.objects.select_for_update().filter(pk__in=[a.pk for a in accounts]).values_list("pk"))
        Recommendation.objects.filter(account__in=[a.pk for a in accounts]).delete()
        Recommendation.objects.bulk_create(rows, batch_size=500)
    return len(rows)


def recommendations_refresh(*, account: Account, now: dt.datetime | None = None, months: int = MAX_MONTHS) -> int:
    """Re-rate ``account``'s last ``months`` closed months (back to the month it was first subscribed in, none
    before its first usage or invoice) and replace its recommendations with the advice they give, in one
    transaction. An account without a live subscription keeps none. Returns the number of recommendations
    written."""
    return _refresh_chunk([account], now=now or clock.now(), months=months)


def recommendations_book_chunks(*, chunk: int = CHUNK) -> list[list[int]]:
    """The ids of the accounts with a live subscription, ``chunk`` at a time (the nightly run's fan-out)."""
    ids = list(
        Subscription.objects.exclude(status=Subscription.Status.CANCELLED)
        .order_by("account_id")
        .values_list("account_id", flat=True)
        .distinct()
    )
    return [ids[lo : lo + chunk] for lo in range(0, len(ids), chunk)]


def recommendations_refresh_accounts(*, account_ids: Sequence[int], now: dt.datetime, months: int = MAX_MONTHS) -> int:
    """``recommendations_refresh`` for one chunk of accounts at once (one transaction; a fixed number of queries
    per month whatever the chunk's size). Returns the number of recommendations written."""
    accounts = list(Account.objects.filter(pk__in=list(account_ids)).order_by("pk"))
    return _refresh_chunk(accounts, now=now, months=months)


def recommendations_prune() -> int:
    """Remove the recommendations of accounts without a live subscription. Returns the number removed."""
    live = Subscription.objects.exclude(status=Subscription.Status.CANCELLED).values("account_id")
    removed, _ = Recommendation.objects.exclude(account__in=live).delete()
    return removed


def recommendations_refresh_book(*, now: dt.datetime | None = None, chunk: int = CHUNK) -> int:
    """``recommendations_refresh`` for every account with a live subscription, ``chunk`` accounts at a time (each
    chunk its own transaction), in this process; the nightly task runs the same chunks as parallel tasks.
    Recommendations of accounts without a live subscription are removed. Returns the number written."""
    now = now or clock.now()
    recommendations_prune()
    return sum(
        recommendations_refresh_accounts(account_ids=ids, now=now) for ids in recommendations_book_chunks(chunk=chunk)
    )


@transaction.atomic
def recommendations_rerate(*, account: Account, actor: Any = None, now: dt.datetime | None = None) -> int:
    """Staff's "re-rate now": ``recommendations_refresh`` for ``account`` at once, and an entry in the account's
    history saying who re-rated it, when (the billing clock's now) and how many recommendations it has since, in
    the same transaction. ``actor`` must hold ``PERM_RERATE``; ``None`` is the system itself (not checked).
    Returns the number of recommendations written."""
    if actor is not None and not (getattr(actor, "is_authenticated", False) and actor.has_perm(PERM_RERATE)):
        raise BillingError(ERR_RERATE_DENIED, code="permission_denied", status=403)
    now = now or clock.now()
    written = recommendations_refresh(account=account, now=now)
    # The history row holds the account as it is now (read afresh), so it shows no change of its fields.
    current = Account.objects.get(pk=account.pk)
    Account.history.bulk_history_create(
        [current],
        update=True,
        default_user=actor if getattr(actor, "is_authenticated", False) else None,
        default_change_reason=f"recommendations re-rated: {written} written",
        default_date=now,
    )
    return written
