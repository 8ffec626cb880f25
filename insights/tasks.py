"""Insights' periodic tasks: thin, each calls one service."""

import datetime as dt

from celery import shared_task

from common import clock
from insights import tasks_forecast  # noqa: F401  (the forecasts' daily task)
from insights.services import recommendations_book_chunks, recommendations_prune, recommendations_refresh_accounts


@shared_task(name="insights.recommendations_refresh_book")
def recommendations_refresh_book_task() -> int:
    """Nightly: remove the recommendations of accounts no longer subscribed, then fan the book out as one task per
    chunk of accounts (as the month close does), all re-rating the same closed months. Returns the chunks queued."""
    now = clock.now()
    recommendations_prune()
    chunks = recommendations_book_chunks()
    for ids in chunks:
        recommendations_refresh_chunk_task.delay(ids, now.isoformat())
    return len(chunks)


@shared_task(
    name="insights.recommendations_refresh_chunk",
    acks_late=True,
    autoretry_for=(OSError,),
    max_retries=3,
    time_limit=1800,
)
def recommendations_refresh_chunk_task(account_ids: list[int], now: str) -> int:
    """Re-rate one chunk of accounts as of the fan-out's moment ``now`` (ISO 8601) and replace their
    recommendations."""
    return recommendations_refresh_accounts(account_ids=account_ids, now=dt.datetime.fromisoformat(now))
