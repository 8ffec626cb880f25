"""The forecasts' daily task (schedule: ``insights.forecasts_record`` daily at 02:30 UTC). Thin: it records today's
forecast of every subscribed account, then fills the actual bill of the months invoiced since."""

from __future__ import annotations

from celery import shared_task

from common import clock
from insights.services_forecast import forecast_actuals_fill, forecasts_record_book


@shared_task(name="insights.forecasts_record", soft_time_limit=1800, time_limit=1900)
def forecasts_record_task() -> dict[str, int]:
    now = clock.now()
    filled = forecast_actuals_fill(now=now)
    recorded = forecasts_record_book(now=now)
    return {"recorded": recorded, "actuals_filled": filled}
