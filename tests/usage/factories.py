"""Usage events as clients report them: items of an ingestion batch (``usage_event``), stored by the real
ingestion service (``usage_ingest`` calls ``usage.services.events_ingest``) with the clock frozen at the
moment of reporting, so quota alerts, budgets and closed months see the time the test means."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from decimal import Decimal

import time_machine

from accounts.models import Account
from usage.services import IngestResult, events_ingest

_transaction_numbers = itertools.count(1)


def usage_event(
    *,
    tenant: str,
    metric: str = "messages",
    quantity: int | str | Decimal = 1,
    at: str | dt.datetime,
    transaction_id: str | None = None,
    **properties: object,
) -> dict:
    """One event as the API receives it. ``tenant`` is the tenant's public id, ``at`` the event's timestamp
    (an ISO 8601 string is sent as is); without ``transaction_id`` each event gets a new one."""
    item = {
        "transaction_id": transaction_id or f"evt-{next(_transaction_numbers)}",
        "tenant": tenant,
        "metric": metric,
        "quantity": quantity,
        "timestamp": at.isoformat() if isinstance(at, dt.datetime) else at,
    }
    if properties:
        item["properties"] = properties
    return item


def usage_ingest(*, account: Account, items: Sequence[dict], now: dt.datetime) -> IngestResult:
    """Report ``items`` for ``account`` at ``now`` through the ingestion service (all or nothing: raises
    ``usage.services.IngestRejected`` when an item is refused)."""
    with time_machine.travel(now, tick=False):
        return events_ingest(account=account, items=items, now=now)
