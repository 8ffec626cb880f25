"""Dashboard of the running period, invoices and credit notes (with their PDFs).

Every invoice and credit note is looked up through ``request.account``: another account's document, or a
draft, is a 404."""

from django.http import FileResponse, HttpResponse
from django.shortcuts import get_object_or_404, render

from billing.presentation import invoice_seller, tenant_groups, tenant_names
from billing.selectors import (
    customer_credit_notes,
    customer_invoices,
    invoice_lines,
    invoice_partner_totals,
)
from billing.services.documents import document_for_download
from common import clock
from common.periods import Period
from portal.access import portal_view
from portal.selectors import dashboard as dashboard_data


@portal_view
def dashboard(request):
    board = dashboard_data(account=request.account, now=clock.now())
    return render(request, "portal/dashboard.html", {"board": board, "estimate": board.estimate})


@portal_view
def invoice_list(request):
    invoices = customer_invoices(account=request.account)
    return render(request, "portal/invoices.html", {"invoices": invoices})


@portal_view
def invoice_detail(request, number):
    invoice = get_object_or_404(customer_invoices(account=request.account), number=number)
    lines = invoice_lines(invoice)
    # The same grouping as the PDF, with the tenant names the invoice was issued with.
    groups = tenant_groups(invoice, lines, tenant_names(invoice))
    return render(
        request,
        "portal/invoice.html",
        {
            "invoice": invoice,
            "last_day": Period(invoice.period_start, invoice.period_end).last_day,
            "buyer": (invoice.snapshot or {}).get("account", {}),
            "seller": invoice_seller(invoice),
            "lines": lines,
            "tenant_groups": groups,
            "partners": invoice_partner_totals(invoice, lines),
            "credit_notes": customer_credit_notes(account=request.account).filter(invoice=invoice),
        },
    )


# How long a customer whose PDF could not be rendered is asked to wait before trying again.
RETRY_AFTER_SECONDS = 300


def _pdf_response(request, document, number: str) -> HttpResponse:
    if document is None:
        # The render failed (recorded on the document for staff) and was queued again; try later.
        response = render(request, "portal/pdf_unavailable.html", {"number": number}, status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        response["Cache-Control"] = "private, no-store"
        return response
    # The stored file has a content-addressed name; the customer gets it as "<number>.pdf".
    response = FileResponse(
        document.file.open("rb"), as_attachment=True, filename=f"{number}.pdf", content_type="application/pdf"
    )
    response["Cache-Control"] = "private, no-store"
    return response


@portal_view
def invoice_pdf(request, number):
    invoice = get_object_or_404(customer_invoices(account=request.account), number=number)
    return _pdf_response(request, document_for_download(invoice=invoice), invoice.number)


@portal_view
def credit_note_list(request):
    notes = customer_credit_notes(account=request.account)
    return render(request, "portal/credit_notes.html", {"credit_notes": notes})


@portal_view
def credit_note_pdf(request, number):
    note = get_object_or_404(customer_credit_notes(account=request.account), number=number)
    return _pdf_response(request, document_for_download(credit_note=note), note.number)
