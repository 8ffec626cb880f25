"""Writes of many rows in one statement whose text does not grow with the number of rows.

Django's ``bulk_update`` builds one ``CASE WHEN id = ... THEN ...`` per row and field: its cost grows with
rows × fields on both sides (expressions resolved in Python, a long statement parsed by PostgreSQL).
On PostgreSQL, ``bulk_update_fields`` sends one array per column instead and joins them with ``unnest``; the
values go through the same field preparation (``get_db_prep_save``) as ``bulk_update``, so the rows end up
identical. Other databases (the SQLite demo) use ``bulk_update``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from django.db import connection
from django.db.models import Field, Model


def bulk_update_fields(objs: Sequence[Model], fields: Sequence[str]) -> None:
    """``Model.objects.bulk_update(objs, fields)`` in a single statement. Like ``bulk_update``, it sets
    exactly ``fields`` (no ``auto_now``) and sends no signals."""
    if not objs:
        return
    model = type(objs[0])
    if connection.vendor != "postgresql":
        model._default_manager.bulk_update(objs, fields)
        return
    meta = model._meta
    qn = connection.ops.quote_name
    # Concrete fields only, as for bulk_update: each has an attname and a column (``get_field`` may also
    # return a reverse relation or a generic key, which have neither).
    columns = cast("list[Field[Any, Any]]", [meta.pk, *(meta.get_field(name) for name in fields)])
    arrays = [[column.get_db_prep_save(getattr(obj, column.attname), connection) for obj in objs] for column in columns]
    names = [qn(cast(str, column.column)) for column in columns]
    casts = ", ".join(f"%s::{column.rel_db_type(connection) if column.primary_key else column.db_type(connection)}[]"
                      for column in columns)  # fmt: skip
    assignments = ", ".join(f"{name} = v.{name}" for name in names[1:])
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {qn(meta.db_table)} AS t SET {assignments} FROM unnest({casts}) AS v({', '.join(names)})"
            f" WHERE t.{names[0]} = v.{names[0]}",
            arrays,
        )
