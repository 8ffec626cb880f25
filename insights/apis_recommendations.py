"""``GET /v1/billing/recommendations``: the account's recommendations of its last re-rating (its last closed
months re-rated on every plan it could be on), each with its evidence and its monthly saving. Read-only. A
``read`` key reads its own account; an ``export`` key names the account with ``?account=acc_…`` (one of
``export_readable_accounts``). A key pinned to a tenant reads none. The serializers below are the documented
shape of the answer (``tests/test_openapi_conformance.py`` checks the schema against them)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import HasReadOrExportScope, export_dataset_permission
from billing import schema_ledger
from billing.apis import account_of_request
from billing.apis_ledger import IsAccountWideKey
from common.formats import iso_utc, money_string
from common.money import AMOUNT_MAX_DIGITS, CURRENCY_MINOR_UNITS
from insights.models import Recommendation
from insights.selectors import recommendations_for

PERMISSIONS = [HasReadOrExportScope, IsAccountWideKey, export_dataset_permission(None)]


def _money(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS, decimal_places=max(CURRENCY_MINOR_UNITS.values()), coerce_to_string=True, **kwargs
    )


class PlanOut(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    version = serializers.IntegerField()
    interval = serializers.ChoiceField(choices=["month", "year"])


class RecommendationOut(serializers.Serializer):
    kind = serializers.ChoiceField(choices=Recommendation.Kind.values)
    title = serializers.CharField()
    evidence = serializers.CharField()
    currency = serializers.CharField()
    current_monthly = _money(allow_null=True, help_text="The months re-rated, a month, on the account's own terms.")
    proposed_monthly = _money(allow_null=True, help_text="The same months, a month, with the advice followed.")
    saving_monthly = _money(help_text="current − proposed a month; for an outgrow risk, the extra cost expected.")
    saving_percent = serializers.DecimalField(max_digits=6, decimal_places=2, allow_null=True, coerce_to_string=True)
    plan = PlanOut(allow_null=True, help_text="The plan advised (plan, annual terms, right-sizing, features).")
    tenant = serializers.CharField(allow_null=True, help_text="The idle tenant, ten_…")
    partner = serializers.CharField(allow_null=True, help_text="The idle master partner, prt_…")
    months_start = serializers.DateField(help_text="First month re-rated.")
    months_end = serializers.DateField(help_text="Month after the last one re-rated (exclusive).")
    computed_at = serializers.DateTimeField()
    details = serializers.DictField(help_text="The figures behind the advice, per month.")


class RecommendationsOut(serializers.Serializer):
    account = serializers.CharField()
    recommendations = RecommendationOut(many=True)


def recommendation_document(rec: Recommendation) -> dict:
    version = rec.plan_version
    return {
        "kind": rec.kind,
        "title": rec.title,
        "evidence": rec.evidence,
        "currency": rec.currency,
        "current_monthly": None if rec.current_monthly is None else money_string(rec.current_monthly, rec.currency),
        "proposed_monthly": None if rec.proposed_monthly is None else money_string(rec.proposed_monthly, rec.currency),
        "saving_monthly": money_string(rec.saving_monthly, rec.currency),
        "saving_percent": None if rec.saving_percent is None else f"{rec.saving_percent:.2f}",
        "plan": None
        if version is None
        else {
            "code": version.plan.code,
            "name": version.plan.name,
            "version": version.version,
            "interval": version.billing_interval,
        },
        "tenant": rec.tenant.public_id if rec.tenant else None,
        "partner": rec.partner.public_id if rec.partner else None,
        "months_start": rec.months_start.isoformat(),
        "months_end": rec.months_end.isoformat(),
        "computed_at": iso_utc(rec.computed_at),
        "details": rec.details,
    }


DESCRIPTION = """
The account's recommendations of its last re-rating (nightly, and when its owner opens them in the portal): its
last closed months (up to 12) re-rated by the billing engine on its own terms and on every plan it could be on.
Kinds: `plan` (the cheapest plan of the same billing interval that fits its limits), `annual_terms` (the yearly
terms' further saving; `details.billed_in_advance` is the year's fee), `right_size`, `feature`, `idle_tenant`,
`idle_partner`, and `outgrow_risk` (a limit the trend passes within about three months; its `saving_monthly` is
the extra cost expected). Amounts are before tax, a month; the biggest saving first.
"""

EXAMPLE = OpenApiExample(
    "An Enterprise account that fits Business",
    value={
        "account": "acc_000042",
        "recommendations": [
            {
                "kind": "plan",
                "title": "Move to Business: USD 700.00 a month less (70.07 %)",
                "evidence": "Your usage of Sep 2026 – Nov 2026 (3 months) re-rated by our billing engine: …",
                "currency": "USD",
                "current_monthly": "999.00",
                "proposed_monthly": "299.00",
                "saving_monthly": "700.00",
                "saving_percent": "70.07",
                "plan": {"code": "messaging-business", "name": "Business", "version": 1, "interval": "month"},
                "tenant": None,
                "partner": None,
                "months_start": "2026-09-01",
                "months_end": "2026-12-01",
                "computed_at": "2026-12-07T03:45:00Z",
                "details": {"months": ["2026-09", "2026-10", "2026-11"], "current": ["999.00", "999.00", "999.00"]},
            }
        ],
    },
    response_only=True,
)


class RecommendationsApi(APIView):
    permission_classes = PERMISSIONS

    @extend_schema(
        operation_id="billing_recommendations",
        summary="The account's recommendations: cheaper plans, annual terms, right-sizing, idle tenants, risks",
        description=DESCRIPTION,
        parameters=[schema_ledger.EXPORT_ACCOUNT],
        responses=schema_ledger.account_wide_responses(RecommendationsOut),
        examples=[EXAMPLE],
        tags=["Billing"],
    )
    def get(self, request):
        account = account_of_request(request)
        rows = recommendations_for(account=account)
        return Response({"account": account.public_id, "recommendations": [recommendation_document(r) for r in rows]})
