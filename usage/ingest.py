"""Parsing and validation of reported events: the one place that defines what a valid event is.

The events API, the OpenAPI schema and the docs all take their field list, limits and error codes
from here. Validation is all-or-nothing: the caller stores nothing unless every event is valid.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from common.money import QUANTITY_DECIMAL_PLACES

MAX_BATCH = 10_000
MAX_TRANSACTION_ID = 255
QUANTUM = Decimal(1).scaleb(-QUANTITY_DECIMAL_PLACES)
MAX_PROPERTY_VALUE = 255
# Properties describe an event (partner_id, user_id, feature, ...): a few short names, not a document.
MAX_PROPERTY_KEY = 64
MAX_PROPERTIES = 50
FUTURE_TOLERANCE = dt.timedelta(minutes=5)
EVENT_FIELDS = ("transaction_id", "tenant", "metric", "quantity", "timestamp", "properties")
# One event reports less than a trillion units, so hourly and monthly sums stay far inside their columns.
QUANTITY_LIMIT = Decimal(10) ** 12  # exclusive

# Error codes, one per reason, with their messages.
E = {
    "invalid_event": "Each event must be a JSON object.",
    "unknown_field": "Unknown field '{name}'; an event has: " + ", ".join(EVENT_FIELDS) + ".",
    "required": "This field is required.",
    "invalid_transaction_id": f"A non-empty string of at most {MAX_TRANSACTION_ID} printable characters.",
    "unknown_tenant": "No tenant '{value}'.",
    "tenant_not_allowed": "Tenant '{value}' is not one this API key may report for.",
    "tenant_inactive": "Tenant '{value}' was not live at this timestamp.",
    "unknown_metric": "No metric '{value}'.",
    "metric_not_reportable": "Metric '{value}' is counted by Ledgerline itself and cannot be reported.",
    "invalid_quantity": "A decimal number (JSON number or string) with at most "
    f"{QUANTITY_DECIMAL_PLACES} decimal places and below 1,000,000,000,000.",
    "negative_quantity": "The quantity must not be negative.",
    "invalid_timestamp": "An RFC 3339 timestamp with a time zone, e.g. 2026-11-26T10:15:00Z.",
    "timestamp_in_future": "The timestamp is more than 5 minutes in the future.",
    "timestamp_too_old": "The timestamp is older than the {days} days usage is accepted for.",
    "period_closed": "Usage for {month} was invoiced and its grace window for late usage ended on {until}.",
    "gauge_period_closed": "Usage for {month} was invoiced; a level reading (metric '{metric}') cannot change it. "
    "Report the current level with a timestamp in an open month.",
    "invalid_properties": "properties must be a JSON object of strings, numbers or booleans.",
    "property_key_too_long": f"A property name has at most {MAX_PROPERTY_KEY} characters.",
    "too_many_properties": f"An event has at most {MAX_PROPERTIES} properties.",
    "missing_property": "Metric '{metric}' counts unique values of properties.{prop}, which is missing.",
    "unknown_partner": "No master partner '{value}' in this account.",
}


# How much of a client's text an error quotes: enough for any id (64 characters at most), no more.
MAX_QUOTED = 64


def quoted(value: Any, limit: int | None = MAX_QUOTED) -> str:
    """``value`` as an error's field or message may quote it: cut after ``limit`` characters, and with every
    character that is not printable escaped (NUL as the four characters ``\\x00``). Error bodies are stored
    (``Idempotency-Key``) and logged: they must hold only text PostgreSQL can store and stay small whatever
    was sent."""
    text = str(value)
    if limit is not None and len(text) > limit:
        text = text[:limit] + "…"
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


class EventError(Exception):
    """An event refused for one reason: ``code`` (a key of ``E``), the ``field`` it names and its message.
    Values sent by the client are quoted in the message through ``quoted``; a field named after the client's
    text is cut by the caller (``quoted``) and escaped here."""

    def __init__(self, field: str | None, code: str, **fmt: Any) -> None:
        self.field = None if field is None else quoted(field, limit=None)
        self.code = code
        self.message = E[code].format(**{name: quoted(value) for name, value in fmt.items()})
        super().__init__(self.message)


@dataclass(frozen=True, slots=True)
class RawEvent:
    transaction_id: str
    tenant: str
    metric: str
    quantity: Decimal
    timestamp: dt.datetime
    properties: dict[str, Any]


def parse_quantity(value: Any) -> Decimal:
    if value is None:
        return Decimal(1)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise EventError("quantity", "invalid_quantity")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise EventError("quantity", "invalid_quantity")
        value = repr(value)
    try:
        quantity = Decimal(str(value).strip())
    except InvalidOperation:
        raise EventError("quantity", "invalid_quantity") from None
    if not quantity.is_finite():
        raise EventError("quantity", "invalid_quantity")
    if quantity < 0:
        raise EventError("quantity", "negative_quantity")
    if quantity >= QUANTITY_LIMIT or -quantity.as_tuple().exponent > QUANTITY_DECIMAL_PLACES:
        raise EventError("quantity", "invalid_quantity")
    return quantity.quantize(QUANTUM)


def parse_timestamp(value: Any, now: dt.datetime) -> dt.datetime:
    if value is None:
        return now
    if not isinstance(value, str) or "T" not in value.upper():
        raise EventError("timestamp", "invalid_timestamp")
    try:
        moment = dt.datetime.fromisoformat(value.replace("z", "Z"))
        if moment.tzinfo is None:
            raise ValueError
        moment = moment.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        raise EventError("timestamp", "invalid_timestamp") from None
    if moment > now + FUTURE_TOLERANCE:
        raise EventError("timestamp", "timestamp_in_future")
    return moment


def parse_properties(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise EventError("properties", "invalid_properties")
    if len(value) > MAX_PROPERTIES:
        raise EventError("properties", "too_many_properties")
    for key, item in value.items():
        if not isinstance(key, str) or isinstance(item, (dict, list)):
            raise EventError("properties", "invalid_properties")
        if len(key) > MAX_PROPERTY_KEY:
            raise EventError("properties", "property_key_too_long")
        if isinstance(item, str) and (len(item) > MAX_PROPERTY_VALUE or "\x00" in item) or "\x00" in key:
            raise EventError(f"properties.{quoted(key)}", "invalid_properties")
    return value


def parse_event(item: Any, now: dt.datetime) -> RawEvent:
    """Check an event's own shape (no database). Raises ``EventError`` naming the field."""
    if not isinstance(item, dict):
        raise EventError(None, "invalid_event")
    for key in item:
        if key not in EVENT_FIELDS:
            raise EventError(quoted(key), "unknown_field", name=key)
    transaction_id = item.get("transaction_id")
    if transaction_id is None:
        raise EventError("transaction_id", "required")
    if (
        not isinstance(transaction_id, str)
        or not transaction_id
        or len(transaction_id) > MAX_TRANSACTION_ID
        or not transaction_id.isprintable()
    ):
        raise EventError("transaction_id", "invalid_transaction_id")
    for name in ("tenant", "metric"):
        if item.get(name) is None:
            raise EventError(name, "required")
    tenant, metric = item["tenant"], item["metric"]
    if not isinstance(tenant, str) or not tenant.isprintable():
        raise EventError("tenant", "unknown_tenant", value=tenant)
    if not isinstance(metric, str) or not metric.isprintable():
        raise EventError("metric", "unknown_metric", value=metric)
    return RawEvent(
        transaction_id=transaction_id,
        tenant=tenant,
        metric=metric,
        quantity=parse_quantity(item.get("quantity")),
        timestamp=parse_timestamp(item.get("timestamp"), now),
        properties=parse_properties(item.get("properties")),
    )
