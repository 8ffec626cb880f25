"""A bare HTTP client for tests that talk to a real server from other processes (no Django inside)."""

from __future__ import annotations

import http.client
import json


def post_events(host: str, port: int, secret: str, events: list[dict], timeout: float) -> tuple[int, dict | str]:
    """POST a batch to /v1/events on a fresh connection; return the status and the decoded body."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(
            "POST",
            "/v1/events",
            body=json.dumps({"events": events}).encode(),
            headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        raw = response.read().decode()
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, raw
    finally:
        conn.close()


def request(
    host: str, port: int, body: bytes, headers: dict[str, str], path: str = "/v1/events", timeout: float = 30
) -> tuple[int, dict[str, str], bytes]:
    """POST raw bytes; return the status, the headers (as sent, less Date and Server) and the raw body."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        sent = {k: v for k, v in response.getheaders() if k.lower() not in ("date", "server")}
        return response.status, sent, response.read()
    finally:
        conn.close()
