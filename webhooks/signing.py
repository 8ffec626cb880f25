"""Secrets, bodies and headers per the Standard Webhooks specification (https://www.standardwebhooks.com),
signed with its reference library (``standardwebhooks``).

- Secret: ``whsec_`` and the base64 of 24 random bytes (192 bits).
- Body: ``{"id": "evt_…", "type": ..., "created_at": ..., "data": {...}}``, the outbox event's payload with its
  stable id and time, serialized deterministically (sorted keys, no spaces, UTF-8): the same event gives the
  same bytes on every attempt.
- Headers: ``webhook-id`` (the event's id, the same on every retry and resend: receivers deduplicate by it),
  ``webhook-timestamp`` (the attempt's time, Unix seconds), ``webhook-signature`` (``v1,<base64>``; during a
  secret's rotation overlap one such entry per valid secret, separated by spaces, newest first).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import secrets
from collections.abc import Sequence
from typing import Any

from standardwebhooks import Webhook

from common.formats import iso_utc

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24
USER_AGENT = "Ledgerline-Webhooks/1"


def secret_generate() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def body_bytes(*, event_id: str, event_type: str, created_at: dt.datetime, data: dict[str, Any]) -> bytes:
    document = {"id": event_id, "type": event_type, "created_at": iso_utc(created_at), "data": data}
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class Signer:
    """Signs with a set of secrets; keeps each secret's decoded key (one per endpoint, reused over a batch)."""

    def __init__(self) -> None:
        self._keys: dict[str, Webhook] = {}

    def _webhook(self, secret: str) -> Webhook:
        webhook = self._keys.get(secret)
        if webhook is None:
            webhook = self._keys[secret] = Webhook(secret)
        return webhook

    def headers(self, *, event_id: str, body: bytes, at: dt.datetime, secrets: Sequence[str]) -> dict[str, str]:
        # The spec signs the whole seconds of the timestamp it sends.
        timestamp = dt.datetime.fromtimestamp(math.floor(at.timestamp()), tz=dt.UTC)
        signatures = " ".join(self._webhook(secret).sign(event_id, timestamp, body) for secret in secrets)
        return {
            "webhook-id": event_id,
            "webhook-timestamp": str(int(timestamp.timestamp())),
            "webhook-signature": signatures,
            "content-type": "application/json",
            "user-agent": USER_AGENT,
        }
