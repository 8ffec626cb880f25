"""How export rows are written: one JSON object per row (a JSON page's ``data``, an NDJSON line) and one flat CSV
row, each carrying its ``cursor``. Amounts are strings with the currency beside them; times ISO 8601 UTC (``Z``)."""

from __future__ import annotations

from typing import Any

import orjson

from billing.apis_ledger import invoice_document, payment_document
from common.formats import iso_utc, money_string
from exports.selectors import DocumentSet, cursor_encode, document_cursor

JSON_OPTIONS = orjson.OPT_UTC_Z


# --- Events: rows of ``exports.selectors.EVENT_COLUMNS`` ---------------------------------------------------

EVENT_CSV_HEADER = (
    "cursor",
    "transaction_id",
    "account_id",
    "tenant_id",
    "metric",
    "partner_id",
    "timestamp",
    "quantity",
    "billing_month",
    "received_at",
    "is_late",
    "properties",
)


def event_object(row: tuple) -> dict[str, Any]:
    """An event row as a JSON object (its properties embedded as the database wrote them)."""
    pk, txn, account, tenant, metric, partner, timestamp, quantity, properties, month, received, late = row
    return {
        "cursor": cursor_encode("events", (pk,)),
        "transaction_id": txn,
        "account_id": account,
        "tenant_id": tenant,
        "metric": metric,
        "partner_id": partner,
        "timestamp": timestamp,
        "quantity": quantity,
        "properties": orjson.Fragment(properties),
        "billing_month": month.isoformat()[:7],
        "received_at": received,
        "is_late": late,
    }


def event_line(row: tuple) -> bytes:
    return orjson.dumps(event_object(row), option=JSON_OPTIONS | orjson.OPT_APPEND_NEWLINE)


def event_csv(row: tuple) -> list[Any]:
    pk, txn, account, tenant, metric, partner, timestamp, quantity, properties, month, received, late = row
    return [
        cursor_encode("events", (pk,)),
        txn,
        account,
        tenant,
        metric,
        partner or "",
        iso_utc(timestamp),
        quantity,
        month.isoformat()[:7],
        iso_utc(received),
        "true" if late else "false",
        properties,
    ]


def event_cursor(row: tuple) -> str:
    return cursor_encode("events", (row[0],))


# --- Documents -------------------------------------------------------------------------------------------

INVOICE_CSV_HEADER = (
    "cursor",
    "number",
    "account_id",
    "status",
    "currency",
    "period_start",
    "period_end",
    "issued_at",
    "due_at",
    "paid_at",
    "voided_at",
    "subtotal",
    "discount_total",
    "tax_rate",
    "tax",
    "total",
    "amount_paid",
    "amount_credited",
    "amount_due",
)
CREDIT_NOTE_CSV_HEADER = (
    "cursor",
    "number",
    "account_id",
    "invoice_number",
    "status",
    "currency",
    "reason",
    "subtotal",
    "tax",
    "total",
    "issued_at",
    "voided_at",
)
PAYMENT_CSV_HEADER = (
    "cursor",
    "id",
    "account_id",
    "provider",
    "reference",
    "status",
    "currency",
    "amount",
    "unapplied",
    "received_at",
    "payment_method",
    "failure_code",
)


def invoice_object(request: Any, documents: DocumentSet, invoice: Any) -> dict[str, Any]:
    """The ledger API's invoice document (summary, lines, payments, credit notes) with its cursor."""
    return {"cursor": document_cursor(documents, invoice), **invoice_document(request, invoice)}


def credit_note_object(request: Any, documents: DocumentSet, note: Any) -> dict[str, Any]:
    currency = note.currency
    return {
        "cursor": document_cursor(documents, note),
        "number": note.number,
        "account_id": note.account.public_id,
        "invoice_number": note.invoice.number,
        "status": note.status,
        "currency": currency,
        "reason": note.reason,
        "subtotal": money_string(note.subtotal, currency),
        "tax": money_string(note.tax, currency),
        "total": money_string(note.total, currency),
        "issued_at": iso_utc(note.issued_at),
        "voided_at": None if note.voided_at is None else iso_utc(note.voided_at),
        "lines": [
            {"description": line.description, "amount": money_string(line.amount, currency)}
            for line in note.lines.all()
        ],
    }


def payment_object(request: Any, documents: DocumentSet, payment: Any) -> dict[str, Any]:
    """The ledger API's payment document (allocations, refunds, unapplied) with its cursor."""
    return {"cursor": document_cursor(documents, payment), **payment_document(payment)}


def flat(document: dict[str, Any], header: tuple[str, ...]) -> list[Any]:
    """The document's scalar fields in ``header`` order (empty for null)."""
    return ["" if document.get(name) is None else document[name] for name in header]


# --- Usage -----------------------------------------------------------------------------------------------

USAGE_CSV_HEADER = (
    "cursor",
    "account_id",
    "currency",
    "period_start",
    "period_end",
    "partner_id",
    "partner_name",
    "department",
    "message_count",
    "cost",
)


def usage_object(account_pk: int, document: dict[str, Any]) -> dict[str, Any]:
    return {"cursor": cursor_encode("usage", (account_pk,)), "document": document}


def usage_csv_rows(document: dict[str, Any]) -> list[list[Any]]:
    """One row per partner of the account's month (the partner breakdown), each with the account's cursor."""
    usage = document["document"]
    head = [
        document["cursor"],
        usage["account_id"],
        usage["currency"],
        usage["period"]["start"],
        usage["period"]["end"],
    ]
    return [
        [*head, p["partner_id"], p["partner_name"], p["department"], p["message_count"], p["cost"]]
        for p in usage["partner_breakdown"] or ()
    ]
