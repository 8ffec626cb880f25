"""OpenAPI documentation of the ledger endpoints (``billing.apis_ledger``): an account's billing standing, its
invoices (with their PDFs) and its payments. The views render plain dicts; the serializers here are the
documented shape of those dicts (every field required, nullable ones marked), so the schema and the answers
are checked against each other by ``tests/test_openapi_conformance.py``."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema_field
from rest_framework import serializers

from accounts.models import Account
from billing.models import CreditNote, Invoice, InvoiceLine, Payment, PaymentAllocation, PaymentProfile, Plan, Refund
from billing.models import Subscription as SubscriptionModel
from common.money import (
    AMOUNT_MAX_DIGITS,
    CURRENCY_MINOR_UNITS,
    QUANTITY_DECIMAL_PLACES,
    QUANTITY_MAX_DIGITS,
    UNIT_PRICE_DECIMAL_PLACES,
    UNIT_PRICE_MAX_DIGITS,
)
from usage.schema import Error

# One name for a payment's status wherever a schema shows it (settings' ENUM_NAME_OVERRIDES).
PAYMENT_STATUS_VALUES = list(Payment.Status.values)

# The statuses of invoices a customer sees: drafts are still in staff review and never shown.
INVOICE_STATUSES = [s for s in Invoice.Status.values if s != Invoice.Status.DRAFT]
PAYMENT_STATUSES = list(Payment.Status.values)
PAYMENT_PROVIDERS = list(Payment.Provider.values)
MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
PAGE_SIZE_DEFAULT = 25
PAGE_SIZE_MAX = 100


def _money(**kwargs) -> serializers.DecimalField:
    """An amount as a decimal string in the account currency, to its minor unit (``"479.00"``)."""
    return serializers.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS, decimal_places=max(CURRENCY_MINOR_UNITS.values()), **kwargs
    )


def _unit_price(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(
        max_digits=UNIT_PRICE_MAX_DIGITS, decimal_places=UNIT_PRICE_DECIMAL_PLACES, **kwargs
    )


def _quantity(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=QUANTITY_MAX_DIGITS, decimal_places=QUANTITY_DECIMAL_PLACES, **kwargs)


class InvoiceStatusField(serializers.CharField):
    """An invoice's status (drafts are never shown)."""


# Inline, not a named enum component: the invoice summary and detail share it while other documents have
# other ``status`` sets, which would give it a generated name.
extend_schema_field(
    {
        "allOf": [{"type": "string", "enum": INVOICE_STATUSES}],
        "description": "finalized (money may be due), paid, void or uncollectible (written off).",
    }
)(InvoiceStatusField)

# --- GET /v1/accounts/{account}/billing ---------------------------------------------------------------


class BillingSubscription(serializers.Serializer):
    id = serializers.CharField(help_text="sub_…")
    status = serializers.ChoiceField(choices=SubscriptionModel.Status.choices)
    current_period_start = serializers.DateTimeField(help_text="Inclusive, UTC.")
    current_period_end = serializers.DateTimeField(help_text="Exclusive, UTC.")
    trial_ends_at = serializers.DateTimeField(allow_null=True, help_text="End of the free trial; null: no trial.")
    cancel_at_period_end = serializers.BooleanField()


class BillingPlan(serializers.Serializer):
    name = serializers.CharField()
    model = serializers.ChoiceField(
        choices=Plan.Product.choices,
        help_text="How the plan prices: `messaging` (account messaging: tenants, master partners, messages) or "
        "`tenant_platform` (storage, users, API requests, premium features).",
    )
    base_fee = _money(allow_null=True, help_text="Fixed fee per billing interval; null for price on request.")
    message_rate = _unit_price(
        allow_null=True,
        help_text="Price of one message beyond those included (the first tier's price for tiered pricing); "
        "null when the plan charges nothing per message.",
    )


class BillingPaymentMethod(serializers.Serializer):
    type = serializers.ChoiceField(choices=PaymentProfile.MethodType.choices, allow_null=True)
    last4 = serializers.CharField(allow_null=True)
    exp_month = serializers.IntegerField(allow_null=True, min_value=1, max_value=12, help_text="Cards only.")
    exp_year = serializers.IntegerField(allow_null=True, help_text="Cards only.")


class AccountBilling(serializers.Serializer):
    account_id = serializers.CharField()
    account_status = serializers.ChoiceField(choices=Account.Status.choices)
    currency = serializers.CharField(help_text="ISO 4217; every amount of the document is in it.")
    customer_id = serializers.CharField(allow_null=True, help_text="The Stripe customer (cus_…), if any.")
    subscription = BillingSubscription(
        allow_null=True, help_text="The live subscription (else the last one); null: never subscribed."
    )
    billing_plan = BillingPlan(allow_null=True, help_text="The subscription's plan; null without a subscription.")
    payment_method = BillingPaymentMethod(allow_null=True, help_text="The default payment method, if any.")
    has_payment_method = serializers.BooleanField()
    balance = _money(help_text="Credit balance: money received and applied to no invoice yet.")
    amount_due = _money(help_text="What the open (finalized, unpaid) invoices still ask for.")


# --- GET /v1/invoices, /v1/invoices/{number} ------------------------------------------------------------


class InvoiceSummary(serializers.Serializer):
    number = serializers.CharField(help_text="INV-2026-000123: the invoice's id.")
    account_id = serializers.CharField()
    status = InvoiceStatusField()
    currency = serializers.CharField()
    period_start = serializers.DateTimeField(help_text="Start of the billed month (inclusive, UTC).")
    period_end = serializers.DateTimeField(help_text="End of the billed month (exclusive, UTC).")
    issued_at = serializers.DateTimeField(help_text="When the invoice was finalized.")
    due_at = serializers.DateTimeField(allow_null=True)
    paid_at = serializers.DateTimeField(allow_null=True)
    voided_at = serializers.DateTimeField(allow_null=True)
    subtotal = _money()
    tax = _money()
    total = _money()
    amount_paid = _money(help_text="The sum of the payments applied (`payments` of the invoice).")
    amount_credited = _money(help_text="The sum of the credit notes' totals.")
    amount_due = _money(help_text="total − paid − credited; 0 once void or written off.")
    pdf_url = serializers.URLField(help_text="The PDF, for the same API key: `GET /v1/invoices/{number}/pdf`.")


class InvoiceLineOut(serializers.Serializer):
    position = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=InvoiceLine.Kind.choices)
    description = serializers.CharField()
    metric = serializers.CharField(allow_null=True, help_text="The metric's code for usage lines.")
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    quantity = _quantity(allow_null=True, help_text="Billed quantity.")
    included = _quantity(allow_null=True, help_text="Included in the plan; null: unlimited or not metered.")
    billable = _quantity(allow_null=True)
    unit_price = _unit_price(allow_null=True, help_text="Where one price applies.")
    amount = _money()


class InvoicePaymentApplied(serializers.Serializer):
    payment_id = serializers.CharField(help_text="pay_…")
    amount = _money(help_text="Positive: applied; negative: taken back off the invoice (see `kind`).")
    kind = serializers.ChoiceField(choices=PaymentAllocation.Kind.choices)
    at = serializers.DateTimeField()


class InvoiceCreditNote(serializers.Serializer):
    number = serializers.CharField(help_text="CN-2026-000012")
    status = serializers.ChoiceField(choices=CreditNote.Status.choices)
    reason = serializers.CharField()
    total = _money()
    issued_at = serializers.DateTimeField()


class InvoiceDetail(InvoiceSummary):
    discount_total = _money(help_text="Discounts included in the subtotal (a positive figure).")
    tax_rate = serializers.DecimalField(max_digits=6, decimal_places=3, help_text="Percent.")
    lines = InvoiceLineOut(many=True)
    payments = InvoicePaymentApplied(
        many=True, help_text="Every movement of money onto or off the invoice, oldest first; sums to `amount_paid`."
    )
    credit_notes = InvoiceCreditNote(many=True)


class InvoicePage(serializers.Serializer):
    next = serializers.URLField(allow_null=True, help_text="The next page; null on the last one.")
    previous = serializers.URLField(allow_null=True, help_text="The previous page; null on the first one.")
    results = InvoiceSummary(many=True)


# --- GET /v1/payments -----------------------------------------------------------------------------------


class PaymentAllocationOut(serializers.Serializer):
    invoice_id = serializers.CharField(help_text="The invoice's number.")
    amount = _money(help_text="What the payment pays on that invoice now (net of money taken back).")


class PaymentRefundOut(serializers.Serializer):
    id = serializers.CharField(help_text="ref_…")
    amount = _money()
    status = serializers.ChoiceField(choices=Refund.Status.choices)
    refunded_at = serializers.DateTimeField()
    reason = serializers.CharField()


class PaymentOut(serializers.Serializer):
    id = serializers.CharField(help_text="pay_…")
    account_id = serializers.CharField()
    provider = serializers.ChoiceField(choices=PAYMENT_PROVIDERS)
    reference = serializers.CharField(allow_null=True, help_text="The bank's reference, check number or pi_….")
    amount = _money()
    currency = serializers.CharField()
    status = serializers.ChoiceField(choices=PAYMENT_STATUSES)
    received_at = serializers.DateTimeField()
    payment_method = serializers.CharField(allow_null=True, help_text="card_ending_4242, sepa_debit_3000, …")
    failure_code = serializers.CharField(allow_null=True)
    failure_message = serializers.CharField(allow_null=True)
    allocations = PaymentAllocationOut(many=True, help_text="The invoices the payment pays, with how much each.")
    refunds = PaymentRefundOut(many=True)
    unapplied = _money(help_text="Of a succeeded payment, what pays no invoice and was not refunded (credit).")


class PaymentPage(serializers.Serializer):
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = PaymentOut(many=True)


# --- Parameters and answers -----------------------------------------------------------------------------

ACCOUNT_PATH = OpenApiParameter(
    "account", OpenApiTypes.STR, OpenApiParameter.PATH, description="The account's id, acc_…"
)
EXPORT_ACCOUNT = OpenApiParameter(
    "account", OpenApiTypes.STR, description="Export keys only, and required for them: the account, acc_…"
)
NUMBER_PATH = OpenApiParameter(
    "number", OpenApiTypes.STR, OpenApiParameter.PATH, description="The invoice's number, INV-2026-000123."
)
PAGINATION = [
    OpenApiParameter("cursor", OpenApiTypes.STR, description="Opaque: taken from `next` or `previous`."),
    OpenApiParameter(
        "page_size",
        {"type": "integer", "minimum": 1, "maximum": PAGE_SIZE_MAX},
        description=f"Items per page, 1 to {PAGE_SIZE_MAX}; default {PAGE_SIZE_DEFAULT}.",
    ),
]
INVOICE_FILTERS = [
    OpenApiParameter("status", OpenApiTypes.STR, enum=INVOICE_STATUSES, description="Only invoices in this status."),
    OpenApiParameter(
        "period",
        OpenApiTypes.STR,
        pattern=MONTH_PATTERN,
        description="The billed month, YYYY-MM (2000-01 to 9998-12). Not with `period_start`/`period_end`.",
    ),
    OpenApiParameter(
        "period_start",
        OpenApiTypes.STR,
        pattern=DATE_PATTERN,
        description="Billed periods starting on or after this date (YYYY-MM-DD, 00:00 UTC).",
    ),
    OpenApiParameter(
        "period_end",
        OpenApiTypes.STR,
        pattern=DATE_PATTERN,
        description="Billed periods ending on or before this date (YYYY-MM-DD, 00:00 UTC, exclusive end).",
    ),
]
PAYMENT_FILTERS = [
    OpenApiParameter("status", OpenApiTypes.STR, enum=PAYMENT_STATUSES, description="Only payments in this status."),
    OpenApiParameter("provider", OpenApiTypes.STR, enum=PAYMENT_PROVIDERS, description="Only payments by this route."),
]

UNAUTHENTICATED = OpenApiResponse(Error, description="No or invalid API key.")
RATE_LIMITED = OpenApiResponse(Error, description="Rate limit exceeded; see Retry-After.")
FORBIDDEN = OpenApiResponse(
    Error,
    description="A key without the read or export scope, or a key pinned to one tenant (it reads that tenant's "
    "usage only; billing, invoices and payments are the account's).",
)
LIST_BAD_REQUEST = OpenApiResponse(
    Error,
    description="A filter, `page_size` or `cursor` that is not valid (`field` names it), or an export key "
    "without `?account=`.",
)
EXPORT_ACCOUNT_UNKNOWN = OpenApiResponse(Error, description="An export key naming an unknown account.")


def account_wide_responses(ok) -> dict:
    """The answers of a read-only endpoint about one account's money (read keys: their own account; export keys:
    the one ``?account=`` names), with ``ok`` the 200 answer's serializer."""
    return {
        200: ok,
        400: OpenApiResponse(Error, description="An export key without `?account=`."),
        401: UNAUTHENTICATED,
        403: OpenApiResponse(
            Error,
            description="A key without the read or export scope, a key pinned to one tenant, or an export key "
            "limited to some datasets.",
        ),
        404: OpenApiResponse(
            Error,
            description="`?account=` names an account the key may not read: for an export key, one outside its "
            "accounts; for a read key, any account but its own.",
        ),
        429: RATE_LIMITED,
    }


INVOICE_NOT_FOUND = OpenApiResponse(
    Error, description="No such invoice, a draft, or another account's invoice (for a read key)."
)
PDF_UNAVAILABLE = OpenApiResponse(
    Error, description="The PDF could not be rendered just now; it is queued again: retry after Retry-After."
)

BILLING_DESCRIPTION = """
Where the account stands: its Stripe customer, the subscription and its plan (the plan's pricing `model`, base
fee and the price of a message beyond those included), the default payment method, the credit `balance`
(money received that pays no invoice yet, applied to the next invoice) and the `amount_due` on its open
invoices. Amounts are decimal strings in `currency`; times are ISO 8601 in UTC.

A `read` key reads its own account only: any other account id is a `404`, whether or not it exists. An
`export` key reads every account.
"""

INVOICES_DESCRIPTION = """
The account's invoices, most recently issued first; drafts (still in staff review) are never listed.
Cursor-paginated: follow `next` until it is null. Filter by `status`, and by the billed month (`period`) or a
range of billed periods (`period_start`, `period_end`). Export keys name the account with `?account=acc_…`.
"""

INVOICE_DESCRIPTION = """
One invoice with its lines, every payment movement applied to it (`payments`: positive amounts pay it,
negative ones take money back off it — a credit note releasing an overpayment, a reversed or refunded
payment), its credit notes, and `amount_paid`, `amount_credited` and `amount_due`. `pdf_url` is the PDF for
the same key. A read key sees its own account's invoices only (another account's number is a `404`); an
export key sees every account's.
"""

PAYMENTS_DESCRIPTION = """
The account's payments, most recently received first: succeeded, failed (with the provider's
`failure_code` and `failure_message`), pending (an automatic collection attempt in flight), refunded and
reversed. `allocations` lists the invoices each pays and how much; `refunds` the money given back of it;
`unapplied` what is left for the credit balance (a succeeded payment's amount = allocations + succeeded
refunds + unapplied). Cursor-paginated like the invoices; filter by `status` and `provider`.
"""

_INVOICE_SUMMARY_EXAMPLE = {
    "number": "INV-2026-000001",
    "account_id": "acc_000001",
    "status": "paid",
    "currency": "USD",
    "period_start": "2026-11-01T00:00:00Z",
    "period_end": "2026-12-01T00:00:00Z",
    "issued_at": "2026-12-01T00:05:00Z",
    "due_at": "2026-12-31T00:05:00Z",
    "paid_at": "2026-12-05T09:00:00Z",
    "voided_at": None,
    "subtotal": "479.00",
    "tax": "0.00",
    "total": "479.00",
    "amount_paid": "429.00",
    "amount_credited": "50.00",
    "amount_due": "0.00",
    "pdf_url": "https://billing.example.com/v1/invoices/INV-2026-000001/pdf",
}

BILLING_EXAMPLE = OpenApiExample(
    "Business plan, card on file",
    response_only=True,
    value={
        "account_id": "acc_000001",
        "account_status": "active",
        "currency": "USD",
        "customer_id": "cus_Q1w2E3r4T5y6U7",
        "subscription": {
            "id": "sub_000001",
            "status": "active",
            "current_period_start": "2026-11-01T00:00:00Z",
            "current_period_end": "2026-12-01T00:00:00Z",
            "trial_ends_at": None,
            "cancel_at_period_end": False,
        },
        "billing_plan": {"name": "Business", "model": "messaging", "base_fee": "299.00", "message_rate": "0.03"},
        "payment_method": {"type": "card", "last4": "4242", "exp_month": 8, "exp_year": 2028},
        "has_payment_method": True,
        "balance": "0.00",
        "amount_due": "479.00",
    },
)

INVOICES_EXAMPLE = OpenApiExample(
    "One page",
    response_only=True,
    value={
        "next": "https://billing.example.com/v1/invoices?cursor=cD0yMDI2LTEyLTAx&page_size=1",
        "previous": None,
        "results": [_INVOICE_SUMMARY_EXAMPLE],
    },
)

INVOICE_EXAMPLE = OpenApiExample(
    "Paid by a bank transfer and a credit note",
    response_only=True,
    value={
        **_INVOICE_SUMMARY_EXAMPLE,
        "discount_total": "0.00",
        "tax_rate": "0",
        "lines": [
            {
                "position": 1,
                "kind": "base_fee",
                "description": "Business base fee",
                "metric": None,
                "period_start": "2026-11-01T00:00:00Z",
                "period_end": "2026-12-01T00:00:00Z",
                "quantity": None,
                "included": None,
                "billable": None,
                "unit_price": None,
                "amount": "299.00",
            },
            {
                "position": 2,
                "kind": "usage",
                "description": "Messages",
                "metric": "messages",
                "period_start": "2026-11-01T00:00:00Z",
                "period_end": "2026-12-01T00:00:00Z",
                "quantity": "31000",
                "included": "25000",
                "billable": "6000",
                "unit_price": "0.03",
                "amount": "180.00",
            },
        ],
        "payments": [{"payment_id": "pay_000001", "amount": "429.00", "kind": "payment", "at": "2026-12-05T09:00:00Z"}],
        "credit_notes": [
            {
                "number": "CN-2026-000001",
                "status": "issued",
                "reason": "Goodwill: November outage",
                "total": "50.00",
                "issued_at": "2026-12-03T14:00:00Z",
            }
        ],
    },
)

PAYMENTS_EXAMPLE = OpenApiExample(
    "A bank transfer, partly refunded",
    response_only=True,
    value={
        "next": None,
        "previous": None,
        "results": [
            {
                "id": "pay_000002",
                "account_id": "acc_000001",
                "provider": "bank_transfer",
                "reference": "NW-DEC-2026",
                "amount": "500.00",
                "currency": "USD",
                "status": "succeeded",
                "received_at": "2026-12-05T09:00:00Z",
                "payment_method": None,
                "failure_code": None,
                "failure_message": None,
                "allocations": [{"invoice_id": "INV-2026-000001", "amount": "479.00"}],
                "refunds": [
                    {
                        "id": "ref_000001",
                        "amount": "15.00",
                        "status": "succeeded",
                        "refunded_at": "2026-12-06T10:00:00Z",
                        "reason": "Overpaid",
                    }
                ],
                "unapplied": "6.00",
            }
        ],
    },
)
