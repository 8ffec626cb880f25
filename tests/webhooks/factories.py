"""Webhook endpoints built through the services, and a receiver that records what it was sent."""

from __future__ import annotations

import dataclasses
import json
import threading
from typing import Any

from werkzeug import Request, Response

from webhooks.services.endpoints import endpoint_create


def endpoint_for(account, url: str, event_types: list[str] | None = None):
    """An endpoint of ``account`` at ``url``; returns (endpoint, secret)."""
    return endpoint_create(account=account, url=url, event_types=event_types or [])


@dataclasses.dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def document(self) -> dict[str, Any]:
        return json.loads(self.body)


class Receiver:
    """A pytest-httpserver receiver at ``/hooks``: answers ``status`` (200 unless told otherwise) and keeps
    every request it got."""

    def __init__(self, httpserver) -> None:
        self.server = httpserver
        self.status = 200
        self.received: list[Received] = []
        self._lock = threading.Lock()
        httpserver.expect_request("/hooks", method="POST").respond_with_handler(self._handle)

    @property
    def url(self) -> str:
        return self.server.url_for("/hooks")

    def _handle(self, request: Request) -> Response:
        with self._lock:
            self.received.append(Received(headers=dict(request.headers), body=request.get_data()))
            status = self.status
        return Response("accepted" if status < 300 else "unavailable", status=status)

    def ids(self) -> list[str]:
        return [r.headers["Webhook-Id"] for r in self.received]
