"""The transactional outbox: a domain event is written in the same transaction as the change it reports,
and delivered later. ``dedup_key`` makes an event exactly-once (a second emit with the same key is a no-op)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from common.models import OutboxEvent


@dataclass(frozen=True)
class OutboxMessage:
    type: str
    account_id: int | None
    data: dict[str, Any]
    dedup_key: str | None = None


def _event(message: OutboxMessage, now: dt.datetime) -> OutboxEvent:
    return OutboxEvent(
        type=message.type,
        account_id=message.account_id,
        created_at=now,
        dedup_key=message.dedup_key,
        payload={"type": message.type, "data": message.data},
    )


def outbox_emit(
    *, type: str, account_id: int | None, data: dict[str, Any], now: dt.datetime, dedup_key: str
) -> OutboxEvent | None:
    """Record one event; returns it, or None when an event with the same ``dedup_key`` already exists."""
    defaults = {"type": type, "account_id": account_id, "created_at": now, "payload": {"type": type, "data": data}}
    event, created = OutboxEvent.objects.get_or_create(dedup_key=dedup_key, defaults=defaults)
    return event if created else None


def outbox_emit_many(messages: Iterable[OutboxMessage], *, now: dt.datetime) -> list[OutboxEvent]:
    """Record many events in one insert (e.g. a run's finalized invoices); one whose ``dedup_key`` exists
    already is skipped."""
    return OutboxEvent.objects.bulk_create([_event(message, now) for message in messages], ignore_conflicts=True)
