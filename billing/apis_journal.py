"""The ERP journal (``GET /v1/billing/journal``) and the department allocation (``GET /v1/billing/allocation``)
of a month. Read-only. A ``read`` key reads its own account; an ``export`` key reads the journal of every
account (or the one ``?account=`` names) and the allocation of the account ``?account=`` names. A key pinned
to a tenant reads neither (they are the account's money). The serializers below are the documented shape of
the answers (``tests/test_openapi_conformance.py`` checks the schema against them)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Account, ApiKey
from accounts.selectors import export_readable_accounts
from billing import schema_ledger
from billing.allocation import RULE, MonthAllocation, month_allocation
from billing.apis import ERR_ACCOUNT_UNKNOWN, _account_for
from billing.apis_ledger import LEDGER_PERMISSIONS
from billing.journal import DOCUMENTS, Journal, JournalLine, month_journal
from common import clock
from common.errors import BillingError
from common.formats import decimal_string, iso_utc, money_string
from common.money import AMOUNT_MAX_DIGITS, CURRENCY_MINOR_UNITS, QUANTITY_DECIMAL_PLACES, QUANTITY_MAX_DIGITS
from common.periods import Period, month_period
from usage.ingest import quoted
from usage.schema import Error

ERR_FUTURE_MONTH = "That month has not started yet."


def _money(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS, decimal_places=max(CURRENCY_MINOR_UNITS.values()), **kwargs
    )


class MonthQuery(serializers.Serializer):
    year = serializers.IntegerField(min_value=2000, max_value=9998)
    month = serializers.IntegerField(min_value=1, max_value=12)


def _period(request) -> Period:
    query = MonthQuery(data=request.query_params)
    query.is_valid(raise_exception=True)
    period = month_period(query.validated_data["year"], query.validated_data["month"])
    if period.start > clock.now():
        raise BillingError(ERR_FUTURE_MONTH, code="future_period", field="month")
    return period


def _readable(request) -> Account:
    """A read key's own account; the account an export key names, if the key may export it (else 404, as for an
    unknown account)."""
    account = _account_for(request)
    api_key: ApiKey = request.auth
    if api_key.scope_export and not export_readable_accounts(api_key=api_key).filter(pk=account.pk).exists():
        raise BillingError(
            ERR_ACCOUNT_UNKNOWN.format(account=quoted(account.public_id)), code="not_found", field="account", status=404
        )
    return account


class PeriodOut(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField(help_text="Exclusive.")


def _period_out(period: Period) -> dict:
    return {"start": iso_utc(period.start), "end": iso_utc(period.end)}


# --- The journal ---------------------------------------------------------------------------------------------


class JournalLineOut(serializers.Serializer):
    date = serializers.DateField()
    reference = serializers.CharField(help_text="`<prefix>-YYYY-MM`: the journal's month.")
    entry = serializers.CharField(help_text="The invoice's or credit note's number.")
    document = serializers.ChoiceField(choices=list(DOCUMENTS))
    account_id = serializers.CharField(help_text="The customer account, acc_…")
    account_code = serializers.CharField(help_text="General-ledger account code.")
    account_name = serializers.CharField()
    description = serializers.CharField()
    department = serializers.CharField(help_text="The customer's department; empty on Receivables lines.")
    debit = _money()
    credit = _money()
    currency = serializers.CharField()


class JournalEntryOut(serializers.Serializer):
    number = serializers.CharField()
    document = serializers.ChoiceField(choices=list(DOCUMENTS))
    date = serializers.DateField()
    account_id = serializers.CharField()
    currency = serializers.CharField()
    debit = _money(help_text="Equals `credit`: every entry balances.")
    credit = _money()
    lines = JournalLineOut(many=True)


class JournalOut(serializers.Serializer):
    reference = serializers.CharField()
    period = PeriodOut()
    entries = JournalEntryOut(many=True)


def _line_out(line: JournalLine) -> dict:
    return {
        "date": line.date.isoformat(),
        "reference": line.reference,
        "entry": line.entry,
        "document": line.document,
        "account_id": line.account_id,
        "account_code": line.account_code,
        "account_name": line.account_name,
        "description": line.description,
        "department": line.department,
        "debit": money_string(line.debit, line.currency),
        "credit": money_string(line.credit, line.currency),
        "currency": line.currency,
    }


def journal_document(journal: Journal) -> dict:
    return {
        "reference": journal.reference,
        "period": _period_out(journal.period),
        "entries": [
            {
                "number": entry.number,
                "document": entry.document,
                "date": entry.date.isoformat(),
                "account_id": entry.account_id,
                "currency": entry.currency,
                "debit": money_string(entry.debit, entry.currency),
                "credit": money_string(entry.credit, entry.currency),
                "lines": [_line_out(line) for line in entry.lines],
            }
            for entry in journal.entries
        ],
    }


JOURNAL_DESCRIPTION = """
The month's ERP journal: the invoices finalized and the credit notes issued in the month (UTC), as balanced
double-entry journal entries, ready to import. An invoice debits Receivables with its total and credits revenue
per group of lines of one kind, plan and metric (base fee, each metric's usage), debits discounts and credits tax
payable; a credit note reverses (debits revenue and tax, credits Receivables), and so does the void of an issued
invoice (`invoice_void`: its entry mirrored, dated the day it was voided). Revenue, discount and tax lines
are split per customer department (see `/v1/billing/allocation`); every entry's debits equal its credits to the
cent. Account codes are the general-ledger accounts Finance keeps in the admin; `reference` is
`<prefix>-YYYY-MM`. Amounts are decimal strings in each line's `currency`.

A `read` key reads its own account. An `export` key reads every account it may export, or the one
`?account=acc_…` names (an account outside the key's export accounts is a `404`).
"""

_JOURNAL_LINE = {
    "date": "2026-12-01",
    "reference": "AS2-2026-12",
    "entry": "INV-2026-000001",
    "document": "invoice",
    "account_id": "acc_000001",
}
JOURNAL_EXAMPLE = OpenApiExample(
    "One invoice, two departments",
    response_only=True,
    value={
        "reference": "AS2-2026-12",
        "period": {"start": "2026-12-01T00:00:00Z", "end": "2027-01-01T00:00:00Z"},
        "entries": [
            {
                "number": "INV-2026-000001",
                "document": "invoice",
                "date": "2026-12-01",
                "account_id": "acc_000001",
                "currency": "USD",
                "debit": "574.80",
                "credit": "574.80",
                "lines": [
                    {
                        **_JOURNAL_LINE,
                        "account_code": code,
                        "account_name": name,
                        "description": description,
                        "department": department,
                        "debit": debit,
                        "credit": credit,
                        "currency": "USD",
                    }
                    for code, name, description, department, debit, credit in [
                        ("1100", "Receivables", "Invoice INV-2026-000001, November 2026", "", "574.80", "0.00"),
                        ("4000", "Subscription revenue", "Base fee · Business v1", "Logistics", "0.00", "179.40"),
                        ("4000", "Subscription revenue", "Base fee · Business v1", "Procurement", "0.00", "119.60"),
                        ("4110", "Messaging revenue", "Messages usage · Business v1", "Logistics", "0.00", "108.00"),
                        ("4110", "Messaging revenue", "Messages usage · Business v1", "Procurement", "0.00", "72.00"),
                        ("2200", "Tax payable", "Tax at 20 %", "Logistics", "0.00", "57.48"),
                        ("2200", "Tax payable", "Tax at 20 %", "Procurement", "0.00", "38.32"),
                    ]
                ],
            }
        ],
    },
)

EXPORT_ACCOUNT_OPTIONAL = OpenApiParameter(
    "account", str, description="Export keys only: one account, acc_… (without it, every account)."
)


class JournalApi(APIView):
    permission_classes = LEDGER_PERMISSIONS

    @extend_schema(
        operation_id="billing_journal",
        summary="The month's ERP journal entries",
        description=JOURNAL_DESCRIPTION,
        parameters=[MonthQuery, EXPORT_ACCOUNT_OPTIONAL],
        responses={
            200: JournalOut,
            400: OpenApiResponse(Error, description="`year` or `month` missing or out of range, or a future month."),
            401: schema_ledger.UNAUTHENTICATED,
            403: schema_ledger.FORBIDDEN,
            404: schema_ledger.EXPORT_ACCOUNT_UNKNOWN,
            429: schema_ledger.RATE_LIMITED,
        },
        examples=[JOURNAL_EXAMPLE],
        tags=["Billing"],
    )
    def get(self, request):
        period = _period(request)
        api_key: ApiKey = request.auth
        if api_key.scope_export and not request.query_params.get("account"):
            accounts = export_readable_accounts(api_key=api_key)
        else:
            accounts = Account.objects.filter(pk=_readable(request).pk)
        return Response(journal_document(month_journal(period=period, accounts=accounts)))


# --- The allocation ------------------------------------------------------------------------------------------


class DepartmentOut(serializers.Serializer):
    department = serializers.CharField(help_text="“Unallocated”: usage of no department.")
    message_count = serializers.DecimalField(max_digits=QUANTITY_MAX_DIGITS, decimal_places=QUANTITY_DECIMAL_PLACES)
    usage = _money(help_text="The department's share of the usage lines.")
    fees = _money(help_text="Its share of the base fee and other charges.")
    discounts = _money(help_text="Its share of discounts and prepaid credit drawn (zero or negative).")
    tax = _money()
    total = _money(help_text="The departments' totals add up to the invoice's total.")


class AllocationOut(serializers.Serializer):
    account_id = serializers.CharField()
    period = PeriodOut()
    invoice = serializers.CharField(allow_null=True, help_text="The month's issued invoice; null: none yet.")
    currency = serializers.CharField()
    total = _money()
    rule = serializers.CharField()
    departments = DepartmentOut(many=True)


def allocation_document(allocation: MonthAllocation) -> dict:
    currency = allocation.currency
    return {
        "account_id": allocation.account.public_id,
        "period": _period_out(allocation.period),
        "invoice": allocation.invoice.number if allocation.invoice else None,
        "currency": currency,
        "total": money_string(allocation.total, currency),
        "rule": RULE,
        "departments": [
            {
                "department": row.department,
                "message_count": decimal_string(row.message_count),
                "usage": money_string(row.usage, currency),
                "fees": money_string(row.fees, currency),
                "discounts": money_string(row.discounts, currency),
                "tax": money_string(row.tax, currency),
                "total": money_string(row.total, currency),
            }
            for row in allocation.rows
        ],
    }


ALLOCATION_DESCRIPTION = f"""
Each department's messages and cost in the account's issued invoice of the month (`invoice` is null, and
`departments` empty, before the month is invoiced). Departments are assigned to master partners and tenants in
the portal. {RULE}

A `read` key reads its own account; an `export` key names the account with `?account=acc_…`.
"""

ALLOCATION_EXAMPLE = OpenApiExample(
    "Two departments and an unmapped partner",
    response_only=True,
    value={
        "account_id": "acc_000001",
        "period": {"start": "2026-11-01T00:00:00Z", "end": "2026-12-01T00:00:00Z"},
        "invoice": "INV-2026-000001",
        "currency": "USD",
        "total": "574.80",
        "rule": RULE,
        "departments": [
            {
                "department": name,
                "message_count": count,
                "usage": usage,
                "fees": fees,
                "discounts": "0.00",
                "tax": tax,
                "total": total,
            }
            for name, count, usage, fees, tax, total in [
                ("Logistics", "15500", "90.00", "149.50", "47.90", "287.40"),
                ("Procurement", "10850", "63.00", "104.65", "33.53", "201.18"),
                ("Unallocated", "4650", "27.00", "44.85", "14.37", "86.22"),
            ]
        ],
    },
)


class AllocationApi(APIView):
    permission_classes = LEDGER_PERMISSIONS

    @extend_schema(
        operation_id="billing_allocation",
        summary="The month's cost per department",
        description=ALLOCATION_DESCRIPTION,
        parameters=[MonthQuery, schema_ledger.EXPORT_ACCOUNT],
        responses={
            200: AllocationOut,
            400: OpenApiResponse(
                Error,
                description="`year` or `month` missing or out of range, a future month, or an export key without "
                "`?account=`.",
            ),
            401: schema_ledger.UNAUTHENTICATED,
            403: schema_ledger.FORBIDDEN,
            404: schema_ledger.EXPORT_ACCOUNT_UNKNOWN,
            429: schema_ledger.RATE_LIMITED,
        },
        examples=[ALLOCATION_EXAMPLE],
        tags=["Billing"],
    )
    def get(self, request):
        period = _period(request)
        account = _readable(request)
        return Response(allocation_document(month_allocation(account=account, period=period)))
