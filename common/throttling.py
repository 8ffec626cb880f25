"""Per-API-key rate limit, counted in the cache (Redis in production) in one-minute windows."""

from __future__ import annotations

import time
from typing import Any

import redis
from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from accounts.models import ApiKey


class ApiKeyRateThrottle(BaseThrottle):
    window = 60

    def allow_request(self, request, view):
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            return True
        limit = api_key.rate_limit_per_minute or settings.API_RATE_LIMIT_PER_MINUTE
        now = time.time()
        window_start = int(now // self.window) * self.window
        key = f"ratelimit:{api_key.pk}:{window_start}"
        count = _count(key, self.window + 5)
        self._wait = window_start + self.window - now
        return count <= limit

    def wait(self):
        return max(1, int(self._wait + 0.999))


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
    client = _redis() if "Redis" in type(cache).__name__ else None
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
