"""The test session's database: a copy of a migrated template, made afresh for every session.

Migrating an empty database takes about a minute; PostgreSQL copies a database (``CREATE DATABASE ...
TEMPLATE``) in well under a second. So the migrations run once, into ``test_<NAME>_template``, and every
session (every pytest-xdist worker) starts from its own copy of it, dropped again at the end.

Invariant: the template is used only while its database comment holds the fingerprint of everything
migrating depends on: every migration file of every installed app, the modules of the ``post_migrate``
receivers (e.g. the periodic-task schedule) and the settings modules. A new, edited or removed migration, a
fresh clone or server with no template, or a template left half-built by an interrupted run all give another
(or no) fingerprint, and the template is built again before any test runs. ``--create-db`` rebuilds it
unconditionally (once per run, not once per worker).

Because each session gets a fresh copy, nothing a run leaves behind (rows of an interrupted transactional
test, a killed server's connections) reaches the next run.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
import uuid
import weakref
import zlib
from pathlib import Path

import django
from django.conf import settings
from django.core.management.color import no_style
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.loader import MigrationLoader
from django.db.models.signals import post_migrate

# Session-level advisory lock (taken on the server's maintenance database): one session at a time builds
# or copies the template, which PostgreSQL requires to have no other connection while it is copied.
LOCK_NAMESPACE = 7_399


def _module_files() -> list[Path]:
    """The files whose content decides what ``migrate`` puts into an empty database."""
    files = set()
    loader = MigrationLoader(None, ignore_no_migrations=True)
    for migration in loader.disk_migrations.values():
        files.add(Path(inspect.getfile(sys.modules[migration.__module__])))
    for _key, receiver, *_ in post_migrate.receivers:
        function = receiver() if isinstance(receiver, weakref.ReferenceType) else receiver
        module = inspect.getmodule(function)
        if module is not None and getattr(module, "__file__", None):
            files.add(Path(module.__file__))
    settings_package = settings.SETTINGS_MODULE.rpartition(".")[0]
    for name, module in list(sys.modules.items()):
        if name.startswith(f"{settings_package}.") and getattr(module, "__file__", None):
            files.add(Path(module.__file__))
    return sorted(files)


def schema_fingerprint() -> str:
    digest = hashlib.sha256(f"django {django.__version__}\n".encode())
    for path in _module_files():
        digest.update(f"{path.name}\n".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _quote(connection, name: str) -> str:
    return connection.ops.quote_name(name)


def _build_template(connection, template: str, verbosity: int) -> None:
    """Create and migrate ``template`` with Django's own test-database creation."""
    test_settings = connection.settings_dict["TEST"]
    session_name, original_name = test_settings.get("NAME"), connection.settings_dict["NAME"]
    test_settings["NAME"] = template
    try:
        connection.creation.create_test_db(verbosity=verbosity, autoclobber=True, serialize=False, keepdb=False)
    finally:
        connection.close()
        test_settings["NAME"] = session_name
        settings.DATABASES[connection.alias]["NAME"] = connection.settings_dict["NAME"] = original_name


def _template_comment(cursor, template: str) -> str | None:
    cursor.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", [template])
    row = cursor.fetchone()
    return row[0] if row else None


def session_database_create(*, run_id: str | None, force_rebuild: bool, serialize: bool, verbosity: int) -> str:
    """Give the session its own copy of the template (building the template first when it is missing or
    stale) and point the connection at it. ``run_id`` is shared by the workers of one run."""
    connection = connections[DEFAULT_DB_ALIAS]
    creation = connection.creation
    original_name = connection.settings_dict["NAME"]
    session_name = creation._get_test_db_name()
    template = f"test_{original_name}_template"
    fingerprint = schema_fingerprint()
    run_id = run_id or uuid.uuid4().hex

    with creation._nodb_cursor() as cursor:
        lock = zlib.crc32(template.encode()) & 0x7FFF_FFFF  # the two-key form takes two int4s
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [LOCK_NAMESPACE, lock])
        try:
            comment = _template_comment(cursor, template) or ""
            stale = not comment.startswith(f"{fingerprint} ")
            if stale or (force_rebuild and comment != f"{fingerprint} {run_id}"):
                reason = "forced" if not stale else ("migrations changed" if comment else "none yet")
                print(f"\nMigrating the template database {template} ({reason}) ...", file=sys.__stderr__)
                _build_template(connection, template, verbosity)
                comment = f"{fingerprint} {run_id}"
                cursor.execute(f"COMMENT ON DATABASE {_quote(connection, template)} IS %s", [comment])
            # FORCE: a server a killed run left behind may still hold a connection to an old copy.
            cursor.execute(f"DROP DATABASE IF EXISTS {_quote(connection, session_name)} WITH (FORCE)")
            cursor.execute(
                f"CREATE DATABASE {_quote(connection, session_name)} TEMPLATE {_quote(connection, template)}"
            )
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_NAMESPACE, lock])

    connection.close()
    settings.DATABASES[connection.alias]["NAME"] = connection.settings_dict["NAME"] = session_name
    if serialize:
        # What transactional tests with serialized_rollback=True restore after their flush.
        connection._test_serialized_contents = creation.serialize_db_to_string()
        _restore_into_an_empty_database(connection)
    return original_name


def _restore_into_an_empty_database(connection) -> None:
    """Restore the serialized rows into empty tables. The flush after a transactional test without
    serialized_rollback re-creates content types and permissions under new ids, and the rows restored under their
    old ids would collide with them (a duplicate ``(app_label, model)``): so the tables are emptied first."""
    creation = connection.creation
    restore = creation.deserialize_db_from_string

    def deserialize_db_from_string(data: str) -> None:
        tables = connection.introspection.django_table_names(only_existing=True, include_views=False)
        statements = connection.ops.sql_flush(no_style(), tables, reset_sequences=False, allow_cascade=True)
        connection.ops.execute_sql_flush(statements)
        restore(data)

    creation.deserialize_db_from_string = deserialize_db_from_string


def session_database_drop(*, original_name: str) -> None:
    connection = connections[DEFAULT_DB_ALIAS]
    session_name = connection.settings_dict["NAME"]
    for alias in connections:
        connections[alias].close()
    settings.DATABASES[connection.alias]["NAME"] = connection.settings_dict["NAME"] = original_name
    with connection.creation._nodb_cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {_quote(connection, session_name)} WITH (FORCE)")
