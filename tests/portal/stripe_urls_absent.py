"""The site's URLs without the portal's Stripe-hosted entry points (a deployment without the integration)."""

from django.urls import include, path

from config.urls import urlpatterns as site_patterns
from portal.urls import urlpatterns as portal_patterns

installed = [p for p in portal_patterns if getattr(p, "name", None) not in ("card_setup", "invoice_pay")]

urlpatterns = [path("portal/", include((installed, "portal")))] + [
    p for p in site_patterns if str(p.pattern) != "portal/"
]
