"""The periodic tasks, installed into django-celery-beat's tables when the database is migrated.

``LEDGERLINE_SCHEDULE`` (settings) names each periodic task, its Celery task and its crontab (or, for a task
that runs every few seconds, a ``timedelta``: an interval). After every
``migrate`` the entries that are missing are created, so staff see the whole schedule in the admin
(*Periodic tasks*) before beat has ever run. Entries that exist are left as they are: an entry staff have
edited or paused stays edited or paused (beat reads the tables; nothing rewrites them at its start).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db import connections
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask


def schedule_install(*, schedule: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """Create the periodic tasks of ``schedule`` (default: ``LEDGERLINE_SCHEDULE``) that do not exist yet.
    Returns the names created."""
    schedule = settings.LEDGERLINE_SCHEDULE if schedule is None else schedule
    existing = set(PeriodicTask.objects.filter(name__in=list(schedule)).values_list("name", flat=True))
    created = []
    for name, entry in schedule.items():
        if name in existing:
            continue
        description = entry.get("description", "")
        if isinstance(entry["schedule"], dt.timedelta):  # every few seconds (e.g. webhook deliveries)
            interval, _ = IntervalSchedule.objects.get_or_create(
                every=int(entry["schedule"].total_seconds()), period=IntervalSchedule.SECONDS
            )
            PeriodicTask.objects.create(name=name, task=entry["task"], interval=interval, description=description)
            created.append(name)
            continue
        crontab = CrontabSchedule.from_schedule(entry["schedule"])
        if crontab.pk is None:
            crontab.save()
        PeriodicTask.objects.create(name=name, task=entry["task"], crontab=crontab, description=description)
        created.append(name)
    return created


def schedule_install_after_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    """``post_migrate`` receiver (connected once, for this app): the schedule exists once migrations ran."""
    if "django_celery_beat_periodictask" in connections[using].introspection.table_names():
        schedule_install()
