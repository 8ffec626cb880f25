"""Queue a Celery task by its name: the one way a service hands work to a worker.

Services never import task modules (tasks import services, so that would make a circle); they name the
task (e.g. ``"billing.render_documents"``). Each app registers its tasks at start-up (its ``AppConfig.ready``
imports its ``tasks`` module). With ``CELERY_TASK_ALWAYS_EAGER`` (demo, tests) the task runs in process.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, current_app
from django.db import transaction

logger = logging.getLogger(__name__)


def _send(task: Task, args: tuple[Any, ...], countdown: float | None) -> None:
    if countdown is None:
        task.apply_async(args=args)
    else:
        task.apply_async(args=args, countdown=countdown)


def enqueue(name: str, *args: Any, countdown: float | None = None) -> None:
    """Queue task ``name`` now (outside a transaction, or when the work must not wait for its commit)."""
    _send(current_app.tasks[name], args, countdown)


def enqueue_on_commit(name: str, *args: Any, countdown: float | None = None) -> None:
    """Queue task ``name`` once the current transaction commits (nothing is queued if it rolls back).

    Robust: if the broker cannot be reached the change stays committed and the error is logged; every
    caller has a sweep or a schedule that queues the work again."""
    task = current_app.tasks[name]  # an unknown name fails here, in the caller's transaction
    transaction.on_commit(lambda: _send(task, args, countdown), robust=True)
