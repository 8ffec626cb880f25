"""Error answers for requests that fail before or outside a REST framework view (no such path, a host name
not served, an unhandled exception): JSON in the API's error shape on API paths (``/v1/...``), Django's HTML
pages elsewhere. Named in ``config/urls.py`` as ``handler400``, ``handler404`` and ``handler500``."""

from __future__ import annotations

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.views import defaults
from rest_framework.renderers import JSONRenderer

API_PREFIX = "/v1/"
ERR_NOT_FOUND = "No such endpoint; see /api/docs/ for the API."
ERR_BAD_REQUEST = "The request could not be understood."
ERR_DISALLOWED_HOST = "This host name is not served here."
ERR_SERVER = "The server failed to answer this request; it may be retried."


def _is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIX)


def _api_error(status: int, code: str, message: str) -> HttpResponse:
    # Rendered as the REST framework renders the API's other errors (``common.api``).
    body = JSONRenderer().render({"error": {"code": code, "field": None, "message": message}})
    return HttpResponse(body, status=status, content_type="application/json")


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not _is_api(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, DisallowedHost):
        return _api_error(400, "disallowed_host", ERR_DISALLOWED_HOST)
    return _api_error(400, "bad_request", ERR_BAD_REQUEST)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not _is_api(request):
        return defaults.page_not_found(request, exception)
    return _api_error(404, "not_found", ERR_NOT_FOUND)


def server_error(request: HttpRequest) -> HttpResponse:
    if not _is_api(request):
        return defaults.server_error(request)
    return _api_error(500, "server_error", ERR_SERVER)
