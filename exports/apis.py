"""The export API for external billing and ERP systems: ``GET /v1/export/events``, ``/invoices``,
``/credit-notes``, ``/payments`` and ``/usage``.

Each answers a JSON page (``{"data", "next_cursor", "has_more"}``) or, asked with ``Accept: application/x-ndjson``
or ``text/csv`` (or ``?format=ndjson|csv``), streams the whole range from one server-side cursor, each row with its
``cursor`` so that a client resumes after the last row it got. Rows are exported once (``exports.selectors``: the
settle horizon). Export keys see every account or their ``export_accounts`` and their ``export_datasets``; read keys
their own account (pinned to a tenant: its events only). Every request is recorded (``exports.ExportRequest``) when
its response has finished."""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from django.conf import settings
from django.db import connection
from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.views import APIView

from accounts.authentication import HasReadOrExportScope
from accounts.models import ApiKey
from common import clock
from common.errors import BillingError
from common.periods import month_period
from exports import rows as out
from exports import schema
from exports.filters import CreditNoteFilter, EventFilter, InvoiceFilter, PaymentFilter, filtered
from exports.models import ExportRequest
from exports.selectors import (
    DocumentSet,
    ExportScope,
    cursor_decode,
    documents_page,
    documents_stream,
    events_ndjson_stream,
    events_page,
    events_stream,
    export_account,
    export_credit_notes,
    export_events,
    export_invoices,
    export_payments,
    export_scope,
    export_usage_accounts,
    usage_month_document,
)
from exports.services import export_request_record

logger = logging.getLogger(__name__)

ERR_FORMAT = "Give format as json, ndjson or csv."
ERR_PAGE_SIZE = f"Give page_size as a whole number from 1 to {schema.PAGE_SIZE_MAX}."
ERR_FUTURE_MONTH = "That month has not started yet."
ERR_CLIENT_GONE = "The client closed the connection before the last row."
_PAGE_SIZE_RE = re.compile(r"[0-9]{1,4}")
NDJSON = "application/x-ndjson"
CSV = "text/csv"


class JsonErrors(DefaultContentNegotiation):
    """Errors are JSON whatever the client accepts; the views pick the format of a success themselves."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def _format(request) -> str:
    asked = request.query_params.get("format")
    if asked is not None:
        if asked not in ("json", "ndjson", "csv"):
            raise BillingError(ERR_FORMAT, code="invalid", field="format")
        return asked
    accept = request.headers.get("Accept", "")
    if NDJSON in accept:
        return "ndjson"
    if CSV in accept:
        return "csv"
    return "json"


def _page_size(request) -> int:
    raw = request.query_params.get("page_size")
    if raw is None:
        return schema.PAGE_SIZE_DEFAULT
    if not _PAGE_SIZE_RE.fullmatch(raw) or not 1 <= int(raw) <= schema.PAGE_SIZE_MAX:
        raise BillingError(ERR_PAGE_SIZE, code="invalid", field="page_size")
    return int(raw)


def _json(body: dict[str, Any]) -> HttpResponse:
    response = HttpResponse(orjson.dumps(body, option=out.JSON_OPTIONS), content_type="application/json")
    response["Cache-Control"] = "private, no-store"
    return response


class ExportApi(APIView):
    """One dataset's export. Subclasses name the dataset and give its page and its stream."""

    permission_classes = [HasReadOrExportScope]
    content_negotiation_class = JsonErrors
    dataset = ""
    csv_header: tuple[str, ...] = ()

    def get(self, request):
        self.started_at = clock.now()
        self.export_format = _format(request)
        scope = export_scope(api_key=request.auth, dataset=self.dataset)
        public_id = request.query_params.get("account")
        account = export_account(scope=scope, public_id=public_id) if public_id else None
        if self.export_format == "json":
            limit = _page_size(request)
            data, next_cursor, has_more = self.page(request, scope, account, limit)
            self._record(request, rows=len(data), last_cursor=next_cursor or "")
            return _json({"data": data, "next_cursor": next_cursor, "has_more": has_more})
        rows, ndjson, csv_rows, cursor_of = self.stream(request, scope, account)
        return self._streaming(request, rows, ndjson, csv_rows, cursor_of)

    def page(self, request, scope: ExportScope, account) -> tuple[list[dict], str | None, bool]:
        raise NotImplementedError

    def stream(self, request, scope: ExportScope, account) -> tuple[Iterator[Any], Callable, Callable, Callable]:
        raise NotImplementedError

    # --- Streams ---

    def _streaming(self, request, rows, ndjson, csv_rows, cursor_of) -> StreamingHttpResponse:
        if self.export_format == "ndjson":
            body = self._ndjson_body(request, rows, ndjson, cursor_of)
            response = StreamingHttpResponse(body, content_type=NDJSON)
        else:
            body = self._csv_body(request, rows, csv_rows, cursor_of)
            response = StreamingHttpResponse(body, content_type=f"{CSV}; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="{self.dataset}.csv"'
        response["Cache-Control"] = "private, no-store"
        response["X-Accel-Buffering"] = "no"  # a proxy passes each chunk on as it comes
        return response

    def _ndjson_body(self, request, rows, ndjson, cursor_of) -> Iterator[bytes]:
        if ndjson is None:  # lines written by the database, a block at a time
            yield from self._blocks_body(request, rows)
            return
        chunk_rows = settings.EXPORT_STREAM_CHUNK_ROWS
        sent, last = 0, None
        try:
            buffer: list[bytes] = []
            for row in rows:
                buffer.append(ndjson(row))
                last = row
                if len(buffer) >= chunk_rows:
                    yield b"".join(buffer)
                    sent += len(buffer)
                    buffer = []
            if buffer:
                yield b"".join(buffer)
                sent += len(buffer)
            self._finished(request, rows, sent, last, cursor_of, ExportRequest.Status.COMPLETED, "")
        except GeneratorExit:
            self._finished(request, rows, sent, last, cursor_of, ExportRequest.Status.INTERRUPTED, ERR_CLIENT_GONE)
            raise
        except Exception as exc:
            logger.exception("Export stream of %s failed", self.dataset)
            self._finished(request, rows, sent, last, cursor_of, ExportRequest.Status.INTERRUPTED, repr(exc))
            raise

    def _blocks_body(self, request, blocks) -> Iterator[bytes]:
        """NDJSON blocks from the database, passed on in chunks of about EXPORT_STREAM_CHUNK_BYTES that end on a
        line; the rows sent are their newlines, the last cursor read from the last line sent."""
        chunk_bytes = settings.EXPORT_STREAM_CHUNK_BYTES
        sent, tail = 0, b""
        buffer: list[bytes] = []
        size = 0

        def last_cursor() -> str:
            return orjson.loads(tail.rsplit(b"\n", 2)[-2])["cursor"] if tail else ""

        try:
            for block in blocks:
                buffer.append(block)
                size += len(block)
                if size >= chunk_bytes:
                    chunk = b"".join(buffer)
                    buffer, size = [], 0
                    yield chunk
                    sent, tail = sent + chunk.count(b"\n"), chunk
            if buffer:
                chunk = b"".join(buffer)
                yield chunk
                sent, tail = sent + chunk.count(b"\n"), chunk
            self._finished(request, blocks, sent, last_cursor(), str, ExportRequest.Status.COMPLETED, "")
        except GeneratorExit:
            self._finished(request, blocks, sent, last_cursor(), str, ExportRequest.Status.INTERRUPTED, ERR_CLIENT_GONE)
            raise
        except Exception as exc:
            logger.exception("Export stream of %s failed", self.dataset)
            self._finished(request, blocks, sent, last_cursor(), str, ExportRequest.Status.INTERRUPTED, repr(exc))
            raise

    def _csv_body(self, request, rows, csv_rows, cursor_of) -> Iterator[bytes]:
        chunk_rows = settings.EXPORT_STREAM_CHUNK_ROWS
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\r\n")
        sent, pending, last = 0, 0, None
        try:
            writer.writerow(self.csv_header)
            for row in rows:
                writer.writerows(csv_rows(row))
                last, pending = row, pending + 1
                if pending >= chunk_rows:
                    yield text.getvalue().encode()
                    sent, pending = sent + pending, 0
                    text.seek(0)
                    text.truncate()
            yield text.getvalue().encode()
            sent += pending
            self._finished(request, rows, sent, last, cursor_of, ExportRequest.Status.COMPLETED, "")
        except GeneratorExit:
            self._finished(request, rows, sent, last, cursor_of, ExportRequest.Status.INTERRUPTED, ERR_CLIENT_GONE)
            raise
        except Exception as exc:
            logger.exception("Export stream of %s failed", self.dataset)
            self._finished(request, rows, sent, last, cursor_of, ExportRequest.Status.INTERRUPTED, repr(exc))
            raise

    def _finished(self, request, rows, sent, last, cursor_of, status, error) -> None:
        # The rows' read transaction ends first (closing its server-side cursor), then the audit row is written.
        close = getattr(rows, "close", None)
        if close is not None:
            close()
        try:
            self._record(
                request, rows=sent, last_cursor=cursor_of(last) if last is not None else "", status=status, error=error
            )
        except Exception:  # the audit must not hide the stream's own outcome
            logger.exception("Could not record the export request")

    # --- Audit ---

    def _record(
        self, request, *, rows: int, last_cursor: str, status=ExportRequest.Status.COMPLETED, error="", http_status=200
    ) -> None:
        export_request_record(
            api_key=request.auth,
            dataset=self.dataset,
            export_format=getattr(self, "export_format", "json"),
            filters={k: v for k, v in request.query_params.items()},
            started_at=getattr(self, "started_at", None) or clock.now(),
            row_count=rows,
            last_cursor=last_cursor,
            status=status,
            http_status=http_status,
            error=error,
        )

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        # A refused request of a known key is recorded too (who tried to export what they may not).
        if isinstance(getattr(self.request, "auth", None), ApiKey) and response.status_code not in (401, 429):
            message = response.data.get("error", {}).get("message", "") if isinstance(response.data, dict) else ""
            try:
                self._record(
                    self.request,
                    rows=0,
                    last_cursor="",
                    status=ExportRequest.Status.REFUSED,
                    error=str(message),
                    http_status=response.status_code,
                )
            except Exception:
                logger.exception("Could not record the refused export request")
        return response


def _next(cursor_of, rows: list, after_cursor: str | None) -> str | None:
    """The cursor to resume from: the last row's, or (nothing new yet) the one the client sent."""
    return cursor_of(rows[-1]) if rows else after_cursor


class EventExportApi(ExportApi):
    dataset = "events"
    csv_header = out.EVENT_CSV_HEADER

    def _events(self, request, scope, account):
        events = filtered(EventFilter, request.query_params, export_events(scope=scope, account=account))
        cursor = request.query_params.get("cursor")
        after = cursor_decode("events", cursor, 1)[0] if cursor else None
        return events, after, cursor

    @extend_schema(**schema.operation("events"))
    def get(self, request):
        return super().get(request)

    def page(self, request, scope, account, limit):
        events, after, cursor = self._events(request, scope, account)
        rows, has_more = events_page(events=events, after=after, limit=limit)
        return [out.event_object(row) for row in rows], _next(out.event_cursor, rows, cursor), has_more

    def stream(self, request, scope, account):
        events, after, _ = self._events(request, scope, account)
        chunk = settings.EXPORT_STREAM_CHUNK_ROWS
        if self.export_format == "ndjson" and connection.vendor == "postgresql":
            # The lines come written and joined by the database (the same keys and values as event_line).
            blocks = events_ndjson_stream(events=events, after=after)
            return blocks, None, None, out.event_cursor
        rows = events_stream(events=events, after=after, chunk_size=chunk)
        return rows, out.event_line, lambda row: [out.event_csv(row)], out.event_cursor


class DocumentExportApi(ExportApi):
    filterset: Any = None
    documents_of: Callable[..., DocumentSet]
    to_object: Callable[..., dict]

    def _documents(self, request, scope, account):
        documents = type(self).documents_of(scope=scope, account=account)
        documents = DocumentSet(
            documents.dataset, filtered(self.filterset, request.query_params, documents.queryset), documents.stamp
        )
        cursor = request.query_params.get("cursor")
        after = cursor_decode(self.dataset, cursor, 2) if cursor else None
        return documents, after, cursor

    def page(self, request, scope, account, limit):
        documents, after, cursor = self._documents(request, scope, account)
        rows, has_more = documents_page(documents=documents, after=after, limit=limit)
        data = [type(self).to_object(request, documents, row) for row in rows]
        return data, (data[-1]["cursor"] if data else cursor), has_more

    def stream(self, request, scope, account):
        documents, after, _ = self._documents(request, scope, account)
        # Documents are rendered as they are read (their prefetches come per chunk of the cursor).
        rendered = (
            type(self).to_object(request, documents, row)
            for row in documents_stream(documents=documents, after=after, chunk_size=schema.DOCUMENT_CHUNK_ROWS)
        )
        return (
            rendered,
            lambda document: orjson.dumps(document, option=out.JSON_OPTIONS | orjson.OPT_APPEND_NEWLINE),
            lambda document: [out.flat(document, self.csv_header)],
            lambda document: document["cursor"],
        )


class InvoiceExportApi(DocumentExportApi):
    dataset = "invoices"
    csv_header = out.INVOICE_CSV_HEADER
    filterset = InvoiceFilter
    documents_of = staticmethod(export_invoices)
    to_object = staticmethod(out.invoice_object)

    @extend_schema(**schema.operation("invoices"))
    def get(self, request):
        return super().get(request)


class CreditNoteExportApi(DocumentExportApi):
    dataset = "credit_notes"
    csv_header = out.CREDIT_NOTE_CSV_HEADER
    filterset = CreditNoteFilter
    documents_of = staticmethod(export_credit_notes)
    to_object = staticmethod(out.credit_note_object)

    @extend_schema(**schema.operation("credit_notes"))
    def get(self, request):
        return super().get(request)


class PaymentExportApi(DocumentExportApi):
    dataset = "payments"
    csv_header = out.PAYMENT_CSV_HEADER
    filterset = PaymentFilter
    documents_of = staticmethod(export_payments)
    to_object = staticmethod(out.payment_object)

    @extend_schema(**schema.operation("payments"))
    def get(self, request):
        return super().get(request)


class UsageExportApi(ExportApi):
    dataset = "usage"
    csv_header = out.USAGE_CSV_HEADER

    class Query(serializers.Serializer):
        year = serializers.IntegerField(min_value=2000, max_value=9998)
        month = serializers.IntegerField(min_value=1, max_value=12)

    def _accounts(self, request, scope, account):
        query = self.Query(data=request.query_params)
        query.is_valid(raise_exception=True)
        now = clock.now()
        period = month_period(query.validated_data["year"], query.validated_data["month"])
        if period.start > now:
            raise BillingError(ERR_FUTURE_MONTH, code="future_period", field="month")
        cursor = request.query_params.get("cursor")
        after = cursor_decode("usage", cursor, 1)[0] if cursor else None
        accounts = export_usage_accounts(scope=scope, account=account, after=after)
        return accounts, period, now, cursor

    @extend_schema(**schema.operation("usage"))
    def get(self, request):
        return super().get(request)

    def page(self, request, scope, account, limit):
        accounts, period, now, cursor = self._accounts(request, scope, account)
        chosen = list(accounts[: limit + 1])
        data = [out.usage_object(a.pk, usage_month_document(account=a, period=period, now=now)) for a in chosen[:limit]]
        return data, (data[-1]["cursor"] if data else cursor), len(chosen) > limit

    def stream(self, request, scope, account):
        accounts, period, now, _ = self._accounts(request, scope, account)
        rendered = (
            out.usage_object(a.pk, usage_month_document(account=a, period=period, now=now))
            for a in accounts.iterator(chunk_size=schema.DOCUMENT_CHUNK_ROWS)
        )
        return (
            rendered,
            lambda document: orjson.dumps(document, option=out.JSON_OPTIONS | orjson.OPT_APPEND_NEWLINE),
            out.usage_csv_rows,
            lambda document: document["cursor"],
        )
