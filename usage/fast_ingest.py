"""A lean WSGI handler for the commonest request of all: ``POST /v1/events`` carrying one event.

Most of a single-event request's cost was framework: the middleware stack, the REST framework's request
and response objects, negotiation and rendering. This handler sits in front of Django (``config/wsgi.py``)
and answers exactly the requests it can answer the same way the full view (``usage.apis.EventsIngestApi``)
would — same status codes, same bodies byte for byte, same headers — by calling the same code: the API key
authentication (``accounts.authentication.api_key_authenticate``), the rate limit
(``accounts.throttling.rate_limit_waits``), the error mapping (``common.api.exception_handler``), the batch
validation (``usage.services.events_validate``) and the writer. The difference is how the work is done:
``usage.services.events_ingest_grouped`` counts concurrent requests of this process against their rate
limits in one Redis round trip and writes them in one transaction, answering each only after that
transaction committed.

Everything else is handed to Django untouched (the body, when read, is given back): other paths and
methods, an ``Idempotency-Key``, a query string, batches (``{"events": [...]}``), bodies that are not a
JSON object or are large or chunked, an event stamped in another month than the current one (closed
months are guarded by ``events_ingest``), an ``Accept`` header the full view might answer differently, a
host Django would refuse, and a plain-HTTP request Django would redirect to HTTPS.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from http import HTTPStatus
from typing import Any

import orjson
from django.conf import settings
from django.core import signals
from django.core.handlers.exception import response_for_exception
from django.core.handlers.wsgi import WSGIRequest
from django.http.request import split_domain_port, validate_host
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer

from accounts.authentication import WWW_AUTHENTICATE, HasIngestScope, NotAuthenticated, api_key_authenticate
from accounts.throttling import RateLimited
from common import clock
from common.api import exception_handler
from common.periods import month_containing
from usage.apis import rejected_body
from usage.ingest import EventError, parse_timestamp
from usage.services import IngestRejected, events_ingest_grouped

EVENTS_PATH = "/v1/events"
# A single event is a few hundred bytes; anything bigger is a batch, or unusual, and goes to Django.
MAX_BODY = 64 * 1024
JSON_MEDIA_RANGES = frozenset({"*/*", "application/*", "application/json"})
_renderer = JSONRenderer()
request_logger = logging.getLogger("django.request")


class EventsFastPath:
    """WSGI middleware: single events of the current month here, everything else to ``app``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._hosts: dict[str, bool] = {}

    def __call__(self, environ: dict[str, Any], start_response: Any):
        if (
            environ.get("PATH_INFO") != EVENTS_PATH
            or environ.get("REQUEST_METHOD") != "POST"
            or "HTTP_IDEMPOTENCY_KEY" in environ
            or environ.get("QUERY_STRING")
        ):
            return self.app(environ, start_response)
        secure = _is_secure(environ)
        if (settings.SECURE_SSL_REDIRECT and not secure) or not self._host_allowed(environ, secure):
            return self.app(environ, start_response)
        accept = environ.get("HTTP_ACCEPT")
        if accept and (";" in accept or not JSON_MEDIA_RANGES & {p.strip() for p in accept.split(",")}):
            return self.app(environ, start_response)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return self.app(environ, start_response)
        if not 0 < length <= MAX_BODY:
            return self.app(environ, start_response)
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)  # for Django, should the request go there after all
        now = clock.now()
        event = _single_event_of_this_month(body, now)
        if event is None:
            return self.app(environ, start_response)

        signals.request_started.send(sender=self.__class__, environ=environ)
        try:
            try:
                status, content, headers = self._ingest(environ, event, now)
            except Exception as exc:  # as Django would: logged, 500 page
                return self._server_error(environ, start_response, exc)
            if status >= 400:
                request_logger.warning("%s: %s", HTTPStatus(status).phrase, EVENTS_PATH, extra={"status_code": status})
            start_response(
                f"{status} {HTTPStatus(status).phrase}",
                [
                    ("Content-Type", "application/json"),
                    *headers,
                    ("Allow", "POST, OPTIONS"),
                    ("Content-Length", str(len(content))),
                    *_security_headers(secure),
                ],
            )
            return [content]
        finally:
            signals.request_finished.send(sender=self.__class__)

    def _ingest(
        self, environ: dict[str, Any], event: dict[str, Any], now: dt.datetime
    ) -> tuple[int, bytes, list[tuple[str, str]]]:
        try:
            api_key = api_key_authenticate(header=environ.get("HTTP_AUTHORIZATION", ""), now=now)
            if api_key is None:
                raise NotAuthenticated()
            if "ingest" not in api_key.scopes:
                raise exceptions.PermissionDenied(HasIngestScope.message)
            # Counted against the key's rate limit with the rest of its group, then stored with it.
            result = events_ingest_grouped(
                account=api_key.account,
                items=[event],
                now=now,
                pinned_tenant_id=api_key.tenant_id,
                rate_limited_as=api_key,
            )
        except RateLimited as limited:
            return self._api_error(exceptions.Throttled(limited.wait))
        except exceptions.APIException as exc:
            if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
                exc.auth_header = WWW_AUTHENTICATE
            return self._api_error(exc)
        except IngestRejected as rejected:
            return rejected.status, _renderer.render(rejected_body(rejected)), []
        return 202, b'{"accepted":%d,"duplicates":%d}' % (result.accepted, result.duplicates), []

    @staticmethod
    def _api_error(exc: exceptions.APIException) -> tuple[int, bytes, list[tuple[str, str]]]:
        """As the REST framework answers ``exc`` (through the project's exception handler)."""
        response = exception_handler(exc, {})
        assert response is not None
        headers = [(name, response[name]) for name in ("WWW-Authenticate", "Retry-After") if name in response]
        return response.status_code, _renderer.render(response.data), headers

    def _host_allowed(self, environ: dict[str, Any], secure: bool) -> bool:
        """What ``HttpRequest.get_host()`` decides (CommonMiddleware asks it on every request)."""
        if settings.USE_X_FORWARDED_HOST and "HTTP_X_FORWARDED_HOST" in environ:
            host = environ["HTTP_X_FORWARDED_HOST"]
        elif "HTTP_HOST" in environ:
            host = environ["HTTP_HOST"]
        else:
            host = environ["SERVER_NAME"]
            if str(environ["SERVER_PORT"]) != ("443" if secure else "80"):
                host = f"{host}:{environ['SERVER_PORT']}"
        allowed = self._hosts.get(host)
        if allowed is None:
            allowed_hosts = settings.ALLOWED_HOSTS
            if settings.DEBUG and not allowed_hosts:
                allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]
            domain, _port = split_domain_port(host)
            allowed = bool(domain and validate_host(domain, allowed_hosts))
            if len(self._hosts) > 100:
                self._hosts.clear()
            self._hosts[host] = allowed
        return allowed

    def _server_error(self, environ: dict[str, Any], start_response: Any, exc: Exception):
        response = response_for_exception(WSGIRequest(environ), exc)
        headers = [*response.items(), *(("Set-Cookie", c.output(header="")) for c in response.cookies.values())]
        start_response(f"{response.status_code} {response.reason_phrase}", headers)
        return [response.content]


def _single_event_of_this_month(body: bytes, now: dt.datetime) -> dict[str, Any] | None:
    """The event of a one-event body, unless its timestamp is valid and falls in another month."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(payload, dict) or "events" in payload:
        return None
    try:
        moment = parse_timestamp(payload.get("timestamp"), now)
    except EventError:
        return payload  # refused by validation, here as there
    if moment not in month_containing(now):
        return None
    return payload


def _is_secure(environ: dict[str, Any]) -> bool:
    """``HttpRequest.is_secure()``."""
    header = settings.SECURE_PROXY_SSL_HEADER
    if header:
        name, secure_value = header
        value = environ.get(name)
        if value is not None:
            return value.split(",", 1)[0].strip() == secure_value
    return environ.get("wsgi.url_scheme") == "https"


def _security_headers(secure: bool) -> list[tuple[str, str]]:
    """The headers SecurityMiddleware and XFrameOptionsMiddleware add to an API response."""
    headers = [("X-Frame-Options", settings.X_FRAME_OPTIONS.upper())]
    if secure and settings.SECURE_HSTS_SECONDS:
        hsts = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            hsts += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            hsts += "; preload"
        headers.append(("Strict-Transport-Security", hsts))
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append(("X-Content-Type-Options", "nosniff"))
    if settings.SECURE_REFERRER_POLICY:
        policy = settings.SECURE_REFERRER_POLICY
        values = policy.split(",") if isinstance(policy, str) else policy
        headers.append(("Referrer-Policy", ",".join(v.strip() for v in values)))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append(("Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY))
    return headers
