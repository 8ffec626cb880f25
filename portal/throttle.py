"""The limit on the portal's password-reset requests, kept in the cache (Redis in production).

``PORTAL_RESET_REQUESTS`` requests per e-mail address (from any address) and five times as many per client IP
(``common.http.client_ip``), per ``PORTAL_ATTEMPT_WINDOW`` seconds, so nobody can flood a customer's mailbox;
beyond that the page answers 429 with ``Retry-After`` until the window ends. Sign-ins are limited by
django-axes instead (``accounts.sign_in``).
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import cache

from common.http import client_ip


def _key(kind: str, value: str) -> str:
    return f"portal-throttle:{kind}:" + hashlib.sha256(value.strip().lower().encode()).hexdigest()[:32]


def keys_for(kind: str, request, identity: str) -> list[tuple[str, int]]:
    limit = settings.PORTAL_RESET_REQUESTS
    ip = client_ip(request) or ""
    return [(_key(kind, identity), limit), (_key(f"{kind}-ip", ip), limit * 5)]


def blocked(keys: list[tuple[str, int]]) -> int | None:
    """Seconds to wait when any of ``keys`` has reached its limit, else None."""
    counts = cache.get_many([key for key, _ in keys])
    if any(counts.get(key, 0) >= limit for key, limit in keys):
        return settings.PORTAL_ATTEMPT_WINDOW
    return None


def count(keys: list[tuple[str, int]]) -> None:
    window = settings.PORTAL_ATTEMPT_WINDOW
    for key, _ in keys:
        cache.add(key, 0, timeout=window)
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=window)
