"""Group commit: concurrent small writes of one process share one transaction.

A single-event request on its own costs PostgreSQL a transaction: a statement, a commit and a WAL flush,
far more than the event. Requests that arrive while another request's write is in flight wait for it and
are then written together, by one of them (the next *leader*), in one transaction. No timer: a request
that finds nothing in flight is written at once, so a quiet server adds no latency, and a busy one makes
bigger groups.

Invariants:
- every request is answered only after the transaction holding its rows has committed (or failed);
- a request's rows are written whole or not at all: if the group's transaction fails for a reason other
  than a conflict worth retrying, each request of the group is tried again alone, so one bad request
  cannot fail the others;
- a key repeated by two requests of a group is stored once: the request listed first gets it, the other
  is told it was a duplicate, exactly as if it had arrived just after;
- the events refused as duplicates (key stored already, repeated in the group or in the request) are handed to
  ``tally_refused`` once the group's write committed — only when there are any.

The leader also asks ``admit`` about the whole group at once before writing (the per-key rate limit: one
Redis round trip per group instead of one per request); a refused request is answered without a write.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from django.db import InterfaceError, OperationalError, connection, transaction

from usage.writers import EventKeyTuple, Refusal, StagedEvent, refusal_of, write_events_keys, written_in_one_statement

DEADLOCK_RETRIES = 3
logger = logging.getLogger(__name__)


@dataclass(eq=False)
class Pending:
    """One request's rows (already validated, distinct keys), waiting to be written."""

    account: Any
    rows: list[StagedEvent]  # may be empty: a request that is only counted (see ``admit``)
    now: dt.datetime
    admit_as: Any = None  # what ``admit`` counts this request as (an API key), or None
    done: bool = False
    refused: Any = None  # what ``admit`` answered when it refused the request (then nothing is written)
    new_keys: set[EventKeyTuple] = field(default_factory=set)
    error: BaseException | None = None
    duplicates: list[Refusal] = field(default_factory=list)  # refused for repeating a key of the request itself


class GroupCommitter:
    def __init__(
        self,
        *,
        conflict: Callable[[OperationalError], bool],
        after_write: Callable[[Any, dt.datetime], None],
        admit: Callable[[list[Any]], list[Any]],
        tally_refused: Callable[[list[Refusal], dt.datetime], None] = lambda refusals, now: None,
    ) -> None:
        """``conflict`` tells a failure worth retrying the transaction for; ``after_write(account, now)``
        runs once for each account that got new rows, after they committed; ``admit(admit_as values)`` is
        asked once per group, before the write, about the members that carry ``admit_as``, and answers
        for each None (write it) or a refusal (do not); ``tally_refused(refusals, now)`` records the events of
        written requests that were refused as duplicates, after their write committed."""
        self._cond = threading.Condition(threading.Lock())
        self._pending: list[Pending] = []
        self._writing = False
        self._conflict = conflict
        self._after_write = after_write
        self._admit = admit
        self._tally_refused = tally_refused

    def submit(self, item: Pending) -> set[EventKeyTuple]:
        """Write ``item`` (with whatever else is waiting) and return its keys that were new. Blocks until
        its transaction has committed; raises what made it fail."""
        with self._cond:
            self._pending.append(item)
            while not item.done:
                if self._writing:
                    self._cond.wait()
                    continue
                group, self._pending = self._pending, []
                self._writing = True
                self._cond.release()
                finished = False
                try:
                    self._admit_and_write(group)
                    finished = True
                finally:
                    self._cond.acquire()
                    self._writing = False
                    for member in group:
                        if not finished and member.error is None:  # never answer as if written
                            member.error = RuntimeError("the group write was interrupted")
                        member.done = True
                    self._cond.notify_all()
        if item.error is not None:
            raise item.error
        return item.new_keys

    def _admit_and_write(self, group: list[Pending]) -> None:
        counted = [member for member in group if member.admit_as is not None]
        if counted:
            try:
                answers = self._admit([member.admit_as for member in counted])
            except Exception as exc:
                for member in group:
                    member.error = exc
                return
            for member, answer in zip(counted, answers, strict=True):
                member.refused = answer
        writable = [member for member in group if member.refused is None and member.rows]
        if writable:
            self._write_group(writable)

    def _write_group(self, group: list[Pending]) -> None:
        try:
            written = [self._write_with_retries(group)]
        except Exception as exc:
            if len(group) == 1:
                group[0].error = exc
                return
            written = []
            for member in group:  # alone, so that only the request at fault fails
                try:
                    written.append(self._write_with_retries([member]))
                except Exception as member_exc:
                    member.error = member_exc
        for accounts, now, refusals in written:
            for account in accounts:
                try:
                    self._after_write(account, now)
                except Exception:  # the usage is committed and acknowledged; the next write tries again
                    logger.exception("After-write work failed for account %s", getattr(account, "pk", account))
            if refusals:
                try:
                    self._tally_refused(refusals, now)
                except Exception:  # the answers stand: the tally is a record of what was refused, not of usage
                    logger.exception("Tallying %d refused duplicates failed", len(refusals))

    def _write_with_retries(self, group: list[Pending]) -> tuple[list[Any], dt.datetime, list[Refusal]]:
        # The write itself finds a dead pooled connection, so the per-request health check (a SELECT 1 round
        # trip) is skipped here; a broken connection is replaced once and the write tried again. Writes are
        # idempotent (event keys): a retry stores nothing twice, and events whose commit was sent before the
        # connection broke are then reported as duplicates.
        connection.health_check_done = True
        reconnected = False
        attempt = 0
        while True:
            try:
                return self._write(group)
            except (OperationalError, InterfaceError) as exc:
                if not reconnected and (connection.connection is None or not connection.is_usable()):
                    connection.close()
                    reconnected = True
                    continue
                attempt += 1
                if not isinstance(exc, OperationalError) or not self._conflict(exc) or attempt >= DEADLOCK_RETRIES:
                    raise
                time.sleep(0.01 * attempt)

    def _write(self, group: list[Pending]) -> tuple[list[Any], dt.datetime, list[Refusal]]:
        """Store the group's rows; return the accounts that got new ones, the write time and the events
        refused as duplicates."""
        owner: dict[EventKeyTuple, Pending] = {}
        rows: list[StagedEvent] = []
        for member in group:
            for row in member.rows:
                key = (row.account_id, row.transaction_id)
                if key not in owner:
                    owner[key] = member
                    rows.append(row)
        # Sorted like every batch, so concurrent writers lock keys and buckets in the same order.
        rows.sort(key=lambda r: (r.account_id, r.transaction_id))
        now = min(m.now for m in group)
        # A write that is one statement is a transaction by itself: no BEGIN and COMMIT round trips.
        with nullcontext() if written_in_one_statement(rows) else transaction.atomic():
            new_keys = write_events_keys(rows=rows, now=now)
        for member in group:
            member.new_keys = set()
        accounts = {}
        for key in new_keys:
            member = owner[key]
            member.new_keys.add(key)
            accounts[member.account.pk] = member.account
        refusals: list[Refusal] = []
        for member in group:
            refusals += member.duplicates
            if len(member.new_keys) < len(member.rows):
                refusals += [
                    refusal_of(r) for r in member.rows if (r.account_id, r.transaction_id) not in member.new_keys
                ]
        return list(accounts.values()), now, refusals
