"""Plan changes: previewed by the rating engine, requested by customers (portal, API) or staff (admin),
approved or declined by billing staff, applied at once or at the end of the billing period.

(Being written: the signatures below are the module's contract with the portal, the API and the admin.)
"""

from __future__ import annotations

import datetime as dt


def plan_changes_apply_due(*, now: dt.datetime) -> int:
    """Apply every scheduled change whose moment has come (called by the lifecycle step). Returns how many."""
    return 0
