"""OpenAPI documentation of the subscription endpoints (``billing.apis_subscription``): the account's subscription
(``GET /v1/subscription``) and a request to change its plan (``POST /v1/subscription/changes``). As in
``billing.schema_ledger``, the views render plain dicts and the serializers here are the documented shape of those
dicts (every field required, nullable ones marked); ``tests/test_openapi_conformance.py`` checks the two against
each other. The request body is the view's own input serializer (``StrictInput``: unknown fields refused)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema_serializer,
)
from rest_framework import serializers

from billing.models import Contract, PlanChangeRequest, PlanCharge, PlanVersion, Subscription
from billing.schema_inputs import ERR_UNKNOWN_FIELD as ERR_UNKNOWN_FIELD
from billing.schema_inputs import StrictInput, enum
from common.money import (
    AMOUNT_MAX_DIGITS,
    CURRENCY_MINOR_UNITS,
    QUANTITY_DECIMAL_PLACES,
    QUANTITY_MAX_DIGITS,
    UNIT_PRICE_DECIMAL_PLACES,
    UNIT_PRICE_MAX_DIGITS,
)
from usage.schema import IDEMPOTENCY_HEADER, Error

__all__ = ["IDEMPOTENCY_HEADER", "Error"]

NOTE_MAX = 2_000
PLAN_CODE_MAX = 63
TIMINGS = list(PlanChangeRequest.Timing.values)


def money(**kwargs) -> serializers.DecimalField:
    """An amount as a decimal string in the account's currency, to its minor unit (``"299.00"``)."""
    return serializers.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS, decimal_places=max(CURRENCY_MINOR_UNITS.values()), **kwargs
    )


def quantity(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=QUANTITY_MAX_DIGITS, decimal_places=QUANTITY_DECIMAL_PLACES, **kwargs)


def price(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(
        max_digits=UNIT_PRICE_MAX_DIGITS, decimal_places=UNIT_PRICE_DECIMAL_PLACES, **kwargs
    )


# --- Request body ---------------------------------------------------------------------------------------


@extend_schema_serializer(component_name="SubscriptionChangeRequest")
class PlanChangeInput(StrictInput):
    """The plan to move to, and when."""

    plan = serializers.CharField(
        max_length=PLAN_CODE_MAX, help_text="The plan's code, e.g. `messaging-business` (as `plan.code` shows it)."
    )
    version = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=2_147_483_647,
        help_text="A published version of the plan; left out, its latest.",
    )
    timing = enum(
        TIMINGS,
        help_text="`now` (both plans prorated on this month's invoice; for a change that waits, from its approval) "
        "or `period_end` (at the end of the billing period: the month, or the paid year of a yearly plan).",
    )
    note = serializers.CharField(
        required=False, allow_blank=True, max_length=NOTE_MAX, default="", help_text="For billing staff."
    )


# --- Documents ------------------------------------------------------------------------------------------


class PlanRef(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    version = serializers.IntegerField(min_value=1)
    interval = enum(PlanVersion.Interval.choices, help_text="month or year: how often the base fee is billed.")


class SubscriptionPlan(PlanRef):
    base_fee = money(
        allow_null=True,
        help_text="Per `interval` (a yearly fee before its annual discount); null for price on request.",
    )
    annual_discount_percent = serializers.DecimalField(
        max_digits=5, decimal_places=2, help_text="Yearly plans: the discount on the yearly base fee, in percent."
    )
    currency = serializers.CharField(help_text="ISO 4217.")


class CurrentPeriod(serializers.Serializer):
    start = serializers.DateTimeField(help_text="Inclusive, UTC.")
    end = serializers.DateTimeField(help_text="Exclusive, UTC.")


class Commitment(serializers.Serializer):
    amount = money(help_text="The committed minimum before tax; a shortfall is billed as a true-up line.")
    period = enum(Contract.CommitmentPeriod.choices, help_text="month, year (contract year) or term.")


class Term(serializers.Serializer):
    contract_id = serializers.CharField(help_text="The contract's id.")
    reference = serializers.CharField(allow_null=True, help_text="The agreement's own reference, e.g. MSA-0142.")
    start = serializers.DateTimeField(help_text="Inclusive, UTC.")
    end = serializers.DateTimeField(help_text="Exclusive, UTC.")
    months = serializers.IntegerField(min_value=1)
    auto_renew = serializers.BooleanField(help_text="At the term's end a new term of the same length starts.")
    commitment = Commitment(allow_null=True, help_text="Null: no committed minimum.")
    cancellation = enum(
        Contract.Cancellation.choices,
        help_text="term_end (a cancellation runs to the term's end) or early_termination (ends when asked, with an "
        "early-termination charge).",
    )


class AccountManagerOut(serializers.Serializer):
    name = serializers.CharField()
    email = serializers.CharField(allow_null=True)


class Limit(serializers.Serializer):
    metric = serializers.CharField(help_text="The metric's code, e.g. `messages`.")
    name = serializers.CharField()
    unit = serializers.CharField(help_text="What one price unit is: per 1, per 1,000, per tenant-month, …")
    included = quantity(allow_null=True, help_text="Included per period at no charge; null: unlimited.")
    limit = quantity(allow_null=True, help_text="The plan's limit; null: none.")
    limit_window = enum(PlanCharge.LimitWindow.choices, help_text="period (per billing period) or hour.")
    pricing_model = enum(
        PlanCharge.PricingModel.choices,
        help_text="included_only (no overage: the limit applies), per_unit, package, graduated or volume.",
    )
    unit_price = price(allow_null=True, help_text="Per-unit pricing: the price per unit beyond the included.")


class PreviewLine(serializers.Serializer):
    kind = serializers.CharField(help_text="base_fee, usage, discount, minimum_commitment, prepaid_credit, …")
    description = serializers.CharField()
    amount = money()
    first_day = serializers.DateField(help_text="The first UTC day the line covers.")
    last_day = serializers.DateField(help_text="The last UTC day the line covers.")


class Preview(serializers.Serializer):
    from_plan = PlanRef()
    to_plan = PlanRef()
    timing = enum(TIMINGS)
    effective_at = serializers.DateTimeField(
        help_text="When the new plan would take over (for `now`: the moment the preview was made)."
    )
    direction = enum(PlanChangeRequest.Direction.choices, help_text="upgrade, downgrade or lateral.")
    needs_approval = serializers.BooleanField()
    currency = serializers.CharField()
    period = CurrentPeriod(help_text="The month the lines are for.")
    lines = PreviewLine(many=True, help_text="That month's lines with the change, as the invoice would show them.")
    current_subtotal = money(help_text="The month before tax as things stand.")
    new_subtotal = money(help_text="The month before tax with the change.")
    difference = money(help_text="`new_subtotal` less `current_subtotal`.")
    overage = serializers.ListField(
        child=serializers.CharField(), help_text="Usage above what the new plan includes, billed as overage."
    )
    refusals = serializers.ListField(
        child=serializers.CharField(), help_text="Why the change cannot be made as things stand; empty: it can."
    )


class PlanChange(serializers.Serializer):
    id = serializers.CharField(help_text="chg_…")
    state = enum(
        PlanChangeRequest.State.choices,
        help_text="pending (waits for billing staff), scheduled (approved, takes effect at `effective_at`), "
        "applied, declined (see `decision_note`) or cancelled (withdrawn).",
    )
    from_plan = PlanRef()
    to_plan = PlanRef()
    timing = enum(TIMINGS)
    direction = enum(PlanChangeRequest.Direction.choices)
    channel = enum(PlanChangeRequest.Channel.choices, help_text="Where it was asked: portal, admin or api.")
    needs_approval = serializers.BooleanField(help_text="Whether it waits (or waited) for billing staff.")
    requested_at = serializers.DateTimeField()
    requested_by = serializers.CharField(help_text="Who asked: a user or an API key.")
    note = serializers.CharField(allow_blank=True)
    effective_at = serializers.DateTimeField(
        allow_null=True,
        help_text="When the new plan takes (or took) over; for `now` still waiting for approval, the moment it was "
        "asked (the moment of approval once approved).",
    )
    decided_at = serializers.DateTimeField(allow_null=True)
    decision_note = serializers.CharField(allow_null=True, help_text="Why it was approved or declined.")
    applied_at = serializers.DateTimeField(allow_null=True)
    preview = Preview(allow_null=True, help_text="The figures when it was requested (or approved).")


class SubscriptionOut(serializers.Serializer):
    id = serializers.CharField(help_text="sub_…")
    account_id = serializers.CharField()
    status = enum(
        Subscription.Status.choices, help_text="trialing, active, past_due or cancelled (the last one ended)."
    )
    plan = SubscriptionPlan()
    trial_end = serializers.DateTimeField(allow_null=True, help_text="End of the free trial; null: no trial.")
    current_period = CurrentPeriod()
    cancel_at = serializers.DateTimeField(
        allow_null=True, help_text="Cancellation requested: the subscription ends then; null: it runs on."
    )
    term = Term(allow_null=True, help_text="The contract in force; null: none.")
    account_manager = AccountManagerOut(allow_null=True, help_text="The contract's account manager; null: none.")
    limits = Limit(many=True, help_text="Per metric: included quantity, limit and overage price.")
    pending_change = PlanChange(allow_null=True, help_text="The change waiting for approval or for its moment.")


# --- Parameters and answers -----------------------------------------------------------------------------

EXPORT_ACCOUNT = OpenApiParameter(
    "account", OpenApiTypes.STR, description="Export keys only (and required for them): the account, acc_…."
)
UNAUTHENTICATED = OpenApiResponse(Error, description="No or invalid API key.")
RATE_LIMITED = OpenApiResponse(Error, description="Rate limit exceeded; see Retry-After.")
FORBIDDEN_READ = OpenApiResponse(
    Error,
    description="A key without the read, subscription or export scope, or a key pinned to one tenant (the "
    "subscription is the account's).",
)
FORBIDDEN_WRITE = OpenApiResponse(
    Error, description="A key without the subscription scope, or a key pinned to one tenant."
)
READ_BAD_REQUEST = OpenApiResponse(Error, description="An export key without `?account=`.")
READ_NOT_FOUND = OpenApiResponse(
    Error, description="`no_subscription`: the account never subscribed; an export key naming an unknown account."
)
CHANGE_BAD_REQUEST = OpenApiResponse(
    Error,
    description="Invalid input, each problem naming its `field` and `code`: `plan` (`unknown_plan`, or a plan the "
    "account cannot move to: `change_not_allowed` with the reason, e.g. usage the plan does not fit), `version` "
    "(`unknown_version`), `timing` (`invalid_choice`), an unknown field (`unknown_field`); a body that is not JSON; "
    "an invalid Idempotency-Key.",
)
CHANGE_CONFLICT = OpenApiResponse(
    Error,
    description="`change_pending`: another change waits (withdraw it, or wait for it); `cancellation_pending`: the "
    "subscription is set to end; `no_subscription`: nothing live to change; or the Idempotency-Key was used with "
    "another body, or its first request is still running (retry after Retry-After).",
)

READ_DESCRIPTION = """
The account's subscription: its status, the plan (code, name, version, billing interval, base fee), the trial's
end, the current billing period, a pending cancellation (`cancel_at`), the contract in force (`term`) and its
account manager, what the plan includes and limits per metric (`limits`), and the plan change waiting for approval
or for its moment (`pending_change`). The live subscription, else the last one that ended.

A `read` or `subscription` key reads its own account; an `export` key names the account with `?account=acc_…`.
A key pinned to a tenant is refused: the subscription is the account's.
"""

CHANGE_DESCRIPTION = """
Ask to move the account to another plan: one of the catalogue's plans of the same product and currency, or the
account's own custom plan, by its `plan` code (its latest published `version` unless one is named), `now`
(prorated on this month's invoice) or at the `period_end`. The rules are the portal's: a change that the
account's usage this month does not fit (e.g. more master partners than the new plan allows) is refused with the
reason; usage above what the new plan includes is billed as overage (`preview.overage`). Downgrades, changes of
contract and, unless configured otherwise, upgrades wait for billing staff (`state` `pending`); an upgrade that
need not wait is applied (`now`) or scheduled (`period_end`) at once. The billing contacts are e-mailed at every
step. One change at a time: while one waits, another is a `409` `change_pending`.

Needs a key with the `subscription` scope, not pinned to a tenant. `Idempotency-Key` is honoured: a retry
replays the answer (`201`, or the refusal).
"""

_PLAN_BUSINESS = {"code": "messaging-business", "name": "Business", "version": 1, "interval": "month"}
_PLAN_STARTUP = {"code": "messaging-startup", "name": "Startup", "version": 1, "interval": "month"}

_PREVIEW_EXAMPLE = {
    "from_plan": _PLAN_STARTUP,
    "to_plan": _PLAN_BUSINESS,
    "timing": "now",
    "effective_at": "2026-11-16T00:00:00Z",
    "direction": "upgrade",
    "needs_approval": True,
    "currency": "USD",
    "period": {"start": "2026-11-01T00:00:00Z", "end": "2026-12-01T00:00:00Z"},
    "lines": [
        {
            "kind": "base_fee",
            "description": "Startup base fee (Nov 1–Nov 15)",
            "amount": "49.50",
            "first_day": "2026-11-01",
            "last_day": "2026-11-15",
        },
        {
            "kind": "base_fee",
            "description": "Business base fee (Nov 16–Nov 30)",
            "amount": "149.50",
            "first_day": "2026-11-16",
            "last_day": "2026-11-30",
        },
    ],
    "current_subtotal": "99.00",
    "new_subtotal": "199.00",
    "difference": "100.00",
    "overage": [],
    "refusals": [],
}

_CHANGE_EXAMPLE = {
    "id": "chg_000001",
    "state": "pending",
    "from_plan": _PLAN_STARTUP,
    "to_plan": _PLAN_BUSINESS,
    "timing": "now",
    "direction": "upgrade",
    "channel": "api",
    "needs_approval": True,
    "requested_at": "2026-11-16T00:00:00Z",
    "requested_by": "API key ll_3f9a2c1b7d4e… (ops)",
    "note": "We are adding tenants.",
    "effective_at": "2026-11-16T00:00:00Z",
    "decided_at": None,
    "decision_note": None,
    "applied_at": None,
    "preview": _PREVIEW_EXAMPLE,
}

READ_EXAMPLE = OpenApiExample(
    "Startup, an upgrade waiting",
    response_only=True,
    value={
        "id": "sub_000001",
        "account_id": "acc_000001",
        "status": "active",
        "plan": {**_PLAN_STARTUP, "base_fee": "99.00", "annual_discount_percent": "0.00", "currency": "USD"},
        "trial_end": "2026-01-15T00:00:00Z",
        "current_period": {"start": "2026-11-01T00:00:00Z", "end": "2026-12-01T00:00:00Z"},
        "cancel_at": None,
        "term": None,
        "account_manager": None,
        "limits": [
            {
                "metric": "messages",
                "name": "Messages",
                "unit": "per 1",
                "included": "5000",
                "limit": "5000",
                "limit_window": "period",
                "pricing_model": "per_unit",
                "unit_price": "0.05",
            },
            {
                "metric": "master_partners",
                "name": "Master partners",
                "unit": "per partner-month",
                "included": None,
                "limit": "10",
                "limit_window": "period",
                "pricing_model": "included_only",
                "unit_price": None,
            },
        ],
        "pending_change": _CHANGE_EXAMPLE,
    },
)

CHANGE_EXAMPLES = [
    OpenApiExample(
        "An upgrade now",
        request_only=True,
        value={"plan": "messaging-enterprise", "timing": "now", "note": "We are adding tenants."},
    ),
    OpenApiExample(
        "A change at the period's end",
        request_only=True,
        value={"plan": "messaging-startup", "version": 1, "timing": "period_end"},
    ),
    OpenApiExample("Waiting for approval", response_only=True, value=_CHANGE_EXAMPLE),
]
