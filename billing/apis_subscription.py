"""The subscription API: the account's subscription, plan, term, limits and pending change
(``GET /v1/subscription``) and a request to change its plan (``POST /v1/subscription/changes``).

Reading needs a ``read`` or ``subscription`` key (its own account) or an ``export`` key (the account named with
``?account=``, as ``/v1/invoices``); requesting a change a ``subscription`` key. A key pinned to a tenant is refused:
the subscription is the account's. The rules (which plans, whether the usage fits, whether the change waits for
billing staff) are ``billing.services.plan_changes``' — the same as the portal's; the views parse, find the plan
by its code, call one service or selector and render.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Q
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import HasSubscriptionReadScope, HasSubscriptionScope, export_dataset_permission
from accounts.models import Account, ApiKey
from billing import schema_subscription as schema
from billing.apis import _account_for
from billing.models import Plan, PlanChangeRequest, PlanVersion
from billing.selectors_subscription import SubscriptionSummary, subscription_summary
from billing.services.plan_changes import plan_change_request, plan_json
from common import clock
from common.api import exception_handler
from common.errors import BillingError
from common.formats import decimal_string, iso_utc, money_string
from common.idempotency import idempotent
from usage.ingest import quoted

ERR_TENANT_PINNED = "This API key is pinned to a tenant: the subscription and its plan changes are the account's."
ERR_NO_SUBSCRIPTION = "Account {account} has never subscribed."
ERR_UNKNOWN_PLAN = "No plan '{plan}' for this account: give the code of a catalogue plan or of your own custom plan."
ERR_UNKNOWN_VERSION = "{plan} has no published version {version}."
ERR_NO_PUBLISHED_VERSION = "{plan} has no published version yet."


# --- Access ---------------------------------------------------------------------------------------------


class IsAccountWideKey(permissions.BasePermission):
    """The subscription is the account's: a key pinned to one tenant neither reads nor changes it."""

    message = ERR_TENANT_PINNED

    def has_permission(self, request, view):
        return not (isinstance(request.auth, ApiKey) and request.auth.tenant_id)


# The subscription is none of an export key's datasets: an export key limited to some datasets does not read it.
READ_PERMISSIONS = [HasSubscriptionReadScope, IsAccountWideKey, export_dataset_permission(None)]
WRITE_PERMISSIONS = [HasSubscriptionScope, IsAccountWideKey]


def _answered(view: APIView, request, handler: Callable[[], Response]) -> Response:
    """``handler``'s response, its refusals included: they are answers an ``Idempotency-Key`` replays (as the
    disputes API's are; an exception would give the key back instead)."""
    try:
        return handler()
    except (BillingError, DjangoValidationError, APIException) as exc:
        response = exception_handler(exc, {"view": view, "request": request})
        if response is None:
            raise
        return response


# --- Documents ------------------------------------------------------------------------------------------


def _time(moment) -> str | None:
    return None if moment is None else iso_utc(moment)


def _quantity(value) -> str | None:
    return None if value is None else decimal_string(value)


def _stored_preview(change: PlanChangeRequest) -> dict[str, Any] | None:
    """The figures kept with the request, in the ``Preview`` shape (null for a request recorded without them)."""
    stored = change.preview or {}
    return stored if {"from_plan", "to_plan", "lines", "new_subtotal"} <= set(stored) else None


def plan_change_document(change: PlanChangeRequest) -> dict[str, Any]:
    """The ``PlanChange`` document of ``change``."""
    return {
        "id": change.public_id,
        "state": change.state,
        "from_plan": plan_json(change.from_version),
        "to_plan": plan_json(change.to_version),
        "timing": change.timing,
        "direction": change.direction,
        "channel": change.channel,
        "needs_approval": change.needs_approval,
        "requested_at": iso_utc(change.requested_at),
        "requested_by": change.requested_by_label,
        "note": change.note,
        "effective_at": _time(change.effective_at),
        "decided_at": _time(change.decided_at),
        "decision_note": change.decision_note or None,
        "applied_at": _time(change.applied_at),
        "preview": _stored_preview(change),
    }


def subscription_document(summary: SubscriptionSummary) -> dict[str, Any]:
    """The ``Subscription`` document of an account that has (or had) a subscription."""
    subscription = summary.subscription
    assert subscription is not None
    version = subscription.plan_version
    currency = version.currency
    term = summary.contract
    manager = summary.account_manager
    return {
        "id": subscription.public_id,
        "account_id": summary.account.public_id,
        "status": subscription.status,
        "plan": {
            **plan_json(version),
            "base_fee": None if version.base_fee is None else money_string(version.base_fee, currency),
            "annual_discount_percent": f"{version.annual_discount_percent:.2f}",
            "currency": currency,
        },
        "trial_end": _time(subscription.trial_end),
        "current_period": {
            "start": iso_utc(subscription.current_period_start),
            "end": iso_utc(subscription.current_period_end),
        },
        "cancel_at": _time(subscription.cancel_at),
        "term": None
        if term is None
        else {
            "contract_id": term.contract.public_id,
            "reference": term.contract.reference or None,
            "start": iso_utc(term.start),
            "end": iso_utc(term.end),
            "months": term.months,
            "auto_renew": term.auto_renew,
            "commitment": None
            if term.commitment_amount is None
            else {
                "amount": money_string(term.commitment_amount, summary.account.currency),
                "period": term.commitment_period,
            },
            "cancellation": term.cancellation,
        },
        "account_manager": None if manager is None else {"name": manager.name, "email": manager.email or None},
        "limits": [
            {
                "metric": terms.code,
                "name": terms.name,
                "unit": terms.unit,
                "included": _quantity(terms.included),
                "limit": _quantity(terms.limit),
                "limit_window": terms.limit_window,
                "pricing_model": terms.pricing_model,
                "unit_price": None if terms.unit_price is None else decimal_string(terms.unit_price),
            }
            for terms in summary.metrics
        ],
        "pending_change": None if summary.open_change is None else plan_change_document(summary.open_change),
    }


# --- Input ----------------------------------------------------------------------------------------------


def _plan_version(account: Account, code: str, number: int | None) -> PlanVersion:
    """The version a request names: a catalogue plan's or the account's own custom plan's (another account's
    custom plan is as unknown as a plan that does not exist); its latest published one unless ``number``."""
    plan = (
        Plan.objects.filter(code=code)
        .filter(Q(kind=Plan.Kind.PUBLIC) | Q(kind=Plan.Kind.CUSTOM, account=account))
        .first()
        if code.isprintable()
        else None
    )
    if plan is None:
        raise BillingError(ERR_UNKNOWN_PLAN.format(plan=quoted(code)), code="unknown_plan", field="plan")
    versions = PlanVersion.objects.filter(plan=plan, published_at__isnull=False).select_related("plan")
    if number is not None:
        version = versions.filter(version=number).first()
        if version is None:
            raise BillingError(
                ERR_UNKNOWN_VERSION.format(plan=plan.name, version=number), code="unknown_version", field="version"
            )
        return version
    # The latest in the account's currency; else the latest (the service then says why it does not fit).
    version = versions.filter(currency=account.currency).order_by("-version").first()
    version = version or versions.order_by("-version").first()
    if version is None:
        raise BillingError(ERR_NO_PUBLISHED_VERSION.format(plan=plan.name), code="unknown_version", field="plan")
    return version


def _valid(serializer: schema.PlanChangeInput) -> dict[str, Any]:
    if not serializer.is_valid():
        raise ValidationError(serializer.errors)
    return serializer.validated_data


# --- Views ----------------------------------------------------------------------------------------------


class SubscriptionApi(APIView):
    permission_classes = READ_PERMISSIONS

    @extend_schema(
        operation_id="subscription_detail",
        summary="The account's subscription: plan, term, limits and pending plan change",
        description=schema.READ_DESCRIPTION,
        parameters=[schema.EXPORT_ACCOUNT],
        responses={
            200: schema.SubscriptionOut,
            400: schema.READ_BAD_REQUEST,
            401: schema.UNAUTHENTICATED,
            403: schema.FORBIDDEN_READ,
            404: schema.READ_NOT_FOUND,
            429: schema.RATE_LIMITED,
        },
        examples=[schema.READ_EXAMPLE],
        tags=["Subscription"],
    )
    def get(self, request):
        account = _account_for(request)
        summary = subscription_summary(account=account, now=clock.now())
        if summary.subscription is None:
            raise BillingError(
                ERR_NO_SUBSCRIPTION.format(account=account.public_id), code="no_subscription", status=404
            )
        return Response(subscription_document(summary))


class SubscriptionChangesApi(APIView):
    permission_classes = WRITE_PERMISSIONS
    parser_classes = [JSONParser]

    InputSerializer = schema.PlanChangeInput

    @extend_schema(
        operation_id="subscription_change",
        summary="Request a plan change",
        description=schema.CHANGE_DESCRIPTION,
        request=InputSerializer,
        parameters=[schema.IDEMPOTENCY_HEADER],
        responses={
            201: schema.PlanChange,
            400: schema.CHANGE_BAD_REQUEST,
            401: schema.UNAUTHENTICATED,
            403: schema.FORBIDDEN_WRITE,
            409: schema.CHANGE_CONFLICT,
            429: schema.RATE_LIMITED,
        },
        examples=schema.CHANGE_EXAMPLES,
        tags=["Subscription"],
    )
    def post(self, request):
        return idempotent(request, lambda: _answered(self, request, lambda: self._request(request)))

    def _request(self, request) -> Response:
        data = _valid(self.InputSerializer(data=request.data))
        api_key: ApiKey = request.auth
        account = api_key.account
        version = _plan_version(account, data["plan"], data.get("version"))
        try:
            change = plan_change_request(
                account=account,
                to_version=version,
                timing=data["timing"],
                actor=api_key,
                channel=PlanChangeRequest.Channel.API,
                note=data["note"],
            )
        except BillingError as exc:
            if exc.field == "plan_version":  # the service's name for it; the API's is ``plan``
                raise BillingError(exc.message, code=exc.code, field="plan", status=exc.status) from exc
            raise
        return Response(plan_change_document(change), status=status.HTTP_201_CREATED)
