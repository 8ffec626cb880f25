"""A per-process read cache of the metric catalogue for the ingest hot path.

Metrics never change how they measure once created (``usage.services.metric_update``
refuses), so a cached entry can only be missing, never wrong: a miss reloads once.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from usage.models import Metric

TTL_SECONDS = 60.0
_lock = threading.Lock()
_cache: dict[str, MetricInfo] = {}
_loaded_at = 0.0


@dataclass(frozen=True, slots=True)
class MetricInfo:
    id: int
    code: str
    reportable: bool
    is_gauge: bool
    unique_property: str


def _load() -> dict[str, MetricInfo]:
    return {
        m.code: MetricInfo(
            id=m.id,
            code=m.code,
            reportable=m.source == Metric.Source.EVENTS and m.is_active,
            is_gauge=m.aggregation == Metric.Aggregation.TIME_WEIGHTED,
            unique_property=m.aggregation_property if m.aggregation == Metric.Aggregation.UNIQUE_COUNT else "",
        )
        for m in Metric.objects.all()
    }


def metrics_by_code() -> _MissReloadingDict:
    global _cache, _loaded_at
    with _lock:
        if time.monotonic() - _loaded_at > TTL_SECONDS:
            _cache, _loaded_at = _load(), time.monotonic()
    return _MissReloadingDict(_cache)


def clear() -> None:
    global _loaded_at
    with _lock:
        _loaded_at = 0.0


class _MissReloadingDict(dict):
    """A snapshot that reloads the catalogue at most once, on the first unknown code."""

    reloaded = False

    def get(self, code, default=None):  # type: ignore[override]
        global _cache, _loaded_at
        if code not in self and not self.reloaded:
            with _lock:
                _cache, _loaded_at = _load(), time.monotonic()
            self.update(_cache)
            self.reloaded = True
        return super().get(code, default)
