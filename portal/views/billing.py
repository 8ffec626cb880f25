"""Dashboard of the running period, invoices and credit notes (with their PDFs)."""

from django.http import HttpResponse

from portal.access import portal_view


@portal_view
def dashboard(request):
    return HttpResponse("dashboard")


@portal_view
def invoice_list(request):
    return HttpResponse("invoices")


@portal_view
def invoice_detail(request, number):
    return HttpResponse("invoice")


@portal_view
def invoice_pdf(request, number):
    return HttpResponse("pdf")


@portal_view
def credit_note_list(request):
    return HttpResponse("credit notes")


@portal_view
def credit_note_pdf(request, number):
    return HttpResponse("pdf")
