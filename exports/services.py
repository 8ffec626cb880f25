"""Writes of the export API: its audit rows."""

from __future__ import annotations

import datetime as dt
from typing import Any

from accounts.models import ApiKey
from common import clock
from exports.models import ExportRequest


def export_request_record(
    *,
    api_key: ApiKey,
    dataset: str,
    export_format: str,
    filters: dict[str, Any],
    started_at: dt.datetime,
    row_count: int = 0,
    last_cursor: str = "",
    status: str = ExportRequest.Status.COMPLETED,
    http_status: int = 200,
    error: str = "",
) -> ExportRequest:
    """Record one export request as it finished (``finished_at`` is now). Runs in autocommit: a stream's
    generator records itself in its ``finally``, after its own read transaction has ended."""
    finished_at = max(clock.now(), started_at)
    request = ExportRequest(
        api_key=api_key,
        dataset=dataset,
        format=export_format,
        filters=filters,
        row_count=row_count,
        last_cursor=last_cursor,
        status=status,
        http_status=http_status,
        error=error[:500],
        started_at=started_at,
        finished_at=finished_at,
    )
    request.full_clean()
    request.save()
    return request
