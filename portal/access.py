"""Who may see what in the portal: a signed-in portal user sees their own account only.

``portal_view`` wraps every portal view: anonymous users go to the login page; a signed-in user
without an account membership (e.g. billing staff) gets a 403 page that says so; the view receives the
membership as ``request.membership`` and its account as ``request.account``. Views look objects up
*through* ``request.account`` so that another account's object is a 404, never a 403 that would confirm
it exists. ``roles=`` narrows a view to the roles that may use it (others get a 403 with the reason).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.models import AccountUser

Role = AccountUser.Role
# Who may do what (the AccountUser.role help text says the same to staff).
MANAGE_USERS = (Role.OWNER,)
MANAGE_KEYS = (Role.OWNER, Role.ADMIN)
MANAGE_BUDGETS = (Role.OWNER, Role.ADMIN)
MANAGE_WEBHOOKS = (Role.OWNER, Role.ADMIN)


def _membership(request: HttpRequest) -> AccountUser | None:
    try:
        return AccountUser.objects.select_related("account", "user").get(user=request.user)
    except AccountUser.DoesNotExist:
        return None


def portal_view(view: Callable | None = None, *, roles: Iterable[str] | None = None):
    allowed = tuple(roles) if roles else None

    def decorate(func: Callable) -> Callable:
        @wraps(func)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            membership = _membership(request)
            if membership is None or not request.user.is_active:
                return render(request, "portal/no_account.html", status=403)
            if allowed and membership.role not in allowed:
                names = ", ".join(Role(r).label.lower() for r in allowed)
                return render(
                    request,
                    "portal/forbidden.html",
                    {"membership": membership, "account": membership.account, "allowed": names},
                    status=403,
                )
            request.membership = membership
            request.account = membership.account
            return func(request, *args, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate
