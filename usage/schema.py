"""OpenAPI documentation of the ingestion endpoint: shapes and examples. The ingest view parses JSON
itself for speed; the field list and error codes shown here come from ``usage.ingest``."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, PolymorphicProxySerializer, inline_serializer
from rest_framework import serializers

from common.money import QUANTITY_DECIMAL_PLACES
from usage.ingest import (
    EVENT_FIELDS,
    MAX_BATCH,
    MAX_PROPERTIES,
    MAX_PROPERTY_KEY,
    MAX_PROPERTY_VALUE,
    MAX_TRANSACTION_ID,
    QUANTITY_LIMIT,
    E,
)

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="Optional. A retry with the same key and body replays the first response "
    "(header `Idempotent-Replayed: true`); the same key with another body is a 409. Kept 24 hours.",
)

EVENTS_DESCRIPTION = (
    f"""
Send one event object, or `{{"events": [...]}}` with up to {MAX_BATCH:,} events. Authenticate with
`Authorization: Bearer <key>` (a key with the `ingest` scope).

**Exactly once.** `transaction_id` is the idempotency key of an event, unique per account: an event whose
`transaction_id` was already stored counts as a duplicate (not an error), across batches and concurrent
requests. A `202` means every accepted event is committed.

**All or nothing.** If any event is invalid the response is `400` listing every problem as
`{{index, field, code, message}}` and nothing is stored. Codes: """
    + ", ".join(f"`{c}`" for c in E)
    + f""".

**Late usage.** Events for a month whose invoice is final are accepted for a grace window (7 days by
default) and billed on the next invoice; after it they are refused with `period_closed`. Storage level
readings for an invoiced month are refused at once with `gauge_period_closed`.

Fields: `transaction_id` (string, ≤ 255), `tenant` (a tenant's public id), `metric` (a catalogue code:
`api_requests`, `messages`, `storage_gb` (a gauge: the GB stored from this timestamp on), `active_users`
(needs `properties.user_id`), `premium_features` (needs `properties.feature`)), `quantity` (non-negative
decimal, number or string, default 1), `timestamp` (RFC 3339 with zone, default now, at most 5 minutes
ahead), `properties` (object of at most {MAX_PROPERTIES} properties, names of at most {MAX_PROPERTY_KEY} characters,
values strings of at most {MAX_PROPERTY_VALUE} characters, numbers or booleans; `partner_id` attributes messages to
a master partner).
"""
)

# One event, as ``usage.ingest.parse_event`` accepts it. Written as JSON Schema (the view parses the body
# itself, with no serializer to derive it from), from the same constants the validation uses.
EVENT_SCHEMA = {
    "type": "object",
    "properties": {
        "transaction_id": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_TRANSACTION_ID,
            "description": "The event's idempotency key, unique per account; printable characters.",
        },
        "tenant": {"type": "string", "description": "A tenant's public id, e.g. `ten_acme_eu`."},
        "metric": {"type": "string", "description": "A reportable metric's code, e.g. `messages`."},
        "quantity": {
            "oneOf": [
                {"type": "number", "minimum": 0, "maximum": int(QUANTITY_LIMIT), "exclusiveMaximum": True},
                {"type": "string", "pattern": rf"^[0-9]{{1,12}}(\.[0-9]{{1,{QUANTITY_DECIMAL_PLACES}}})?$"},
            ],
            "default": 1,
            "description": f"Non-negative, below 1,000,000,000,000, at most {QUANTITY_DECIMAL_PLACES} decimal "
            "places; a JSON number or a decimal string. Default 1.",
        },
        "timestamp": {
            "type": "string",
            "format": "date-time",
            "description": "RFC 3339 with a time zone; default now; at most 5 minutes ahead.",
        },
        "properties": {
            "type": "object",
            "maxProperties": MAX_PROPERTIES,
            "additionalProperties": {
                "oneOf": [{"type": "string", "maxLength": MAX_PROPERTY_VALUE}, {"type": "number"}, {"type": "boolean"}]
            },
            "description": f"At most {MAX_PROPERTIES} properties with names of at most {MAX_PROPERTY_KEY} "
            f"characters; values are strings (at most {MAX_PROPERTY_VALUE} characters), numbers or booleans.",
        },
    },
    "required": ["transaction_id", "tenant", "metric"],
    "additionalProperties": False,
}
assert tuple(EVENT_SCHEMA["properties"]) == EVENT_FIELDS


class Event(serializers.Serializer):
    """One usage event (documented by ``EVENT_SCHEMA``)."""


class EventsBatch(serializers.Serializer):
    """``{"events": [...]}``: up to ``MAX_BATCH`` events."""


class EventSchema(OpenApiSerializerExtension):
    target_class = Event

    def map_serializer(self, auto_schema, direction):
        return EVENT_SCHEMA


class EventsBatchSchema(OpenApiSerializerExtension):
    target_class = EventsBatch

    def map_serializer(self, auto_schema, direction):
        event = auto_schema.resolve_serializer(Event, direction).ref
        return {
            "type": "object",
            "properties": {"events": {"type": "array", "items": event, "minItems": 1, "maxItems": MAX_BATCH}},
            "required": ["events"],
            "additionalProperties": False,
        }


EventsRequest = PolymorphicProxySerializer(
    component_name="EventsRequest", serializers=[Event, EventsBatch], resource_type_field_name=None, many=False
)


class EventsAutoSchema(AutoSchema):
    """The events endpoint's schema: its body is required (a body of one event or a batch: a ``oneOf`` that
    the generator cannot tell is required on its own)."""

    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        if operation and "requestBody" in operation:
            operation["requestBody"]["required"] = True
        return operation


IngestAccepted = inline_serializer(
    "IngestAccepted", {"accepted": serializers.IntegerField(), "duplicates": serializers.IntegerField()}
)


class ErrorItem(serializers.Serializer):
    code = serializers.CharField()
    field = serializers.CharField(allow_null=True)
    message = serializers.CharField()


class EventErrorItem(ErrorItem):
    index = serializers.IntegerField(help_text="The event's position in the batch (0 for a single event).")


class Error(serializers.Serializer):
    error = ErrorItem(help_text="The (first) problem.")
    errors = ErrorItem(many=True, required=False, help_text="Every problem, when there are several.")


class EventErrors(serializers.Serializer):
    error = ErrorItem(help_text="The problem: for refused events, `invalid_events` or `tenant_not_allowed`.")
    errors = EventErrorItem(
        many=True,
        required=False,
        help_text="For refused events (`invalid_events`, `tenant_not_allowed`): every refused event's problem, "
        "at most 100. Absent for a problem with the request itself (`invalid_json`, a missing scope, ...).",
    )


EVENTS_EXAMPLES = [
    OpenApiExample(
        "A batch",
        request_only=True,
        value={
            "events": [
                {
                    "transaction_id": "msg-2026-11-26-000001",
                    "tenant": "ten_acme_eu",
                    "metric": "messages",
                    "quantity": 1,
                    "timestamp": "2026-11-26T10:15:00Z",
                    "properties": {"partner_id": "prt_supplier_001"},
                },
                {
                    "transaction_id": "users-2026-11-26-u42",
                    "tenant": "ten_acme_eu",
                    "metric": "active_users",
                    "properties": {"user_id": "u42"},
                },
                {
                    "transaction_id": "storage-2026-11-26T10",
                    "tenant": "ten_acme_eu",
                    "metric": "storage_gb",
                    "quantity": "12.5",
                    "timestamp": "2026-11-26T10:00:00Z",
                },
            ]
        },
    ),
    OpenApiExample(
        "One event",
        request_only=True,
        value={"transaction_id": "req-8d1f", "tenant": "ten_acme_eu", "metric": "api_requests", "quantity": 250},
    ),
    OpenApiExample("Accepted", response_only=True, status_codes=["202"], value={"accepted": 2, "duplicates": 1}),
    OpenApiExample(
        "Invalid",
        response_only=True,
        status_codes=["400"],
        value={
            "error": {
                "code": "invalid_events",
                "field": "events",
                "message": "2 invalid event(s); nothing was stored.",
            },
            "errors": [
                {
                    "index": 0,
                    "field": "quantity",
                    "code": "negative_quantity",
                    "message": "The quantity must not be negative.",
                },
                {"index": 3, "field": "metric", "code": "unknown_metric", "message": "No metric 'sms'."},
            ],
        },
    ),
    OpenApiExample(
        "Rate limited",
        response_only=True,
        status_codes=["429"],
        value={
            "error": {
                "code": "rate_limited",
                "field": None,
                "message": "Request was throttled. Expected available in 12 seconds.",
            }
        },
    ),
]
