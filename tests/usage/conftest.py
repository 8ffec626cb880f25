import datetime as dt

import pytest
from django.core.cache import cache

UTC = dt.UTC


@pytest.fixture(autouse=True)
def _clear_rate_limits():
    cache.clear()
