"""Per-API-key rate limit, counted in the cache (Redis in production) in one-minute windows."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import redis
from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from rest_framework.throttling import BaseThrottle

from accounts.models import ApiKey

if TYPE_CHECKING:
    from rest_framework.request import Request
    from rest_framework.views import APIView

WINDOW_SECONDS = 60


class RateLimited(Exception):
    """Over the key's limit: retry after ``wait`` seconds (at least 1)."""

    def __init__(self, wait: int) -> None:
        super().__init__(wait)
        self.wait = wait


def rate_limit_waits(*, api_keys: Sequence[ApiKey]) -> list[int | None]:
    """Count one request for each entry of ``api_keys`` (a key may repeat: one request each, in order) in
    the current one-minute window, in one round trip. For each: None while its key is within its limit,
    else the whole seconds until the window ends (at least 1: the ``Retry-After``)."""
    now = time.time()
    window_start = int(now // WINDOW_SECONDS) * WINDOW_SECONDS
    positions: dict[int, list[int]] = {}
    for index, api_key in enumerate(api_keys):
        positions.setdefault(api_key.pk, []).append(index)
    totals = _count_many(
        {f"ratelimit:{pk}:{window_start}": len(indexes) for pk, indexes in positions.items()}, WINDOW_SECONDS + 5
    )
    wait = max(1, int(window_start + WINDOW_SECONDS - now + 0.999))
    waits: list[int | None] = [None] * len(api_keys)
    for indexes, total in zip(positions.values(), totals, strict=True):
        for nth, index in enumerate(indexes, start=total - len(indexes) + 1):
            limit = api_keys[index].rate_limit_per_minute or settings.API_RATE_LIMIT_PER_MINUTE
            if nth > limit:
                waits[index] = wait
    return waits


def rate_limit_wait(*, api_key: ApiKey) -> int | None:
    """``rate_limit_waits`` for one request: the REST framework throttle's count."""
    return rate_limit_waits(api_keys=[api_key])[0]


class ApiKeyRateThrottle(BaseThrottle):
    def allow_request(self, request: Request, view: APIView) -> bool:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            return True
        self._wait = rate_limit_wait(api_key=api_key)
        return self._wait is None

    def wait(self) -> int | None:
        return self._wait


_redis_clients: dict[str, redis.Redis] = {}


def _redis() -> redis.Redis | None:
    """One Redis client per process (building a client per request costs more than the round trip)."""
    url = settings.REDIS_URL
    if not url:
        return None
    client = _redis_clients.get(url)
    if client is None:
        client = _redis_clients[url] = redis.Redis.from_url(url)
    return client


def _count_many(increments: dict[str, int], ttl: int) -> list[int]:
    """Add to the windows' counters and return their new values: one round trip to Redis (INCRBY +
    EXPIRE per counter, in a pipeline)."""
    # ``cache`` is a proxy: ask the configured backend itself whether it is Redis.
    client = _redis() if isinstance(caches["default"], RedisCache) else None
    if client is not None:
        pipe = client.pipeline(transaction=False)
        for key, amount in increments.items():
            full_key = cache.make_and_validate_key(key)
            pipe.incr(full_key, amount)
            pipe.expire(full_key, ttl, nx=True)
        return [int(value) for value in pipe.execute()[::2]]
    totals = []
    for key, amount in increments.items():
        cache.add(key, 0, timeout=ttl)
        try:
            totals.append(cache.incr(key, amount))
        except ValueError:  # evicted between add and incr
            cache.set(key, amount, timeout=ttl)
            totals.append(amount)
    return totals
