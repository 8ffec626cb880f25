"""The demo's webhook receivers ("inboxes"), so a newcomer sees events delivered, signed and verified without
running a server of their own: ``/demo/webhooks/<name>/`` on the demo's own address (``demo.views``, mounted only
where ``DEMO_WEBHOOK_INBOX`` is on, as in the local settings) and, while ``load_demo`` delivers the book's events
before the demo server is up, the same answer from a short-lived server on that address (``temporary_inbox``).

An inbox checks the ``webhook-signature`` with the endpoint's live secrets as a receiver would (the HMAC of
``<id>.<timestamp>.<body>``, computed by the Standard Webhooks library), answers 200 with what it verified, or 401
when no signature matches. The timestamp is reported, not enforced: the demo's test clock may be set to another
day than the machine's."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from standardwebhooks.webhooks import Webhook

INBOX_PATH = "/demo/webhooks/{name}/"


def inbox_answer(headers: dict[str, str], body: bytes, secrets: list[str]) -> tuple[int, dict]:
    """What an inbox answers to a delivery signed (or not) with one of ``secrets``."""
    headers = {k.lower(): v for k, v in headers.items()}
    msg_id, timestamp, signatures = (
        headers.get(h, "") for h in ("webhook-id", "webhook-timestamp", "webhook-signature")
    )
    if not (msg_id and timestamp.isdigit() and signatures):
        return 400, {"error": "webhook-id, webhook-timestamp and webhook-signature are required"}
    at = dt.datetime.fromtimestamp(int(timestamp), tz=dt.UTC)
    sent = set(signatures.split(" "))
    for secret in secrets:
        if Webhook(secret).sign(msg_id, at, body) in sent:
            event = json.loads(body)
            return 200, {"received": msg_id, "type": event.get("type"), "signature": "verified"}
    return 401, {"error": "no signature matches the endpoint's secrets"}


class _Handler(BaseHTTPRequestHandler):
    secrets: dict[str, list[str]] = {}  # path -> the secrets of the endpoint at that path

    def do_POST(self) -> None:  # noqa: N802 - the http.server hook's name
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        secrets = self.secrets.get(self.path)
        status, answer = (
            (404, {"error": "no such inbox"}) if secrets is None else inbox_answer(dict(self.headers), body, secrets)
        )
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        return


class _InboxServer(ThreadingHTTPServer):
    request_queue_size = 64  # the deliveries' 16 connections at once, with room to spare
    daemon_threads = True


@contextmanager
def temporary_inbox(base_url: str, secrets_by_path: dict[str, list[str]]) -> Iterator[str]:
    """Serve the inboxes on ``base_url``'s address while the block runs and yield that base URL; when the address
    is taken (a demo server already runs there, or another test), on a free port of the same host instead.
    ``secrets_by_path`` is read at each request, so endpoints created inside the block can be added to it."""
    parts = urlsplit(base_url)
    host = parts.hostname or "127.0.0.1"
    handler = type("Inbox", (_Handler,), {"secrets": secrets_by_path})  # read at each request: filled in later
    try:
        server = _InboxServer((host, parts.port or 80), handler)
    except OSError:
        server = _InboxServer((host, 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="demo-webhook-inbox", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
