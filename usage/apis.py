"""The usage endpoints: event ingestion, usage and estimated charges, tenant quotas."""

from __future__ import annotations

import datetime as dt

import orjson
from django.core.exceptions import RequestDataTooBig
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import HasIngestScope, HasReadOrExportScope
from accounts.models import Account, ApiKey
from billing.selectors import charges_estimate, partner_breakdown, tenant_breakdown
from common import clock
from common.api import error_response
from common.errors import BillingError
from common.idempotency import idempotent
from common.periods import Period, month_containing, month_period
from tenants.models import Tenant
from usage import schema
from usage.ingest import MAX_BATCH, quoted
from usage.quotas import quota_statuses
from usage.schema import EventsAutoSchema
from usage.services import IngestRejected, events_ingest

ERR_JSON = 'The body must be JSON: one event object, or {"events": [...]}.'
ERR_BATCH = f"A batch holds at most {MAX_BATCH:,} events; split it."
ERR_BODY_TOO_BIG = "The request body is too large; send at most 10,000 events per request."
ERR_EVENTS_LIST = "'events' must be a non-empty list of event objects."
ERR_ACCOUNT_PARAM = "Export keys name the account: ?account=acc_…"
ERR_ACCOUNT_UNKNOWN = "No account '{account}'."


def _number(value) -> str:
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _money(value) -> str:
    return format(value, "f")


ACCOUNT_PARAMETER = OpenApiParameter("account", OpenApiTypes.STR, description="Export keys only: acc_… id.")
# Answers every /v1/ endpoint can give.
UNAUTHENTICATED = OpenApiResponse(schema.Error, description="No or invalid API key.")
RATE_LIMITED = OpenApiResponse(schema.Error, description="Rate limit exceeded; see Retry-After.")
EXPORT_ACCOUNT_ERRORS = {
    400: OpenApiResponse(schema.Error, description="An export key without `?account=`."),
    404: OpenApiResponse(schema.Error, description="An export key naming an unknown account."),
}


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


def _account_for(request) -> Account:
    api_key: ApiKey = request.auth
    if api_key.scope_export:
        public_id = request.query_params.get("account")
        if not public_id:
            raise BillingError(ERR_ACCOUNT_PARAM, code="required", field="account")
        # No account id has unprintable characters (and PostgreSQL cannot even compare a NUL).
        account = Account.objects.filter(public_id=public_id).first() if public_id.isprintable() else None
        if account is None:
            raise BillingError(
                ERR_ACCOUNT_UNKNOWN.format(account=quoted(public_id)), code="not_found", field="account", status=404
            )
        return account
    return api_key.account


def _pinned_tenant(request) -> Tenant | None:
    api_key: ApiKey = request.auth
    return api_key.tenant if api_key.tenant_id else None


def usage_document(account: Account, period: Period, now: dt.datetime, tenant: Tenant | None = None) -> dict:
    """The usage document of ``account``; for a key pinned to ``tenant``, that tenant's row of the breakdown
    only, and the account-wide figures (metrics, fees, totals, partner breakdown) as null."""
    estimate = charges_estimate(account=account, period=period, now=now)
    metrics = []
    for line in estimate.lines:
        if line.kind != "usage":
            continue
        charge = line.charge
        metrics.append(
            {
                "metric": line.metric_code,
                "name": charge.metric.name,
                # A month with a plan change or a trial end has one entry per span, each under its own plan.
                "description": line.description,
                "span": {"start": _iso(line.start or period.start), "end": _iso(line.end or period.end)},
                "unit": charge.metric.get_billing_unit_display(),
                "quantity": _number(line.quantity),
                "included": None if line.included is None else _number(line.included),
                "billable": _number(line.billable),
                "limit": None if charge.limit is None else _number(charge.limit),
                "limit_window": charge.limit_window if charge.limit is not None else None,
                "charge": _money(line.amount),
            }
        )
    other = [
        {"kind": line.kind, "description": line.description, "amount": _money(line.amount)}
        for line in estimate.lines
        if line.kind != "usage"
    ]
    tenants = [
        {
            "tenant_id": row["tenant"].public_id,
            "tenant_name": row["tenant"].name,
            "usage": {code: _number(q) for code, q in sorted(row["quantities"].items(), key=lambda kv: kv[0])},
            "cost": _money(row["cost"]),
        }
        for row in tenant_breakdown(estimate, only_tenant_id=tenant.pk if tenant else None)
    ]
    document = {
        "account_id": account.public_id,
        "tenant_id": tenant.public_id if tenant else None,
        "currency": estimate.currency,
        "period": {
            "start": period.start.isoformat().replace("+00:00", "Z"),
            "end": period.end.isoformat().replace("+00:00", "Z"),
        },
        "as_of": now.isoformat().replace("+00:00", "Z"),
        "plan": str(estimate.subscription.plan_version) if estimate.subscription else None,
        "metrics": metrics,
        "fees": other,
        "usage_to_date": {
            "estimated_charges": _money(estimate.subtotal),
            "estimated_tax": _money(estimate.tax),
            "estimated_total": _money(estimate.total),
        },
        "tenants": tenants,
        "partner_breakdown": [
            {
                "partner_id": row["partner"].public_id,
                "partner_name": row["partner"].name,
                "department": row["partner"].department,
                "message_count": _number(row["message_count"]),
                "cost": _money(row["cost"]),
            }
            for row in partner_breakdown(estimate)
        ],
    }
    if tenant is not None:
        # A key pinned to one tenant sees that tenant, not the account: no account-wide quantities or money.
        document.update(metrics=None, fees=None, usage_to_date=None, partner_breakdown=None)
    return document


class CurrentUsageApi(APIView):
    permission_classes = [HasReadOrExportScope]

    @extend_schema(
        operation_id="usage_current",
        summary="Usage and estimated charges of the running period",
        description=schema.USAGE_DESCRIPTION,
        parameters=[ACCOUNT_PARAMETER],
        responses={
            200: schema.UsageDocument,
            **EXPORT_ACCOUNT_ERRORS,
            401: UNAUTHENTICATED,
            403: schema.Error,
            429: RATE_LIMITED,
        },
        examples=[schema.USAGE_EXAMPLE],
        tags=["Usage"],
    )
    def get(self, request):
        account = _account_for(request)
        now = clock.now()
        return Response(usage_document(account, month_containing(now), now, _pinned_tenant(request)))


class MonthUsageApi(APIView):
    permission_classes = [HasReadOrExportScope]

    class Query(serializers.Serializer):
        year = serializers.IntegerField(min_value=2000, max_value=9998)
        month = serializers.IntegerField(min_value=1, max_value=12)

    @extend_schema(
        operation_id="usage_month",
        summary="Usage and charges of a calendar month",
        description="The same document as `/v1/billing/usage/current`, for the month named by `year` and `month` "
        "(UTC). A future month is a 400.",
        parameters=[Query, ACCOUNT_PARAMETER],
        responses={
            200: schema.UsageDocument,
            400: OpenApiResponse(
                schema.Error,
                description="`year` or `month` missing or out of range, a future month, or an export key without "
                "`?account=`.",
            ),
            401: UNAUTHENTICATED,
            403: schema.Error,
            404: EXPORT_ACCOUNT_ERRORS[404],
            429: RATE_LIMITED,
        },
        tags=["Usage"],
    )
    def get(self, request):
        query = self.Query(data=request.query_params)
        query.is_valid(raise_exception=True)
        account = _account_for(request)
        now = clock.now()
        period = month_period(query.validated_data["year"], query.validated_data["month"])
        if period.start > now:
            raise BillingError("That month has not started yet.", code="future_period", field="month")
        return Response(usage_document(account, period, min(now, period.end), _pinned_tenant(request)))


class TenantQuotaApi(APIView):
    permission_classes = [HasReadOrExportScope | HasIngestScope]

    @extend_schema(
        operation_id="tenant_quota",
        summary="Where a tenant's account stands against its plan limits",
        description=schema.QUOTA_DESCRIPTION,
        responses={
            200: schema.QuotaDocument,
            401: UNAUTHENTICATED,
            403: schema.Error,
            404: OpenApiResponse(
                schema.Error,
                description="No such tenant, or one this key may not read (another account's, "
                "or another tenant than the key's pin).",
            ),
            429: RATE_LIMITED,
        },
        examples=[schema.QUOTA_EXAMPLE],
        tags=["Usage"],
    )
    def get(self, request, tenant: str):
        api_key: ApiKey = request.auth
        scope = Tenant.objects.select_related("account")
        if not api_key.scope_export:
            scope = scope.filter(account=api_key.account)
            if api_key.tenant_id:
                scope = scope.filter(pk=api_key.tenant_id)
        if not tenant.isprintable():  # no tenant id has such characters (and PostgreSQL cannot compare a NUL)
            raise NotFound()
        found = get_object_or_404(scope, public_id=tenant)
        # A key pinned to a tenant reads that tenant's own usage, never the account's.
        pinned = found if api_key.tenant_id else None
        now = clock.now()
        limits = []
        for status_ in quota_statuses(account=found.account, now=now, tenant=pinned):
            limits.append(
                {
                    "metric": status_.metric.code,
                    "name": status_.metric.name,
                    "window": status_.window,
                    "period": status_.period_label,
                    "limit": _number(status_.limit),
                    "current_usage": _number(status_.current),
                    "percentage": _number(status_.percentage),
                    # What remains, and whether the limit is exceeded, depend on the other tenants' usage too.
                    "remaining": None if pinned else _number(status_.remaining),
                    "exceeded": None if pinned else status_.exceeded,
                }
            )
        return Response(
            {
                "tenant_id": found.public_id,
                "account_id": found.account.public_id,
                "scope": "tenant" if pinned else "account",
                "as_of": now.isoformat().replace("+00:00", "Z"),
                "limits": limits,
            }
        )
