"""The limit on the portal's password-reset requests, kept in the cache (Redis in production).

At most ``PORTAL_RESET_REQUESTS`` requests per login per ``PORTAL_ATTEMPT_WINDOW`` seconds, from whichever
client: each request for a login e-mails its owner, so this keeps anyone from flooding a customer's mailbox.
Beyond it the page answers 429 with ``Retry-After`` until the window ends. The login is found as signing in
finds it (``portal_user_for_email``); an address that is no login is counted under its folded text, and
reaches no mailbox.

Counting per login alone, not per login and client as sign-in does, can at worst delay the owner's own
request: the requests that reached the limit each sent them a working link. There is deliberately no ceiling
per client address: it would refuse everyone who shares that address (an office network, or every client
when ``LEDGERLINE_TRUSTED_PROXY_COUNT`` is wrong) because of one client's requests. Sign-ins are limited by
django-axes instead (``accounts.sign_in``).
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import cache

from accounts.selectors import login_fold, portal_user_for_email


def _key(email: str) -> str:
    user = portal_user_for_email(email=email)
    identity = f"user:{user.pk}" if user is not None else f"address:{login_fold(email)}"
    return "portal-throttle:reset:" + hashlib.sha256(identity.encode()).hexdigest()[:32]


def reset_requested(*, email: str) -> int | None:
    """Count a reset request for ``email``: None while within the limit, else the seconds to wait (and the
    request is not counted)."""
    key, window = _key(email), settings.PORTAL_ATTEMPT_WINDOW
    if cache.get(key, 0) >= settings.PORTAL_RESET_REQUESTS:
        return window
    cache.add(key, 0, timeout=window)
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=window)
    return None
