"""The client's address, as far as the proxies in front of Ledgerline can vouch for it.

Behind ``LEDGERLINE_TRUSTED_PROXY_COUNT`` reverse proxies (0: none, Django faces the clients), each proxy
appends the address it was connected from to ``X-Forwarded-For``. The header is read from the right and only
that many entries deep: entries further left were written by the client and prove nothing. With too few
entries (the request did not pass through every proxy) or an entry that is no IP address, the connection's
own address (``REMOTE_ADDR``) is used. Sign-in limits (``accounts.sign_in``, django-axes) key on this
address, together with the login.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    remote = request.META.get("REMOTE_ADDR") or None
    proxies = settings.LEDGERLINE_TRUSTED_PROXY_COUNT
    if proxies <= 0:
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    if len(hops) < proxies:
        return remote
    try:
        return str(ipaddress.ip_address(hops[-proxies]))
    except ValueError:
        return remote
