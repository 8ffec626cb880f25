"""Contracts: terms, renewals and their notices, cancellation inside a term.

(Being written.)
"""

from __future__ import annotations

import datetime as dt


def contracts_renew_due(*, now: dt.datetime) -> dict[str, int]:
    """Renewal notices due and terms that ended (renewed or ending the subscription). Returns counts."""
    return {}
