"""The charges API: the running month's estimate and a month's usage, for an account or a tenant, and
a tenant's standing against its plan limits. The figures come from the pricing engine the invoice run
bills with (``billing.rating``), so ``GET /v1/billing/usage/current`` and the invoice agree to the cent."""

from __future__ import annotations

import datetime as dt

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import HasIngestScope, HasReadOrExportScope, export_dataset_permission
from accounts.models import Account, ApiKey
from accounts.selectors import export_readable_accounts
from billing import schema
from billing.quotas import quota_statuses
from billing.rating.allocation import partner_breakdown, tenant_breakdown
from billing.rating.engine import charges_estimate
from common import clock
from common.errors import BillingError
from common.formats import decimal_string, iso_utc, money_string
from common.periods import Period, month_containing, month_period
from tenants.models import Tenant
from usage.apis import RATE_LIMITED, UNAUTHENTICATED
from usage.ingest import quoted

ERR_ACCOUNT_PARAM = "Export keys name the account: ?account=acc_…"
ERR_ACCOUNT_UNKNOWN = "No account '{account}'."

ACCOUNT_PARAMETER = OpenApiParameter("account", OpenApiTypes.STR, description="Export keys only: acc_… id.")
EXPORT_ACCOUNT_ERRORS = {
    400: OpenApiResponse(schema.Error, description="An export key without `?account=`."),
    404: OpenApiResponse(schema.Error, description="An export key naming an unknown account."),
}


def _account_for(request) -> Account:
    api_key: ApiKey = request.auth
    if api_key.scope_export:
        public_id = request.query_params.get("account")
        if not public_id:
            raise BillingError(ERR_ACCOUNT_PARAM, code="required", field="account")
        # No account id has unprintable characters (and PostgreSQL cannot even compare a NUL).
        readable = export_readable_accounts(api_key=api_key)
        account = readable.filter(public_id=public_id).first() if public_id.isprintable() else None
        if account is None:
            raise BillingError(
                ERR_ACCOUNT_UNKNOWN.format(account=quoted(public_id)), code="not_found", field="account", status=404
            )
        return account
    return api_key.account


def account_of_request(request) -> Account:
    """``_account_for``, and a read key that names an account other than its own with ``?account=`` finds none
    (404), rather than reading its own account under another's name."""
    api_key: ApiKey = request.auth
    if api_key.scope_export:
        return _account_for(request)
    named = request.query_params.get("account")
    if named and named != api_key.account.public_id:
        raise BillingError(
            ERR_ACCOUNT_UNKNOWN.format(account=quoted(named)), code="not_found", field="account", status=404
        )
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
                "span": {"start": iso_utc(line.start or period.start), "end": iso_utc(line.end or period.end)},
                "unit": charge.metric.get_billing_unit_display(),
                "quantity": decimal_string(line.quantity),
                "included": None if line.included is None else decimal_string(line.included),
                "billable": decimal_string(line.billable),
                "limit": None if charge.limit is None else decimal_string(charge.limit),
                "limit_window": charge.limit_window if charge.limit is not None else None,
                "charge": money_string(line.amount),
            }
        )
    other = [
        {"kind": line.kind, "description": line.description, "amount": money_string(line.amount)}
        for line in estimate.lines
        if line.kind != "usage"
    ]
    tenants = [
        {
            "tenant_id": row["tenant"].public_id,
            "tenant_name": row["tenant"].name,
            "usage": {code: decimal_string(q) for code, q in sorted(row["quantities"].items(), key=lambda kv: kv[0])},
            "cost": money_string(row["cost"]),
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
            "estimated_charges": money_string(estimate.subtotal),
            "estimated_tax": money_string(estimate.tax),
            "estimated_total": money_string(estimate.total),
        },
        "tenants": tenants,
        "partner_breakdown": [
            {
                "partner_id": row["partner"].public_id,
                "partner_name": row["partner"].name,
                "department": row["partner"].department,
                "message_count": decimal_string(row["message_count"]),
                "cost": money_string(row["cost"]),
            }
            for row in partner_breakdown(estimate)
        ],
    }
    if tenant is not None:
        # A key pinned to one tenant sees that tenant, not the account: no account-wide quantities or money.
        document.update(metrics=None, fees=None, usage_to_date=None, partner_breakdown=None)
    return document


class CurrentUsageApi(APIView):
    permission_classes = [HasReadOrExportScope, export_dataset_permission("usage")]

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
    permission_classes = [HasReadOrExportScope, export_dataset_permission("usage")]

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
    permission_classes = [HasReadOrExportScope | HasIngestScope, export_dataset_permission("usage")]

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
        else:
            scope = scope.filter(account__in=export_readable_accounts(api_key=api_key))
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
                    "limit": decimal_string(status_.limit),
                    "current_usage": decimal_string(status_.current),
                    "percentage": decimal_string(status_.percentage),
                    # What remains, and whether the limit is exceeded, depend on the other tenants' usage too.
                    "remaining": None if pinned else decimal_string(status_.remaining),
                    "exceeded": None if pinned else status_.exceeded,
                }
            )
        return Response(
            {
                "tenant_id": found.public_id,
                "account_id": found.account.public_id,
                "scope": "tenant" if pinned else "account",
                "account_status": found.account.status,
                "as_of": now.isoformat().replace("+00:00", "Z"),
                "limits": limits,
            }
        )
