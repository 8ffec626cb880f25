"""Shared write helpers: locked counters."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.db import transaction

from common.models import Counter


@transaction.atomic
def counter_take(*, name: str, count: int) -> list[int]:
    """The next ``count`` consecutive numbers of series ``name``, gap-free.

    The row lock (``SELECT ... FOR UPDATE``) is held until the caller's transaction ends, so the
    numbers are only consumed if the caller commits.
    """
    if count <= 0:
        return []
    Counter.objects.get_or_create(name=name)
    counter = Counter.objects.select_for_update().get(name=name)
    first = counter.value + 1
    counter.value += count
    counter.save(update_fields=["value"])
    return list(range(first, first + count))


def counter_next(*, name: str) -> int:
    """The next number of series ``name``, gap-free (see ``counter_take``)."""
    return counter_take(name=name, count=1)[0]


def public_id_next(*, prefix: str, width: int = 6) -> str:
    """``acc_000001``-style ids from the counter named after the prefix."""
    return f"{prefix}_{counter_next(name=f'public_id:{prefix}'):0{width}d}"


def model_update(*, instance: Any, fields: Iterable[str], data: Mapping[str, Any]) -> tuple[Any, bool]:
    """Apply ``data`` to the allowed ``fields`` of ``instance``, validate, save only what changed.

    Returns ``(instance, changed)``. Keys of ``data`` outside ``fields`` are ignored; callers pass the
    fields a given role may edit.
    """
    changed: list[str] = []
    for field in fields:
        if field in data and getattr(instance, field) != data[field]:
            setattr(instance, field, data[field])
            changed.append(field)
    if changed:
        instance.full_clean()
        update_fields = list(changed)
        if any(f.name == "updated_at" for f in instance._meta.fields):
            update_fields.append("updated_at")
        instance.save(update_fields=update_fields)
    return instance, bool(changed)
