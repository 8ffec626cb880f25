"""The site's URLs with the portal's two Stripe-hosted entry points installed (``portal:card_setup``,
``portal:invoice_pay``), as the Stripe integration installs them: the Billing page links them when Stripe
is configured. Standing in for those views, a page that says where it would send the customer."""

from django.http import HttpResponse
from django.urls import include, path

from config.urls import urlpatterns as site_patterns
from portal.urls import urlpatterns as portal_patterns


def stripe_checkout(request, number: str = ""):
    return HttpResponse(f"To Stripe's hosted page {number}".strip())


installed = [p for p in portal_patterns if getattr(p, "name", None) not in ("card_setup", "invoice_pay")] + [
    path("billing/card/", stripe_checkout, name="card_setup"),
    path("invoices/<str:number>/pay/", stripe_checkout, name="invoice_pay"),
]

urlpatterns = [path("portal/", include((installed, "portal")))] + [
    p for p in site_patterns if str(p.pattern) != "portal/"
]
