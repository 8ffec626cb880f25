"""Document numbers: ``INV-2026-000042``, one gap-free series per prefix and calendar year, taken from the
project's one counter (``common.services.counter_take``) in the caller's transaction."""

from __future__ import annotations

import datetime as dt

from common.services import counter_take


def document_numbers(*, prefix: str, at: dt.datetime, count: int) -> list[str]:
    """``count`` consecutive numbers of the ``prefix`` series of ``at``'s year."""
    series = f"{prefix}-{at.year}"
    return [f"{series}-{number:06d}" for number in counter_take(name=series, count=count)]
