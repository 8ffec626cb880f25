"""Reads about tenants and master partners, for the ingest hot path.

Both lookups keep what they found for ``LOOKUP_CACHE_SECONDS`` per process, like API keys
(``accounts.selectors.api_key_for``): on a small request the database round trip is a large share of
the cost. What can go stale, and for how long, is stated below; a miss always reads the database, so a
new tenant or partner is usable at once.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterable
from typing import NamedTuple

from tenants.models import MasterPartner, Tenant

# Archiving a tenant ends its billable life; another process may accept events stamped after that moment
# for up to this long (the process that archived it forgets at once). Tenant ids and their account never
# change, and a partner's id never changes, so nothing else can be stale.
LOOKUP_CACHE_SECONDS = 5.0
MAX_ENTRIES = 10_000

_lock = threading.Lock()
_tenants: dict[str, tuple[float, TenantRow]] = {}
_partners: dict[tuple[int, str], tuple[float, int]] = {}


class TenantRow(NamedTuple):
    pk: int
    public_id: str
    account_id: int
    activated_at: dt.datetime
    archived_at: dt.datetime | None


def tenant_rows_for(*, public_ids: Iterable[str]) -> dict[str, TenantRow]:
    """The tenants with these public ids (unknown ids are left out), cached briefly per process."""
    wanted = set(public_ids)
    found: dict[str, TenantRow] = {}
    now = time.monotonic()
    for public_id in wanted:
        cached = _tenants.get(public_id)
        if cached is not None and now - cached[0] < LOOKUP_CACHE_SECONDS:
            found[public_id] = cached[1]
    missing = wanted - found.keys()
    if missing:
        rows = [
            TenantRow(*row)
            for row in Tenant.objects.filter(public_id__in=missing).values_list(
                "id", "public_id", "account_id", "activated_at", "archived_at"
            )
        ]
        with _lock:
            if len(_tenants) + len(rows) > MAX_ENTRIES:
                _tenants.clear()
            for row in rows:
                _tenants[row.public_id] = (now, row)
                found[row.public_id] = row
    return found


def partner_ids_for(*, account_id: int, public_ids: Iterable[str]) -> dict[str, int]:
    """Primary keys of the account's master partners with these public ids (unknown ids left out)."""
    wanted = set(public_ids)
    found: dict[str, int] = {}
    now = time.monotonic()
    for public_id in wanted:
        cached = _partners.get((account_id, public_id))
        if cached is not None and now - cached[0] < LOOKUP_CACHE_SECONDS:
            found[public_id] = cached[1]
    missing = wanted - found.keys()
    if missing:
        rows = list(
            MasterPartner.objects.filter(account_id=account_id, public_id__in=missing).values_list("public_id", "id")
        )
        with _lock:
            if len(_partners) + len(rows) > MAX_ENTRIES:
                _partners.clear()
            for public_id, pk in rows:
                _partners[(account_id, public_id)] = (now, pk)
                found[public_id] = pk
    return found


def tenant_cache_clear() -> None:
    with _lock:
        _tenants.clear()
        _partners.clear()
