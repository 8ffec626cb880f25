"""Shared steps of the billing-cycle tests: subscribe, report usage, close November."""

from __future__ import annotations

import datetime as dt

import time_machine
from django.test import override_settings

from billing.services.runs import bill_period
from billing.services.subscriptions import subscription_create
from common.periods import month_period
from tests.usage.factories import usage_event, usage_ingest

UTC = dt.UTC
NOVEMBER = month_period(2026, 11)
DECEMBER = month_period(2026, 12)
JAN_1 = dt.datetime(2026, 1, 1, tzinfo=UTC)
SETUP_AT = dt.datetime(2026, 11, 2, tzinfo=UTC)
INGEST_AT = dt.datetime(2026, 11, 30, 12, tzinfo=UTC)
CLOSE_AT = dt.datetime(2026, 12, 1, 0, 5, tzinfo=UTC)


def subscribe(account, version, started_at=JAN_1, at=SETUP_AT):
    """Subscribe as of ``at`` (the subscription's current period and trial state depend on now)."""
    with time_machine.travel(at, tick=False):
        return subscription_create(account=account, plan_version=version, started_at=started_at)


def ingest(account, items, now=INGEST_AT):
    return usage_ingest(account=account, items=items, now=now)


def event(txn, tenant, metric, quantity, at, **properties):
    return usage_event(transaction_id=txn, tenant=tenant, metric=metric, quantity=quantity, at=at, **properties)


def close(period=NOVEMBER, now=CLOSE_AT, review_hours=0, **kwargs):
    """Run the cycle for ``period`` at ``now``; with ``review_hours=0`` invoices are finalized at once."""
    with override_settings(BILLING_REVIEW_HOURS=review_hours), time_machine.travel(now, tick=False):
        return bill_period(period=period, now=now, **kwargs)
