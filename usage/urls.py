from django.urls import path

from usage import apis

urlpatterns = [
    path("events", apis.EventsIngestApi.as_view(), name="events-ingest"),
    path("billing/usage/current", apis.CurrentUsageApi.as_view(), name="usage-current"),
    path("billing/usage", apis.MonthUsageApi.as_view(), name="usage-month"),
    path("tenants/<str:tenant>/quota", apis.TenantQuotaApi.as_view(), name="tenant-quota"),
]
