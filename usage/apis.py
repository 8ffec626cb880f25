"""The ingestion endpoint: ``POST /v1/events`` (the charges and quota endpoints are ``billing.apis``)."""

from __future__ import annotations

import orjson
from django.core.exceptions import RequestDataTooBig
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import HasIngestScope
from common import clock
from common.api import error_response
from common.idempotency import idempotent
from usage import schema
from usage.ingest import MAX_BATCH
from usage.schema import EventsAutoSchema
from usage.services import IngestRejected, events_ingest

ERR_JSON = 'The body must be JSON: one event object, or {"events": [...]}.'
ERR_BATCH = f"A batch holds at most {MAX_BATCH:,} events; split it."
ERR_BODY_TOO_BIG = "The request body is too large; send at most 10,000 events per request."
ERR_EVENTS_LIST = "'events' must be a non-empty list of event objects."


# Answers every /v1/ endpoint can give.
UNAUTHENTICATED = OpenApiResponse(schema.Error, description="No or invalid API key.")
RATE_LIMITED = OpenApiResponse(schema.Error, description="Rate limit exceeded; see Retry-After.")


class EventsIngestApi(APIView):
    permission_classes = [HasIngestScope]
    # The body is read as JSON whatever its declared type (``_ingest``); the schema offers JSON only.
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="events_ingest",
        summary="Report usage events",
        description=schema.EVENTS_DESCRIPTION,
        request=schema.EventsRequest,
        responses={
            202: schema.IngestAccepted,
            400: OpenApiResponse(
                schema.EventErrors,
                description="Invalid events (every problem in `errors`), a body that is not JSON, or an invalid "
                "Idempotency-Key; nothing was stored.",
            ),
            401: UNAUTHENTICATED,
            403: OpenApiResponse(
                schema.EventErrors,
                description="Key without the ingest scope, or a tenant "
                "of another account (or outside the key's tenant pin).",
            ),
            409: OpenApiResponse(
                schema.Error,
                description="Idempotency-Key reused with a different body, or its first request is still running "
                "(retry after Retry-After).",
            ),
            411: OpenApiResponse(schema.Error, description="A chunked body this server cannot read."),
            413: OpenApiResponse(schema.Error, description="More than 10,000 events, or a body over 16 MiB."),
            429: RATE_LIMITED,
        },
        parameters=[schema.IDEMPOTENCY_HEADER],
        examples=schema.EVENTS_EXAMPLES,
        tags=["Usage"],
    )
    def post(self, request):
        return idempotent(request, lambda: self._ingest(request))

    def _ingest(self, request) -> Response:
        try:
            body = request.body
        except RequestDataTooBig:
            return error_response([{"code": "payload_too_large", "field": None, "message": ERR_BODY_TOO_BIG}], 413)
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return error_response([{"code": "invalid_json", "field": None, "message": ERR_JSON}], 400)
        if isinstance(payload, dict) and "events" in payload:
            items = payload["events"]
            if not isinstance(items, list) or not items:
                return error_response([{"code": "invalid_events", "field": "events", "message": ERR_EVENTS_LIST}], 400)
            if len(items) > MAX_BATCH:
                return error_response([{"code": "batch_too_large", "field": "events", "message": ERR_BATCH}], 413)
        elif isinstance(payload, dict):
            items = [payload]
        else:
            return error_response([{"code": "invalid_json", "field": None, "message": ERR_JSON}], 400)
        try:
            result = events_ingest(
                account=request.auth.account, items=items, now=clock.now(), pinned_tenant_id=request.auth.tenant_id
            )
        except IngestRejected as rejected:
            return Response(rejected_body(rejected), status=rejected.status)
        return Response({"accepted": result.accepted, "duplicates": result.duplicates}, status=status.HTTP_202_ACCEPTED)

    # Set after the methods: in the class body this name shadows the ``schema`` module their decorator reads.
    schema = EventsAutoSchema()


def rejected_body(rejected: IngestRejected) -> dict:
    """The 400/403 body of a refused batch (also rendered by ``usage.fast_ingest``)."""
    n = len(rejected.errors)
    summary = {
        400: f"{n} invalid event(s); nothing was stored." if n < 100 else "Invalid events; nothing was stored.",
        403: "This API key may not report usage for the tenant(s) named; nothing was stored.",
    }[rejected.status]
    return {
        "error": {
            "code": "invalid_events" if rejected.status == 400 else "tenant_not_allowed",
            "field": "events",
            "message": summary,
        },
        "errors": rejected.errors,
    }
