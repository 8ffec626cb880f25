"""Test settings on the demo's database: an SQLite file with the options base.py gives it (write-ahead log,
IMMEDIATE transactions, 30 s lock timeout), the cache in local memory, tasks eager.

``make test`` runs ``tests/sqlite`` with these after the PostgreSQL suite (see tests/sqlite/__init__.py), so
the path ``make demo`` takes (generic event writers, SQLite triggers and fallbacks) is tested too. The test
database is a file under var/ of this checkout, created and migrated afresh by each run.
"""

import os
from pathlib import Path

VAR_DIR = Path(__file__).resolve().parent.parent.parent / "var"
VAR_DIR.mkdir(exist_ok=True)

# Whatever DATABASE_URL and REDIS_URL the PostgreSQL run exported: this run is on SQLite, without Redis, as
# the demo is. base.py parses the URL and gives SQLite the demo's options.
os.environ["DATABASE_URL"] = f"sqlite:///{VAR_DIR / 'test-sqlite.sqlite3'}"
os.environ["REDIS_URL"] = ""
os.environ.setdefault("CELERY_BROKER_URL", "memory://localhost/")

from config.settings.test import *  # noqa: E402,F403

# pytest-django's test database: the same file, not Django's default in-memory database for SQLite.
DATABASES["default"]["TEST"] = {"NAME": DATABASES["default"]["NAME"]}
# dj-stripe's own migrations rebuild its tables one SQLite ALTER at a time, which takes minutes; its tables
# come straight from its models instead. Ledgerline's migrations, with the SQLite triggers, still run.
MIGRATION_MODULES = {"djstripe": None}
