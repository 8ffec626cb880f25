from django.urls import path

from exports import apis

urlpatterns = [
    path("export/events", apis.EventExportApi.as_view(), name="export-events"),
    path("export/invoices", apis.InvoiceExportApi.as_view(), name="export-invoices"),
    path("export/credit-notes", apis.CreditNoteExportApi.as_view(), name="export-credit-notes"),
    path("export/payments", apis.PaymentExportApi.as_view(), name="export-payments"),
    path("export/usage", apis.UsageExportApi.as_view(), name="export-usage"),
]
