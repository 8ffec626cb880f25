"""Transaction-scoped advisory locks (PostgreSQL). SQLite, the demo's database, has one writer at a time,
so there the calls do nothing and the serialisation they give on PostgreSQL comes for free."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection

# Lock namespaces (the first key of pg_advisory_xact_lock(int, int)); the second key is the account id.
QUOTAS = 7_301  # evaluating an account's plan limits
PERIODS = 7_302  # closing an account's months (exclusive) against writing its past-month events (shared)


def lock(namespace: int, key: int, *, shared: bool = False) -> None:
    """Hold the lock ``(namespace, key)`` until the transaction ends."""
    if connection.vendor != "postgresql":
        return
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(%s, %s)", [namespace, key])


def lock_many(namespace: int, keys: Iterable[int]) -> None:
    """Exclusive locks on many keys in one round trip, taken in ascending order so that concurrent
    holders of overlapping sets never deadlock."""
    ids = sorted(set(keys))
    if connection.vendor != "postgresql" or not ids:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, id) FROM unnest(%s::int[]) AS t(id) ORDER BY id", [namespace, ids]
        )
