"""The hourly usage report (``billing.usage_reported``): for systems that want usage pushed to them rather than
polling ``GET /v1/billing/usage/current``, one event per account per hour with the last full hour's usage per
metric and the running month's charges so far.

Opt-in: only accounts with an enabled endpoint that names ``billing.usage_reported`` in its event types get the
report (an endpoint that takes every event type does not receive it, see ``event_types.OPT_IN``), so an account
that never asked for it costs nothing. Each report is exactly-once per account and hour (its ``dedup_key``), so a
re-run of the hour, or two schedulers, record it once.

The hour's usage is read from the hourly rollups, which are written in the transaction that stores the events:
events with a timestamp in the hour, as far as they had arrived when the report ran (an event that arrives later
is in the month's charges of the next reports, and on the invoice, but in no hour's report). ``quantity`` is the
sum of the quantities the events reported; for a gauge (storage) that is a sum of readings, not GB-hours, which is
why ``event_count`` is beside it.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal

from django.db.models import Sum

from accounts.models import Account
from billing.rating.engine import charges_many
from common.formats import decimal_string, iso_utc, money_string
from common.outbox import outbox_emit
from common.periods import month_containing
from usage.models import Metric, UsageRollup
from webhooks.models import WebhookEndpoint

USAGE_REPORTED = "billing.usage_reported"
HOUR = dt.timedelta(hours=1)


def last_full_hour(now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """``[start, end)`` of the last hour that has ended at ``now`` (UTC)."""
    end = now.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    return end - HOUR, end


def usage_report_accounts() -> list[int]:
    """Ids of the accounts with an enabled endpoint that asked for the hourly report. The endpoints are few, so
    their event types are read here rather than with a JSON lookup (which SQLite lacks)."""
    rows = WebhookEndpoint.objects.filter(enabled=True).values_list("account_id", "event_types")
    return sorted({account_id for account_id, types in rows if USAGE_REPORTED in (types or [])})


def _hour_usage(account_ids: list[int], start: dt.datetime, end: dt.datetime) -> dict[int, list[dict]]:
    metrics = {m.pk: m for m in Metric.objects.all()}
    rows = (
        UsageRollup.objects.filter(account_id__in=account_ids, hour__gte=start, hour__lt=end)
        .values("account_id", "metric_id")
        .annotate(quantity=Sum("quantity_sum"), events=Sum("event_count"))
        .order_by()
    )
    usage: dict[int, list[dict]] = defaultdict(list)
    for row in rows:
        metric = metrics[row["metric_id"]]
        usage[row["account_id"]].append(
            {
                "metric": metric.code,
                "name": metric.name,
                "unit": metric.unit,
                "quantity": decimal_string(row["quantity"] or Decimal(0)),
                "event_count": int(row["events"] or 0),
            }
        )
    for entries in usage.values():
        entries.sort(key=lambda entry: entry["metric"])
    return usage


def usage_reports_emit(*, now: dt.datetime, account_ids: list[int] | None = None) -> int:
    """Record the report of the last full hour for every account that asked for it (or those of
    ``account_ids``); returns how many were recorded now (a report recorded before is not repeated)."""
    start, end = last_full_hour(now)
    ids = usage_report_accounts() if account_ids is None else sorted(account_ids)
    if not ids:
        return 0
    period = month_containing(start)
    accounts = list(Account.objects.filter(pk__in=ids))
    estimates = charges_many(accounts=accounts, period=period, now=min(now, period.end))
    usage = _hour_usage(ids, start, end)
    recorded = 0
    for account in accounts:
        estimate = estimates[account.pk]
        data = {
            "account_id": account.public_id,
            "hour": {"start": iso_utc(start), "end": iso_utc(end)},
            "usage": usage.get(account.pk, []),
            "month": {
                "start": iso_utc(period.start),
                "end": iso_utc(period.end),
                "currency": estimate.currency,
                "charges_to_date": money_string(estimate.subtotal),
                "tax_to_date": money_string(estimate.tax),
                "total_to_date": money_string(estimate.total),
            },
        }
        key = f"usage_reported:{account.pk}:{iso_utc(start)}"
        if outbox_emit(type=USAGE_REPORTED, account_id=account.pk, data=data, now=now, dedup_key=key):
            recorded += 1
    return recorded
