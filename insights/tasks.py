"""Insights' periodic tasks: thin, each calls one service."""

from celery import shared_task

from insights import tasks_forecast  # noqa: F401  (the forecasts' daily task)
from insights.services import recommendations_refresh_book


@shared_task(name="insights.recommendations_refresh_book", acks_late=True, time_limit=3 * 3600)
def recommendations_refresh_book_task() -> int:
    """Nightly: re-rate every account with a live subscription and replace its recommendations."""
    return recommendations_refresh_book()
