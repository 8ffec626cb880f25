"""The test clock: frozen, moved forward, never backwards, and off in production."""

import datetime as dt

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from common import clock
from common.errors import BillingError

pytestmark = pytest.mark.django_db
UTC = dt.UTC


def test_a_set_clock_is_what_the_system_sees_until_reset():
    clock.clock_set(at=dt.datetime(2030, 12, 1, 0, 5, tzinfo=UTC))
    assert clock.now() == dt.datetime(2030, 12, 1, 0, 5, tzinfo=UTC)
    clock.clock_advance(by=dt.timedelta(days=10))
    assert clock.now() == dt.datetime(2030, 12, 11, 0, 5, tzinfo=UTC)
    clock.clock_reset()
    assert abs(clock.now() - dt.datetime.now(UTC)) < dt.timedelta(minutes=1)


def test_the_clock_never_goes_back():
    clock.clock_set(at=dt.datetime(2030, 12, 1, tzinfo=UTC))
    with pytest.raises(BillingError) as caught:
        clock.clock_set(at=dt.datetime(2030, 11, 1, tzinfo=UTC))
    assert caught.value.code == "clock_backwards"
    assert clock.now() == dt.datetime(2030, 12, 1, tzinfo=UTC)


@override_settings(LEDGERLINE_TEST_CLOCK=False)
def test_production_settings_ignore_and_refuse_the_clock():
    with pytest.raises(BillingError) as caught:
        clock.clock_set(at=dt.datetime(2030, 12, 1, tzinfo=UTC))
    assert caught.value.code == "test_clock_disabled"
    assert abs(clock.now() - dt.datetime.now(UTC)) < dt.timedelta(minutes=1)


def test_the_command_sets_and_advances(capsys):
    call_command("test_clock", "set", "2030-12-01T00:05Z")
    call_command("test_clock", "advance", "6h")
    assert "2030-12-01T06:05:00+00:00" in capsys.readouterr().out
    with pytest.raises(CommandError, match="such as 10d"):
        call_command("test_clock", "advance", "soon")
    with pytest.raises(CommandError, match="Not a time"):
        call_command("test_clock", "set", "tomorrow")
