"""Who changed what, and when. django-simple-history keeps a row per change with old and new values; the
request middleware fills in the user for admin and portal requests, and services name the actor
explicitly for commands, tasks and API keys through ``stamp``.

When: a history row is dated by the billing clock (``common.clock.now()``), the time every service decides
by, so that on a test clock (the demo, the tests) history agrees with the documents' own dates. A service
that knows the business moment passes it (``stamp(at=...)``, ``bulk_history_create(default_date=...)``);
any other row is dated by ``date_history_by_the_clock`` as it is written. The admin lists history in the
order the rows were written.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from common import clock


def stamp(instance: Any, *, actor: Any = None, reason: str = "", at: dt.datetime | None = None) -> None:
    """Attach the acting user, a change reason and the business time to the next history row of
    ``instance`` (``at`` defaults to the billing clock's now)."""
    if actor is not None and getattr(actor, "is_authenticated", False):
        instance._history_user = actor
    if reason:
        instance._change_reason = reason
    instance._history_date = at or clock.now()


def date_history_by_the_clock(sender: Any, *, instance: Any, history_instance: Any, **kwargs: Any) -> None:
    """``pre_create_historical_record`` receiver: a row whose instance names no time (no ``stamp``) is dated
    by the billing clock instead of the wall clock simple-history would use."""
    if not hasattr(instance, "_history_date"):
        history_instance.history_date = clock.now()
