"""What time it is for billing: the real time, or the test clock where the settings allow one.

Every service that decides by the time (trials, period ends, review and grace windows, due dates)
asks ``now()`` rather than ``timezone.now()``. With ``LEDGERLINE_TEST_CLOCK`` on (local and test
settings) a frozen test clock can be set and advanced (``python manage.py test_clock``); production
ignores it.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.utils import timezone

from common.errors import BillingError
from common.models import Clock

ERR_DISABLED = "The test clock is off in these settings (LEDGERLINE_TEST_CLOCK); production runs on real time."
ERR_BACKWARDS = "A test clock only moves forward: it is at {at}, you asked for {to}."


def enabled() -> bool:
    return bool(getattr(settings, "LEDGERLINE_TEST_CLOCK", False))


def frozen_at() -> dt.datetime | None:
    """The time the test clock is frozen at, or None on real time (always None with the clock off)."""
    if not enabled():
        return None
    return Clock.objects.filter(pk=1).values_list("frozen_at", flat=True).first()


def now() -> dt.datetime:
    return frozen_at() or timezone.now()


def clock_set(*, at: dt.datetime, allow_backwards: bool = False) -> dt.datetime:
    """Freeze the clock at ``at`` (aware). Moving backwards is refused unless ``allow_backwards``."""
    if not enabled():
        raise BillingError(ERR_DISABLED, code="test_clock_disabled")
    if timezone.is_naive(at):
        raise BillingError("Give the time with its UTC offset, e.g. 2026-12-01T00:05Z.", code="naive_time")
    current = now()
    if at < current and not allow_backwards:
        raise BillingError(ERR_BACKWARDS.format(at=current.isoformat(), to=at.isoformat()), code="clock_backwards")
    Clock.objects.update_or_create(pk=1, defaults={"frozen_at": at})
    return at


def clock_advance(*, by: dt.timedelta) -> dt.datetime:
    if by < dt.timedelta(0):
        raise BillingError("Advance by a positive duration.", code="clock_backwards")
    return clock_set(at=now() + by)


def clock_reset() -> None:
    """Back to real time."""
    if enabled():
        Clock.objects.filter(pk=1).update(frozen_at=None)
