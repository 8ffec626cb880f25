"""The disputes API: open a case on an invoice (``POST /v1/disputes``), the account's cases (``GET /v1/disputes``),
one case with its thread, files, timeline and outcome (``GET /v1/disputes/{id}``) and the customer's reply
(``POST /v1/disputes/{id}/messages``).

Writing needs a key with the ``disputes`` scope; reading a ``read`` or ``disputes`` key (its own account) or an
``export`` key (every account's, or the one ``?account=`` names). A key pinned to a tenant is refused: disputes
are the account's. Another account's case is a 404, never a 403: a key learns nothing about accounts it may not
read. The rules (which invoice, which lines, how much, who) are ``disputes.services``'; the views parse, look up
the invoice and its lines by what the customer sees (the number, the line's position), call one service and
render what a customer may see (``disputes.selectors`` with ``for_customer=True``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import permissions, serializers, status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import HasDisputesReadScope, HasDisputesScope, export_dataset_permission
from accounts.models import ApiKey
from accounts.selectors import export_readable_accounts
from billing.apis import _account_for
from billing.apis_ledger import _filtered, _page
from billing.models import Invoice
from common.api import exception_handler
from common.errors import BillingError
from common.formats import decimal_string, iso_utc, money_string
from common.idempotency import idempotent
from disputes import schema
from disputes.models import Dispute, DisputeMessage
from disputes.selectors import (
    customer_disputes,
    dispute_attachments,
    dispute_for_customer,
    dispute_messages,
    dispute_timeline,
    issued_credits,
)
from disputes.services import ERR_KEY_PINNED, LineClaim, dispute_open, dispute_reply
from usage.ingest import quoted

ERR_INVOICE_NOT_FOUND = "No invoice '{number}'."
ERR_LINE_NOT_ON_INVOICE = "{number} has no line {line}; give the line's position as GET /v1/invoices/{number} shows it."
ERR_DISPUTE_NOT_FOUND = "No dispute '{id}'."
DISPUTE_ORDERING = ("-opened_at", "-id")


# --- Access ---------------------------------------------------------------------------------------------


class IsAccountWideKey(permissions.BasePermission):
    """Disputes are the account's: a key pinned to one tenant neither reads nor opens them."""

    message = ERR_KEY_PINNED

    def has_permission(self, request, view):
        return not (isinstance(request.auth, ApiKey) and request.auth.tenant_id)


# Disputes are none of an export key's datasets: an export key limited to some datasets does not read them.
READ_PERMISSIONS = [HasDisputesReadScope, IsAccountWideKey, export_dataset_permission(None)]
WRITE_PERMISSIONS = [HasDisputesScope, IsAccountWideKey]


def _listed_disputes(request) -> QuerySet[Dispute]:
    """The cases a key lists: its account's; an export key's every account's, or the one ``?account=`` names."""
    api_key: ApiKey = request.auth
    if api_key.scope_export and not request.query_params.get("account"):
        readable = export_readable_accounts(api_key=api_key)
        return Dispute.objects.filter(account__in=readable).select_related("account", "invoice")
    return customer_disputes(account=_account_for(request)).select_related("account")


def _readable_dispute(api_key: ApiKey, public_id: str) -> Dispute:
    """A case ``api_key`` may read (any account's for an export key); else 404, whether it exists or not."""
    # No case id has unprintable characters (and PostgreSQL cannot even compare a NUL).
    if public_id.isprintable():
        if not api_key.scope_export:
            return dispute_for_customer(account=api_key.account, public_id=public_id)
        readable = Dispute.objects.filter(account__in=export_readable_accounts(api_key=api_key))
        dispute = readable.select_related("account", "invoice").filter(public_id=public_id).first()
        if dispute is not None:
            return dispute
    raise BillingError(ERR_DISPUTE_NOT_FOUND.format(id=quoted(public_id)), code="not_found", status=404)


# --- Input ----------------------------------------------------------------------------------------------


def _indexed(detail: Any, field: str | None = None) -> dict[str, list]:
    """A serializer's errors keyed by the field as the client wrote it: ``lines[1].quantity`` (the shared
    handler would say ``lines.quantity``, not which line)."""
    flat: dict[str, list] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            if isinstance(key, int):  # a list's items by index (DRF ≥ 3.16 reports only the items in error)
                name = f"{field}[{key}]"
            elif key == "non_field_errors":
                name = field
            else:
                name = f"{field}.{key}" if field else str(key)
            for where, errors in _indexed(value, name).items():
                flat.setdefault(where, []).extend(errors)
    elif isinstance(detail, list) and any(isinstance(item, dict | list) for item in detail):
        for index, item in enumerate(detail):
            for where, errors in _indexed(item, f"{field}[{index}]").items():
                flat.setdefault(where, []).extend(errors)
    else:
        flat.setdefault(field or "non_field_errors", []).extend(detail if isinstance(detail, list) else [detail])
    return flat


def _valid(serializer: serializers.Serializer) -> dict[str, Any]:
    if not serializer.is_valid():
        raise ValidationError(_indexed(serializer.errors))
    return serializer.validated_data


def _answered(view: APIView, request, handler: Callable[[], Response]) -> Response:
    """``handler``'s response, its refusals included: they are answers an ``Idempotency-Key`` replays, as the
    ingestion API's are (an exception would give the key back instead)."""
    try:
        return handler()
    except (BillingError, DjangoValidationError, APIException) as exc:
        response = exception_handler(exc, {"view": view, "request": request})
        if response is None:
            raise
        return response


# --- Documents ------------------------------------------------------------------------------------------


def _time(moment) -> str | None:
    return None if moment is None else iso_utc(moment)


def _money(amount, currency: str) -> str | None:
    return None if amount is None else money_string(amount, currency)


def dispute_summary(dispute: Dispute) -> dict[str, Any]:
    """The ``DisputeSummary`` document of ``dispute``."""
    return {
        "id": dispute.public_id,
        "account_id": dispute.account.public_id,
        "invoice_id": dispute.invoice.number if dispute.invoice_id else None,
        "subject": dispute.subject,
        "category": dispute.category,
        "state": dispute.state,
        "resolution": dispute.resolution or None,
        "amount": _money(dispute.amount, dispute.currency),
        "currency": dispute.currency,
        "source": dispute.source,
        "opened_at": iso_utc(dispute.opened_at),
        "updated_at": iso_utc(dispute.updated_at),
        "closed_at": _time(dispute.closed_at),
    }


def _message(message: DisputeMessage) -> dict[str, Any]:
    return {
        "author": message.author_kind,
        "author_name": message.author_name,
        "body": message.body,
        "created_at": iso_utc(message.created_at),
    }


def dispute_document(dispute: Dispute) -> dict[str, Any]:
    """The ``DisputeDetail`` document: what the customer may see of the case (never internal notes or files)."""
    currency = dispute.currency
    lines = dispute.lines.select_related("invoice_line").order_by("invoice_line__position", "pk")
    return {
        **dispute_summary(dispute),
        "description": dispute.description,
        "channel": dispute.channel,
        "resolution_note": dispute.resolution_note or None,
        "first_response_at": _time(dispute.first_response_at),
        "lines": [
            {
                "line": line.invoice_line.position,
                "description": line.invoice_line.description,
                "line_amount": money_string(line.invoice_line.amount, currency),
                "quantity": None if line.disputed_quantity is None else decimal_string(line.disputed_quantity),
                "amount": _money(line.disputed_amount, currency),
                "note": line.note,
            }
            for line in lines
        ],
        "messages": [_message(message) for message in dispute_messages(dispute, for_customer=True)],
        "attachments": [
            {
                "name": attachment.filename,
                "content_type": attachment.content_type,
                "size": attachment.size,
                "uploaded_by": attachment.uploaded_by_kind,
                "created_at": iso_utc(attachment.created_at),
            }
            for attachment in dispute_attachments(dispute, for_customer=True)
        ],
        "timeline": [
            {
                "kind": event.kind,
                "at": iso_utc(event.created_at),
                "actor": event.actor_label,
                "from_state": event.from_state or None,
                "to_state": event.to_state or None,
                "note": event.note or None,
            }
            for event in dispute_timeline(dispute, for_customer=True)
        ],
        "credit_notes": [
            {
                "number": proposal.credit_note.number,
                "status": proposal.credit_note.status,
                "total": money_string(proposal.credit_note.total, proposal.credit_note.currency),
                "currency": proposal.credit_note.currency,
                "issued_at": iso_utc(proposal.credit_note.issued_at),
            }
            for proposal in issued_credits(dispute)
        ],
    }


# --- Views ----------------------------------------------------------------------------------------------


class DisputeFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=[(s, s) for s in schema.STATES])
    invoice = django_filters.CharFilter(field_name="invoice__number")

    class Meta:
        model = Dispute
        fields: list[str] = []


class DisputesApi(APIView):
    """``/v1/disputes``: the account's cases (GET, read) and a new case (POST, disputes scope)."""

    parser_classes = [JSONParser]

    @extend_schema_serializer(component_name="DisputeOpen")
    class InputSerializer(schema.StrictInput):
        """A new case: the invoice, what is wrong, and optionally the lines and amounts disputed."""

        @extend_schema_serializer(component_name="DisputeLineClaim")
        class LineSerializer(schema.StrictInput):
            """One invoice line disputed: all of it, or a quantity or amount of it."""

            line = serializers.IntegerField(
                min_value=1, max_value=schema.LINE_POSITION_MAX, help_text="The line's `position` on the invoice."
            )
            quantity = schema.quantity(
                required=False,
                allow_null=True,
                help_text="The quantity disputed, in the line's unit (at most its own).",
            )
            amount = schema.money(
                required=False,
                allow_null=True,
                help_text="The amount of the line disputed, before tax (at most its own).",
            )
            note = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")

        invoice = serializers.CharField(max_length=64, help_text="The invoice's number, INV-2026-000123.")
        subject = serializers.CharField(max_length=200, help_text="In a few words.")
        description = serializers.CharField(max_length=20_000, help_text="What is wrong, in your words.")
        category = schema.enum(
            schema.CUSTOMER_CATEGORIES,
            default=Dispute.Category.OTHER,
            help_text="usage (over-counted), price (wrong price or plan), duplicate (charged twice), service or other.",
        )
        amount = schema.money(
            required=False, allow_null=True, help_text="The amount disputed, before tax (at most the invoice's total)."
        )
        lines = LineSerializer(
            many=True,
            required=False,
            max_length=schema.MAX_CLAIMED_LINES,
            help_text="The invoice lines disputed (each once); none: the invoice as a whole.",
        )

    def get_permissions(self):
        classes = WRITE_PERMISSIONS if self.request.method == "POST" else READ_PERMISSIONS
        return [permission() for permission in classes]

    @extend_schema(
        operation_id="disputes_list",
        summary="The account's disputes",
        description=schema.LIST_DESCRIPTION,
        parameters=[schema.EXPORT_ACCOUNT_OPTIONAL, *schema.DISPUTE_FILTERS, *schema.PAGINATION],
        responses={
            200: schema.DisputePage,
            400: schema.LIST_BAD_REQUEST,
            401: schema.UNAUTHENTICATED,
            403: schema.FORBIDDEN_READ,
            404: schema.EXPORT_ACCOUNT_UNKNOWN,
            429: schema.RATE_LIMITED,
        },
        examples=[schema.LIST_EXAMPLE],
        tags=["Disputes"],
    )
    def get(self, request):
        disputes = _filtered(DisputeFilter, request, _listed_disputes(request))
        return _page(request, self, disputes, DISPUTE_ORDERING, dispute_summary)

    @extend_schema(
        operation_id="dispute_open",
        summary="Open a dispute on an invoice",
        description=schema.OPEN_DESCRIPTION,
        request=InputSerializer,
        parameters=[schema.IDEMPOTENCY_HEADER],
        responses={
            201: schema.DisputeDetail,
            400: schema.OPEN_BAD_REQUEST,
            401: schema.UNAUTHENTICATED,
            403: schema.FORBIDDEN_WRITE,
            404: schema.OPEN_NOT_FOUND,
            409: schema.OPEN_CONFLICT,
            429: schema.RATE_LIMITED,
        },
        examples=[*schema.OPEN_EXAMPLES, schema.DETAIL_EXAMPLE],
        tags=["Disputes"],
    )
    def post(self, request):
        return idempotent(request, lambda: _answered(self, request, lambda: self._open(request)))

    def _open(self, request) -> Response:
        data = _valid(self.InputSerializer(data=request.data))
        api_key: ApiKey = request.auth
        number = data["invoice"]
        invoice = Invoice.objects.filter(account=api_key.account, number=number).first()
        if invoice is None:
            raise BillingError(
                ERR_INVOICE_NOT_FOUND.format(number=quoted(number)), code="not_found", field="invoice", status=404
            )
        by_position = {line.position: line for line in invoice.lines.all()}
        claims = []
        for index, claim in enumerate(data.get("lines", [])):
            line = by_position.get(claim["line"])
            if line is None:
                raise BillingError(
                    ERR_LINE_NOT_ON_INVOICE.format(number=invoice.number, line=claim["line"]),
                    code="invalid_line",
                    field=f"lines[{index}].line",
                )
            claims.append(
                LineClaim(
                    invoice_line=line, quantity=claim.get("quantity"), amount=claim.get("amount"), note=claim["note"]
                )
            )
        dispute = dispute_open(
            account=api_key.account,
            invoice=invoice,
            subject=data["subject"],
            description=data["description"],
            category=data["category"],
            lines=claims,
            amount=data.get("amount"),
            source=Dispute.Source.API,
            channel=Dispute.Channel.API,
            actor=api_key,
        )
        return Response(dispute_document(dispute), status=status.HTTP_201_CREATED)


class DisputeDetailApi(APIView):
    permission_classes = READ_PERMISSIONS

    @extend_schema(
        operation_id="dispute_detail",
        summary="A dispute with its thread, files, timeline and outcome",
        description=schema.DETAIL_DESCRIPTION,
        parameters=[schema.DISPUTE_PATH],
        responses={
            200: schema.DisputeDetail,
            401: schema.UNAUTHENTICATED,
            403: schema.FORBIDDEN_READ,
            404: schema.DISPUTE_NOT_FOUND,
            429: schema.RATE_LIMITED,
        },
        examples=[schema.DETAIL_EXAMPLE],
        tags=["Disputes"],
    )
    def get(self, request, id: str):
        return Response(dispute_document(_readable_dispute(request.auth, id)))


class DisputeReplyApi(APIView):
    permission_classes = WRITE_PERMISSIONS
    parser_classes = [JSONParser]

    @extend_schema_serializer(component_name="DisputeReply")
    class InputSerializer(schema.StrictInput):
        """The customer's message."""

        body = serializers.CharField(max_length=20_000, help_text="The message to billing staff.")

    @extend_schema(
        operation_id="dispute_reply",
        summary="Reply on a dispute",
        description=schema.REPLY_DESCRIPTION,
        request=InputSerializer,
        parameters=[schema.DISPUTE_PATH, schema.IDEMPOTENCY_HEADER],
        responses={
            201: schema.DisputeMessageCreated,
            400: schema.REPLY_BAD_REQUEST,
            401: schema.UNAUTHENTICATED,
            403: schema.FORBIDDEN_WRITE,
            404: schema.DISPUTE_NOT_FOUND,
            409: schema.REPLY_CONFLICT,
            429: schema.RATE_LIMITED,
        },
        examples=[schema.REPLY_EXAMPLE, schema.REPLY_CREATED_EXAMPLE],
        tags=["Disputes"],
    )
    def post(self, request, id: str):
        return idempotent(request, lambda: _answered(self, request, lambda: self._reply(request, id)))

    def _reply(self, request, public_id: str) -> Response:
        dispute = _readable_dispute(request.auth, public_id)
        data = _valid(self.InputSerializer(data=request.data))
        message = dispute_reply(dispute=dispute, body=data["body"], actor=request.auth)
        dispute.refresh_from_db(fields=["state"])
        return Response(
            {**_message(message), "dispute_id": dispute.public_id, "dispute_state": dispute.state},
            status=status.HTTP_201_CREATED,
        )
