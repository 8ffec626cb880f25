"""The Billing page: how the account pays (payment method, automatic collection), its open balance, payments
and receipts, and where collection of each open invoice stands.

Every role sees the page; owners and admins may switch automatic collection (a POST of its own, so a member's
or billing user's attempt is a 403). A receipt is looked up through ``request.account``: another account's
payment is a 404. The Stripe-hosted buttons (set up a card, pay an invoice now) are shown only when Stripe is
configured and their views are installed (url names ``portal:card_setup`` and ``portal:invoice_pay``)."""

from django.conf import settings
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_POST

from billing.models import Payment
from billing.services.payment_profiles import AUTO_COLLECTION_ROLES, payment_profile_set_auto_collection
from common import clock
from common.errors import BillingError
from portal.access import Role, portal_view
from portal.forms import AutoCollectionForm
from portal.payments import RECEIPT_STATUSES, billing_overview, payment_receipt

# Who may do what on the Billing page (the AccountUser.role help text says the same to staff).
MANAGE_PAYMENT_METHOD = AUTO_COLLECTION_ROLES
PAY_INVOICES = (Role.OWNER, Role.ADMIN, Role.BILLING)


def _stripe_configured() -> bool:
    """dj-stripe's rule: the live key in live mode, else the test key."""
    live = getattr(settings, "STRIPE_LIVE_MODE", False)
    return bool(getattr(settings, "STRIPE_LIVE_SECRET_KEY" if live else "STRIPE_TEST_SECRET_KEY", ""))


def _url(name: str, *args: str) -> str:
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return ""


@portal_view
def billing_page(request):
    overview = billing_overview(account=request.account, now=clock.now())
    role = request.membership.role
    stripe = _stripe_configured()
    can_manage = role in MANAGE_PAYMENT_METHOD
    card_setup_url = _url("portal:card_setup") if stripe and can_manage else ""
    pay_urls = {}
    if stripe and role in PAY_INVOICES:
        pay_urls = {
            row.invoice.number: _url("portal:invoice_pay", row.invoice.number) for row in overview.open_invoices
        }
    return render(
        request,
        "portal/billing.html",
        {
            "overview": overview,
            "can_manage": can_manage,
            "card_setup_url": card_setup_url,
            "open_invoices": [(row, pay_urls.get(row.invoice.number, "")) for row in overview.open_invoices],
            "pay_column": any(pay_urls.values()),
        },
    )


@portal_view(roles=MANAGE_PAYMENT_METHOD)
@require_POST
def auto_collection_set(request):
    form = AutoCollectionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose on or off for automatic collection.")
        return redirect("portal:billing")
    enabled = form.cleaned_data["enabled"]
    try:
        payment_profile_set_auto_collection(account=request.account, enabled=enabled, actor=request.user)
    except BillingError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Automatic collection is {'on' if enabled else 'off'}.")
    return redirect("portal:billing")


@portal_view
def payment_receipt_page(request, public_id):
    payment = get_object_or_404(
        Payment.objects.select_related("account"),
        account=request.account,
        public_id=public_id,
        status__in=RECEIPT_STATUSES,
    )
    return render(request, "portal/payment_receipt.html", {"receipt": payment_receipt(payment=payment)})
