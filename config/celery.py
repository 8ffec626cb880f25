"""The Celery application. Workers: `celery -A config worker`; schedule: `celery -A config beat`."""

import gc
import os

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

app = Celery("ledgerline")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def freeze_startup_objects(**_kwargs) -> None:
    """Django, the apps and their modules live as long as the worker: keep them out of the cyclic garbage
    collector's full passes, which otherwise walk them again and again while a billing chunk allocates
    thousands of rows (about a quarter of a chunk's CPU)."""
    gc.collect()
    gc.freeze()
