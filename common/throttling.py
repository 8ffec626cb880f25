"""Per-API-key rate limit, counted in the cache (Redis in production) in one-minute windows."""

from __future__ import annotations

import time
from typing import Any

import redis
from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from rest_framework.throttling import BaseThrottle

from accounts.models import ApiKey

WINDOW_SECONDS = 60


def rate_limit_wait(*, api_key: ApiKey) -> int | None:
    """Count one request of ``api_key`` in the current one-minute window. Returns None while the key is
    within its limit, else the whole seconds until the window ends (at least 1: the ``Retry-After``).
    Shared by the REST framework throttle and the lean events handler (``usage.fast_ingest``)."""
    limit = api_key.rate_limit_per_minute or settings.API_RATE_LIMIT_PER_MINUTE
    now = time.time()
    window_start = int(now // WINDOW_SECONDS) * WINDOW_SECONDS
    count = _count(f"ratelimit:{api_key.pk}:{window_start}", WINDOW_SECONDS + 5)
    if count <= limit:
        return None
    return max(1, int(window_start + WINDOW_SECONDS - now + 0.999))


class ApiKeyRateThrottle(BaseThrottle):
    def allow_request(self, request, view):
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            return True
        self._wait = rate_limit_wait(api_key=api_key)
        return self._wait is None

    def wait(self):
        return self._wait


_redis_clients: dict[str, Any] = {}


def _redis():
    """One Redis client per process (building a client per request costs more than the round trip)."""
    url = settings.REDIS_URL
    if not url:
        return None
    client = _redis_clients.get(url)
    if client is None:
        client = _redis_clients[url] = redis.Redis.from_url(url)
    return client


def _count(key: str, ttl: int) -> int:
    """Increment the window's counter: one round trip to Redis (INCR + EXPIRE in a pipeline)."""
    # ``cache`` is a proxy: ask the configured backend itself whether it is Redis.
    client = _redis() if isinstance(caches["default"], RedisCache) else None
    if client is not None:
        pipe = client.pipeline(transaction=False)
        full_key = cache.make_and_validate_key(key)
        pipe.incr(full_key)
        pipe.expire(full_key, ttl, nx=True)
        return int(pipe.execute()[0])
    cache.add(key, 0, timeout=ttl)
    try:
        return cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, timeout=ttl)
        return 1
