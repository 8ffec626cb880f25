"""Writes of forecasts: the running month's forecast recorded once a day per account, and the actual bill filled in
once the month is invoiced (``insights.forecast`` computes; this module only keeps the figures).

Invariants:
- one ``Forecast`` per account, month and day (``made_on``, UTC), made from the usage until that day's start, so
  recording the same day again finds the same figures and writes nothing;
- ``actual`` is the subtotal (before tax, as the forecast) of the month's issued invoice (finalized, paid or
  uncollectible; never a draft or a void one), filled once: a credit note issued later does not change it.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.db.models import Q

from accounts.models import Account
from billing.models import Invoice, Subscription
from common.periods import month_containing
from insights.forecast import ISSUED, month_forecast
from insights.models import Forecast

logger = logging.getLogger(__name__)


def day_start(now: dt.datetime) -> dt.datetime:
    """The start (UTC) of the day ``now`` falls in."""
    return dt.datetime.combine(now.astimezone(dt.UTC).date(), dt.time(), tzinfo=dt.UTC)


@transaction.atomic
def forecast_record(*, account: Account, now: dt.datetime) -> Forecast:
    """Today's forecast of the running month for ``account``: made from the usage until today's start (UTC), kept
    once (a second call the same day returns the row already written)."""
    made_at = day_start(now)
    existing = Forecast.objects.filter(account=account, made_on=made_at.date()).first()
    if existing is not None:
        return existing
    forecast = month_forecast(account=account, now=made_at)
    charges = forecast.charges
    row = Forecast(
        account=account,
        month=forecast.period.start.date(),
        made_on=made_at.date(),
        currency=charges.currency,
        expected=charges.expected,
        low=charges.low,
        high=charges.high,
        made_at=now,
    )
    row.full_clean()
    row.save()
    return row


def forecast_accounts(*, now: dt.datetime) -> list[Account]:
    """The accounts with a subscription in force at some moment of the running month (those a forecast is for)."""
    period = month_containing(now)
    subscribed = Subscription.objects.filter(started_at__lt=period.end).filter(
        Q(ended_at__isnull=True) | Q(ended_at__gt=period.start)
    )
    return list(Account.objects.filter(pk__in=subscribed.values("account_id")).order_by("pk"))


def forecasts_record_book(*, now: dt.datetime) -> int:
    """Record today's forecast for every subscribed account (each in its own transaction; one that fails is logged
    and the others recorded). Returns the number of accounts with today's forecast."""
    recorded = 0
    for account in forecast_accounts(now=now):
        try:
            forecast_record(account=account, now=now)
        except Exception:  # one account's bad data must not stop the book's forecasts
            logger.exception("Forecast of account %s failed", account.pk)
            continue
        recorded += 1
    return recorded


@transaction.atomic
def forecast_actuals_fill(*, now: dt.datetime) -> int:
    """Fill ``actual`` of the forecasts of every month before the running one whose invoice has been issued by
    ``now``, with the invoice's subtotal before tax. Returns the number of forecasts filled."""
    pending = (
        Forecast.objects.filter(actual__isnull=True, month__lt=month_containing(now).start.date())
        .values_list("account_id", "month")
        .distinct()
    )
    filled = 0
    for account_id, month in pending:
        start = dt.datetime.combine(month, dt.time(), tzinfo=dt.UTC)
        invoice = (
            Invoice.objects.filter(account_id=account_id, period_start=start, status__in=ISSUED, finalized_at__lte=now)
            .order_by("-finalized_at")
            .first()
        )
        if invoice is None:
            continue
        filled += Forecast.objects.filter(account_id=account_id, month=month, actual__isnull=True).update(
            actual=invoice.subtotal
        )
    return filled
