"""Trials: extended by staff, announced to the customer before they end.

(Being written.)
"""

from __future__ import annotations

import datetime as dt


def trials_notify_due(*, now: dt.datetime) -> int:
    """Queue the "trial ends soon" e-mail of every trial ending within the notice window. Returns how many."""
    return 0
