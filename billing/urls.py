from django.urls import path

from billing import apis

urlpatterns = [
    path("billing/usage/current", apis.CurrentUsageApi.as_view(), name="usage-current"),
    path("billing/usage", apis.MonthUsageApi.as_view(), name="usage-month"),
    path("tenants/<str:tenant>/quota", apis.TenantQuotaApi.as_view(), name="tenant-quota"),
]
