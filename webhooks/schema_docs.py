"""Every webhook event type in the API documentation, from the one catalogue the endpoints validate against
(``webhooks.event_types``): the description of the ``Webhooks`` tag (the endpoint operations' section in Swagger UI
at ``/api/docs/``) explains signing and retries and lists each type with an example body, and ``x-webhooks``
(shown by Redoc at ``/api/redoc/``) describes each as the request Ledgerline sends, with its headers and schema."""

from __future__ import annotations

import json
from typing import Any

from webhooks.event_types import EVENT_TYPES, EventType

TAG = "Webhooks"  # the endpoint operations' tag (webhooks.schema.TAG)
EVENTS_TAG = "Webhook events"
EXAMPLE_ID = "evt_000123"
EXAMPLE_CREATED_AT = "2026-12-07T16:05:00Z"

SIGNING = """Each event is an HTTP `POST` with a JSON body `{"id", "type", "created_at", "data"}`, signed as the
[Standard Webhooks](https://www.standardwebhooks.com/) specification defines, so any of its libraries verifies
it with the endpoint's `whsec_…` secret:

- `webhook-id`: the event's id (`evt_…`), the same on every retry and resend: deduplicate by it;
- `webhook-timestamp`: when this attempt was signed (Unix seconds): refuse one more than 5 minutes away;
- `webhook-signature`: `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`; during a secret rotation's
  overlap it carries one signature per live secret, separated by spaces.

Python: `standardwebhooks.webhooks.Webhook(secret).verify(raw_body, headers)`.

Answer 2xx within 10 seconds to acknowledge. Anything else (or no answer) is retried with exponential backoff
and jitter for about three days; an endpoint failing for three days is disabled and the account's owners are
e-mailed. Delivery is at least once and not ordered: use `created_at` to order events.
"""

ENVELOPE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "type", "created_at", "data"],
    "properties": {
        "id": {"type": "string", "description": "The event's id, also the `webhook-id` header.", "example": EXAMPLE_ID},
        "type": {"type": "string", "description": "The event type."},
        "created_at": {"type": "string", "format": "date-time", "description": "When the event happened (UTC)."},
        "data": {"type": "object", "additionalProperties": True, "description": "The event's content, per type."},
    },
}

HEADERS = [
    ("webhook-id", "The event's id (`evt_…`), the same on every retry and resend."),
    ("webhook-timestamp", "When this attempt was signed, in Unix seconds."),
    ("webhook-signature", "`v1,<base64 signature>`, space-separated when two secrets are live."),
]


def example_body(event: EventType) -> dict[str, Any]:
    return {"id": EXAMPLE_ID, "type": event.name, "created_at": EXAMPLE_CREATED_AT, "data": event.example}


def tag_description() -> str:
    parts = [SIGNING, "Event types:\n"]
    for event in EVENT_TYPES:
        body = json.dumps(example_body(event), indent=2)
        parts.append(f"**`{event.name}`**: {event.description}\n\n```json\n{body}\n```\n")
    return "\n".join(parts)


def _webhook(event: EventType) -> dict[str, Any]:
    return {
        "post": {
            "operationId": "webhook_" + event.name.replace(".", "_"),
            "summary": event.name,
            "description": event.description,
            "tags": [EVENTS_TAG],
            "parameters": [
                {"name": name, "in": "header", "required": True, "schema": {"type": "string"}, "description": text}
                for name, text in HEADERS
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/WebhookEventEnvelope"},
                        "example": example_body(event),
                    }
                },
            },
            "responses": {"2XX": {"description": "Received. Anything else is retried."}},
        }
    }


def add_webhook_events(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: documents every event type (see the module docstring)."""
    result.setdefault("components", {}).setdefault("schemas", {})["WebhookEventEnvelope"] = ENVELOPE_SCHEMA
    result["x-webhooks"] = {event.name: _webhook(event) for event in EVENT_TYPES}
    tags = [tag for tag in result.get("tags", []) if tag.get("name") not in (TAG, EVENTS_TAG)]
    tags.append({"name": TAG, "description": tag_description()})
    tags.append(
        {"name": EVENTS_TAG, "description": "The requests Ledgerline sends to webhook endpoints, one per type."}
    )
    result["tags"] = tags
    return result
