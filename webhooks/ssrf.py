"""Where webhooks may go: a guard against server-side request forgery.

An endpoint's URL must be ``https`` (``WEBHOOKS_REQUIRE_HTTPS``) and name a public address: nothing private,
loopback, link-local, shared (carrier-grade NAT), reserved, multicast or unspecified, in IPv4 or IPv6
(IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry), unless
``WEBHOOKS_ALLOW_PRIVATE_ADDRESSES`` is on (local development and tests). The URL is checked when the endpoint
is saved and again at every send, after the host name is resolved: the request then connects to the address
that was vetted (never resolving the name again), so a name that later resolves elsewhere (DNS rebinding)
cannot redirect it. A name that resolves to any refused address is refused as a whole.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from common.errors import BillingError

ERR_URL = "Give the endpoint's full URL, e.g. https://example.com/webhooks/ledgerline."
ERR_SCHEME = "Webhook URLs must use https."
ERR_CREDENTIALS = "Leave user names and passwords out of the URL; authenticate requests by their signature."
ERR_ADDRESS = (
    "{host} is a private, loopback, link-local or reserved address; webhooks are sent to public addresses only."
)
ERR_RESOLVES_PRIVATE = (
    "{host} resolves to {address}, a private, loopback, link-local or reserved address; webhooks are sent to "
    "public addresses only."
)
ERR_UNRESOLVED = "{host} cannot be resolved: check the host name."

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Target:
    """A URL taken apart, with the vetted address to connect to."""

    scheme: str
    host: str  # the name as written (sent as Host and for TLS), without brackets
    port: int
    path: str  # path and query, at least "/"
    address: str  # the IP address to connect to

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def _invalid(message: str) -> BillingError:
    return BillingError(message, code="invalid_url", field="url")


def _allow_private() -> bool:
    return bool(getattr(settings, "WEBHOOKS_ALLOW_PRIVATE_ADDRESSES", False))


def _require_https() -> bool:
    return bool(getattr(settings, "WEBHOOKS_REQUIRE_HTTPS", True))


def address_is_public(address: IpAddress) -> bool:
    """True for an address on the public internet."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
    )


def _literal(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _split(url: str) -> tuple[str, str, int, str]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _invalid(ERR_URL) from None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if scheme not in ("http", "https") or not host:
        raise _invalid(ERR_URL)
    if parts.username is not None or parts.password is not None:
        raise _invalid(ERR_CREDENTIALS)
    if scheme != "https" and _require_https():
        raise _invalid(ERR_SCHEME)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return scheme, host, port or (443 if scheme == "https" else 80), path


def _resolve(host: str, port: int) -> list[IpAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        raise _invalid(ERR_UNRESOLVED.format(host=host)) from None
    seen: list[IpAddress] = []
    for info in infos:
        # The address may carry an IPv6 zone ("fe80::1%eth0"): the zone is not part of the address.
        parsed = _literal(str(info[4][0]).split("%", 1)[0])
        if parsed is not None and parsed not in seen:
            seen.append(parsed)
    if not seen:
        raise _invalid(ERR_UNRESOLVED.format(host=host))
    return seen


def url_check(url: str, *, resolve: bool = True) -> Target | None:
    """Refuse (``BillingError`` on field ``url``) a URL that webhooks may not be sent to.

    With ``resolve`` the host name is resolved and the address to connect to is returned; without it (when an
    endpoint is saved and private addresses are allowed) only the form is checked and None is returned."""
    scheme, host, port, path = _split(url)
    literal = _literal(host)
    allow_private = _allow_private()
    if literal is not None:
        if not allow_private and not address_is_public(literal):
            raise _invalid(ERR_ADDRESS.format(host=host))
        return Target(scheme=scheme, host=host, port=port, path=path, address=str(literal))
    if not resolve:
        return None
    addresses = _resolve(host, port)
    if not allow_private:
        for address in addresses:
            if not address_is_public(address):
                raise _invalid(ERR_RESOLVES_PRIVATE.format(host=host, address=address))
    return Target(scheme=scheme, host=host, port=port, path=path, address=str(addresses[0]))


def url_check_on_save(url: str) -> None:
    """The check when an endpoint is saved: its form always; its addresses too unless private ones are allowed
    (where names of the local network need not resolve from the web server)."""
    url_check(url, resolve=not _allow_private())
