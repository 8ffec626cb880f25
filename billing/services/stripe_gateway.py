"""Every call Ledgerline makes to Stripe's API, and the translation between Stripe's objects and ours.

The client is built per call from the settings (``config/settings/components/stripe.py``): the secret key of
the mode in force and, for a local stand-in of the API, ``STRIPE_API_BASE``. Nothing card-related reaches our
servers: cards are entered on Stripe's hosted Checkout pages; we keep Stripe's ids and what customers read
(brand, last four digits, expiry).

Charges are exactly-once by Stripe's idempotency keys: the caller names the key (an automatic collection
attempt uses ``invoice-<pk>-attempt-<n>``), and stripe-python retries a lost request with that same key.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import stripe
from django.conf import settings
from django.db import transaction
from djstripe.models import Customer, PaymentMethod

from accounts.models import Account
from billing.models import Invoice, Payment, PaymentProfile
from common.errors import BillingError
from common.money import minor_unit

ERR_NOT_CONFIGURED = "Stripe is not configured (STRIPE_TEST_SECRET_KEY / STRIPE_LIVE_SECRET_KEY)."
ERR_UNAVAILABLE = "Stripe could not be reached: {error}"
ERR_SESSION_FOREIGN = "This checkout session belongs to another customer."
ERR_SESSION_UNKNOWN = "There is no such checkout session."
ERR_SESSION_INCOMPLETE = "The card was not saved: the checkout session is {status}."


class StripeUnavailable(Exception):
    """Stripe did not answer (network, rate limit, 5xx) after stripe-python's own retries: try again later."""


@dataclass(frozen=True)
class IntentAnswer:
    """Stripe's answer to a charge: the PaymentIntent (as a dict) when one exists, or the error that stopped
    Stripe from creating one (e.g. a detached payment method)."""

    intent: dict[str, Any] | None
    error_code: str = ""
    error_message: str = ""


def stripe_enabled() -> bool:
    return bool(_api_key())


def _api_key() -> str:
    if settings.STRIPE_LIVE_MODE:
        return settings.STRIPE_LIVE_SECRET_KEY
    return settings.STRIPE_TEST_SECRET_KEY


def _client() -> stripe.StripeClient:
    key = _api_key()
    if not key:
        raise BillingError(ERR_NOT_CONFIGURED, code="stripe_not_configured", status=503)
    base = getattr(settings, "STRIPE_API_BASE", "")
    return stripe.StripeClient(
        key,
        base_addresses={"api": base} if base else None,
        max_network_retries=int(getattr(settings, "STRIPE_MAX_NETWORK_RETRIES", 2)),
    )


def _plain(obj: Any) -> dict[str, Any]:
    """A Stripe object as plain dicts and lists (what dj-stripe's sync and our services read)."""
    if obj is None:
        return {}
    if isinstance(obj, dict):
        return obj
    return obj.to_dict(recursive=True)


def _call(func: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    try:
        return _plain(func(*args, **kwargs))
    except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
        raise StripeUnavailable(ERR_UNAVAILABLE.format(error=exc.user_message or exc)) from exc
    except stripe.APIError as exc:
        raise StripeUnavailable(ERR_UNAVAILABLE.format(error=exc.user_message or exc)) from exc


def to_minor(amount: Decimal, currency: str) -> int:
    """``Decimal("574.80")`` USD → 57480 (Stripe's amounts are integers in the currency's minor unit)."""
    return int((amount * (Decimal(10) ** minor_unit(currency))).to_integral_value())


def from_minor(amount: int, currency: str) -> Decimal:
    return Decimal(int(amount)).scaleb(-minor_unit(currency.upper()))


def timestamp(value: int | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(value, tz=dt.UTC) if value else None


# --- Customers and payment methods ---------------------------------------------------------------------------


def _sync_customer(data: dict[str, Any]) -> None:
    """Keep dj-stripe's copy of the customer (staff see it under *Stripe › Customers*)."""

    Customer.sync_from_stripe_data(data, api_key=_api_key())


def customer_ensure(*, account: Account) -> PaymentProfile:
    """The account's payment profile with its Stripe customer: created at Stripe on first need (once: the
    request carries the account's idempotency key), or the one staff linked (``stripe_customer_id`` set by
    hand), fetched and synced."""
    client = _client()
    with transaction.atomic():
        profile, _ = PaymentProfile.objects.select_for_update().get_or_create(account=account)
        if profile.stripe_customer_id:
            data = _call(client.v1.customers.retrieve, profile.stripe_customer_id)
        else:
            data = _call(
                client.v1.customers.create,
                {
                    "name": account.name,
                    "email": (account.billing_emails or [""])[0],
                    "metadata": {"account_id": account.public_id},
                },
                {"idempotency_key": f"account-{account.pk}-customer"},
            )
            profile.stripe_customer_id = data["id"]
            profile.save(update_fields=["stripe_customer_id", "updated_at"])
        _sync_customer(data)
    return profile


def payment_method_details(pm: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``PaymentProfile`` that describe a Stripe PaymentMethod."""
    kind = pm.get("type", "")
    details = pm.get(kind) or {}
    return {
        "payment_method_id": pm.get("id", ""),
        "payment_method_type": kind if kind in PaymentProfile.MethodType.values else "",
        "payment_method_brand": details.get("brand", "") if kind == "card" else "",
        "payment_method_last4": details.get("last4", "") or "",
        "payment_method_exp_month": details.get("exp_month") if kind == "card" else None,
        "payment_method_exp_year": details.get("exp_year") if kind == "card" else None,
    }


def payment_method_label(pm: dict[str, Any]) -> str:
    """``card_ending_4242``, ``sepa_debit_ending_3000``: how receipts and events name the method."""
    details = payment_method_details(pm)
    kind, last4 = pm.get("type", ""), details["payment_method_last4"]
    return f"{kind}_ending_{last4}" if last4 else kind


def _profile_set_method(profile: PaymentProfile, pm: dict[str, Any]) -> PaymentProfile:
    for field, value in payment_method_details(pm).items():
        setattr(profile, field, value)
    profile.save()
    return profile


def payment_method_sync(*, account: Account) -> PaymentProfile:
    """Read the customer's default payment method from Stripe into the profile (none: the profile's is
    cleared). Used after a card was added and by staff to refresh it."""

    profile = customer_ensure(account=account)
    client = _client()
    customer = _call(
        client.v1.customers.retrieve,
        profile.stripe_customer_id,
        {"expand": ["invoice_settings.default_payment_method"]},
    )
    pm = (customer.get("invoice_settings") or {}).get("default_payment_method") or {}
    if isinstance(pm, str):
        pm = _call(client.v1.payment_methods.retrieve, pm)
    if pm:
        PaymentMethod.sync_from_stripe_data(pm, api_key=_api_key())
    return _profile_set_method(profile, pm or {})


# --- Checkout (Stripe-hosted pages) ------------------------------------------------------------------------


def checkout_setup_session(*, account: Account, success_url: str, cancel_url: str) -> str:
    """A Checkout Session in setup mode (the customer enters a card or bank account on Stripe's page);
    returns the page's URL. ``success_url`` gets ``?session_id=cs_…`` back."""
    profile = customer_ensure(account=account)
    session = _call(
        _client().v1.checkout.sessions.create,
        {
            "mode": "setup",
            "customer": profile.stripe_customer_id,
            "currency": account.currency.lower(),
            "success_url": f"{success_url}?session_id={{CHECKOUT_SESSION_ID}}",
            "cancel_url": cancel_url,
            "metadata": {"account_id": account.public_id},
        },
    )
    return session["url"]


def checkout_setup_complete(*, account: Account, session_id: str) -> PaymentProfile:
    """The customer came back from a setup session: its payment method becomes the customer's default
    (what automatic collection charges) and is copied into the profile."""

    profile = customer_ensure(account=account)
    client = _client()
    try:
        session = _call(client.v1.checkout.sessions.retrieve, session_id, {"expand": ["setup_intent"]})
    except stripe.InvalidRequestError as exc:
        # A session id Stripe does not know (mistyped, cut off or made up): as another customer's, not found.
        raise BillingError(ERR_SESSION_UNKNOWN, code="checkout_session_unknown", status=404) from exc
    if session.get("customer") != profile.stripe_customer_id:
        raise BillingError(ERR_SESSION_FOREIGN, code="checkout_session_foreign", status=404)
    intent = session.get("setup_intent") or {}
    if isinstance(intent, str):
        intent = _call(client.v1.setup_intents.retrieve, intent)
    if session.get("status") != "complete" or intent.get("status") != "succeeded":
        raise BillingError(
            ERR_SESSION_INCOMPLETE.format(status=session.get("status") or "open"),
            code="checkout_incomplete",
            status=409,
        )
    pm_id = intent["payment_method"] if isinstance(intent["payment_method"], str) else intent["payment_method"]["id"]
    _call(
        client.v1.customers.update,
        profile.stripe_customer_id,
        {"invoice_settings": {"default_payment_method": pm_id}},
        {"idempotency_key": f"account-{account.pk}-default-{pm_id}"},
    )
    pm = _call(client.v1.payment_methods.retrieve, pm_id)
    PaymentMethod.sync_from_stripe_data(pm, api_key=_api_key())
    return _profile_set_method(profile, pm)


def checkout_payment_session(*, invoice: Invoice, success_url: str, cancel_url: str) -> str:
    """A Checkout Session in payment mode for what is due on ``invoice``; returns the page's URL. The
    PaymentIntent carries the invoice number, so its success (webhook) is applied to that invoice."""
    profile = customer_ensure(account=invoice.account)
    metadata = {"invoice_number": invoice.number, "account_id": invoice.account.public_id}
    session = _call(
        _client().v1.checkout.sessions.create,
        {
            "mode": "payment",
            "customer": profile.stripe_customer_id,
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": invoice.currency.lower(),
                        "unit_amount": to_minor(invoice.amount_due, invoice.currency),
                        "product_data": {"name": f"Invoice {invoice.number}"},
                    },
                }
            ],
            "metadata": metadata,
            "payment_intent_data": {"metadata": metadata, "description": f"Invoice {invoice.number}"},
            "success_url": success_url,
            "cancel_url": cancel_url,
        },
    )
    return session["url"]


# --- Charges ------------------------------------------------------------------------------------------------


def payment_intent_create(
    *,
    amount: Decimal,
    currency: str,
    customer_id: str,
    payment_method_id: str,
    metadata: dict[str, str],
    description: str,
    idempotency_key: str,
) -> IntentAnswer:
    """Charge the saved payment method now, the customer not present (``off_session``). A decline is an
    answer, not an error: Stripe's 402 carries the PaymentIntent with its ``last_payment_error``."""
    try:
        intent = _client().v1.payment_intents.create(
            {
                "amount": to_minor(amount, currency),
                "currency": currency.lower(),
                "customer": customer_id,
                "payment_method": payment_method_id,
                "confirm": True,
                "off_session": True,
                "metadata": metadata,
                "description": description,
            },
            {"idempotency_key": idempotency_key},
        )
    except (stripe.CardError, stripe.InvalidRequestError) as exc:
        error = exc.error
        declined = getattr(error, "payment_intent", None) if error is not None else None
        if declined is not None:
            return IntentAnswer(intent=_plain(declined))
        return IntentAnswer(
            intent=None,
            error_code=(getattr(error, "code", None) or exc.code or "stripe_error") if error else "stripe_error",
            error_message=exc.user_message or str(exc),
        )
    except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as exc:
        raise StripeUnavailable(ERR_UNAVAILABLE.format(error=exc.user_message or exc)) from exc
    return IntentAnswer(intent=_plain(intent))


def payment_intent_retrieve(*, intent_id: str) -> dict[str, Any]:
    return _call(_client().v1.payment_intents.retrieve, intent_id, {"expand": ["payment_method"]})


def payment_method_retrieve(*, payment_method_id: str) -> dict[str, Any]:
    return _call(_client().v1.payment_methods.retrieve, payment_method_id)


def charge_refunds(*, charge_id: str) -> list[dict[str, Any]]:
    """Every refund of a charge (the charge's own ``refunds`` list is not in its events any more)."""
    page = _call(_client().v1.refunds.list, {"charge": charge_id, "limit": 100})
    return list(page.get("data", []))


# --- Refunds ------------------------------------------------------------------------------------------------

ERR_REFUND_REFUSED = "Stripe refused to refund {payment}: {error}"


def refund_create(
    *, payment: Payment, amount: Decimal, idempotency_key: str, metadata: dict[str, str] | None = None
) -> dict[str, Any]:
    """Refund ``amount`` of a Stripe payment (its charge, or its PaymentIntent when the charge is not known yet);
    returns Stripe's Refund. Exactly once by ``idempotency_key``: asked again with that key (stripe-python's
    retry of a lost request, or a retry of ours), Stripe answers with the same refund. A refusal (more than is
    left on the charge, a charge disputed or already refunded) is a 409."""
    params: dict[str, Any] = {
        "amount": to_minor(amount, payment.currency),
        "reason": "requested_by_customer",
        "metadata": {"payment_id": payment.public_id, **(metadata or {})},
    }
    if payment.stripe_charge_id:
        params["charge"] = payment.stripe_charge_id
    else:
        params["payment_intent"] = payment.external_id
    client = _client()
    try:
        refund = _call(client.v1.refunds.create, params, {"idempotency_key": idempotency_key})
    except (stripe.InvalidRequestError, stripe.CardError) as exc:
        raise BillingError(
            ERR_REFUND_REFUSED.format(payment=payment.public_id, error=exc.user_message or exc),
            code="stripe_refund_refused",
            status=409,
        ) from exc
    if refund.get("status") in ("failed", "canceled"):
        raise BillingError(
            ERR_REFUND_REFUSED.format(
                payment=payment.public_id, error=refund.get("failure_reason") or refund["status"]
            ),
            code="stripe_refund_refused",
            status=409,
        )
    return refund
