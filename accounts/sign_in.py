"""Limits on signing in, at both doors: the admin (``/admin/login/``, staff) and the portal (``/portal/login/``,
customers). django-axes enforces them at both, as one count per login, so the two never lock in different
ways and staff see and lift every lock in one place; this module is its configuration (the ``AXES_*``
settings). The portal's own counter (``portal.throttle``) limits password-reset requests only.

- **What is counted**: failed sign-ins per *login and client address together* (``AXES_LOCKOUT_PARAMETERS``),
  kept as ``axes.AccessAttempt`` rows. The login is the username the attempt was checked against — at the
  portal, the one its e-mail address resolved to (``portal_user_for_email``, which signing in uses too), so
  every spelling that reaches a login is counted with it — folded by ``login_fold``; text that reaches no
  login is counted under its own folded form. The client address is the one the trusted proxies vouch for
  (``common.http.client_ip``). One client's failures therefore never lock out anybody else, however many
  logins it tries, even when every client reaches Ledgerline through the same proxy. There is no ceiling per
  client address on top: it could not tell a guesser from the people who share the address.
- **The limit**: ``ADMIN_LOGIN_ATTEMPTS`` failures at the admin, ``PORTAL_LOGIN_ATTEMPTS`` at the portal,
  whichever page is asked; the count is shared, so a staff login's failures at the portal count at the admin
  too. Those failures are answered as usual; from then on every attempt is refused before the password is
  checked, with 429, ``Retry-After`` and a page that says how long to wait.
- **Cool-off**: ``LOGIN_COOLOFF_SECONDS`` after the last counted failure; refused attempts are not counted,
  so they do not extend the lock. A successful sign-in clears the count. Finance admins can lift a lock
  sooner by deleting its attempt in the admin (*Axes › Access attempts*).
- Sign-ins without a request (the shell, the test client's ``login()``) are not over HTTP: nothing to limit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.selectors import login_fold, portal_user_for_email

ERR_ADMIN_LOCKED = "There were too many failed sign-in attempts for this username from your address."
ERR_PORTAL_LOCKED = "There were too many failed sign-in attempts for this address."
# axes.AccessAttempt.username holds 255 characters; folding can lengthen text (NFKC expands some characters).
KEY_MAX_LENGTH = 255


def _admin_door(request: HttpRequest) -> bool:
    match = getattr(request, "resolver_match", None)
    return match is not None and match.app_name == "admin"


def attempt_login(request: HttpRequest, credentials: dict[str, Any] | None = None) -> str:
    """The login an attempt is counted under (``AXES_USERNAME_CALLABLE``). ``credentials`` carry the username
    the sign-in form resolved the typed text to; without them, the typed text is resolved the same way."""
    if credentials is not None:
        login = credentials.get("username") or ""
    else:
        typed = request.POST.get("username", "")
        user = portal_user_for_email(email=typed)
        login = user.get_username() if user is not None else typed
    key = login_fold(login)
    if len(key) > KEY_MAX_LENGTH:
        key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key


def failure_limit(request: HttpRequest, credentials: dict[str, Any] | None = None) -> int:
    """Failed sign-ins allowed before the lock (``AXES_FAILURE_LIMIT``), by door."""
    return settings.ADMIN_LOGIN_ATTEMPTS if _admin_door(request) else settings.PORTAL_LOGIN_ATTEMPTS


def cool_off(request: HttpRequest | None = None) -> dt.timedelta:
    """How long a lock lasts after the last counted failure (``AXES_COOLOFF_TIME``)."""
    return dt.timedelta(seconds=settings.LOGIN_COOLOFF_SECONDS)


def _time_until_unlocked(request: HttpRequest, credentials: dict[str, Any] | None) -> dt.timedelta:
    """Until enough of the counted failures have aged past the cool-off for the count to drop below the
    limit. Each ``AccessAttempt`` row (one per user agent) holds its failures at the time of its last one."""
    now = request.axes_attempt_time
    limit, cooling = failure_limit(request, credentials), cool_off(request)
    unlocked_at = now
    for attempts in AxesProxyHandler.get_implementation().get_user_attempts(request, credentials):
        rows = sorted(attempts.values_list("attempt_time", "failures_since_start"))
        total = sum(failures for _, failures in rows)
        for attempt_time, failures in rows:
            if total < limit:
                break
            total -= failures
            unlocked_at = max(unlocked_at, attempt_time + cooling)
    return unlocked_at - now


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict[str, Any] | None = None
) -> HttpResponse:
    """The answer to a locked-out sign-in (``AXES_LOCKOUT_CALLABLE``): 429 with ``Retry-After``.

    The failure that reaches the limit had its password checked, so it keeps its ordinary answer ("wrong
    password"); axes records the count it reached on the request. The lock answers from the next attempt on.
    """
    if original_response is not None and getattr(request, "axes_failures_since_start", None) is not None:
        return original_response
    remaining = _time_until_unlocked(request, credentials).total_seconds()
    minutes = max(1, math.ceil(remaining / 60))
    if _admin_door(request):
        context = {**admin.site.each_context(request), "title": "Too many sign-in attempts", "minutes": minutes}
        response = render(request, "admin/too_many_sign_ins.html", {**context, "what": ERR_ADMIN_LOCKED}, status=429)
    else:
        response = render(request, "portal/too_many.html", {"what": ERR_PORTAL_LOCKED, "minutes": minutes}, status=429)
    # The lock holds through its last instant: the first whole second after it.
    response["Retry-After"] = str(int(remaining) + 1)
    return response


class SignInLimitBackend(AxesStandaloneBackend):
    """django-axes' check, first in ``AUTHENTICATION_BACKENDS``: refuses a locked-out sign-in before any other
    backend checks the password. A sign-in without a request is not over HTTP and passes on unchecked."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
