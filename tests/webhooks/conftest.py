import datetime as dt

import pytest
import time_machine

from accounts.models import AccountUser
from tests.accounts.factories import AccountFactory, AccountUserFactory
from tests.webhooks.factories import Receiver
from webhooks import transport

NOW = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def clock():
    """The time, frozen at 2026-12-07 09:00 UTC; ``clock.shift(...)`` moves it."""
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def account(db, clock):
    account = AccountFactory(name="Northwind")
    AccountUserFactory(account=account, email="owner@northwind.example", role=AccountUser.Role.OWNER)
    return account


@pytest.fixture
def receiver(httpserver):
    transport.pools_clear()
    yield Receiver(httpserver)
    transport.pools_clear()
