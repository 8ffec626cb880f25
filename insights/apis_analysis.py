"""``GET /v1/billing/analysis``: the cost analysis (``insights.analysis``) and the efficiency metrics
(``insights.efficiency``) of a range of months, read-only. A ``read`` key reads its own account (naming another
with ``?account=`` is a 404); an ``export`` key reads the account ``?account=`` names, if it may export it. A key
pinned to a tenant reads nothing here (the figures are the account's money). The shape is
``insights.schema_analysis``."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import schema_ledger
from billing.apis import account_of_request
from billing.apis_ledger import LEDGER_PERMISSIONS
from common import clock
from common.errors import BillingError
from common.formats import decimal_string, iso_utc, money_string
from common.periods import month_containing
from insights import schema_analysis as schema
from insights.analysis import (
    ChargeCost,
    CostAnalysis,
    FeatureCost,
    MonthChange,
    MonthCost,
    SourceCost,
    UnitCost,
    add_months,
    cost_analysis,
    range_error,
)
from insights.efficiency import Efficiency, efficiency

ERR_MONTH = "Give the month as YYYY-MM."
DEFAULT_CLOSED_MONTHS = 3


def parse_month_value(value: str | None, field: str) -> dt.date | None:
    """``2026-10`` → 1 October 2026; None when absent; a 400 naming ``field`` when not a month."""
    if value is None or value == "":
        return None
    if not re.fullmatch(schema_ledger.MONTH_PATTERN, value) or not 2000 <= int(value[:4]) <= 9998:
        raise BillingError(ERR_MONTH, code="invalid", field=field)
    return dt.date(int(value[:4]), int(value[5:7]), 1)


def default_range(now: dt.datetime) -> tuple[dt.date, dt.date]:
    """The last three closed months and the running month."""
    running = month_containing(now).start.date()
    return add_months(running, -DEFAULT_CLOSED_MONTHS), running


def _q(value: Decimal | None) -> str | None:
    return None if value is None else decimal_string(value)


def _pct(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _charge(c: ChargeCost, currency: str) -> dict:
    return {
        "key": c.key,
        "label": c.label,
        "kind": "usage" if c.is_usage else "fee",
        "quantity": _q(c.quantity),
        "included": _q(c.included),
        "amount": money_string(c.amount, currency),
    }


def _source(s: SourceCost, currency: str) -> dict:
    return {
        "id": s.public_id or None,
        "name": s.name,
        "usage": money_string(s.usage, currency),
        "total": money_string(s.total, currency),
    }


def _feature(f: FeatureCost, currency: str, *, range_figures: bool = False) -> dict:
    row = {
        "feature": f.feature,
        "events": f.events,
        "days": f.days,
        "tenants": f.tenants,
        "paid": f.paid,
        "cost": money_string(f.cost, currency),
    }
    if range_figures:
        row["months_paid"] = f.months_paid
    return row


def _unit(u: UnitCost, currency: str) -> dict:
    return {
        "metric": u.metric_code,
        "label": u.label,
        "quantity": decimal_string(u.quantity),
        "amount": money_string(u.amount, currency),
        "metric_cost": format(u.metric_cost, "f"),
        "all_in": format(u.all_in, "f"),
    }


def _change(c: MonthChange | None, currency: str) -> dict | None:
    if c is None:
        return None
    return {
        "previous_month": f"{c.previous_month:%Y-%m}",
        "previous_subtotal": money_string(c.previous_subtotal, currency),
        "delta": money_string(c.delta, currency),
        "percent": _pct(c.percent),
        "explanation": c.explanation,
        "charges": [
            {
                "key": m.key,
                "label": m.label,
                "delta": money_string(m.delta, currency),
                "tenant": None
                if m.tenant is None
                else {
                    "id": m.tenant.key or None,
                    "name": m.tenant.label,
                    "delta": money_string(m.tenant.delta, currency),
                },
            }
            for m in c.charges
        ],
        "tenants": [
            {"id": m.key or None, "name": m.label, "delta": money_string(m.delta, currency)} for m in c.tenants
        ],
    }


def _totals(x: MonthCost | CostAnalysis, currency: str) -> dict:
    return {
        "subtotal": money_string(x.subtotal, currency),
        "tax": money_string(x.tax, currency),
        "total": money_string(x.total, currency),
        "credited": money_string(x.credited, currency),
        "net": money_string(x.net, currency),
    }


def _month(m: MonthCost) -> dict:
    c = m.currency
    return {
        "month": f"{m.month:%Y-%m}",
        "period": {"start": iso_utc(m.period.start), "end": iso_utc(m.period.end)},
        "status": m.status,
        "invoice": m.invoice_number,
        **_totals(m, c),
        "charges": [_charge(x, c) for x in m.charges],
        "tenants": [_source(x, c) for x in m.tenants],
        "partners": [_source(x, c) for x in m.partners],
        "features": [_feature(x, c) for x in m.features],
        "unit_costs": [_unit(x, c) for x in m.unit_costs],
        "change": _change(m.change, c),
    }


def efficiency_document(e: Efficiency) -> dict:
    c = e.currency
    return {
        "month": f"{e.month:%Y-%m}",
        "status": e.status,
        "allowances": [
            {
                "metric": a.metric_code,
                "label": a.label,
                "used": decimal_string(a.used),
                "included": decimal_string(a.included),
                "percent": _pct(a.percent),
                "over": decimal_string(a.over),
                "amount": money_string(a.amount, c),
            }
            for a in e.allowances
        ],
        "idle_days": e.idle_days,
        "idle": [
            {
                "kind": s.kind,
                "id": s.public_id,
                "name": s.name,
                "last_usage_at": iso_utc(s.last_usage_at) if s.last_usage_at else None,
                "idle_since": iso_utc(s.idle_since),
                "idle_days": s.idle_days,
                "monthly_cost": money_string(s.monthly_cost, c),
                "billed_as": s.billed_as,
            }
            for s in e.idle
        ],
        "features": [
            {
                "feature": f.feature,
                "events": f.events,
                "days": f.days,
                "paid": f.paid,
                "cost": money_string(f.cost, c),
                "flag": f.flag,
                "reason": f.reason,
            }
            for f in e.features
        ],
        "storage": [
            {
                "month": f"{s.month:%Y-%m}",
                "average_gb": None if s.average_gb is None else format(s.average_gb, "f"),
                "growth_percent": _pct(s.growth_percent),
            }
            for s in e.storage
        ],
        "overage": {
            "overage": money_string(e.overage.overage, c),
            "subtotal": money_string(e.overage.subtotal, c),
            "percent": _pct(e.overage.percent),
        },
    }


def analysis_document(analysis: CostAnalysis, eff: Efficiency) -> dict:
    c = analysis.currency
    return {
        "account_id": analysis.account.public_id,
        "currency": c,
        "start": f"{analysis.start_month:%Y-%m}",
        "end": f"{analysis.end_month:%Y-%m}",
        "includes_estimate": analysis.includes_estimate,
        "totals": _totals(analysis, c),
        "months": [_month(m) for m in analysis.months],
        "range": {
            **_totals(analysis, c),
            "charges": [_charge(x, c) for x in analysis.charges],
            "tenants": [_source(x, c) for x in analysis.tenants],
            "partners": [_source(x, c) for x in analysis.partners],
            "features": [_feature(x, c, range_figures=True) for x in analysis.features],
            "unit_costs": [_unit(x, c) for x in analysis.unit_costs],
        },
        "efficiency": efficiency_document(eff),
    }


def requested_range(query, now: dt.datetime) -> tuple[dt.date, dt.date]:
    """``from`` and ``to`` of ``query`` (defaults: ``default_range``), checked; a 400 naming the field."""
    start = parse_month_value(query.get("from"), "from")
    end = parse_month_value(query.get("to"), "to")
    default_start, default_end = default_range(now)
    if end is None:
        end = default_end if start is None or start <= default_end else start
    if start is None:
        start = min(add_months(end, -DEFAULT_CLOSED_MONTHS), end)
    problem = range_error(start_month=start, end_month=end, now=now)
    if problem is not None:
        raise BillingError(problem[1], code="invalid_range", field=problem[0])
    return start, end


class AnalysisApi(APIView):
    permission_classes = LEDGER_PERMISSIONS

    @extend_schema(
        operation_id="billing_analysis",
        summary="Cost analysis and efficiency metrics of a range of months",
        description=schema.DESCRIPTION,
        parameters=schema.MONTH_PARAMETERS,
        responses={
            200: schema.AnalysisOut,
            400: schema.BAD_REQUEST,
            401: schema_ledger.UNAUTHENTICATED,
            403: schema_ledger.FORBIDDEN,
            404: schema.NOT_FOUND,
            429: schema_ledger.RATE_LIMITED,
        },
        tags=["Billing"],
    )
    def get(self, request):
        now = clock.now()
        start, end = requested_range(request.query_params, now)
        account = account_of_request(request)
        analysis = cost_analysis(account=account, start_month=start, end_month=end, now=now)
        return Response(analysis_document(analysis, efficiency(account=account, analysis=analysis, now=now)))
