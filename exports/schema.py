"""OpenAPI documentation of the export API (``exports.apis``): the JSON pages' shapes (the views render plain dicts;
these serializers are the documented shape of them), the streamed media types, parameters and examples."""

from __future__ import annotations

import copy
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from billing import schema as usage_schema
from billing import schema_ledger as ledger
from usage.schema import Error

PAGE_SIZE_DEFAULT = 100
PAGE_SIZE_MAX = 1000
DOCUMENT_CHUNK_ROWS = 200

EVENT_ROW = {
    "cursor": "ZTEwMjQ",
    "transaction_id": "msg-2026-11-03-000017",
    "account_id": "acc_000123",
    "tenant_id": "ten_acme_eu",
    "metric": "messages",
    "partner_id": "prt_supplier_001",
    "timestamp": "2026-11-03T08:15:02Z",
    "quantity": "1",
    "properties": {"channel": "sms"},
    "billing_month": "2026-11",
    "received_at": "2026-11-03T08:15:02.418000Z",
    "is_late": False,
}


class EventRow(serializers.Serializer):
    cursor = serializers.CharField(help_text="Resume after this row: send it back as `?cursor=`.")
    transaction_id = serializers.CharField(help_text="The client's idempotency key of the event.")
    account_id = serializers.CharField()
    tenant_id = serializers.CharField()
    metric = serializers.CharField()
    partner_id = serializers.CharField(allow_null=True)
    timestamp = serializers.DateTimeField(help_text="When the usage happened (UTC).")
    quantity = serializers.CharField(help_text="A decimal string, e.g. `1` or `0.25`.")
    properties = serializers.DictField()
    billing_month = serializers.CharField(help_text="YYYY-MM: the month whose invoice bills the event.")
    received_at = serializers.DateTimeField()
    is_late = serializers.BooleanField()


class CreditNoteLineRow(serializers.Serializer):
    description = serializers.CharField()
    amount = serializers.CharField()


class CreditNoteRow(serializers.Serializer):
    cursor = serializers.CharField()
    number = serializers.CharField()
    account_id = serializers.CharField()
    invoice_number = serializers.CharField()
    status = serializers.CharField(help_text="issued, or void (voided since).")
    currency = serializers.CharField()
    reason = serializers.CharField()
    subtotal = serializers.CharField()
    tax = serializers.CharField()
    total = serializers.CharField()
    issued_at = serializers.DateTimeField()
    voided_at = serializers.DateTimeField(allow_null=True)
    lines = CreditNoteLineRow(many=True)


class InvoiceRow(ledger.InvoiceDetail):
    cursor = serializers.CharField()


class PaymentRow(ledger.PaymentOut):
    cursor = serializers.CharField()


def _page(name: str, row: Any) -> type[serializers.Serializer]:
    return type(
        name,
        (serializers.Serializer,),
        {
            "data": row(many=True),
            "next_cursor": serializers.CharField(
                allow_null=True,
                help_text="Send it as `?cursor=` for the next page (also when `has_more` is false: "
                "rows that arrive later come after it).",
            ),
            "has_more": serializers.BooleanField(help_text="More rows can be read now."),
            "__module__": __name__,
        },
    )


class UsageRow(serializers.Serializer):
    cursor = serializers.CharField()
    document = copy.deepcopy(usage_schema.UsageDocument)


PAGES = {
    "events": _page("EventExportPage", EventRow),
    "invoices": _page("InvoiceExportPage", InvoiceRow),
    "credit_notes": _page("CreditNoteExportPage", CreditNoteRow),
    "payments": _page("PaymentExportPage", PaymentRow),
}

_MOMENT = "ISO 8601 with a time zone (`2026-11-01T00:00:00Z`) or a day (`2026-11-01`, midnight UTC)."
COMMON = [
    OpenApiParameter(
        "account",
        OpenApiTypes.STR,
        description="Only this account (`acc_…`). An account the key may not see is a 404, whether it exists or not.",
    ),
    OpenApiParameter(
        "cursor", OpenApiTypes.STR, description="Resume after this position (`next_cursor`, a row's `cursor`)."
    ),
    OpenApiParameter(
        "page_size",
        OpenApiTypes.INT,
        description=f"JSON pages: 1 to {PAGE_SIZE_MAX} rows (default {PAGE_SIZE_DEFAULT}).",
    ),
    OpenApiParameter(
        "format",
        OpenApiTypes.STR,
        enum=["json", "ndjson", "csv"],
        description="Instead of `Accept`: `json` (a page), `ndjson` or `csv` (a stream of the whole range).",
    ),
]


def _range(what: str) -> list[OpenApiParameter]:
    return [
        OpenApiParameter("from", OpenApiTypes.STR, description=f"{what} at or after this moment. {_MOMENT}"),
        OpenApiParameter("to", OpenApiTypes.STR, description=f"{what} before this moment (half-open). {_MOMENT}"),
    ]


MONTH = OpenApiParameter("billing_month", OpenApiTypes.STR, pattern=ledger.MONTH_PATTERN, description="YYYY-MM.")
FILTERS = {
    "events": [
        OpenApiParameter("tenant", OpenApiTypes.STR, description="Only this tenant (`ten_…`)."),
        OpenApiParameter("metric", OpenApiTypes.STR, description="Only this metric (its code, e.g. `messages`)."),
        OpenApiParameter("partner", OpenApiTypes.STR, description="Only this master partner (`prt_…`)."),
        MONTH,
        *_range("Events whose `timestamp` is"),
    ],
    "invoices": [
        OpenApiParameter("status", OpenApiTypes.STR, enum=["finalized", "paid", "void", "uncollectible"]),
        OpenApiParameter(
            "billing_month", OpenApiTypes.STR, pattern=ledger.MONTH_PATTERN, description="The billed month, YYYY-MM."
        ),
        *_range("Invoices finalized"),
    ],
    "credit_notes": [
        OpenApiParameter("status", OpenApiTypes.STR, enum=["issued", "void"]),
        *_range("Credit notes issued"),
    ],
    "payments": [
        OpenApiParameter("status", OpenApiTypes.STR, enum=ledger.PAYMENT_STATUSES),
        OpenApiParameter("provider", OpenApiTypes.STR, enum=ledger.PAYMENT_PROVIDERS),
        *_range("Payments received"),
    ],
    "usage": [
        OpenApiParameter("year", OpenApiTypes.INT, required=True, description="2000 to 9998."),
        OpenApiParameter("month", OpenApiTypes.INT, required=True, description="1 to 12; not a future month."),
    ],
}

ORDER = {
    "events": "by the event's id",
    "invoices": "in the order they were finalized",
    "credit_notes": "in the order they were issued",
    "payments": "in the order they were recorded",
    "usage": "by account",
}
SUMMARY = {
    "events": "Billing events (usage) for an external billing or ERP system",
    "invoices": "Issued invoices with their lines",
    "credit_notes": "Credit notes",
    "payments": "Payments with their allocations and refunds",
    "usage": "Each account's usage document of a month, with its partner breakdown",
}
SETTLE = (
    "Rows are exported once they are a few seconds old (`EXPORT_SETTLE_SECONDS`): a row still being written when "
    "a page is read comes with a later page, never behind a cursor already passed, so paging with `next_cursor` "
    "(or resuming a stream from its last row's `cursor`) gives every row exactly once while new ones arrive. "
    "`has_more: false` means nothing more can be read now; ask again later with `next_cursor`."
)


def _description(dataset: str) -> str:
    return (
        f"{SUMMARY[dataset]}, {ORDER[dataset]}.\n\n"
        'A JSON page by default (`{"data", "next_cursor", "has_more"}`); with `Accept: application/x-ndjson` '
        "or `text/csv` (or `?format=`) the whole range is streamed, each row carrying its `cursor`. "
        f"{SETTLE}\n\n"
        "Export keys see every account or those they are limited to, and only their datasets (403 naming the "
        "dataset otherwise); read keys export their own account (a key pinned to a tenant: that tenant's events "
        "only). Amounts are decimal strings with the currency beside them. Every request is recorded for audit."
    )


def _examples(dataset: str) -> list[OpenApiExample]:
    if dataset == "events":
        return [
            OpenApiExample(
                "A page of events",
                value={"data": [EVENT_ROW], "next_cursor": "ZTEwMjQ", "has_more": True},
                response_only=True,
                status_codes=["200"],
                media_type="application/json",
            ),
            OpenApiExample(
                "NDJSON stream",
                value=EVENT_ROW,
                description="One JSON object per line.",
                response_only=True,
                status_codes=["200"],
                media_type="application/x-ndjson",
            ),
        ]
    return []


def operation(dataset: str) -> dict[str, Any]:
    """The ``extend_schema`` arguments of one export endpoint."""
    json_page: Any = PAGES.get(dataset)
    if dataset == "usage":
        json_page = _page("UsageExportPage", UsageRow)
    stream = OpenApiResponse(
        OpenApiTypes.STR,
        description="The whole range, one row per line (NDJSON) or a header and one row per line (CSV).",
    )
    return {
        "operation_id": f"export_{dataset}",
        "summary": SUMMARY[dataset],
        "description": _description(dataset),
        "parameters": [*COMMON, *FILTERS[dataset]],
        "responses": {
            (200, "application/json"): json_page,
            (200, "application/x-ndjson"): stream,
            (200, "text/csv"): stream,
            400: OpenApiResponse(Error, description="A bad filter, cursor, page size or format, named in `field`."),
            401: ledger.UNAUTHENTICATED,
            403: OpenApiResponse(
                Error, description="The key lacks the export or read scope, or may not export this dataset."
            ),
            404: OpenApiResponse(Error, description="`?account=` names an account this key may not see."),
            429: ledger.RATE_LIMITED,
        },
        "examples": _examples(dataset),
        "tags": ["Export"],
    }
