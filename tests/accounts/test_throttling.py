"""The per-key rate limit counted in Redis: several requests counted in one round trip count as if one
after another, each key against its own limit."""

import pytest
import time_machine
from django.core.cache import cache

from accounts.services import api_key_create
from accounts.throttling import rate_limit_wait, rate_limit_waits
from tests.accounts.factories import AccountFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_counters():
    cache.clear()


def test_requests_counted_together_are_counted_in_order_per_key():
    account = AccountFactory()
    slow, _ = api_key_create(name="slow", scopes=["ingest"], account=account, rate_limit_per_minute=2)
    fast, _ = api_key_create(name="fast", scopes=["ingest"], account=account, rate_limit_per_minute=100)
    with time_machine.travel("2026-11-26T10:30:15Z", tick=False):
        assert rate_limit_wait(api_key=slow) is None
        waits = rate_limit_waits(api_keys=[slow, fast, slow, slow, fast])
        assert waits == [None, None, 45, 45, None]
        assert rate_limit_wait(api_key=fast) is None
        assert rate_limit_wait(api_key=slow) == 45
    with time_machine.travel("2026-11-26T10:31:00Z", tick=False):  # a new window
        assert rate_limit_waits(api_keys=[slow, slow, slow]) == [None, None, 60]
