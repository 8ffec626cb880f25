from django.urls import path

from billing import apis, apis_journal, apis_ledger, apis_subscription

urlpatterns = [
    path("billing/usage/current", apis.CurrentUsageApi.as_view(), name="usage-current"),
    path("billing/usage", apis.MonthUsageApi.as_view(), name="usage-month"),
    path("billing/journal", apis_journal.JournalApi.as_view(), name="billing-journal"),
    path("billing/allocation", apis_journal.AllocationApi.as_view(), name="billing-allocation"),
    path("tenants/<str:tenant>/quota", apis.TenantQuotaApi.as_view(), name="tenant-quota"),
    path("accounts/<str:account>/billing", apis_ledger.AccountBillingApi.as_view(), name="account-billing"),
    path("invoices", apis_ledger.InvoiceListApi.as_view(), name="invoice-list"),
    path("invoices/<str:number>", apis_ledger.InvoiceDetailApi.as_view(), name="invoice-detail"),
    path("invoices/<str:number>/pdf", apis_ledger.InvoicePdfApi.as_view(), name="invoice-pdf"),
    path("payments", apis_ledger.PaymentListApi.as_view(), name="payment-list"),
    path("subscription", apis_subscription.SubscriptionApi.as_view(), name="subscription"),
    path("subscription/changes", apis_subscription.SubscriptionChangesApi.as_view(), name="subscription-changes"),
]
