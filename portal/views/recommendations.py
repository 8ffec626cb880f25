"""Recommendations: the advice of the account's last re-rating (``insights.recommendations``: its last closed
months re-rated on every plan it could be on), each as a card with its saving a month, what the months cost and
would have cost, the evidence, the months re-rated and when; the limits likely to be outgrown in their own section
("Risks") with the extra cost expected. Every role of the account reads the page; owners and admins (those who may
change the plan, ``portal.views.plan``) also get "Request this plan" on plan and annual-terms advice, which opens
the plan-change request page with that plan chosen.

Opening the page re-rates the account first when its recommendations are stale
(``insights.selectors.recommendations_stale``); if the re-rating fails, the stored ones are shown with a notice
saying so. ``recommendation_cards`` gives the fragment ``portal/_recommendation_cards.html`` the Cost analysis page
also includes (there with the stored recommendations only: that page never re-rates)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.http import HttpRequest
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from billing.quantities import format_metric_quantity
from billing.selectors_subscription import plan_options
from common import clock
from common.errors import BillingError
from common.money import format_money
from insights.models import Recommendation
from insights.selectors import RISKS, recommendations_for, recommendations_stale
from insights.services import recommendations_refresh
from portal.access import portal_view
from portal.views.plan import _can_change

Kind = Recommendation.Kind
# Advice that names a plan the account may ask to move to.
PLAN_KINDS = (Kind.PLAN, Kind.ANNUAL_TERMS)

MSG_REFRESH_FAILED = "We could not re-rate your closed months just now: {reason}"
MSG_SHOWN_FROM = "These are the recommendations of {when}; they are re-rated every night."
MSG_EMPTY = (
    "No recommendations yet. They come from your closed months re-rated on every plan you could be on: "
    "they appear once the account has a live subscription and at least one closed month."
)
MSG_NO_SAVING = "No way to save found: your plan and your usage fit."
MSG_NO_RISK = "No limit of your plan is likely to be outgrown in the next three months."
MSG_ANALYSIS_EMPTY = "No saving found in your closed months."


def _month_span(start: dt.date, end: dt.date) -> str:
    """The months ``[start, end)`` in words: ``Sep 2026 – Nov 2026 (3 months)``."""
    count = (end.year - start.year) * 12 + end.month - start.month
    last = dt.date(end.year - (end.month == 1), 12 if end.month == 1 else end.month - 1, 1)
    span = f"{start:%b %Y}" if count == 1 else f"{start:%b %Y} – {last:%b %Y}"
    return f"{span} ({count} month{'' if count == 1 else 's'})"


def _moment(at: dt.datetime) -> str:
    at = at.astimezone(dt.UTC)
    return f"{at:%b} {at.day}, {at.year} at {at:%H:%M} UTC"


def _card(rec: Recommendation, requestable: set[str]) -> dict[str, Any]:
    currency = rec.currency
    version = rec.plan_version
    request_url = None
    if rec.kind in PLAN_KINDS and version is not None and version.plan.code in requestable:
        request_url = f"{reverse('portal:plan_change')}?{urlencode({'plan': version.plan.code})}"
    return {
        "id": f"recommendation-{rec.pk}",
        "kind": rec.kind,
        "kind_label": rec.get_kind_display(),
        "is_risk": rec.kind in RISKS,
        "title": rec.title,
        "evidence": rec.evidence,
        "saving": format_money(rec.saving_monthly, currency),
        "percent": "" if rec.saving_percent is None else f"{format_metric_quantity(rec.saving_percent, None)} %",
        "current": "" if rec.current_monthly is None else format_money(rec.current_monthly, currency),
        "proposed": "" if rec.proposed_monthly is None else format_money(rec.proposed_monthly, currency),
        "plan_name": version.plan.name if version is not None else "",
        "months": _month_span(rec.months_start, rec.months_end),
        "computed_at": _moment(rec.computed_at),
        "computed_iso": rec.computed_at.astimezone(dt.UTC).isoformat(),
        "request_url": request_url,
    }


def _requestable(request: HttpRequest, rows: Iterable[Recommendation]) -> set[str]:
    """The plan codes the signed-in user may ask to move to among the advice's (none for those who may not change
    the plan): an advised plan the account is already on, or one no longer offered, gets no link."""
    if not _can_change(request) or not any(r.kind in PLAN_KINDS and r.plan_version_id for r in rows):
        return set()
    return {version.plan.code for version in plan_options(account=request.account)}


def recommendation_cards(
    request: HttpRequest,
    rows: list[Recommendation],
    *,
    risks: bool = True,
    all_url: str | None = None,
    notice: str = "",
) -> dict[str, Any]:
    """``{"recommendations": …}`` for ``portal/_recommendation_cards.html``: the advice (and, with ``risks``, the
    risks in a section of their own) as cards. ``all_url`` adds the link to the Recommendations page (the Cost
    analysis page shows a few)."""
    requestable = _requestable(request, rows)
    if risks and not rows:
        return {"recommendations": {"sections": [], "all_url": all_url, "notice": notice, "empty": MSG_EMPTY}}
    sections = [
        {
            "key": "savings",
            "heading": "Ways to save" if risks else "Recommendations",
            "cards": [_card(r, requestable) for r in rows if r.kind not in RISKS],
            "empty": MSG_NO_SAVING if risks else MSG_ANALYSIS_EMPTY,
        }
    ]
    if risks:
        sections.append(
            {
                "key": "risks",
                "heading": "Risks",
                "cards": [_card(r, requestable) for r in rows if r.kind in RISKS],
                "empty": MSG_NO_RISK,
            }
        )
    return {"recommendations": {"sections": sections, "all_url": all_url, "notice": notice, "empty": ""}}


@portal_view
@require_GET
def recommendations_page(request):
    now = clock.now()
    account = request.account
    notice = ""
    if recommendations_stale(account=account, now=now):
        try:
            recommendations_refresh(account=account, now=now)
        except BillingError as exc:
            notice = MSG_REFRESH_FAILED.format(reason=exc.message)
            stored = recommendations_for(account=account).order_by("-computed_at").first()
            if stored is not None:
                notice += " " + MSG_SHOWN_FROM.format(when=_moment(stored.computed_at))
    rows = list(recommendations_for(account=account))
    return render(request, "portal/recommendations.html", recommendation_cards(request, rows, notice=notice))
