"""The documented shape of ``GET /v1/billing/analysis`` (``insights.apis_analysis``): its parameters, answer and
errors, for drf-spectacular (``tests/test_openapi_conformance.py`` checks answers against it)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from billing.apis_journal import PeriodOut
from billing.schema_ledger import MONTH_PATTERN
from common.money import AMOUNT_MAX_DIGITS, CURRENCY_MINOR_UNITS, QUANTITY_DECIMAL_PLACES, QUANTITY_MAX_DIGITS
from insights.analysis import MAX_MONTHS, STATUS_LABELS
from usage.schema import Error

FLAGS = ["", "unused", "barely_used"]


def _money(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS, decimal_places=max(CURRENCY_MINOR_UNITS.values()), **kwargs
    )


def _quantity(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=QUANTITY_MAX_DIGITS, decimal_places=QUANTITY_DECIMAL_PLACES, **kwargs)


def _percent(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=12, decimal_places=1, allow_null=True, **kwargs)


class ChargeOut(serializers.Serializer):
    key = serializers.CharField(help_text="The metric's code for usage, the line kind for fees (`base_fee`, …).")
    label = serializers.CharField()
    kind = serializers.ChoiceField(choices=["usage", "fee"])
    quantity = _quantity(allow_null=True, help_text="Billed quantity (usage only).")
    included = _quantity(allow_null=True, help_text="Included in the plan; null: unlimited, or a fee.")
    amount = _money()


class SourceOut(serializers.Serializer):
    id = serializers.CharField(allow_null=True, help_text="ten_… or prt_…; null: no tenant (or no partner).")
    name = serializers.CharField()
    usage = _money(help_text="Its share of the usage charges.")
    total = _money(help_text="Usage plus its share of the other charges; the rows add up to the subtotal.")


class FeatureOut(serializers.Serializer):
    feature = serializers.CharField()
    events = serializers.IntegerField()
    days = serializers.IntegerField(help_text="Distinct UTC days it was used on.")
    tenants = serializers.IntegerField()
    paid = serializers.BooleanField(help_text="Paid for: beyond the plan's included features.")
    cost = _money()
    months_paid = serializers.IntegerField(required=False, help_text="Range figures only.")


class UnitCostOut(serializers.Serializer):
    metric = serializers.CharField()
    label = serializers.CharField(help_text="`per message`, `per 1,000 API requests`, `per active user`.")
    quantity = _quantity()
    amount = _money(help_text="The metric's own charges.")
    metric_cost = serializers.DecimalField(max_digits=24, decimal_places=4, help_text="amount ÷ quantity × per.")
    all_in = serializers.DecimalField(max_digits=24, decimal_places=4, help_text="subtotal ÷ quantity × per.")


class MoveOut(serializers.Serializer):
    id = serializers.CharField(allow_null=True)
    name = serializers.CharField()
    delta = _money()


class ChargeMoveOut(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    delta = _money()
    tenant = MoveOut(allow_null=True, help_text="The tenant whose share of the charge moved most (usage only).")


class ChangeOut(serializers.Serializer):
    previous_month = serializers.CharField(help_text="YYYY-MM.")
    previous_subtotal = _money()
    delta = _money()
    percent = _percent()
    explanation = serializers.CharField()
    charges = ChargeMoveOut(many=True)
    tenants = MoveOut(many=True)


class TotalsOut(serializers.Serializer):
    subtotal = _money(help_text="Invoiced cost before tax: what the analysis adds up.")
    tax = _money()
    total = _money()
    credited = _money(help_text="Credit notes issued against the months' invoices, before tax.")
    net = _money(help_text="subtotal − credited.")


class MonthOut(TotalsOut):
    month = serializers.CharField(help_text="YYYY-MM.")
    period = PeriodOut()
    status = serializers.ChoiceField(choices=list(STATUS_LABELS))
    invoice = serializers.CharField(allow_null=True)
    charges = ChargeOut(many=True)
    tenants = SourceOut(many=True)
    partners = SourceOut(many=True)
    features = FeatureOut(many=True)
    unit_costs = UnitCostOut(many=True)
    change = ChangeOut(allow_null=True, help_text="Against the month before; null when it has no invoice.")


class RangeOut(TotalsOut):
    charges = ChargeOut(many=True)
    tenants = SourceOut(many=True)
    partners = SourceOut(many=True)
    features = FeatureOut(many=True)
    unit_costs = UnitCostOut(many=True)


class AllowanceOut(serializers.Serializer):
    metric = serializers.CharField()
    label = serializers.CharField()
    used = _quantity()
    included = _quantity()
    percent = _percent()
    over = _quantity()
    amount = _money()


class IdleOut(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["tenant", "partner"])
    id = serializers.CharField()
    name = serializers.CharField()
    last_usage_at = serializers.DateTimeField(allow_null=True)
    idle_since = serializers.DateTimeField(help_text="Its last usage, or its activation without any.")
    idle_days = serializers.IntegerField()
    monthly_cost = _money(help_text="Its share of the running month's usage charges.")
    billed_as = serializers.ListField(child=serializers.CharField(), help_text="The charges it is counted in.")


class FeatureUseOut(serializers.Serializer):
    feature = serializers.CharField()
    events = serializers.IntegerField()
    days = serializers.IntegerField()
    paid = serializers.BooleanField()
    cost = _money()
    flag = serializers.ChoiceField(choices=FLAGS)
    reason = serializers.CharField()


class StorageOut(serializers.Serializer):
    month = serializers.CharField()
    average_gb = serializers.DecimalField(max_digits=24, decimal_places=2, allow_null=True)
    growth_percent = _percent()


class OverageOut(serializers.Serializer):
    overage = _money()
    subtotal = _money()
    percent = _percent()


class EfficiencyOut(serializers.Serializer):
    month = serializers.CharField(help_text="The range's last month, YYYY-MM.")
    status = serializers.ChoiceField(choices=list(STATUS_LABELS))
    allowances = AllowanceOut(many=True)
    idle_days = serializers.IntegerField(help_text="Idle: no usage for at least this many days.")
    idle = IdleOut(many=True)
    features = FeatureUseOut(many=True)
    storage = StorageOut(many=True)
    overage = OverageOut()


class AnalysisOut(serializers.Serializer):
    account_id = serializers.CharField()
    currency = serializers.CharField()
    start = serializers.CharField(help_text="`from`, YYYY-MM.")
    end = serializers.CharField(help_text="`to`, YYYY-MM.")
    includes_estimate = serializers.BooleanField(help_text="The running month is in the range, as an estimate.")
    totals = TotalsOut()
    months = MonthOut(many=True)
    range = RangeOut()
    efficiency = EfficiencyOut()


MONTH_PARAMETERS = [
    OpenApiParameter(
        "from",
        OpenApiTypes.STR,
        pattern=MONTH_PATTERN,
        description="First month, YYYY-MM (default: three months before `to`).",
    ),
    OpenApiParameter(
        "to",
        OpenApiTypes.STR,
        pattern=MONTH_PATTERN,
        description=f"Last month, YYYY-MM, included (default: the running month). At most {MAX_MONTHS} months.",
    ),
    OpenApiParameter(
        "account",
        OpenApiTypes.STR,
        description="Export keys: the account, acc_… (required). Read keys: their own account, if given.",
    ),
]

BAD_REQUEST = OpenApiResponse(
    Error,
    description="`from` or `to` not a month (YYYY-MM), `to` before `from`, after the running month or more than "
    f"{MAX_MONTHS} months after `from` (`field` names it); or an export key without `?account=`.",
)
NOT_FOUND = OpenApiResponse(
    Error, description="Another account than the read key's, or an account the export key may not read."
)

DESCRIPTION = f"""
The account's cost for every month from `from` to `to` (both included) and for the range: per charge (each
metric's usage and the fees), per tenant, per master partner and per premium feature (events, days used,
whether paid for and what it cost), unit costs (per message, per 1,000 API requests, per active user, where the
metric is billed), and each month's change from the month before explained (the charges and tenants that
moved most, and a sentence saying so).

Closed months are their invoices (`invoiced`, or `draft` while under review), read as issued; the running month
is an estimate (`estimate`); an earlier month without an invoice is `not_invoiced`. Figures are **invoiced cost
before tax** (`subtotal`), with `tax`, `total`, the credit notes issued against the months' invoices
(`credited`) and `net` (`subtotal − credited`) beside them. Tenants' and partners' shares add up to each
month's subtotal to the cent (usage by each invoice line's breakdown, other charges in proportion to usage,
largest remainder).

`efficiency` is the last month's allowance use, paid premium features flagged when `unused` or `barely_used`
(used on at most 2 days), the overage share of the bill, storage growth month over month over the range, and
the tenants and master partners idle (no usage for 30 days) but still live, with what they cost a month.

At most {MAX_MONTHS} months. A `read` key reads its own account; an `export` key names the account with
`?account=acc_…`. Amounts are decimal strings in `currency`.
"""
