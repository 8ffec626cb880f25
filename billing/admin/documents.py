"""The PDFs of invoices and credit notes in the admin: status, a permission-checked view, re-render.

PDFs are served only through ``<object>/pdf/`` here (staff with the model's view permission) and the
customer portal; never from ``MEDIA_URL``. Re-rendering takes the model's change permission and is
recorded in the object's history.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from billing.models import Document, Invoice
from billing.services.documents import document_ready, document_request, invoice_preview_pdf
from common.admin_utils import format_datetime, run_action

RERENDER_MESSAGE = "Re-rendered the PDF"


def pdf_response(data: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(data, content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="{filename}"'
    response["Content-Length"] = str(len(data))
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _document_of(obj) -> Document | None:
    try:
        return obj.document
    except Document.DoesNotExist:
        return None


class DocumentAdminMixin:
    """For ``InvoiceAdmin`` and ``CreditNoteAdmin``: the PDF view, its status fields and the re-render action."""

    document_kind: str  # "invoice" or "credit_note": the keyword of the document services

    def get_urls(self):
        opts = self.model._meta
        urls = [
            path(
                "<path:object_id>/pdf/",
                self.admin_site.admin_view(self.pdf_view),
                name=f"{opts.app_label}_{opts.model_name}_pdf",
            )
        ]
        return urls + super().get_urls()

    def pdf_view(self, request, object_id):
        obj = self.get_object(request, object_id)
        if obj is None:
            raise Http404
        if not self.has_view_permission(request, obj):
            raise PermissionDenied
        if isinstance(obj, Invoice) and obj.status == Invoice.Status.DRAFT:
            # A preview for review, marked as a draft and never stored.
            return pdf_response(invoice_preview_pdf(invoice=obj), f"draft-invoice-{obj.pk}.pdf")
        document = document_ready(**{self.document_kind: obj})
        if document.status != Document.Status.READY:
            self.message_user(request, f"{obj}: the PDF could not be rendered ({document.error}).", messages.ERROR)
            opts = self.model._meta
            return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]))
        with document.file.open("rb") as handle:
            data = handle.read()
        return pdf_response(data, document.filename)

    def pdf_url(self, obj) -> str:
        opts = self.model._meta
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_pdf", args=[obj.pk])

    @admin.display(description="PDF")
    def pdf_link(self, obj):
        label = "Preview draft PDF" if isinstance(obj, Invoice) and obj.status == Invoice.Status.DRAFT else "View PDF"
        return format_html('<a href="{}" target="_blank">{}</a>', self.pdf_url(obj), label)

    @admin.display(description="PDF status")
    def pdf_status(self, obj):
        document = _document_of(obj)
        if document is None:
            return "not rendered"
        if document.status == Document.Status.FAILED:
            return format_html("Failed: {}", document.error)
        return document.get_status_display()

    @admin.display(description="PDF rendered at")
    def pdf_rendered_at(self, obj):
        document = _document_of(obj)
        return format_datetime(document.rendered_at) if document and document.rendered_at else "–"

    @admin.display(description="PDF size")
    def pdf_size(self, obj):
        document = _document_of(obj)
        if document is None or not document.size:
            return "–"
        return f"{document.size:,} bytes, {document.pages} page(s)"

    @admin.action(description="Re-render PDF", permissions=["change"])
    def rerender_pdf_action(self, request, queryset):
        def rerender(obj, actor):
            document_request(**{self.document_kind: obj})
            self.log_change(request, obj, RERENDER_MESSAGE)  # in the object's admin history

        run_action(self, request, queryset, rerender, "{count} PDF(s) queued for rendering.")


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ("__str__", "status", "size", "pages", "renders", "requested_at", "rendered_at", "error")
    list_filter = ("status",)
    search_fields = ("=invoice__number", "=credit_note__number")
    list_select_related = ("invoice", "credit_note")
    fields = (
        "invoice",
        "credit_note",
        "status",
        "error",
        "sha256",
        "size",
        "pages",
        "renders",
        "requested_at",
        "rendered_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
