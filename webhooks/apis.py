"""The webhooks API: the account's endpoints (``GET``/``POST /v1/webhooks/endpoints``, ``GET``/``PATCH``/``DELETE
/v1/webhooks/endpoints/{id}``), a new signing secret (``POST …/{id}/rotate-secret``), a test event
(``POST …/{id}/test``),
the endpoint's deliveries (``GET …/{id}/deliveries``) and resends (``POST …/{id}/resend-failed``,
``POST /v1/webhooks/deliveries/{id}/resend``).

Every operation needs a key with the ``webhooks`` scope, not pinned to a tenant (endpoints are the account's).
Another account's endpoint or delivery is a 404, never a 403. The rules are ``webhooks.services``'; the views
parse, look up by what the customer sees (``we_…``, ``whd_…``), call one service and render."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import permissions, serializers, status
from rest_framework.exceptions import NotAuthenticated
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import ApiKey
from billing.apis_ledger import _page
from common.errors import BillingError
from common.formats import iso_utc
from webhooks import schema
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.selectors import (
    account_endpoints,
    delivery_for_account,
    delivery_public_id,
    endpoint_deliveries,
    endpoint_for_account,
    secret_hints,
)
from webhooks.services.endpoints import (
    ERR_KEY_PINNED,
    ERR_KEY_SCOPE,
    delivery_resend,
    endpoint_create,
    endpoint_delete,
    endpoint_resend_failed,
    endpoint_rotate_secret,
    endpoint_send_test,
    endpoint_update,
)

DELIVERY_ORDERING = ("-created_at", "-id")
ERR_STATUS = "Give status as one of " + ", ".join(schema.DELIVERY_STATUSES) + "."


class HasWebhooksScope(permissions.BasePermission):
    """A key with the ``webhooks`` scope, of an account and not pinned to one of its tenants."""

    message = ERR_KEY_SCOPE

    def has_permission(self, request, view):
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            raise NotAuthenticated()
        if not api_key.scope_webhooks or api_key.account_id is None:
            return False
        if api_key.tenant_id is not None:
            self.message = ERR_KEY_PINNED
            return False
        return True


# --- Documents ------------------------------------------------------------------------------------------


def _time(moment) -> str | None:
    return None if moment is None else iso_utc(moment)


def endpoint_document(endpoint: WebhookEndpoint, hint: str | None = None) -> dict[str, Any]:
    if hint is None:
        hint = secret_hints(endpoint_ids=[endpoint.pk]).get(endpoint.pk, "")
    return {
        "id": endpoint.public_id,
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": list(endpoint.event_types or []),
        "enabled": endpoint.enabled,
        "disabled_at": _time(endpoint.disabled_at),
        "disabled_reason": endpoint.disabled_reason or None,
        "failing_since": _time(endpoint.failing_since),
        "secret_hint": hint,
        "created_at": iso_utc(endpoint.created_at),
        "updated_at": iso_utc(endpoint.updated_at),
    }


def _attempt(attempt: WebhookAttempt) -> dict[str, Any]:
    return {
        "at": iso_utc(attempt.at),
        "trigger": attempt.trigger,
        "status_code": attempt.status_code,
        "latency_ms": attempt.latency_ms,
        "response_excerpt": attempt.response_excerpt,
        "error": attempt.error or None,
    }


def delivery_document(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": delivery_public_id(delivery.pk),
        "endpoint_id": delivery.endpoint.public_id,
        "event_id": delivery.webhook_id,
        "event_type": delivery.event_type,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "next_attempt_at": _time(delivery.next_attempt_at),
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error or None,
        "delivered_at": _time(delivery.delivered_at),
        "created_at": iso_utc(delivery.created_at),
        "attempt_log": [_attempt(a) for a in sorted(delivery.attempt_rows.all(), key=lambda a: (a.at, a.pk))],
    }


def _with_attempts(deliveries):
    return deliveries.prefetch_related(Prefetch("attempt_rows", queryset=WebhookAttempt.objects.order_by("at", "id")))


def _delivery(delivery: WebhookDelivery) -> dict[str, Any]:
    return delivery_document(_with_attempts(WebhookDelivery.objects.select_related("endpoint")).get(pk=delivery.pk))


def _valid(serializer: serializers.Serializer) -> dict[str, Any]:
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _event_types(**kwargs) -> serializers.ListField:
    return serializers.ListField(
        child=schema.enum(schema.SUBSCRIBABLE, help_text="An event type."),
        max_length=len(schema.SUBSCRIBABLE),
        help_text="The event types to receive; empty or absent: every type except the hourly usage report "
        "(billing.usage_reported), which is sent only to endpoints that name it.",
        **kwargs,
    )


# --- Views ----------------------------------------------------------------------------------------------


class WebhooksView(APIView):
    permission_classes = [HasWebhooksScope]
    parser_classes = [JSONParser]


class EndpointsApi(WebhooksView):
    @extend_schema_serializer(component_name="WebhookEndpointCreate")
    class InputSerializer(schema.StrictInput):
        url = serializers.CharField(max_length=2000, help_text="https://…, on a public address.")
        description = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
        event_types = _event_types(required=False, default=list)

    @extend_schema(
        operation_id="webhook_endpoints_list",
        summary="The account's webhook endpoints",
        description=schema.LIST_DESCRIPTION,
        responses={
            200: schema.EndpointList,
            401: schema.UNAUTHENTICATED,
            403: schema.FORBIDDEN,
            429: schema.RATE_LIMITED,
        },
        examples=[schema.LIST_EXAMPLE],
        tags=[schema.TAG],
    )
    def get(self, request):
        endpoints = list(account_endpoints(account=request.auth.account))
        hints = secret_hints(endpoint_ids=[e.pk for e in endpoints])
        return Response({"results": [endpoint_document(e, hints.get(e.pk, "")) for e in endpoints]})

    @extend_schema(
        operation_id="webhook_endpoint_create",
        summary="Add a webhook endpoint (its secret is shown once)",
        description=schema.CREATE_DESCRIPTION,
        request=InputSerializer,
        responses={
            201: schema.EndpointWithSecret,
            400: schema.BAD_REQUEST,
            401: schema.UNAUTHENTICATED,
            403: schema.FORBIDDEN,
            429: schema.RATE_LIMITED,
        },
        examples=schema.CREATE_EXAMPLES,
        tags=[schema.TAG],
    )
    def post(self, request):
        data = _valid(self.InputSerializer(data=request.data))
        endpoint, secret = endpoint_create(
            account=request.auth.account,
            url=data["url"],
            description=data["description"],
            event_types=list(data["event_types"]),
            actor=request.auth,
        )
        return Response({**endpoint_document(endpoint), "secret": secret}, status=status.HTTP_201_CREATED)


class EndpointDetailApi(WebhooksView):
    @extend_schema_serializer(component_name="WebhookEndpointUpdate")
    class InputSerializer(schema.StrictInput):
        url = serializers.CharField(max_length=2000, required=False, help_text="https://…, on a public address.")
        description = serializers.CharField(max_length=200, required=False, allow_blank=True)
        event_types = _event_types(required=False)
        enabled = serializers.BooleanField(required=False, help_text="true: enable (clears failing_since).")

    @extend_schema(
        operation_id="webhook_endpoint_detail",
        summary="A webhook endpoint",
        description=schema.DETAIL_DESCRIPTION,
        parameters=[schema.ENDPOINT_PATH],
        responses={
            200: schema.Endpoint,
            401: schema.UNAUTHENTICATED,
            403: schema.FORBIDDEN,
            404: schema.ENDPOINT_NOT_FOUND,
            429: schema.RATE_LIMITED,
        },
        examples=[schema.DETAIL_EXAMPLE],
        tags=[schema.TAG],
    )
    def get(self, request, id: str):
        return Response(endpoint_document(endpoint_for_account(account=request.auth.account, public_id=id)))

    @extend_schema(
        operation_id="webhook_endpoint_update",
        summary="Change, enable or disable a webhook endpoint",
        description=schema.UPDATE_DESCRIPTION,
        parameters=[schema.ENDPOINT_PATH],
        request=InputSerializer,
        responses={
            200: schema.Endpoint,
            400: schema.BAD_REQUEST,
            401: schema.UNAUTHENTICATED,
            403: schema.FORBIDDEN,
            404: schema.ENDPOINT_NOT_FOUND,
            429: schema.RATE_LIMITED,
        },
        examples=schema.UPDATE_EXAMPLES,
        tags=[schema.TAG],
    )
    def patch(self, request, id: str):
        endpoint = endpoint_for_account(account=request.auth.account, public_id=id)
        data = dict(_valid(self.InputSerializer(data=request.data)))
        if "event_types" in data:
            data["event_types"] = list(data["event_types"])
        return Response(endpoint_document(endpoint_update(endpoint=endpoint, data=data, actor=request.auth)))

    @extend_schema(
        operation_id="webhook_endpoint_delete",
        summary="Remove a webhook endpoint",
        description=schema.DELETE_DESCRIPTION,
        parameters=[schema.ENDPOINT_PATH],
        request=None,
        responses={
            204: None,
            401: schema.UNAUTHENTICATED,
            403: schema.FORBIDDEN,
            404: schema.ENDPOINT_NOT_FOUND,
            429: schema.RATE_LIMITED,
        },
        tags=[schema.TAG],
    )
    def delete(self, request, id: str):
        endpoint_delete(endpoint=endpoint_for_account(account=request.auth.account, public_id=id), actor=request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)


class EndpointRotateSecretApi(WebhooksView):
    @extend_schema(
        operation_id="webhook_endpoint_rotate_secret",
        summary="A new signing secret (shown once; the old one stays valid for 24 hours)",
        description=schema.ROTATE_DESCRIPTION,
        parameters=[schema.ENDPOINT_PATH],
        request=None,
        responses={
            200: schema.EndpointWithSecret,
            401: schema.UNAUTHENTICATED,
            403: schema.FORBIDDEN,
            404: schema.ENDPOINT_NOT_FOUND,
            429: schema.RATE_LIMITED,
        },
        examples=[schema.ROTATE_EXAMPLE],
        tags=[schema.TAG],
    )
    def post(self, request, id: str):
        endpoint = endpoint_for_account(account=request.auth.account, public_id=id)
        endpoint, secret = endpoint_rotate_secret(endpoint=endpoint, actor=request.auth)
        return Response({**endpoint_document(endpoint), "secret": secret})


class EndpointTestApi(WebhooksView):
    @extend_schema(
        operation_id="webhook_endpoint_test",
        summary="Send a test event to the endpoint",
        description=schema.TEST_DESCRIPTION,
        parameters=[schema.ENDPOINT_PATH],
        request=None,
        responses={
            202: schema.Delivery,
            401: schema.UNAUTHENTICATED,
            403: schema.FORBIDDEN,
            404: schema.ENDPOINT_NOT_FOUND,
            429: schema.RATE_LIMITED,
        },
        examples=[schema.TEST_EXAMPLE],
        tags=[schema.TAG],
    )
    def post(self, request, id: str):
        endpoint = endpoint_for_account(account=request.auth.account, public_id=id)
        delivery = endpoint_send_test(endpoint=endpoint, actor=request.auth)
        return Response(_delivery(delivery), status=status.HTTP_202_ACCEPTED)


class EndpointDeliveriesApi(WebhooksView):
    @extend_schema(
        operation_id="webhook_endpoint_deliveries",
        summary="The endpoint's deliveries with their attempts",
        description=schema.DELIVERIES_DESCRIPTION,
        parameters=[schema.ENDPOINT_PATH, schema.STATUS_FILTER, *schema.PAGINATION],
        responses={
            200: schema.DeliveryPage,
            400: schema.LIST_BAD_REQUEST,
            401: schema.UNAUTHENTICATED,
            403: schema.FORBIDDEN,
            404: schema.ENDPOINT_NOT_FOUND,
            429: schema.RATE_LIMITED,
        },
        examples=[schema.DELIVERIES_EXAMPLE],
        tags=[schema.TAG],
    )
    def get(self, request, id: str):
        endpoint = endpoint_for_account(account=request.auth.account, public_id=id)
        wanted = request.query_params.get("status")
        if wanted is not None and wanted not in schema.DELIVERY_STATUSES:
            raise BillingError(ERR_STATUS, code="invalid", field="status")
        deliveries = _with_attempts(endpoint_deliveries(endpoint=endpoint, status=wanted))
        return _page(request, self, deliveries, DELIVERY_ORDERING, delivery_document)


class EndpointResendFailedApi(WebhooksView):
    @extend_schema_serializer(component_name="WebhookResendFailed")
    class InputSerializer(schema.StrictInput):
        since = serializers.DateTimeField(
            required=False, help_text="Only deliveries of events since this time (ISO 8601 with an offset)."
        )

    @extend_schema(
        operation_id="webhook_endpoint_resend_failed",
        summary="Send again every failed delivery of the endpoint",
        description=schema.RESEND_FAILED_DESCRIPTION,
        parameters=[schema.ENDPOINT_PATH],
        request=InputSerializer,
        responses={
            202: schema.ResendQueued,
            400: schema.BAD_REQUEST,
            401: schema.UNAUTHENTICATED,
            403: schema.FORBIDDEN,
            404: schema.ENDPOINT_NOT_FOUND,
            429: schema.RATE_LIMITED,
        },
        examples=schema.RESEND_FAILED_EXAMPLES,
        tags=[schema.TAG],
    )
    def post(self, request, id: str):
        endpoint = endpoint_for_account(account=request.auth.account, public_id=id)
        data = _valid(self.InputSerializer(data=request.data))
        queued = endpoint_resend_failed(endpoint=endpoint, since=data.get("since"), actor=request.auth)
        return Response({"queued": queued}, status=status.HTTP_202_ACCEPTED)


class DeliveryResendApi(WebhooksView):
    @extend_schema(
        operation_id="webhook_delivery_resend",
        summary="Send a delivery again (same webhook-id)",
        description=schema.RESEND_DESCRIPTION,
        parameters=[schema.DELIVERY_PATH],
        request=None,
        responses={
            202: schema.Delivery,
            401: schema.UNAUTHENTICATED,
            403: schema.FORBIDDEN,
            404: schema.DELIVERY_NOT_FOUND,
            429: schema.RATE_LIMITED,
        },
        examples=[schema.DELIVERY_EXAMPLE],
        tags=[schema.TAG],
    )
    def post(self, request, id: str):
        delivery = delivery_for_account(account=request.auth.account, public_id=id)
        return Response(_delivery(delivery_resend(delivery=delivery, actor=request.auth)), status=202)
