"""The customer's plan: what the account is on (fees, limits and included quantities, trial, period, pending
cancellation, contract term, account manager), the plans it may move to with what its own usage of the last
three closed months would have cost on each, and asking for a change (previewed first) or withdrawing one.

Everyone on the account reads the Plan page; owners and admins preview, request and withdraw changes (others get
a 403 with the reason). The figures are the rating engine's (``billing.selectors_subscription``,
``billing.services.plan_changes``), never worked out here; the rules (which plan, whether the usage fits,
whether the change waits for billing staff) are the service's, and its refusals come back on the form (400, or
409 when another change is open or a cancellation is pending), never as a server error. Another account's change
is a 404.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.http import HttpRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import AccountUser
from billing.models import Contract, PlanChangeRequest, PlanCharge, PlanVersion
from billing.selectors_subscription import (
    MetricTerms,
    SubscriptionSummary,
    plan_costs,
    plan_options,
    subscription_summary,
)
from billing.services.plan_changes import ChangePreview, plan_change_cancel, plan_change_preview, plan_change_request
from common import clock
from common.errors import BillingError
from common.money import format_money, format_quantity
from portal.access import portal_view
from portal.forms_plan import PlanChangeForm, WithdrawChangeForm
from usage.models import Metric

Role = AccountUser.Role
# Who may ask for a plan change and withdraw one (billing users and members read the Plan page).
CHANGE_PLAN = (Role.OWNER, Role.ADMIN)
State = PlanChangeRequest.State
PER_ONE = Metric.BillingUnit.PER_UNIT.label  # "per 1": a price each

MSG_WAITING = "Plan change {change} requested: {from_plan} → {to_plan}. Waiting for approval by our billing team."
MSG_APPLIED = "Your plan is now {plan}."
MSG_SCHEDULED = "Scheduled for {date}: your plan becomes {plan} then."
MSG_WITHDRAWN = "Plan change {change} withdrawn: your plan stays {plan}."
ERR_NO_SUBSCRIPTION = "The account has no live subscription to change. Contact us to subscribe again."


def _day(moment: dt.datetime | dt.date) -> str:
    return f"{moment:%b} {moment.day}, {moment.year}"


def _can_change(request: HttpRequest) -> bool:
    return request.membership.role in CHANGE_PLAN


def _limit_rows(metrics: list[MetricTerms], currency: str) -> list[dict[str, str]]:
    """Each metric's included quantity, limit and overage price, in words."""
    rows = []
    for terms in metrics:
        included = "Unlimited" if terms.included is None else format_quantity(terms.included)
        limit = "None" if terms.limit is None else format_quantity(terms.limit)
        if terms.limit is not None and terms.limit_window == PlanCharge.LimitWindow.HOUR:
            limit += " per hour"
        if not terms.charges_overage:
            overage = "Not available: the limit applies" if terms.limit is not None else "–"
        elif terms.unit_price is not None:
            price = format_money(terms.unit_price, currency, unit_price=True)
            overage = f"{price} each" if terms.unit == PER_ONE else f"{price} {terms.unit}"
        else:
            overage = "Tiered prices (see the plan's terms)"
        rows.append({"code": terms.code, "name": terms.name, "included": included, "limit": limit, "overage": overage})
    return rows


def _contract_rows(summary: SubscriptionSummary) -> dict[str, Any] | None:
    term = summary.contract
    if term is None:
        return None
    currency = summary.account.currency
    commitment = ""
    if term.commitment_amount is not None:
        period = Contract.CommitmentPeriod(term.commitment_period).label.lower()
        commitment = f"{format_money(term.commitment_amount, currency)} {period}, before tax"
    return {
        "reference": term.contract.reference,
        "term": f"{_day(term.start)} – {_day(term.last_day)} ({term.months} months)",
        "auto_renew": term.auto_renew,
        "commitment": commitment,
        "cancellation": Contract.Cancellation(term.cancellation).label,
    }


def _cost_row(cost, currency: str, can_change: bool) -> dict[str, Any]:
    version: PlanVersion = cost.version
    difference = ""
    if cost.difference is not None:
        sign = "+" if cost.difference > 0 else ("−" if cost.difference < 0 else "±")
        difference = f"{sign}{format_money(abs(cost.difference), currency)}"
    return {
        "code": version.plan.code,
        "name": version.plan.name,
        "version": version,
        "is_current": cost.is_current,
        "is_custom": version.plan.account_id is not None,
        "base_fee": _base_fee(version),
        "months": [format_money(month.amount, currency) for month in cost.months],
        "average": "" if cost.average is None else format_money(cost.average, currency),
        "difference": difference,
        "cheaper": cost.difference is not None and cost.difference < 0,
        "yearly_fee": "" if cost.yearly_fee is None else format_money(cost.yearly_fee, currency),
        "can_change": can_change and not cost.is_current,
    }


def _base_fee(version: PlanVersion) -> str:
    if version.base_fee is None:
        return "Price on request"
    per = "a year" if version.billing_interval == PlanVersion.Interval.YEAR else "a month"
    fee = f"{format_money(version.base_fee, version.currency)} {per}"
    if version.billing_interval == PlanVersion.Interval.YEAR and version.annual_discount_percent:
        fee += f", less {version.annual_discount_percent.normalize():f} %"
    return fee


def _change_words(change: PlanChangeRequest) -> str:
    """Where an open request stands, in a sentence."""
    to_plan = change.to_version.plan.name
    if change.state == State.PENDING:
        when = "at once" if change.timing == PlanChangeRequest.Timing.NOW else "at the end of the billing period"
        return f"Waiting for approval by our billing team; once approved, the move to {to_plan} takes effect {when}."
    assert change.effective_at is not None
    return f"Approved: your plan becomes {to_plan} on {_day(change.effective_at)}."


@portal_view
@require_GET
def plan_page(request):
    now = clock.now()
    account = request.account
    summary = subscription_summary(account=account, now=now)
    costs = plan_costs(account=account, now=now)
    currency = account.currency
    can_change = _can_change(request) and summary.is_live and summary.open_change is None
    version = summary.version
    context: dict[str, Any] = {
        "summary": summary,
        "subscription": summary.subscription,
        "version": version,
        "base_fee": _base_fee(version) if version is not None else "",
        "limits": _limit_rows(summary.metrics, currency),
        "contract": _contract_rows(summary),
        "manager": summary.account_manager,
        "period_last_day": summary.current_period.last_day if summary.current_period else None,
        "periods": costs.periods,
        "current_cost": _cost_row(costs.current, currency, False) if costs.current else None,
        "options": [_cost_row(cost, currency, can_change) for cost in costs.options],
        "may_change": _can_change(request),
        "open_change": summary.open_change,
        "open_change_words": _change_words(summary.open_change) if summary.open_change else "",
        "withdraw_form": WithdrawChangeForm() if summary.open_change and _can_change(request) else None,
    }
    return render(request, "portal/plan.html", context)


def _preview_rows(preview: ChangePreview) -> dict[str, Any]:
    currency = preview.currency
    return {
        "preview": preview,
        "lines": [
            {
                "description": line.description,
                "first_day": line.first_day,
                "last_day": line.last_day,
                "amount": format_money(line.amount, currency),
            }
            for line in preview.lines
        ],
        "current_subtotal": format_money(preview.current_subtotal, currency),
        "new_subtotal": format_money(preview.new_subtotal, currency),
        "difference": _signed(preview.difference, currency),
        "effective_day": _day(preview.effective_at),
        "month": f"{preview.period.start:%B %Y}",
    }


def _signed(amount: Decimal, currency: str) -> str:
    sign = "+" if amount > 0 else ("−" if amount < 0 else "±")
    return f"{sign}{format_money(abs(amount), currency)}"


def _requested_message(change: PlanChangeRequest) -> str:
    to_plan = change.to_version.plan.name
    if change.state == State.APPLIED:
        return MSG_APPLIED.format(plan=to_plan)
    if change.state == State.SCHEDULED:
        assert change.effective_at is not None
        return MSG_SCHEDULED.format(date=_day(change.effective_at), plan=to_plan)
    return MSG_WAITING.format(change=change.public_id, from_plan=change.from_version.plan.name, to_plan=to_plan)


@portal_view(roles=CHANGE_PLAN)
@require_http_methods(["GET", "POST"])
def plan_change(request):
    now = clock.now()
    account = request.account
    summary = subscription_summary(account=account, now=now)
    context: dict[str, Any] = {"summary": summary, "open_change": summary.open_change}
    if not summary.is_live:
        context["refused"] = [ERR_NO_SUBSCRIPTION]
        return render(request, "portal/plan_change.html", context, status=409 if request.method == "POST" else 200)
    subscription = summary.subscription
    assert subscription is not None
    options = plan_options(account=account)
    data = request.POST if request.method == "POST" else None
    if request.method == "GET" and "plan" in request.GET:
        data = request.GET.copy()  # a plan chosen on the Plan page: previewed for a change now unless told
        data.setdefault("timing", PlanChangeRequest.Timing.NOW)
    form = PlanChangeForm(data, options=options, initial={"timing": PlanChangeRequest.Timing.NOW})
    status = 200
    preview = None
    if form.is_bound and form.is_valid():
        version = form.version
        assert version is not None
        try:
            preview = plan_change_preview(
                subscription=subscription, to_version=version, timing=form.cleaned_data["timing"], now=now
            )
        except BillingError as exc:
            form.add_service_error(exc)
            status = 409 if exc.status == 409 else 400
        if request.method == "POST" and preview is not None:
            try:
                change = plan_change_request(
                    account=account,
                    to_version=version,
                    timing=form.cleaned_data["timing"],
                    actor=request.user,
                    channel=PlanChangeRequest.Channel.PORTAL,
                    note=form.cleaned_data["note"],
                    now=now,
                )
            except BillingError as exc:
                form.add_service_error(exc)
                status = 409 if exc.status == 409 else 400
            else:
                messages.success(request, _requested_message(change))
                return redirect("portal:plan")
    elif form.is_bound:
        status = 400
    context.update(
        {
            "form": form,
            "subscription": subscription,
            "version": subscription.plan_version,
            "options": options,
        }
    )
    if preview is not None:
        context.update(_preview_rows(preview))
    return render(request, "portal/plan_change.html", context, status=status)


@portal_view(roles=CHANGE_PLAN)
@require_POST
def plan_change_withdraw(request, public_id):
    change = get_object_or_404(
        PlanChangeRequest.objects.select_related("from_version__plan", "to_version__plan"),
        account=request.account,
        public_id=public_id,
    )
    try:
        plan_change_cancel(change=change, actor=request.user)
    except BillingError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, MSG_WITHDRAWN.format(change=change.public_id, plan=change.from_version.plan.name))
    return redirect("portal:plan")
