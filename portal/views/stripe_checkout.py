"""Cards and "Pay now" through Stripe's hosted Checkout pages: the portal only redirects there and reads back
what Stripe saved (nothing card-related is entered on, or passes through, our pages).

- ``card_setup`` (POST): a Checkout Session in setup mode; the customer enters a card or bank account at
  Stripe and comes back to ``card_setup_return``, which makes it the account's default payment method;
- ``invoice_pay`` (POST): a Checkout Session in payment mode for what is due on an open invoice; its payment
  arrives by webhook (``billing.stripe_webhooks``) and is applied to that invoice.

Owners and admins manage the payment method; they and billing users (invoices and payments are theirs) pay
invoices; anyone else gets a 403."""

from __future__ import annotations

import re

from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from accounts.models import AccountUser
from billing.models import Invoice
from billing.selectors import customer_invoices
from billing.services import stripe_gateway
from common.errors import BillingError
from portal.access import portal_view

Role = AccountUser.Role
# The Billing page shows the same buttons to the same roles.
MANAGE_PAYMENT_METHOD = (Role.OWNER, Role.ADMIN)
PAY_INVOICES = (Role.OWNER, Role.ADMIN, Role.BILLING)
ERR_NOT_OPEN = "Invoice {number} has nothing to pay."
ERR_STRIPE_OFF = "Card payments are not available; please pay by bank transfer."
MSG_CARD_SAVED = "Your {brand} ending in {last4} will be charged for future invoices."
# What Stripe puts into the return URL: ``cs_test_…`` or ``cs_live_…`` (anything else was not made by Stripe).
CHECKOUT_SESSION_ID = re.compile(r"cs_[A-Za-z0-9_]{1,250}")


def _absolute(request, name: str, *args) -> str:
    return request.build_absolute_uri(reverse(name, args=args))


def _stripe_down(request, exc: Exception):
    message = exc.message if isinstance(exc, BillingError) else str(exc)
    messages.error(request, message)
    return redirect("portal:billing")


@require_POST
@portal_view(roles=MANAGE_PAYMENT_METHOD)
def card_setup(request):
    if not stripe_gateway.stripe_enabled():
        messages.error(request, ERR_STRIPE_OFF)
        return redirect("portal:billing")
    try:
        url = stripe_gateway.checkout_setup_session(
            account=request.account,
            success_url=_absolute(request, "portal:card_setup_return"),
            cancel_url=_absolute(request, "portal:billing"),
        )
    except (BillingError, stripe_gateway.StripeUnavailable) as exc:
        return _stripe_down(request, exc)
    return redirect(url)


@require_GET
@portal_view(roles=MANAGE_PAYMENT_METHOD)
def card_setup_return(request):
    session_id = request.GET.get("session_id", "")
    if not CHECKOUT_SESSION_ID.fullmatch(session_id):
        raise Http404
    if not stripe_gateway.stripe_enabled():
        messages.error(request, ERR_STRIPE_OFF)
        return redirect("portal:billing")
    try:
        profile = stripe_gateway.checkout_setup_complete(account=request.account, session_id=session_id)
    except BillingError as exc:
        if exc.status == 404:
            raise Http404 from exc
        return _stripe_down(request, exc)
    except stripe_gateway.StripeUnavailable as exc:
        return _stripe_down(request, exc)
    messages.success(
        request,
        MSG_CARD_SAVED.format(
            brand=(profile.payment_method_brand or profile.get_payment_method_type_display()).title(),
            last4=profile.payment_method_last4,
        ),
    )
    return redirect("portal:billing")


@require_POST
@portal_view(roles=PAY_INVOICES)
def invoice_pay(request, number):
    invoice = get_object_or_404(customer_invoices(account=request.account), number=number)
    if invoice.status != Invoice.Status.FINALIZED or invoice.amount_due <= 0:
        messages.error(request, ERR_NOT_OPEN.format(number=invoice.number))
        return redirect("portal:invoice", invoice.number)
    if not stripe_gateway.stripe_enabled():
        messages.error(request, ERR_STRIPE_OFF)
        return redirect("portal:invoice", invoice.number)
    try:
        url = stripe_gateway.checkout_payment_session(
            invoice=invoice,
            success_url=_absolute(request, "portal:invoice", invoice.number),
            cancel_url=_absolute(request, "portal:invoice", invoice.number),
        )
    except (BillingError, stripe_gateway.StripeUnavailable) as exc:
        return _stripe_down(request, exc)
    return redirect(url)
