from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from common import views as common_views

admin.site.site_header = "Ledgerline billing console"
admin.site.site_title = "Ledgerline"
admin.site.index_title = "Billing operations"

urlpatterns = [
    path("", common_views.home, name="home"),
    path("healthz", common_views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("stripe/", include("djstripe.urls", namespace="djstripe")),
]
