"""The path ``make demo`` takes, on the demo's database: SQLite with the demo's options.

The rest of the suite runs on PostgreSQL and skips this folder (``--ignore=tests/sqlite`` in pyproject.toml);
``make test`` then runs it on its own::

    .venv/bin/python -m pytest tests/sqlite --ds=config.settings.test_sqlite -n 0

The test database is migrated (the SQLite triggers come from the migrations). What runs here is code the
PostgreSQL run never reaches: the generic event writers, the triggers that keep issued invoices immutable,
and the fallbacks for PostgreSQL-only features, under the demo's own data and month close.
"""
