"""The Billing page: how the account pays (payment method, automatic collection), its open balance, payments
and receipts, and where collection of each open invoice stands."""

from django.shortcuts import render

from portal.access import portal_view


@portal_view
def billing_page(request):
    return render(request, "portal/billing.html", {"account": request.account})
