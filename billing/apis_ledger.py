"""The ledger API: an account's billing standing (``GET /v1/accounts/{account}/billing``), its invoices with their
payments, credit notes and PDFs (``GET /v1/invoices``, ``/v1/invoices/{number}``, ``/v1/invoices/{number}/pdf``)
and its payments (``GET /v1/payments``). Read-only; a ``read`` key reads its own account, an ``export`` key
every account. Another account's account id or invoice number is a 404, never a 403: a key learns nothing
about accounts it may not read."""

from __future__ import annotations

import datetime as dt
import re
from decimal import ROUND_HALF_UP, Decimal

import django_filters
from django import forms
from django.db.models import Prefetch, QuerySet, Sum
from django.http import FileResponse
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django_filters.utils import translate_validation
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions
from rest_framework.exceptions import NotFound
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import HasReadOrExportScope, export_dataset_permission
from accounts.models import Account, ApiKey
from accounts.selectors import export_readable_accounts
from billing import schema_ledger as schema
from billing.apis import _account_for
from billing.models import (
    CreditNote,
    Invoice,
    Payment,
    PaymentAllocation,
    PaymentProfile,
    PlanCharge,
    PlanVersion,
    Refund,
    Subscription,
)
from billing.selectors import CUSTOMER_VISIBLE_STATUSES, credit_balance, customer_invoices, invoice_lines
from billing.services.documents import document_for_download
from common.api import error_response
from common.errors import BillingError
from common.formats import decimal_string, iso_utc, money_string
from common.money import UNIT_PRICE_DECIMAL_PLACES, minor_unit
from common.periods import month_period
from usage.ingest import quoted

ZERO = Decimal(0)
MESSAGES_METRIC = "messages"
# How long a client whose PDF could not be rendered is asked to wait (as the portal asks its users).
PDF_RETRY_AFTER_SECONDS = 300

ERR_TENANT_PINNED = (
    "This API key is pinned to a tenant: it reads that tenant's usage only; billing, invoices and payments are the "
    "account's."
)
ERR_ACCOUNT_NOT_FOUND = "No account '{account}'."
ERR_INVOICE_NOT_FOUND = "No invoice '{number}'."
ERR_PAGE_SIZE = f"Give page_size as a whole number from 1 to {schema.PAGE_SIZE_MAX}."
ERR_CURSOR = "The cursor is not valid: use the `next` or `previous` link of a page as it is."
ERR_PERIOD = "Give the billed month as YYYY-MM, from 2000-01 to 9998-12."
ERR_DATE = "Give a date as YYYY-MM-DD."
ERR_PERIOD_AND_RANGE = "Give either period or period_start/period_end, not both."
ERR_RANGE_ORDER = "period_end must be after period_start."
ERR_PDF_UNAVAILABLE = "The PDF of {number} cannot be produced right now; try again in a few minutes."


# --- Access ---------------------------------------------------------------------------------------------


class IsAccountWideKey(permissions.BasePermission):
    """Billing, invoices and payments are the account's: a key pinned to one tenant does not read them."""

    message = ERR_TENANT_PINNED

    def has_permission(self, request, view):
        return not (isinstance(request.auth, ApiKey) and request.auth.tenant_id)


LEDGER_PERMISSIONS = [HasReadOrExportScope, IsAccountWideKey, export_dataset_permission("invoices")]
PAYMENT_PERMISSIONS = [HasReadOrExportScope, IsAccountWideKey, export_dataset_permission("payments")]


def _readable_account(api_key: ApiKey, public_id: str) -> Account:
    """The account ``public_id`` names, if ``api_key`` may read it; else 404 (whether it exists or not)."""
    not_found = BillingError(
        ERR_ACCOUNT_NOT_FOUND.format(account=quoted(public_id)), code="not_found", field="account", status=404
    )
    # No account id has unprintable characters (and PostgreSQL cannot even compare a NUL).
    if not public_id.isprintable():
        raise not_found
    if api_key.scope_export:
        account = export_readable_accounts(api_key=api_key).filter(public_id=public_id).first()
    else:
        account = api_key.account if api_key.account.public_id == public_id else None
    if account is None:
        raise not_found
    return account


def _readable_invoice(api_key: ApiKey, number: str) -> Invoice:
    """An issued invoice ``api_key`` may read (for an export key: of any account it may read); else 404."""
    if api_key.scope_export:
        scope = Invoice.objects.filter(
            status__in=CUSTOMER_VISIBLE_STATUSES,
            number__isnull=False,
            account__in=export_readable_accounts(api_key=api_key),
        )
    else:
        scope = customer_invoices(account=api_key.account)
    invoice = scope.select_related("account").filter(number=number).first() if number.isprintable() else None
    if invoice is None:
        raise BillingError(ERR_INVOICE_NOT_FOUND.format(number=quoted(number)), code="not_found", status=404)
    return invoice


# --- Pagination and filters -----------------------------------------------------------------------------

_PAGE_SIZE_RE = re.compile(r"[0-9]{1,3}")


class LedgerCursorPagination(CursorPagination):
    """Cursor pages ordered newest first; an invalid ``page_size`` or ``cursor`` is a 400 naming it (DRF would
    quietly use the default page size, and answer a bad cursor with a 404)."""

    page_size = schema.PAGE_SIZE_DEFAULT
    max_page_size = schema.PAGE_SIZE_MAX
    page_size_query_param = "page_size"

    def __init__(self, ordering: tuple[str, ...]) -> None:
        self.ordering = ordering

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not _PAGE_SIZE_RE.fullmatch(raw) or not 1 <= int(raw) <= self.max_page_size:
            raise BillingError(ERR_PAGE_SIZE, code="invalid", field="page_size")
        return int(raw)

    def decode_cursor(self, request):
        invalid = BillingError(ERR_CURSOR, code="invalid_cursor", field="cursor")
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise invalid from None
        # The position is the first ordering field's value (a time); anything else was not made by us.
        if cursor is not None and cursor.position is not None:
            try:
                parsed = parse_datetime(cursor.position)
            except ValueError:
                parsed = None
            if parsed is None or parsed.tzinfo is None:
                raise invalid
            # Ours are UTC; a forged offset (PostgreSQL takes none beyond ±15:59) or a moment that leaves the
            # calendar in UTC would fail in the database.
            try:
                position = parsed.astimezone(dt.UTC).isoformat()
            except OverflowError:
                raise invalid from None
            cursor = cursor._replace(position=position)
        return cursor


def _utc_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


class MonthField(forms.CharField):
    """``2026-11`` → that calendar month (UTC) as a ``Period``."""

    def to_python(self, value):
        value = super().to_python(value)
        if value in self.empty_values:
            return None
        if not re.fullmatch(schema.MONTH_PATTERN, value) or not 2000 <= int(value[:4]) <= 9998:
            raise forms.ValidationError(ERR_PERIOD, code="invalid")
        return month_period(int(value[:4]), int(value[5:]))


class MonthFilter(django_filters.Filter):
    field_class = MonthField


class IsoDateFilter(django_filters.DateFilter):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("input_formats", ["%Y-%m-%d"])
        kwargs.setdefault("error_messages", {"invalid": ERR_DATE})
        super().__init__(*args, **kwargs)


class InvoiceFilterForm(forms.Form):
    def clean(self):
        data = super().clean()
        if data.get("period") and (data.get("period_start") or data.get("period_end")):
            self.add_error("period", forms.ValidationError(ERR_PERIOD_AND_RANGE, code="invalid"))
        start, end = data.get("period_start"), data.get("period_end")
        if start and end and end <= start:
            self.add_error("period_end", forms.ValidationError(ERR_RANGE_ORDER, code="invalid"))
        return data


class InvoiceFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=[(s, s) for s in schema.INVOICE_STATUSES])
    period = MonthFilter(method="filter_period")
    period_start = IsoDateFilter(method="filter_period_start")
    period_end = IsoDateFilter(method="filter_period_end")

    class Meta:
        model = Invoice
        fields: list[str] = []
        form = InvoiceFilterForm

    def filter_period(self, queryset, name, value):
        return queryset.filter(period_start=value.start)

    def filter_period_start(self, queryset, name, value):
        return queryset.filter(period_start__gte=_utc_midnight(value))

    def filter_period_end(self, queryset, name, value):
        return queryset.filter(period_end__lte=_utc_midnight(value))


class PaymentFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=[(s, s) for s in schema.PAYMENT_STATUSES])
    provider = django_filters.ChoiceFilter(choices=[(p, p) for p in schema.PAYMENT_PROVIDERS])

    class Meta:
        model = Payment
        fields: list[str] = []


def _filtered(filterset_class: type[django_filters.FilterSet], request, queryset: QuerySet) -> QuerySet:
    filterset = filterset_class(request.query_params, queryset=queryset, request=request)
    if not filterset.is_valid():
        raise translate_validation(filterset.errors)
    return filterset.qs


def _page(request, view: APIView, queryset: QuerySet, ordering: tuple[str, ...], render) -> Response:
    paginator = LedgerCursorPagination(ordering)
    items = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response([render(item) for item in items])


# --- Documents ------------------------------------------------------------------------------------------


def _time(moment: dt.datetime | None) -> str | None:
    return None if moment is None else iso_utc(moment)


def _price_string(value: Decimal | None, currency: str) -> str | None:
    """A unit price as a decimal string with no trailing zeros beyond the currency's minor unit: ``0.03``,
    ``2.00``, ``0.00125``."""
    if value is None:
        return None
    text = decimal_string(value)
    whole, _, fraction = text.partition(".")
    places = minor_unit(currency)
    return f"{whole}.{fraction.ljust(places, '0')}" if places else text


def _message_rate(version: PlanVersion) -> Decimal | None:
    """The price of one message beyond those included, or None when the plan charges nothing per message."""
    charge = (
        PlanCharge.objects.filter(plan_version=version, metric__code=MESSAGES_METRIC)
        .select_related("metric")
        .prefetch_related("tiers")
        .first()
    )
    if charge is None:
        return None
    per = charge.metric.price_unit_size
    model = PlanCharge.PricingModel
    if charge.pricing_model == model.PER_UNIT:
        price = charge.unit_price
    elif charge.pricing_model in (model.GRADUATED, model.VOLUME):
        first = min(charge.tiers.all(), key=lambda tier: tier.lower_bound, default=None)
        price = None if first is None else first.unit_price
    elif charge.pricing_model == model.PACKAGE and charge.package_size and charge.package_price is not None:
        per = per * charge.package_size
        price = charge.package_price
    else:  # included only: no charge per message
        price = None
    if price is None:
        return None
    return (price / per).quantize(Decimal(1).scaleb(-UNIT_PRICE_DECIMAL_PLACES), rounding=ROUND_HALF_UP)


def _subscription_of(account: Account) -> Subscription | None:
    """The live subscription, else the last one that ended."""
    subscriptions = Subscription.objects.filter(account=account).select_related("plan_version__plan")
    live = subscriptions.exclude(status=Subscription.Status.CANCELLED).first()
    return live or subscriptions.order_by("-started_at", "-pk").first()


def account_billing(account: Account) -> dict:
    """The ``AccountBilling`` document of ``account``."""
    currency = account.currency
    profile = PaymentProfile.objects.filter(account=account).first()
    subscription = _subscription_of(account)
    amount_due = Invoice.objects.filter(account=account, status=Invoice.Status.FINALIZED, amount_due__gt=0).aggregate(
        total=Sum("amount_due", default=ZERO)
    )["total"]
    plan_doc = None
    subscription_doc = None
    if subscription is not None:
        version = subscription.plan_version
        subscription_doc = {
            "id": subscription.public_id,
            "status": subscription.status,
            "current_period_start": iso_utc(subscription.current_period_start),
            "current_period_end": iso_utc(subscription.current_period_end),
            "trial_ends_at": _time(subscription.trial_end),
            "cancel_at_period_end": subscription.cancel_at_period_end,
        }
        plan_doc = {
            "name": version.plan.name,
            "model": version.plan.product,
            "base_fee": None if version.base_fee is None else money_string(version.base_fee, version.currency),
            "message_rate": _price_string(_message_rate(version), version.currency),
        }
    has_method = bool(profile and profile.has_payment_method)
    method_doc = None
    if profile is not None and has_method:
        method_doc = {
            "type": profile.payment_method_type or None,
            "last4": profile.payment_method_last4 or None,
            "exp_month": profile.payment_method_exp_month,
            "exp_year": profile.payment_method_exp_year,
        }
    return {
        "account_id": account.public_id,
        "account_status": account.status,
        "currency": currency,
        "customer_id": (profile.stripe_customer_id or None) if profile else None,
        "subscription": subscription_doc,
        "billing_plan": plan_doc,
        "payment_method": method_doc,
        "has_payment_method": has_method,
        "balance": money_string(credit_balance(account), currency),
        "amount_due": money_string(amount_due, currency),
    }


def _invoice_summary(request, invoice: Invoice) -> dict:
    currency = invoice.currency
    return {
        "number": invoice.number,
        "account_id": invoice.account.public_id,
        "status": invoice.status,
        "currency": currency,
        "period_start": iso_utc(invoice.period_start),
        "period_end": iso_utc(invoice.period_end),
        "issued_at": iso_utc(invoice.finalized_at or invoice.created_at),
        "due_at": _time(invoice.due_at),
        "paid_at": _time(invoice.paid_at),
        "voided_at": _time(invoice.voided_at),
        "subtotal": money_string(invoice.subtotal, currency),
        "tax": money_string(invoice.tax, currency),
        "total": money_string(invoice.total, currency),
        "amount_paid": money_string(invoice.amount_paid, currency),
        "amount_credited": money_string(invoice.amount_credited, currency),
        "amount_due": money_string(invoice.amount_due, currency),
        "pdf_url": request.build_absolute_uri(reverse("invoice-pdf", kwargs={"number": invoice.number})),
    }


def _quantity(value: Decimal | None) -> str | None:
    return None if value is None else decimal_string(value)


def invoice_document(request, invoice: Invoice) -> dict:
    """The ``InvoiceDetail`` document: the summary with lines, payment movements and credit notes."""
    currency = invoice.currency
    allocations = (
        PaymentAllocation.objects.filter(invoice=invoice).select_related("payment").order_by("created_at", "pk")
    )
    notes = CreditNote.objects.filter(invoice=invoice).order_by("issued_at", "pk")
    return {
        **_invoice_summary(request, invoice),
        "discount_total": money_string(invoice.discount_total, currency),
        "tax_rate": decimal_string(invoice.tax_rate),
        "lines": [
            {
                "position": line.position,
                "kind": line.kind,
                "description": line.description,
                "metric": line.metric.code if line.metric_id else None,
                "period_start": iso_utc(line.period_start),
                "period_end": iso_utc(line.period_end),
                "quantity": _quantity(line.quantity),
                "included": _quantity(line.included),
                "billable": _quantity(line.billable),
                "unit_price": _price_string(line.unit_price, currency),
                "amount": money_string(line.amount, currency),
            }
            for line in invoice_lines(invoice)
        ],
        "payments": [
            {
                "payment_id": allocation.payment.public_id,
                "amount": money_string(allocation.amount, currency),
                "kind": allocation.kind,
                "at": iso_utc(allocation.created_at),
            }
            for allocation in allocations
        ],
        "credit_notes": [
            {
                "number": note.number,
                "status": note.status,
                "reason": note.reason,
                "total": money_string(note.total, note.currency),
                "issued_at": iso_utc(note.issued_at),
            }
            for note in notes
        ],
    }


def _payments_of(account: Account) -> QuerySet[Payment]:
    return (
        Payment.objects.filter(account=account)
        .select_related("account")
        .prefetch_related(
            Prefetch(
                "allocations",
                queryset=PaymentAllocation.objects.select_related("invoice").order_by("created_at", "pk"),
            ),
            Prefetch("refunds", queryset=Refund.objects.order_by("refunded_at", "pk")),
        )
    )


def payment_document(payment: Payment) -> dict:
    """The ``Payment`` document, from the prefetched allocations and refunds (``_payments_of``)."""
    currency = payment.currency
    net: dict[str, Decimal] = {}
    for allocation in payment.allocations.all():
        net[allocation.invoice.number] = net.get(allocation.invoice.number, ZERO) + allocation.amount
    refunds = list(payment.refunds.all())
    # As ``billing.selectors.payment_unapplied``, from the rows already read.
    unapplied = ZERO
    if payment.status == Payment.Status.SUCCEEDED:
        refunded = sum((r.amount for r in refunds if r.status == Refund.Status.SUCCEEDED), ZERO)
        unapplied = payment.amount - sum(net.values(), ZERO) - refunded
    return {
        "id": payment.public_id,
        "account_id": payment.account.public_id,
        "provider": payment.provider,
        "reference": payment.reference or None,
        "amount": money_string(payment.amount, currency),
        "currency": currency,
        "status": payment.status,
        "received_at": iso_utc(payment.received_at),
        "payment_method": payment.payment_method or None,
        "failure_code": payment.failure_code or None,
        "failure_message": payment.failure_message or None,
        "allocations": [
            {"invoice_id": number, "amount": money_string(amount, currency)}
            for number, amount in net.items()
            if amount != 0
        ],
        "refunds": [
            {
                "id": refund.public_id,
                "amount": money_string(refund.amount, currency),
                "status": refund.status,
                "refunded_at": iso_utc(refund.refunded_at),
                "reason": refund.reason,
            }
            for refund in refunds
        ],
        "unapplied": money_string(unapplied, currency),
    }


# --- Views ----------------------------------------------------------------------------------------------


class AccountBillingApi(APIView):
    permission_classes = LEDGER_PERMISSIONS

    @extend_schema(
        operation_id="account_billing",
        summary="An account's billing: subscription, plan, payment method, balance and amount due",
        description=schema.BILLING_DESCRIPTION,
        parameters=[schema.ACCOUNT_PATH],
        responses={
            200: schema.AccountBilling,
            401: schema.UNAUTHENTICATED,
            403: schema.FORBIDDEN,
            404: OpenApiResponse(
                schema.Error, description="No such account, or one this key may not read (another account's)."
            ),
            429: schema.RATE_LIMITED,
        },
        examples=[schema.BILLING_EXAMPLE],
        tags=["Billing"],
    )
    def get(self, request, account: str):
        return Response(account_billing(_readable_account(request.auth, account)))


INVOICE_ORDERING = ("-finalized_at", "-id")
PAYMENT_ORDERING = ("-received_at", "-id")


class InvoiceListApi(APIView):
    permission_classes = LEDGER_PERMISSIONS

    @extend_schema(
        operation_id="invoices_list",
        summary="The account's invoices",
        description=schema.INVOICES_DESCRIPTION,
        parameters=[schema.EXPORT_ACCOUNT, *schema.INVOICE_FILTERS, *schema.PAGINATION],
        responses={
            200: schema.InvoicePage,
            400: schema.LIST_BAD_REQUEST,
            401: schema.UNAUTHENTICATED,
            403: schema.FORBIDDEN,
            404: schema.EXPORT_ACCOUNT_UNKNOWN,
            429: schema.RATE_LIMITED,
        },
        examples=[schema.INVOICES_EXAMPLE],
        tags=["Billing"],
    )
    def get(self, request):
        account = _account_for(request)
        invoices = _filtered(InvoiceFilter, request, customer_invoices(account=account))
        return _page(request, self, invoices, INVOICE_ORDERING, lambda invoice: _invoice_summary(request, invoice))


class InvoiceDetailApi(APIView):
    permission_classes = LEDGER_PERMISSIONS

    @extend_schema(
        operation_id="invoice_detail",
        summary="An invoice with its lines, payments and credit notes",
        description=schema.INVOICE_DESCRIPTION,
        parameters=[schema.NUMBER_PATH],
        responses={
            200: schema.InvoiceDetail,
            401: schema.UNAUTHENTICATED,
            403: schema.FORBIDDEN,
            404: schema.INVOICE_NOT_FOUND,
            429: schema.RATE_LIMITED,
        },
        examples=[schema.INVOICE_EXAMPLE],
        tags=["Billing"],
    )
    def get(self, request, number: str):
        return Response(invoice_document(request, _readable_invoice(request.auth, number)))


class JsonErrorsNegotiation(DefaultContentNegotiation):
    """The PDF endpoint answers a PDF on success whatever ``Accept`` says, and its errors in JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class InvoicePdfApi(APIView):
    permission_classes = LEDGER_PERMISSIONS
    content_negotiation_class = JsonErrorsNegotiation

    @extend_schema(
        operation_id="invoice_pdf",
        summary="The invoice's PDF",
        description="The PDF of the invoice, as the customer portal serves it, for the same API key "
        "(attachment `<number>.pdf`).",
        parameters=[schema.NUMBER_PATH],
        responses={
            (200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description="The PDF."),
            401: schema.UNAUTHENTICATED,
            403: schema.FORBIDDEN,
            404: schema.INVOICE_NOT_FOUND,
            429: schema.RATE_LIMITED,
            503: schema.PDF_UNAVAILABLE,
        },
        tags=["Billing"],
    )
    def get(self, request, number: str):
        invoice = _readable_invoice(request.auth, number)
        document = document_for_download(invoice=invoice)
        if document is None:
            # The render failed (recorded for staff) and was queued again.
            return error_response(
                [
                    {
                        "code": "pdf_unavailable",
                        "field": None,
                        "message": ERR_PDF_UNAVAILABLE.format(number=invoice.number),
                    }
                ],
                503,
                headers={"Retry-After": str(PDF_RETRY_AFTER_SECONDS)},
            )
        # The stored file has a content-addressed name; the client gets it as "<number>.pdf".
        response = FileResponse(
            document.file.open("rb"),
            as_attachment=True,
            filename=f"{invoice.number}.pdf",
            content_type="application/pdf",
        )
        response["Cache-Control"] = "private, no-store"
        return response


class PaymentListApi(APIView):
    permission_classes = PAYMENT_PERMISSIONS

    @extend_schema(
        operation_id="payments_list",
        summary="The account's payments",
        description=schema.PAYMENTS_DESCRIPTION,
        parameters=[schema.EXPORT_ACCOUNT, *schema.PAYMENT_FILTERS, *schema.PAGINATION],
        responses={
            200: schema.PaymentPage,
            400: schema.LIST_BAD_REQUEST,
            401: schema.UNAUTHENTICATED,
            403: schema.FORBIDDEN,
            404: schema.EXPORT_ACCOUNT_UNKNOWN,
            429: schema.RATE_LIMITED,
        },
        examples=[schema.PAYMENTS_EXAMPLE],
        tags=["Billing"],
    )
    def get(self, request):
        account = _account_for(request)
        payments = _filtered(PaymentFilter, request, _payments_of(account))
        return _page(request, self, payments, PAYMENT_ORDERING, payment_document)
