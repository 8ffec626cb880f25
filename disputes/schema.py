"""OpenAPI documentation of the disputes endpoints (``disputes.apis``): opening a case on an invoice, the account's
cases, one case with its thread, files, timeline and outcome, and the customer's reply. As in
``billing.schema_ledger``, the views render plain dicts and the serializers here are the documented shape of those
dicts (every field required, nullable ones marked); ``tests/test_openapi_conformance.py`` checks the two against
each other. The request bodies are the views' own input serializers (``StrictInput``: unknown fields refused)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from billing.models import CreditNote
from billing.schema_inputs import ERR_UNKNOWN_FIELD as ERR_UNKNOWN_FIELD
from billing.schema_inputs import StrictInput as StrictInput
from billing.schema_inputs import enum
from billing.schema_ledger import PAGINATION, RATE_LIMITED, UNAUTHENTICATED
from common.money import AMOUNT_MAX_DIGITS, CURRENCY_MINOR_UNITS, QUANTITY_DECIMAL_PLACES
from disputes.models import QUANTITY_MAX_DIGITS, Dispute, DisputeEvent, DisputeMessage
from usage.schema import IDEMPOTENCY_HEADER, Error

__all__ = ["IDEMPOTENCY_HEADER", "PAGINATION", "RATE_LIMITED", "UNAUTHENTICATED", "Error"]

STATES = list(Dispute.State.values)
# Customers open cases of every category but chargebacks: those are the customer's bank's (Stripe).
CUSTOMER_CATEGORIES = [(v, label) for v, label in Dispute.Category.choices if v != Dispute.Category.CHARGEBACK]
# An invoice line's position (``InvoiceLine.position`` is a small integer).
LINE_POSITION_MAX = 32767
MAX_CLAIMED_LINES = 100


def money(**kwargs) -> serializers.DecimalField:
    """An amount as a decimal string in the case's currency, to its minor unit (``"180.00"``)."""
    return serializers.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS, decimal_places=max(CURRENCY_MINOR_UNITS.values()), **kwargs
    )


def quantity(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=QUANTITY_MAX_DIGITS, decimal_places=QUANTITY_DECIMAL_PLACES, **kwargs)


# --- Request bodies -------------------------------------------------------------------------------------


# --- Documents ------------------------------------------------------------------------------------------


class DisputeSummary(serializers.Serializer):
    id = serializers.CharField(help_text="dsp_…: the case's id.")
    account_id = serializers.CharField()
    invoice_id = serializers.CharField(
        allow_null=True, help_text="The disputed invoice's number; null only on cases recorded before invoices."
    )
    subject = serializers.CharField()
    category = enum(
        Dispute.Category.choices,
        help_text="usage (over-counted), price (wrong price or plan), duplicate (charged twice), service, "
        "chargeback (opened by the bank, through Stripe) or other.",
    )
    state = enum(
        Dispute.State.choices,
        help_text="open, investigating, waiting_on_customer (staff asked you something: reply to move it on), "
        "resolved or rejected.",
    )
    resolution = enum(
        Dispute.Resolution.choices,
        allow_null=True,
        help_text="How a resolved case was settled: credited (a credit note), explained, withdrawn; null otherwise.",
    )
    amount = money(allow_null=True, help_text="The amount disputed, before tax; null when not stated.")
    currency = serializers.CharField(help_text="ISO 4217: the invoice's currency.")
    source = enum(Dispute.Source.choices, help_text="Where the case was opened.")
    opened_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    closed_at = serializers.DateTimeField(allow_null=True, help_text="When it was resolved or rejected.")


class DisputeLineOut(serializers.Serializer):
    line = serializers.IntegerField(help_text="The line's position on the invoice.")
    description = serializers.CharField(help_text="The invoice line's description.")
    line_amount = money(help_text="The invoice line's amount.")
    quantity = quantity(allow_null=True, help_text="The quantity disputed, in the line's unit; null: not stated.")
    amount = money(allow_null=True, help_text="The amount of the line disputed, before tax; null: not stated.")
    note = serializers.CharField(allow_blank=True)


class DisputeMessageOut(serializers.Serializer):
    author = enum(DisputeMessage.Author.choices, help_text="customer, staff (billing staff) or system (Ledgerline).")
    author_name = serializers.CharField(help_text="As the thread shows it.")
    body = serializers.CharField()
    created_at = serializers.DateTimeField()


class DisputeAttachmentOut(serializers.Serializer):
    name = serializers.CharField(help_text="The file's name as uploaded.")
    content_type = serializers.CharField(help_text="By its content: text/csv, application/pdf, image/png, image/jpeg.")
    size = serializers.IntegerField(min_value=0, help_text="Bytes.")
    uploaded_by = enum(DisputeMessage.Author.choices, help_text="customer or staff.")
    created_at = serializers.DateTimeField()


class DisputeEventOut(serializers.Serializer):
    kind = enum(
        DisputeEvent.Kind.choices,
        help_text="opened, state (a change of state), message, attachment, credit_issued, …",
    )
    at = serializers.DateTimeField()
    actor = serializers.CharField(help_text="Who: a user and their role, an API key, or Ledgerline.")
    from_state = enum(STATES, allow_null=True, help_text="For a change of state: the state it left.")
    to_state = enum(STATES, allow_null=True, help_text="The state the case reached; null if it did not move.")
    note = serializers.CharField(allow_null=True)


class DisputeCreditNote(serializers.Serializer):
    number = serializers.CharField(help_text="CN-2026-000012; `GET /v1/invoices/{number}` lists it too.")
    status = enum(CreditNote.Status.choices, help_text="issued, or void (voided by Finance before it applied).")
    total = money(help_text="Including tax.")
    currency = serializers.CharField()
    issued_at = serializers.DateTimeField()


class DisputeDetail(DisputeSummary):
    description = serializers.CharField(help_text="What the customer said was wrong when opening the case.")
    channel = enum(Dispute.Channel.choices, help_text="How the customer raised it: portal, email, phone, api, bank.")
    resolution_note = serializers.CharField(
        allow_null=True, help_text="Why the case was resolved or rejected; null while it is open."
    )
    first_response_at = serializers.DateTimeField(allow_null=True, help_text="When billing staff first answered.")
    lines = DisputeLineOut(many=True, help_text="The invoice lines disputed, in the invoice's order.")
    messages = DisputeMessageOut(many=True, help_text="The thread, oldest first (staff's internal notes never).")
    attachments = DisputeAttachmentOut(many=True, help_text="The case's files, oldest first (staff's own never).")
    timeline = DisputeEventOut(many=True, help_text="What happened to the case, oldest first.")
    credit_notes = DisputeCreditNote(many=True, help_text="The credit notes that settled the case.")


class DisputePage(serializers.Serializer):
    next = serializers.URLField(allow_null=True, help_text="The next page; null on the last one.")
    previous = serializers.URLField(allow_null=True, help_text="The previous page; null on the first one.")
    results = DisputeSummary(many=True)


class DisputeMessageCreated(DisputeMessageOut):
    dispute_id = serializers.CharField(help_text="dsp_…")
    dispute_state = enum(
        Dispute.State.choices, help_text="The case's state after the reply (a waiting case is investigated)."
    )


# --- Parameters and answers -----------------------------------------------------------------------------

EXPORT_ACCOUNT_OPTIONAL = OpenApiParameter(
    "account",
    OpenApiTypes.STR,
    description="Export keys only: the account whose cases to list, acc_…; left out, every account's cases.",
)
DISPUTE_PATH = OpenApiParameter("id", OpenApiTypes.STR, OpenApiParameter.PATH, description="The case's id, dsp_….")
DISPUTE_FILTERS = [
    OpenApiParameter("state", OpenApiTypes.STR, enum=STATES, description="Only cases in this state."),
    OpenApiParameter("invoice", OpenApiTypes.STR, description="Only cases about this invoice (its number)."),
]

FORBIDDEN_WRITE = OpenApiResponse(
    Error,
    description="A key without the disputes scope, or a key pinned to one tenant (disputes are the account's).",
)
FORBIDDEN_READ = OpenApiResponse(
    Error,
    description="A key without the read, disputes or export scope, or a key pinned to one tenant (disputes are "
    "the account's).",
)
LIST_BAD_REQUEST = OpenApiResponse(
    Error,
    description="A filter, `page_size` or `cursor` that is not valid (`field` names it).",
)
EXPORT_ACCOUNT_UNKNOWN = OpenApiResponse(Error, description="An export key naming an unknown account.")
DISPUTE_NOT_FOUND = OpenApiResponse(Error, description="No such case, or another account's (for an account's key).")
IDEMPOTENCY_CONFLICT = (
    "or the Idempotency-Key was used with another body, or its first request is still running (retry after "
    "Retry-After)."
)
OPEN_BAD_REQUEST = OpenApiResponse(
    Error,
    description="Invalid input, every problem listed, each naming its `field` (`subject`, `lines[0].line`, "
    "`lines[0].quantity`, …) and `code` (`required`, `blank`, `unknown_field`, `invalid_line`, `invalid_quantity`, "
    "`invalid_amount`, …); a body that is not JSON; an invalid Idempotency-Key.",
)
OPEN_NOT_FOUND = OpenApiResponse(Error, description="No invoice with that number in the key's account.")
OPEN_CONFLICT = OpenApiResponse(
    Error,
    description="`dispute_already_open`: the invoice has an open case (the message names it: reply there); "
    "`invoice_not_disputable`: the invoice is void; " + IDEMPOTENCY_CONFLICT,
)
REPLY_BAD_REQUEST = OpenApiResponse(
    Error, description="No `body`, an unknown field, a body that is not JSON, or an invalid Idempotency-Key."
)
REPLY_CONFLICT = OpenApiResponse(
    Error,
    description="`dispute_closed`: the case is resolved or rejected and takes no more messages; "
    + IDEMPOTENCY_CONFLICT,
)

OPEN_DESCRIPTION = """
Open a dispute about one of the account's issued invoices (finalized, paid or written off), named by its
number, and optionally about some of its lines (`line` is the line's `position` in `GET /v1/invoices/{number}`),
with the quantity or amount of each you dispute. Needs a key with the `disputes` scope, not pinned to a tenant.
Billing staff are told at once and answer within the response target; follow the case with
`GET /v1/disputes/{id}` and answer their questions with `POST /v1/disputes/{id}/messages`.

An invoice has one open case at a time: a second is a `409` `dispute_already_open` naming the open one.
Amounts are decimal strings (before tax) in the invoice's currency; a line's disputed quantity is at most its
quantity, its amount at most its amount. `amount` is left out when not stated: it is then the sum of the lines'
amounts when every line states one.
"""

LIST_DESCRIPTION = """
The account's dispute cases, most recently opened first. Cursor-paginated: follow `next` until it is null.
Filter by `state` and by `invoice` (its number). A `read` or `disputes` key reads its own account; an `export`
key reads every account's cases, or one account's named with `?account=acc_…`.
"""

DETAIL_DESCRIPTION = """
One case: its lines, the thread of messages between the customer and billing staff, the files attached to it
(name, type and size), its timeline, and its outcome (`resolution`, `resolution_note`, and the credit notes
that settled it). Staff's internal notes and internal files are never shown. Another account's case is a
`404`, the same answer as for one that does not exist (an export key reads every account's).
"""

REPLY_DESCRIPTION = """
Add the customer's message to the thread (billing staff are told). A case waiting on the customer (staff asked
a question) moves back to `investigating`, and its resolution clock runs again. A resolved or rejected case
takes no more messages (`409` `dispute_closed`): open a new case if something else is wrong. Needs the
`disputes` scope.
"""

_LINE_EXAMPLE = {
    "line": 3,
    "description": "Messages",
    "line_amount": "180.00",
    "quantity": "6000",
    "amount": "180.00",
    "note": "Our gateway logged 25,000 messages in November.",
}

_SUMMARY_EXAMPLE = {
    "id": "dsp_000001",
    "account_id": "acc_000001",
    "invoice_id": "INV-2026-000001",
    "subject": "Messages over-counted",
    "category": "usage",
    "state": "resolved",
    "resolution": "credited",
    "amount": "180.00",
    "currency": "USD",
    "source": "api",
    "opened_at": "2026-12-02T09:00:00Z",
    "updated_at": "2026-12-03T14:00:00Z",
    "closed_at": "2026-12-03T14:00:00Z",
}

OPEN_EXAMPLES = [
    OpenApiExample(
        "Part of a usage line",
        request_only=True,
        value={
            "invoice": "INV-2026-000001",
            "subject": "Messages over-counted",
            "description": "We sent about 25,000 messages in November, not 31,000.",
            "category": "usage",
            "lines": [
                {
                    "line": 3,
                    "quantity": "6000",
                    "amount": "180.00",
                    "note": "Our gateway logged 25,000 messages in November.",
                }
            ],
        },
    ),
    OpenApiExample(
        "The whole invoice",
        request_only=True,
        value={"invoice": "INV-2026-000001", "subject": "Charged twice", "description": "Paid on INV-2026-000002."},
    ),
]

LIST_EXAMPLE = OpenApiExample(
    "One page", response_only=True, value={"next": None, "previous": None, "results": [_SUMMARY_EXAMPLE]}
)

DETAIL_EXAMPLE = OpenApiExample(
    "Credited",
    response_only=True,
    value={
        **_SUMMARY_EXAMPLE,
        "description": "We sent about 25,000 messages in November, not 31,000.",
        "channel": "api",
        "resolution_note": "A retry loop counted 6,000 messages twice; credited in full.",
        "first_response_at": "2026-12-02T11:00:00Z",
        "lines": [_LINE_EXAMPLE],
        "messages": [
            {
                "author": "customer",
                "author_name": "API key ll_3f9a2c1b7d4e… (support desk)",
                "body": "We sent about 25,000 messages in November, not 31,000.",
                "created_at": "2026-12-02T09:00:00Z",
            },
            {
                "author": "staff",
                "author_name": "Bianca Rossi (billing staff)",
                "body": "Could you send your gateway's export for November?",
                "created_at": "2026-12-02T11:00:00Z",
            },
        ],
        "attachments": [
            {
                "name": "gateway-november.csv",
                "content_type": "text/csv",
                "size": 48213,
                "uploaded_by": "customer",
                "created_at": "2026-12-02T15:00:00Z",
            }
        ],
        "timeline": [
            {
                "kind": "opened",
                "at": "2026-12-02T09:00:00Z",
                "actor": "API key ll_3f9a2c1b7d4e… (support desk)",
                "from_state": None,
                "to_state": "open",
                "note": "Opened: Messages over-counted",
            },
            {
                "kind": "state",
                "at": "2026-12-03T14:00:00Z",
                "actor": "Bianca Rossi (billing staff)",
                "from_state": "investigating",
                "to_state": "resolved",
                "note": "A retry loop counted 6,000 messages twice; credited in full.",
            },
        ],
        "credit_notes": [
            {
                "number": "CN-2026-000001",
                "status": "issued",
                "total": "216.00",
                "currency": "USD",
                "issued_at": "2026-12-03T14:00:00Z",
            }
        ],
    },
)

REPLY_EXAMPLE = OpenApiExample(
    "An answer", request_only=True, value={"body": "The export is attached in the portal; 25,012 messages."}
)

REPLY_CREATED_EXAMPLE = OpenApiExample(
    "Back to investigating",
    response_only=True,
    value={
        "author": "customer",
        "author_name": "API key ll_3f9a2c1b7d4e… (support desk)",
        "body": "The export is attached in the portal; 25,012 messages.",
        "created_at": "2026-12-02T15:00:00Z",
        "dispute_id": "dsp_000001",
        "dispute_state": "investigating",
    },
)
