from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny

from billing.stripe_webhooks import WebhookView
from common import views as common_views

admin.site.site_header = "Ledgerline billing console"
admin.site.site_title = "Ledgerline"
admin.site.index_title = "Billing operations"
# No navigation column beside every page: at 1366 px it took a fifth of the width and pushed the lists'
# last columns out of sight. The index, the breadcrumbs and the links between pages lead everywhere.
admin.site.enable_nav_sidebar = False

# The documentation is public; every /v1/ endpoint needs an API key.
public = {"authentication_classes": [], "permission_classes": [AllowAny], "throttle_classes": []}

urlpatterns = [
    path("", common_views.home, name="home"),
    path("healthz", common_views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("portal/", include("portal.urls")),
    path("v1/", include("usage.urls")),
    path("v1/", include("billing.urls")),
    path("v1/", include("disputes.urls")),
    path("v1/", include("webhooks.urls")),
    path("v1/", include("exports.urls")),
    path("v1/", include("insights.urls")),
    path("api/schema/", SpectacularAPIView.as_view(**public), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema", **public), name="api-docs"),
    # Redoc shows the webhook events (x-webhooks) beside the operations.
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema", **public), name="api-redoc"),
    # dj-stripe's webhook view, with malformed bodies refused first (billing.stripe_webhooks.WebhookView).
    path("stripe/webhook/<uuid:uuid>/", WebhookView.as_view(), name="stripe-webhook"),
    path("stripe/", include("djstripe.urls", namespace="djstripe")),
]

# The demo's webhook receivers (demo.webhook_inbox), on the demo's own address: off unless DEMO_WEBHOOK_INBOX is set.
if settings.DEMO_WEBHOOK_INBOX:
    urlpatterns.append(path("", include("demo.urls")))

# API paths answer these errors in the API's error shape, other paths with Django's pages.
handler400 = "common.errorpages.bad_request"
handler404 = "common.errorpages.page_not_found"
handler500 = "common.errorpages.server_error"
