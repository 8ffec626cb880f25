"""Reads of the export API: what a key may export, the datasets as keyset-ordered querysets, and the rows of a
page or of a whole stream.

Exactly once, while new rows arrive
-----------------------------------
Each dataset is read in a stable keyset order, and a cursor is the position of the last row a client got, so a
client that resumes from it gets every later row once. A keyset alone is not enough: a row can become visible
*behind* a cursor. An event's id is taken when its ingest transaction inserts it, but the transaction commits
later, so a page read in between passes over that id, and a later page starts after it. Likewise an invoice
becomes an export row when it is finalized, long after its id was taken.

The guard is a settle horizon, ``EXPORT_SETTLE_SECONDS`` (a few seconds) before the request:

- Events keep the id keyset (the primary key's index serves it), and a page or stream is the longest run of
  rows, in id order, received before the horizon: it ends before the first younger event. Every row sent is then
  older than the horizon, and every event with a smaller id committed before the request read it — provided an
  ingest request commits within half the horizon of stamping ``received_at`` (ids are taken in time order: an
  event with a smaller id was inserted before the row sent, so it was stamped, at the latest, when that row was
  inserted, less than half the horizon after that row's own stamp, and committed within another half). Ingest
  commits in milliseconds; the default horizon leaves seconds.
- Documents (invoices, credit notes, payments) are ordered by the moment they became exportable (finalized,
  issued, recorded) and their id, and only those older than the horizon are read: any document that commits
  later was stamped after the horizon, so it sorts after every row already sent.

So a client paging with ``next_cursor`` (or resuming a stream from its last row's ``cursor``) gets each row exactly
once; rows younger than the horizon come with a later request. Documents are exported as they are when read
(a payment's later refund shows on the payment exported after it, not as a change to one already sent).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Func, Min, Prefetch, Q, QuerySet, TextField, Value
from django.db.models.functions import Cast, Coalesce
from psycopg import ClientCursor

from accounts.models import EXPORT_DATASETS, Account, ApiKey
from billing.apis import usage_document
from billing.models import CreditNote, Invoice, Payment, PaymentAllocation, Refund
from billing.selectors import CUSTOMER_VISIBLE_STATUSES
from common import clock
from common.errors import BillingError
from common.periods import Period
from usage.ingest import quoted
from usage.models import UsageEvent

ERR_SCOPE = "This API key needs the 'export' or 'read' scope."
ERR_DATASET = "This API key may not export {dataset}; it may export {allowed}."
ERR_PINNED = "This API key is pinned to a tenant: it exports that tenant's events only, not {dataset}."
ERR_ACCOUNT_NOT_FOUND = "No account '{account}'."
ERR_CURSOR = "The cursor is not valid: send back a `next_cursor` or a row's `cursor` as it was given."

# One cursor tag per dataset, so that a cursor of one dataset is refused by another.
CURSOR_TAGS = {"events": "e", "invoices": "i", "credit_notes": "c", "payments": "p", "usage": "u"}
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


# --- Access ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportScope:
    """What one key may export: the accounts (None: every account), a tenant pin, the datasets."""

    api_key: ApiKey
    account_ids: frozenset[int] | None
    tenant_id: int | None
    datasets: tuple[str, ...]

    def accounts(self) -> QuerySet[Account]:
        accounts = Account.objects.all()
        return accounts if self.account_ids is None else accounts.filter(pk__in=self.account_ids)


def export_scope(*, api_key: ApiKey, dataset: str) -> ExportScope:
    """The scope of ``api_key`` for ``dataset``. Export keys: every account or their ``export_accounts``, their
    ``export_datasets``. Read keys: their own account; pinned to a tenant, that tenant's events only. Raises a
    403 ``BillingError`` naming the dataset when the key may not export it."""
    if api_key.scope_export:
        datasets = api_key.export_datasets_allowed
        limited = frozenset(api_key.export_accounts.values_list("pk", flat=True))
        scope = ExportScope(api_key, limited or None, None, datasets)
    elif api_key.scope_read and api_key.account_id is not None:
        datasets = ("events",) if api_key.tenant_id else EXPORT_DATASETS
        scope = ExportScope(api_key, frozenset({api_key.account_id}), api_key.tenant_id, datasets)
        if dataset not in datasets:
            raise BillingError(ERR_PINNED.format(dataset=dataset), code="permission_denied", status=403)
    else:
        raise BillingError(ERR_SCOPE, code="permission_denied", status=403)
    if dataset not in scope.datasets:
        raise BillingError(
            ERR_DATASET.format(dataset=dataset, allowed=", ".join(scope.datasets)),
            code="permission_denied",
            field="dataset",
            status=403,
        )
    return scope


def export_account(*, scope: ExportScope, public_id: str) -> Account:
    """The account ``public_id`` names, if the scope may see it; else a 404 (whether it exists or not)."""
    account = None
    # No account id has unprintable characters (and PostgreSQL cannot even compare a NUL).
    if public_id.isprintable() and len(public_id) <= 64:
        account = scope.accounts().filter(public_id=public_id).first()
    if account is None:
        raise BillingError(
            ERR_ACCOUNT_NOT_FOUND.format(account=quoted(public_id)), code="not_found", field="account", status=404
        )
    return account


def _limited(queryset: QuerySet, scope: ExportScope, account: Account | None) -> QuerySet:
    if account is not None:
        queryset = queryset.filter(account_id=account.pk)
    elif scope.account_ids is not None:
        queryset = queryset.filter(account_id__in=sorted(scope.account_ids))
    return queryset


# --- Cursors ---------------------------------------------------------------------------------------------


def cursor_encode(dataset: str, position: Sequence[int]) -> str:
    text = CURSOR_TAGS[dataset] + ".".join(str(part) for part in position)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def cursor_decode(dataset: str, cursor: str, parts: int) -> tuple[int, ...]:
    """The position a cursor of ``dataset`` names; a 400 naming ``cursor`` for anything we did not make."""
    invalid = BillingError(ERR_CURSOR, code="invalid_cursor", field="cursor")
    if len(cursor) > 64:
        raise invalid
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise invalid from None
    tag, body = text[:1], text[1:]
    numbers = body.split(".")
    if tag != CURSOR_TAGS[dataset] or len(numbers) != parts or not all(n.isdigit() and len(n) <= 19 for n in numbers):
        raise invalid
    return tuple(int(n) for n in numbers)


def _micros(moment: dt.datetime) -> int:
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _moment(micros: int) -> dt.datetime:
    try:
        return EPOCH + dt.timedelta(microseconds=micros)
    except OverflowError:
        raise BillingError(ERR_CURSOR, code="invalid_cursor", field="cursor") from None


def settle_horizon() -> dt.datetime:
    """Rows stamped before this moment are exported now; younger ones with a later request."""
    return clock.now() - dt.timedelta(seconds=settings.EXPORT_SETTLE_SECONDS)


# --- Events ----------------------------------------------------------------------------------------------


class TrimScale(Func):
    """``trim_scale(numeric)``: 1.50000000 → 1.5 (PostgreSQL 13+), so quantities leave the database as text."""

    function = "trim_scale"


# The columns of an event row, in the order ``exports.rows`` writes them.
EVENT_COLUMNS = (
    "id",
    "transaction_id",
    "account__public_id",
    "tenant__public_id",
    "metric__code",
    "partner__public_id",
    "timestamp",
    "quantity_text",
    "properties_text",
    "billing_month",
    "received_at",
    "is_late",
)
EVENT_RECEIVED_AT = EVENT_COLUMNS.index("received_at")


def export_events(*, scope: ExportScope, account: Account | None = None) -> QuerySet[UsageEvent]:
    """The events the scope may export (of ``account`` only, when given), unordered and unfiltered."""
    events = _limited(UsageEvent.objects.all(), scope, account)
    if scope.tenant_id is not None:
        events = events.filter(tenant_id=scope.tenant_id)
    return events


def _event_rows(events: QuerySet[UsageEvent], after: int | None) -> QuerySet:
    if after is not None:
        events = events.filter(pk__gt=after)
    # Quantities and properties as the database writes them: no Decimal or JSON round trip per row.
    return (
        events.annotate(
            quantity_text=Cast(TrimScale("quantity"), TextField()),
            properties_text=Cast("properties", TextField()),
        )
        .order_by("pk")
        .values_list(*EVENT_COLUMNS)
    )


class _IsoUtc(Func):
    """A timestamp as ``common.formats.iso_utc`` writes it: ``2026-11-30T23:59:59Z``, micro-seconds when present
    (``.000000`` can only be the micro-seconds: the date and time before them hold no dot)."""

    output_field = TextField()
    template = (
        "replace(to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), '.000000', '') || 'Z'"
    )


class _EventCursor(Func):
    """An event's cursor as ``cursor_encode("events", (id,))`` writes it: URL-safe base64 of ``e<id>``, unpadded."""

    output_field = TextField()
    template = "rtrim(translate(encode(convert_to('e' || %(expressions)s::text, 'UTF8'), 'base64'), '+/', '-_'), '=')"


class _Joined(Func):
    """Text pieces joined with ``||`` (cheaper than ``json_build_object`` per row, and every piece is already JSON)."""

    arg_joiner = " || "
    output_field = TextField()
    template = "(%(expressions)s)"


def _json(expression: Any, *, nullable: bool = False) -> Func[Any]:
    """A value as JSON text (``to_json`` escapes strings); ``null`` for a missing one."""
    value = Func(
        expression, function="to_json", template="%(function)s(%(expressions)s)::text", output_field=TextField()
    )
    return Coalesce(value, Value("null"), output_field=TextField()) if nullable else value


def _quoted(expression: Any) -> Func:
    """Text that needs no escaping (times, decimals, months) as a JSON string."""
    return _Joined(Value('"'), expression, Value('"'))


def _event_lines(events: QuerySet[UsageEvent]) -> QuerySet:
    """Each event as the NDJSON line ``rows.event_object`` makes (the same keys and values), written by PostgreSQL,
    so a stream of millions of rows costs Python nothing per row."""
    fields = {
        "cursor": _quoted(_EventCursor("id")),
        "transaction_id": _json(F("transaction_id")),
        "account_id": _json(F("account__public_id")),
        "tenant_id": _json(F("tenant__public_id")),
        "metric": _json(F("metric__code")),
        "partner_id": _json(F("partner__public_id"), nullable=True),
        "timestamp": _quoted(_IsoUtc("timestamp")),
        "quantity": _quoted(Cast(TrimScale("quantity"), TextField())),
        "properties": Cast("properties", TextField()),
        "billing_month": _quoted(
            Func(F("billing_month"), Value("YYYY-MM"), function="to_char", output_field=TextField())
        ),
        "received_at": _quoted(_IsoUtc("received_at")),
        "is_late": Cast("is_late", TextField()),
    }
    pieces: list[Any] = []
    for index, (key, value) in enumerate(fields.items()):
        pieces += [Value(("{" if index == 0 else ",") + f'"{key}":'), value]
    pieces.append(Value("}"))
    return events.annotate(line=_Joined(*pieces)).order_by("pk").values_list("line")


# COPY's CSV form with a delimiter and a quote character that JSON text never holds raw (JSON escapes every
# control character): each line comes out exactly as written, followed by a newline -- NDJSON as it is sent.
_COPY_NDJSON = "COPY ({query}) TO STDOUT (FORMAT csv, DELIMITER E'\\x02', QUOTE E'\\x01')"


def events_ndjson_stream(*, events: QuerySet[UsageEvent], after: int | None) -> Iterator[bytes]:
    """``events_stream`` for NDJSON on PostgreSQL: the lines of every settled event after ``after`` as blocks of
    bytes from one ``COPY ... TO STDOUT`` (constant memory: the database streams them, Python holds a block). It
    ends before the first event younger than the settle horizon, found first through the BRIN index on
    ``received_at``, so later ids wait until it settles and a resumed export misses none."""
    if after is not None:
        events = events.filter(pk__gt=after)
    first_unsettled = events.filter(received_at__gte=settle_horizon()).aggregate(first=Min("pk"))["first"]
    if first_unsettled is not None:
        events = events.filter(pk__lt=first_unsettled)
    sql, params = _event_lines(events).query.sql_with_params()
    with connection.cursor() as cursor:
        raw = cursor.cursor
        statement = ClientCursor(raw.connection).mogrify(sql, params)
        with raw.copy(_COPY_NDJSON.format(query=statement)) as copy:
            for block in copy:
                yield bytes(block)


def events_page(*, events: QuerySet[UsageEvent], after: int | None, limit: int) -> tuple[list[tuple], bool]:
    """Up to ``limit`` event rows after the id ``after``, ending before the first event younger than the settle
    horizon; and whether more settled rows follow."""
    horizon = settle_horizon()
    rows = list(_event_rows(events, after)[: limit + 1])
    settled: list[tuple] = []
    for row in rows:
        if row[EVENT_RECEIVED_AT] >= horizon:
            return settled, False
        settled.append(row)
    return settled[:limit], len(settled) > limit


def events_stream(*, events: QuerySet[UsageEvent], after: int | None, chunk_size: int) -> Iterator[tuple]:
    """Every settled event row after the id ``after``, read from one server-side cursor in chunks (never the
    whole range in memory), inside one read-only transaction so PostgreSQL streams it instead of materializing
    a held cursor. Stops before the first event younger than the settle horizon."""
    horizon = settle_horizon()
    with transaction.atomic():
        for row in _event_rows(events, after).iterator(chunk_size=chunk_size):
            if row[EVENT_RECEIVED_AT] >= horizon:
                return
            yield row


# --- Documents -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DocumentSet:
    """A document dataset: its queryset and the moment it became exportable (its keyset with the id)."""

    dataset: str
    queryset: QuerySet
    stamp: str


def export_invoices(*, scope: ExportScope, account: Account | None = None) -> DocumentSet:
    """Issued invoices (finalized, paid, void after issue, uncollectible), in the order they were finalized."""
    invoices = Invoice.objects.filter(
        status__in=CUSTOMER_VISIBLE_STATUSES, number__isnull=False, finalized_at__isnull=False
    ).select_related("account")
    return DocumentSet("invoices", _limited(invoices, scope, account), "finalized_at")


def export_credit_notes(*, scope: ExportScope, account: Account | None = None) -> DocumentSet:
    """Credit notes (issued, and those voided since), in the order they were issued, with their invoice's number."""
    notes = CreditNote.objects.select_related("account", "invoice").prefetch_related("lines")
    return DocumentSet("credit_notes", _limited(notes, scope, account), "issued_at")


def export_payments(*, scope: ExportScope, account: Account | None = None) -> DocumentSet:
    """Payments in the order they were recorded (``created_at``: a bank transfer recorded today with last week's
    ``received_at`` still comes after every payment already exported), with the allocations and refunds that
    ``billing.apis_ledger.payment_document`` reads."""
    payments = Payment.objects.select_related("account").prefetch_related(
        Prefetch(
            "allocations", queryset=PaymentAllocation.objects.select_related("invoice").order_by("created_at", "pk")
        ),
        Prefetch("refunds", queryset=Refund.objects.order_by("refunded_at", "pk")),
    )
    return DocumentSet("payments", _limited(payments, scope, account), "created_at")


def _documents_after(documents: DocumentSet, after: tuple[int, int] | None) -> QuerySet:
    stamp = documents.stamp
    queryset = documents.queryset.filter(**{f"{stamp}__lt": settle_horizon()})
    if after is not None:
        moment, pk = _moment(after[0]), after[1]
        queryset = queryset.filter(Q(**{f"{stamp}__gt": moment}) | Q(**{stamp: moment, "pk__gt": pk}))
    return queryset.order_by(stamp, "pk")


def document_cursor(documents: DocumentSet, document: Any) -> str:
    return cursor_encode(documents.dataset, (_micros(getattr(document, documents.stamp)), document.pk))


def documents_page(*, documents: DocumentSet, after: tuple[int, int] | None, limit: int) -> tuple[list[Any], bool]:
    """Up to ``limit`` settled documents after the position ``after``, and whether more follow."""
    rows = list(_documents_after(documents, after)[: limit + 1])
    return rows[:limit], len(rows) > limit


def documents_stream(*, documents: DocumentSet, after: tuple[int, int] | None, chunk_size: int) -> Iterator[Any]:
    """Every settled document after ``after``, from a server-side cursor in chunks (with their prefetches per
    chunk), inside one read-only transaction."""
    with transaction.atomic():
        yield from _documents_after(documents, after).iterator(chunk_size=chunk_size)


# --- Usage -----------------------------------------------------------------------------------------------


def export_usage_accounts(*, scope: ExportScope, account: Account | None, after: int | None) -> QuerySet[Account]:
    """The accounts whose monthly usage document the scope may export, by id."""
    accounts = scope.accounts() if account is None else Account.objects.filter(pk=account.pk)
    if after is not None:
        accounts = accounts.filter(pk__gt=after)
    return accounts.order_by("pk")


def usage_month_document(*, account: Account, period: Period, now: dt.datetime) -> dict:
    """The monthly usage document of ``account`` (as ``GET /v1/billing/usage/month``), with its partner
    breakdown; a running month as of ``now``."""
    return usage_document(account, period, min(now, period.end))
