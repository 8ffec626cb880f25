"""Sending one signed webhook request: to the address the SSRF guard vetted, over kept-alive connections.

urllib3 connection pools are keyed by the vetted address, the port and the host name: the TCP connection goes
to the address (no second resolution), while TLS sends the name (SNI) and checks the certificate against it,
and the ``Host`` header carries it. Redirects are not followed (a 3xx is a failed attempt). Timeouts are short
(``WEBHOOKS_CONNECT_TIMEOUT_SECONDS``, ``WEBHOOKS_READ_TIMEOUT_SECONDS``) and at most ``MAX_READ_BYTES`` of the
answer are read: its first ``RESPONSE_EXCERPT_LENGTH`` characters are kept; a longer answer's connection is
dropped rather than drained. Pools live as long as the worker process, so a batch reuses the connections of the
one before. No database access here: requests are sent from a thread pool.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import urllib3
from django.conf import settings

from common.errors import BillingError
from webhooks.models import RESPONSE_EXCERPT_LENGTH
from webhooks.ssrf import Target, url_check

MAX_READ_BYTES = 64 * 1024
ERROR_LENGTH = 500


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    latency_ms: int
    excerpt: str = ""
    error: str = ""

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


_pools: dict[tuple[str, str, int, str], urllib3.HTTPConnectionPool] = {}
_pools_lock = threading.Lock()


def _pool_size() -> int:
    return max(1, int(getattr(settings, "WEBHOOKS_DELIVERY_CONCURRENCY", 16)))


def _timeout() -> urllib3.Timeout:
    connect = float(getattr(settings, "WEBHOOKS_CONNECT_TIMEOUT_SECONDS", 3))
    read = float(getattr(settings, "WEBHOOKS_READ_TIMEOUT_SECONDS", 10))
    return urllib3.Timeout(connect=connect, read=read, total=connect + read)


def _pool(target: Target) -> urllib3.HTTPConnectionPool:
    key = (target.scheme, target.address, target.port, target.host)
    pool = _pools.get(key)
    if pool is not None:
        return pool
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            size = _pool_size()
            if target.scheme == "https":
                pool = urllib3.HTTPSConnectionPool(
                    target.address,
                    port=target.port,
                    maxsize=size,
                    block=False,
                    retries=False,
                    server_hostname=target.host,
                    assert_hostname=target.host,
                    cert_reqs="CERT_REQUIRED",
                )
            else:
                pool = urllib3.HTTPConnectionPool(
                    target.address, port=target.port, maxsize=size, block=False, retries=False
                )
            _pools[key] = pool
    return pool


def pools_clear() -> None:
    """Close every kept-alive connection (tests, the benchmark between runs)."""
    with _pools_lock:
        for pool in _pools.values():
            pool.close()
        _pools.clear()


def resolve(url: str) -> Target | str:
    """The vetted target of ``url``, or why it may not be sent to."""
    try:
        target = url_check(url, resolve=True)
    except BillingError as exc:
        return exc.message
    assert target is not None  # resolving always names an address
    return target


def _read_excerpt(response: urllib3.BaseHTTPResponse) -> tuple[str, bool]:
    """The answer's first characters, and whether it was read to its end (so the connection can be reused)."""
    chunks: list[bytes] = []
    size = 0
    while size < MAX_READ_BYTES:
        chunk = response.read(8192)
        if not chunk:
            return b"".join(chunks).decode("utf-8", "replace")[:RESPONSE_EXCERPT_LENGTH], True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks).decode("utf-8", "replace")[:RESPONSE_EXCERPT_LENGTH], False


def send(target: Target, body: bytes, headers: dict[str, str]) -> Outcome:
    """POST ``body`` to ``target``; never raises for what the network or the receiver does."""
    started = time.perf_counter()
    response = None
    try:
        response = _pool(target).urlopen(
            "POST",
            target.path,
            body=body,
            headers={**headers, "Host": target.host_header},
            redirect=False,
            retries=False,
            timeout=_timeout(),
            preload_content=False,
            assert_same_host=False,
        )
        excerpt, complete = _read_excerpt(response)
        latency = int((time.perf_counter() - started) * 1000)
        status = response.status
        if complete:
            response.release_conn()
        else:
            response.close()
        error = "" if 200 <= status < 300 else f"HTTP {status}"
        return Outcome(status_code=status, latency_ms=latency, excerpt=excerpt, error=error)
    except Exception as exc:  # noqa: BLE001 - any failure of the request is an attempt that failed
        if response is not None:
            response.close()
        latency = int((time.perf_counter() - started) * 1000)
        return Outcome(status_code=None, latency_ms=latency, error=f"{type(exc).__name__}: {exc}"[:ERROR_LENGTH])
