"""OpenAPI documentation of the webhook endpoints API (``webhooks.apis``). As in ``billing.schema_ledger``, the views
render plain dicts and the serializers here are the documented shape of those dicts (every field required, nullable
ones marked); the request bodies are the views' own input serializers (``StrictInput``: unknown fields refused)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from billing.schema_inputs import StrictInput as StrictInput
from billing.schema_inputs import enum
from billing.schema_ledger import PAGINATION, RATE_LIMITED, UNAUTHENTICATED
from usage.schema import Error
from webhooks.event_types import EVENT_TYPES, TEST_EVENT
from webhooks.models import WebhookDelivery

__all__ = ["PAGINATION", "RATE_LIMITED", "UNAUTHENTICATED", "Error", "StrictInput"]

TAG = "Webhooks"
SUBSCRIBABLE = [event.name for event in EVENT_TYPES if event.name != TEST_EVENT]
DELIVERY_STATUSES = list(WebhookDelivery.Status.values)
ENDPOINT_ID = "we_000003"
DELIVERY_ID = "whd_000117"

ENDPOINT_PATH = OpenApiParameter(
    "id", OpenApiTypes.STR, OpenApiParameter.PATH, description="The endpoint's id, we_…"
)  # fmt: skip
DELIVERY_PATH = OpenApiParameter("id", OpenApiTypes.STR, OpenApiParameter.PATH, description="The delivery's id, whd_…")
STATUS_FILTER = OpenApiParameter(
    "status",
    OpenApiTypes.STR,
    enum=DELIVERY_STATUSES,
    description="Only deliveries in this status: pending (being tried), succeeded, failed (gave up after the "
    "retries), cancelled (the endpoint was disabled before it went out).",
)


# --- Documents ------------------------------------------------------------------------------------------


class Endpoint(serializers.Serializer):
    id = serializers.CharField(help_text="we_…: the endpoint's id.")
    url = serializers.CharField(help_text="Where events are POSTed.")
    description = serializers.CharField(allow_blank=True)
    event_types = serializers.ListField(
        child=serializers.CharField(),
        help_text="The event types it receives; empty: every type except the hourly usage report "
        "(billing.usage_reported), sent only to endpoints that name it.",
    )
    enabled = serializers.BooleanField()
    disabled_at = serializers.DateTimeField(allow_null=True)
    disabled_reason = serializers.CharField(
        allow_null=True, help_text="Why it was disabled: by whom, or automatically after failing for 72 hours."
    )
    failing_since = serializers.DateTimeField(
        allow_null=True, help_text="The first failed attempt since the last success; null while it succeeds."
    )
    secret_hint = serializers.CharField(help_text="The current signing secret's last characters: whsec_…AbCd.")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class EndpointWithSecret(Endpoint):
    secret = serializers.CharField(
        help_text="The signing secret, whsec_…: shown only in this answer. Store it to verify the signatures."
    )


class EndpointList(serializers.Serializer):
    results = Endpoint(many=True)


class Attempt(serializers.Serializer):
    at = serializers.DateTimeField()
    trigger = enum(WebhookDelivery.Trigger.choices, help_text="scheduled (first try or retry), resend or test.")
    status_code = serializers.IntegerField(allow_null=True, help_text="Your answer's status; null: no answer.")
    latency_ms = serializers.IntegerField()
    response_excerpt = serializers.CharField(allow_blank=True, help_text="The first 500 characters of your answer.")
    error = serializers.CharField(allow_null=True, help_text="A network error, a refused address or a bad status.")


class Delivery(serializers.Serializer):
    id = serializers.CharField(help_text="whd_…: the delivery's id.")
    endpoint_id = serializers.CharField()
    event_id = serializers.CharField(help_text="evt_…: the webhook-id header, the same on every attempt.")
    event_type = serializers.CharField()
    status = enum(WebhookDelivery.Status.choices, help_text="pending, succeeded, failed or cancelled.")
    attempts = serializers.IntegerField()
    next_attempt_at = serializers.DateTimeField(allow_null=True, help_text="Null once it is finished.")
    last_status_code = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    attempt_log = Attempt(many=True, help_text="Every attempt, oldest first.")


class DeliveryPage(serializers.Serializer):
    next = serializers.URLField(allow_null=True, help_text="The next page; null on the last one.")
    previous = serializers.URLField(allow_null=True, help_text="The previous page; null on the first one.")
    results = Delivery(many=True)


class ResendQueued(serializers.Serializer):
    queued = serializers.IntegerField(help_text="How many deliveries were queued to be sent again.")


# --- Answers --------------------------------------------------------------------------------------------

FORBIDDEN = OpenApiResponse(
    Error, description="A key without the webhooks scope, or a key pinned to a tenant (endpoints are the account's)."
)
ENDPOINT_NOT_FOUND = OpenApiResponse(Error, description="No such endpoint, or another account's.")
DELIVERY_NOT_FOUND = OpenApiResponse(Error, description="No such delivery, or another account's.")
BAD_REQUEST = OpenApiResponse(
    Error,
    description="A field that is not valid (`field` names it): a URL that is not https or names a private, "
    "loopback or reserved address, an unknown event type, an unknown field.",
)
CONFLICT = OpenApiResponse(Error, description="Enabled (or disabled) already.")
LIST_BAD_REQUEST = OpenApiResponse(Error, description="A `status`, `page_size` or `cursor` that is not valid.")

# --- Descriptions ---------------------------------------------------------------------------------------

LIST_DESCRIPTION = """The account's webhook endpoints (key with the `webhooks` scope). Secrets are never listed:
`secret_hint` shows the current one's last characters."""
CREATE_DESCRIPTION = """Add an endpoint: an https URL on a public address (checked now and again at every send,
after the name is resolved; redirects are not followed) and the event types it receives (none: every type but the
hourly usage report). The answer carries the signing secret (`secret`, `whsec_…`) — **the only time it is shown**.

Each event is POSTed with the Standard Webhooks headers `webhook-id` (the event's `evt_…` id, the same on every
retry and resend: deduplicate by it, delivery is at least once), `webhook-timestamp` and `webhook-signature`.
Answer 2xx within 10 seconds; anything else is retried after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h and
20 h (± 10 %), about three days, after which the delivery has failed. An endpoint that fails for 72 hours without
a success is disabled and the account's owners are e-mailed."""
DETAIL_DESCRIPTION = "One endpoint of the account."
UPDATE_DESCRIPTION = """Change the URL, description or event types, or enable (`"enabled": true`, which also
clears `failing_since`) or disable it (its pending deliveries are cancelled; resend them once it is enabled)."""
DELETE_DESCRIPTION = "Remove the endpoint with its secrets and deliveries. Nothing more is sent to it."
ROTATE_DESCRIPTION = """A new signing secret, shown only in this answer. The previous one stays valid for 24 hours:
meanwhile every request carries two signatures (space-separated `v1,…` entries), one per secret, so the receiver
can switch secrets at any moment of the overlap."""
TEST_DESCRIPTION = """Send a `webhook.test` event to this endpoint only (even a disabled one). It is delivered,
recorded and retried like any other event."""
DELIVERIES_DESCRIPTION = "The endpoint's deliveries, newest first, each with its attempts."
RESEND_DESCRIPTION = """Send the delivery again now, with the same `webhook-id` and body (newly signed): one
attempt, not retried if it fails."""
RESEND_FAILED_DESCRIPTION = """Send again now every delivery of the endpoint that failed or was cancelled (of events
since `since`, if given): one attempt each."""

# --- Examples -------------------------------------------------------------------------------------------

_ENDPOINT = {
    "id": ENDPOINT_ID,
    "url": "https://hooks.example.com/ledgerline",
    "description": "ERP sync",
    "event_types": ["billing.invoice_generated", "billing.payment_succeeded"],
    "enabled": True,
    "disabled_at": None,
    "disabled_reason": None,
    "failing_since": None,
    "secret_hint": "whsec_…3kPq",
    "created_at": "2026-12-07T09:00:00Z",
    "updated_at": "2026-12-07T09:00:00Z",
}
_SECRET = "whsec_q0Zb3GH0cYVw8c3rJq2c2g3kPq9y4u1M"
_DELIVERY = {
    "id": DELIVERY_ID,
    "endpoint_id": ENDPOINT_ID,
    "event_id": "evt_000412",
    "event_type": "billing.invoice_generated",
    "status": "succeeded",
    "attempts": 2,
    "next_attempt_at": None,
    "last_status_code": 200,
    "last_error": None,
    "delivered_at": "2026-12-07T09:00:06Z",
    "created_at": "2026-12-07T09:00:00Z",
    "attempt_log": [
        {
            "at": "2026-12-07T09:00:00Z",
            "trigger": "scheduled",
            "status_code": 503,
            "latency_ms": 41,
            "response_excerpt": "Service Unavailable",
            "error": "HTTP 503",
        },
        {
            "at": "2026-12-07T09:00:06Z",
            "trigger": "scheduled",
            "status_code": 200,
            "latency_ms": 38,
            "response_excerpt": "ok",
            "error": None,
        },
    ],
}

LIST_EXAMPLE = OpenApiExample("The account's endpoints", response_only=True, value={"results": [_ENDPOINT]})
CREATE_EXAMPLES = [
    OpenApiExample(
        "Invoices and payments",
        request_only=True,
        value={
            "url": "https://hooks.example.com/ledgerline",
            "description": "ERP sync",
            "event_types": ["billing.invoice_generated", "billing.payment_succeeded"],
        },
    ),
    OpenApiExample("Every event", request_only=True, value={"url": "https://hooks.example.com/all"}),
    OpenApiExample("Created, with its secret", response_only=True, value={**_ENDPOINT, "secret": _SECRET}),
]
DETAIL_EXAMPLE = OpenApiExample("An endpoint", response_only=True, value=_ENDPOINT)
UPDATE_EXAMPLES = [
    OpenApiExample("Enable again", request_only=True, value={"enabled": True}),
    OpenApiExample(
        "Also the hourly usage report",
        request_only=True,
        value={"event_types": ["billing.invoice_generated", "billing.payment_succeeded", "billing.usage_reported"]},
    ),
    DETAIL_EXAMPLE,
]
ROTATE_EXAMPLE = OpenApiExample(
    "The new secret", response_only=True, value={**_ENDPOINT, "secret_hint": "whsec_…Zx7e", "secret": _SECRET}
)
DELIVERY_EXAMPLE = OpenApiExample("A delivery", response_only=True, value=_DELIVERY)
TEST_EXAMPLE = OpenApiExample(
    "The test event, queued",
    response_only=True,
    value={
        **_DELIVERY,
        "event_id": "evt_000413",
        "event_type": "webhook.test",
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": "2026-12-07T09:05:00Z",
        "last_status_code": None,
        "delivered_at": None,
        "created_at": "2026-12-07T09:05:00Z",
        "attempt_log": [],
    },
)
DELIVERIES_EXAMPLE = OpenApiExample(
    "A page of deliveries", response_only=True, value={"next": None, "previous": None, "results": [_DELIVERY]}
)
RESEND_FAILED_EXAMPLES = [
    OpenApiExample("Since the outage began", request_only=True, value={"since": "2026-12-06T22:00:00Z"}),
    OpenApiExample("Queued", response_only=True, value={"queued": 42}),
]
