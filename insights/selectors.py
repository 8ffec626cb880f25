"""Insights' reads: an account's recommendations, and the book's biggest opportunities and risks."""

from __future__ import annotations

import datetime as dt

from django.db.models import QuerySet

from accounts.models import Account
from insights.models import Recommendation

# Recommendations older than this are refreshed when a customer opens them (the nightly run keeps them fresher).
STALE_AFTER = dt.timedelta(days=1)
RISKS = (Recommendation.Kind.OUTGROW_RISK,)


def recommendations_for(*, account: Account) -> QuerySet[Recommendation]:
    """The account's recommendations of its last re-rating, the biggest saving first (risks after the advice)."""
    return (
        Recommendation.objects.filter(account=account)
        .select_related("plan_version__plan", "tenant", "partner")
        .order_by("-saving_monthly", "kind", "id")
    )


def recommendations_stale(*, account: Account, now: dt.datetime) -> bool:
    """Whether the account's recommendations need a re-rating: none yet, or older than ``STALE_AFTER``."""
    latest = (
        Recommendation.objects.filter(account=account).order_by("-computed_at").values_list("computed_at", flat=True)
    )
    computed = latest.first()
    return computed is None or computed < now - STALE_AFTER


def book_opportunities(*, risks: bool = False) -> QuerySet[Recommendation]:
    """Every account's recommendations with a saving, the biggest first (``risks``: the outgrow risks instead,
    the biggest expected extra cost first)."""
    rows = Recommendation.objects.select_related("account", "plan_version__plan")
    if risks:
        rows = rows.filter(kind__in=RISKS)
    else:
        rows = rows.exclude(kind__in=RISKS).filter(saving_monthly__gt=0)
    return rows.order_by("-saving_monthly", "account_id", "id")
