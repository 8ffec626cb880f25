"""How times and numbers are written in API bodies, webhook payloads and exports: one rule each."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from common.money import round_money


def iso_utc(moment: dt.datetime) -> str:
    """ISO 8601 in UTC with a ``Z``: ``2026-11-30T23:59:59Z`` (sub-second digits kept when present)."""
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def decimal_string(value: Decimal | int) -> str:
    """A quantity as a plain decimal string without exponent or trailing zeros: ``1500``, ``0.25``."""
    text = format(Decimal(value), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def money_string(amount: Decimal, currency: str | None = None) -> str:
    """An amount as a plain decimal string (``12.50``); rounded to the currency's minor unit when given."""
    if currency is not None:
        amount = round_money(amount, currency)
    return format(amount, "f")
