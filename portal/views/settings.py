"""Budgets, API keys and the account's users.

Every object is looked up through ``request.account`` (another account's object is a 404). Views parse
with a form, call one service with ``actor=request.user`` and render; a service's refusal comes back as
a form error or a message, never a server error.
"""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.views.decorators.http import require_http_methods

from accounts.models import AccountUser, ApiKey, Budget
from accounts.services import (
    account_user_invite,
    account_user_remove,
    account_user_set_role,
    budget_update,
)
from accounts.services import (
    api_key_create as api_key_issue,
)
from accounts.services import (
    api_key_revoke as api_key_revoke_service,
)
from accounts.services import (
    budget_create as budget_create_service,
)
from accounts.services import (
    budget_delete as budget_delete_service,
)
from billing.services.budgets import budget_statuses
from common import clock
from common.errors import BillingError
from common.money import format_money
from portal.access import MANAGE_BUDGETS, MANAGE_KEYS, MANAGE_USERS, portal_view
from portal.forms import ApiKeyForm, BudgetForm, InviteForm, RoleForm

# The secret of a key just created waits here until the next page shows it, once (then it is removed).
NEW_KEY_SESSION = "portal_new_api_key"


def _can(request, roles) -> bool:
    return request.membership.role in roles


# Budgets


@portal_view
def budget_list(request):
    budgets = Budget.objects.filter(account=request.account).select_related("account").order_by("name")
    rows = []
    for status in budget_statuses(budgets=budgets, now=clock.now(), with_alerts=True):
        budget = status.budget
        rows.append(
            {
                "budget": budget,
                "status": status,
                "amount": format_money(budget.amount, budget.currency),
                "spend": format_money(status.spend, budget.currency),
                "meter": min(status.percentage, 100),
                "level": "over" if status.percentage >= 100 else "warn" if status.percentage >= 75 else "",
                "thresholds": ", ".join(f"{t}%" for t in budget.alert_thresholds),
                "alerts_sent": ", ".join(f"{t}%" for t in status.alerts_sent),
                # Periods are half-open; people read the last day that counts.
                "last_day": status.period.last_day,
            }
        )
    return render(request, "portal/budgets.html", {"rows": rows, "can_manage": _can(request, MANAGE_BUDGETS)})


@portal_view(roles=MANAGE_BUDGETS)
@require_http_methods(["GET", "POST"])
def budget_create(request):
    form = BudgetForm(request.POST or None, account=request.account)
    if request.method == "POST" and form.is_valid():
        try:
            budget = budget_create_service(
                account=request.account,
                name=form.cleaned_data["name"],
                amount=form.cleaned_data["amount"],
                period=form.cleaned_data["period"],
                alert_thresholds=form.cleaned_data["alert_thresholds"],
                actor=request.user,
            )
        except (BillingError, ValidationError) as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, f"Budget “{budget.name}” created.")
            return redirect("portal:budgets")
    return render(request, "portal/budget_form.html", {"form": form, "budget": None}, status=_status(form))


@portal_view(roles=MANAGE_BUDGETS)
@require_http_methods(["GET", "POST"])
def budget_edit(request, pk):
    budget = get_object_or_404(Budget.objects.select_related("account"), account=request.account, pk=pk)
    form = BudgetForm(request.POST or None, account=request.account, budget=budget)
    if request.method == "POST" and form.is_valid():
        try:
            budget = budget_update(budget=budget, data=form.cleaned_data, actor=request.user)
        except (BillingError, ValidationError) as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, f"Budget “{budget.name}” saved.")
            return redirect("portal:budgets")
    return render(request, "portal/budget_form.html", {"form": form, "budget": budget}, status=_status(form))


@portal_view(roles=MANAGE_BUDGETS)
@require_http_methods(["GET", "POST"])
def budget_delete(request, pk):
    budget = get_object_or_404(Budget, account=request.account, pk=pk)
    if request.method == "POST":
        name = budget.name
        budget_delete_service(budget=budget, actor=request.user)
        messages.success(request, f"Budget “{name}” deleted.")
        return redirect("portal:budgets")
    return render(request, "portal/budget_delete.html", {"budget": budget})


def _status(form) -> int:
    """A form sent back with errors is a 400, so clients and tests can tell it from a first visit."""
    return 400 if form.is_bound and form.errors else 200


# API keys


def _key_status(api_key: ApiKey, now: dt.datetime) -> str:
    if api_key.revoked_at is not None:
        return "revoked"
    if api_key.expires_at is not None and api_key.expires_at <= now:
        return "expired"
    return "active"


@portal_view
def api_key_list(request):
    now = clock.now()
    keys = ApiKey.objects.filter(account=request.account).select_related("tenant", "created_by").order_by("-created_at")
    rows = [{"key": key, "status": _key_status(key, now)} for key in keys]
    new_key = request.session.pop(NEW_KEY_SESSION, None)
    context = {"rows": rows, "new_key": new_key, "can_manage": _can(request, MANAGE_KEYS)}
    if new_key:
        context["events_url"] = request.build_absolute_uri("/v1/events")
        context["usage_url"] = request.build_absolute_uri("/v1/billing/usage/current")
        context["disputes_url"] = request.build_absolute_uri("/v1/disputes")
        context["example_time"] = f"{now:%Y-%m-%dT%H:%M:%SZ}"
    response = render(request, "portal/api_keys.html", context)
    if new_key:
        # Never from a cache either: the back button must not bring the secret back.
        add_never_cache_headers(response)
    return response


@portal_view(roles=MANAGE_KEYS)
@require_http_methods(["GET", "POST"])
def api_key_create(request):
    form = ApiKeyForm(request.POST or None, account=request.account)
    if request.method == "POST" and form.is_valid():
        try:
            api_key, secret = api_key_issue(
                account=request.account,
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                tenant=form.cleaned_data["tenant"],
                expires_at=form.expires_at,
                actor=request.user,
            )
        except (BillingError, ValidationError) as exc:
            form.add_service_error(exc)
        else:
            request.session[NEW_KEY_SESSION] = {
                "name": api_key.name,
                "prefix": api_key.prefix,
                "secret": secret,
                "scopes": api_key.scopes,
                "tenant": api_key.tenant.public_id if api_key.tenant else None,
            }
            return redirect("portal:api_keys")
    return render(request, "portal/api_key_form.html", {"form": form}, status=_status(form))


@portal_view(roles=MANAGE_KEYS)
@require_http_methods(["GET", "POST"])
def api_key_revoke(request, prefix):
    api_key = get_object_or_404(ApiKey, account=request.account, prefix=prefix)
    if request.method == "POST":
        try:
            api_key_revoke_service(api_key=api_key, actor=request.user)
        except BillingError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"API key “{api_key.name}” ({api_key.prefix}…) revoked. It no longer works.")
        return redirect("portal:api_keys")
    return render(request, "portal/api_key_revoke.html", {"api_key": api_key})


# Users


@portal_view
def user_list(request):
    members = AccountUser.objects.filter(account=request.account).select_related("user").order_by("user__email")
    return render(
        request,
        "portal/users.html",
        {"members": members, "can_manage": _can(request, MANAGE_USERS)},
    )


@portal_view(roles=MANAGE_USERS)
@require_http_methods(["GET", "POST"])
def user_invite(request):
    form = InviteForm(request.POST or None)

    def set_password_url(user) -> str:
        uid = urlsafe_base64_encode(force_bytes(user.pk))
        token = default_token_generator.make_token(user)
        return request.build_absolute_uri(reverse("portal:password_reset_confirm", args=[uid, token]))

    if request.method == "POST" and form.is_valid():
        email = form.cleaned_data["email"]
        try:
            # None when the address has a login elsewhere: it was told so, and the owner is answered alike.
            account_user_invite(
                account=request.account,
                email=email,
                role=form.cleaned_data["role"],
                set_password_url=set_password_url,
                actor=request.user,
            )
        except (BillingError, ValidationError) as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, f"Invitation sent to {email}.")
            return redirect("portal:users")
    return render(request, "portal/user_invite.html", {"form": form}, status=_status(form))


@portal_view(roles=MANAGE_USERS)
@require_http_methods(["GET", "POST"])
def user_edit(request, pk):
    membership = get_object_or_404(AccountUser.objects.select_related("user"), account=request.account, pk=pk)
    form = RoleForm(request.POST or None, initial={"role": membership.role})
    if request.method == "POST" and form.is_valid():
        try:
            account_user_set_role(membership=membership, role=form.cleaned_data["role"], actor=request.user)
        except (BillingError, ValidationError) as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, f"{membership.user.email} is now {membership.get_role_display().lower()}.")
            return redirect("portal:users")
    return render(request, "portal/user_edit.html", {"form": form, "member": membership}, status=_status(form))


@portal_view(roles=MANAGE_USERS)
@require_http_methods(["GET", "POST"])
def user_remove(request, pk):
    membership = get_object_or_404(AccountUser.objects.select_related("user"), account=request.account, pk=pk)
    error = None
    if request.method == "POST":
        email = membership.user.email
        try:
            account_user_remove(membership=membership, actor=request.user)
        except BillingError as exc:
            error = exc.message
        else:
            messages.success(request, f"{email} was removed from the account.")
            return redirect("portal:users")
    return render(
        request, "portal/user_remove.html", {"member": membership, "error": error}, status=400 if error else 200
    )
