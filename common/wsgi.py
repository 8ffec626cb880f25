"""WSGI plumbing in front of Django."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

import orjson
from django.conf import settings

ERR_LENGTH_REQUIRED = "Send the request body with a Content-Length header; this server cannot read a chunked body."


class ChunkedRequestBodies:
    """WSGI middleware: a request body sent with ``Transfer-Encoding: chunked`` reaches the application with
    a ``Content-Length``.

    Django reads exactly ``CONTENT_LENGTH`` bytes of ``wsgi.input``; without the header it reads none, so a
    chunked body looked empty. A server that de-chunks the body and ends ``wsgi.input`` with it says so
    with ``wsgi.input_terminated`` (gunicorn does): the body is read here, at most one byte past
    ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (so that Django still refuses a larger one as too big), and handed on
    with its length. Under a server that passes the raw stream on (``wsgiref``, ``runserver``) the body
    cannot be read: the request is answered 411, in the API's error shape on ``/v1/`` paths.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower() or environ.get("CONTENT_LENGTH"):
            return self.app(environ, start_response)
        if not environ.get("wsgi.input_terminated"):
            return _length_required(environ, start_response)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = environ["wsgi.input"].read() if limit is None else environ["wsgi.input"].read(limit + 1)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return self.app(environ, start_response)


def _length_required(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    if environ.get("PATH_INFO", "").startswith("/v1/"):
        content_type = "application/json"
        content = orjson.dumps({"error": {"code": "length_required", "field": None, "message": ERR_LENGTH_REQUIRED}})
    else:
        content_type, content = "text/plain; charset=utf-8", ERR_LENGTH_REQUIRED.encode()
    # No Content-Length in the answer: the server then closes the connection, whose unread chunks would
    # otherwise be taken for the next request.
    start_response("411 Length Required", [("Content-Type", content_type)])
    return [content]
