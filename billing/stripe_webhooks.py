"""Stripe's webhooks, as dj-stripe delivers them: its view (``/stripe/webhook/<uuid>/``) verifies the signature
with the endpoint's secret, stores the event once per event id (a replay is not processed again), syncs the
event's object into dj-stripe's tables and then sends the event's signal, which these handlers receive inside
the same transaction (a handler that fails rolls the event back; Stripe delivers it again).

Thin: each handler reads the event's object and calls one service of ``billing.services.collection``, which
applies it exactly once whatever the order the events arrive in. Connected by ``connect`` (``billing.apps``).
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponseBadRequest
from djstripe.models import Event
from djstripe.signals import WEBHOOK_SIGNALS
from djstripe.views import ProcessWebhookView

from billing.models import Payment, PaymentProfile
from billing.services import collection, stripe_gateway
from common import clock


class WebhookView(ProcessWebhookView):
    """dj-stripe's webhook view (mounted at its URL), answering 400 to a body that is not a JSON object before
    dj-stripe reads it: dj-stripe looks for ``"id" in`` whatever the JSON is, and a body of ``null``, a number
    or a string would be a 500."""

    def post(self, request, uuid):
        try:
            body = json.loads(request.body)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return HttpResponseBadRequest()
        return super().post(request, uuid)


def _object(event: Any) -> dict[str, Any]:
    return dict((event.data or {}).get("object") or {})


def payment_intent_succeeded(sender: Any, event: Any, **kwargs: Any) -> None:
    collection.intent_apply(intent=_object(event), now=clock.now())


def payment_intent_payment_failed(sender: Any, event: Any, **kwargs: Any) -> None:
    """A failed automatic attempt (the immediate answer may have recorded it already). A failed try on a
    Checkout page is not recorded: the customer is there and may try another card in the same session."""
    intent = _object(event)
    payment = Payment.objects.filter(external_id=intent.get("id")).first()
    payment_id = (intent.get("metadata") or {}).get("payment_id")
    if payment is None and payment_id:
        payment = Payment.objects.filter(public_id=payment_id, attempt__isnull=False, external_id__isnull=True).first()
        # Metadata proves nothing: only the account's own customer's PaymentIntent fails its attempt.
        if payment is not None and not collection.intent_is_accounts(intent, payment.account_id):
            payment = None
    if payment is not None:
        collection.intent_apply(intent=intent, payment=payment, now=clock.now())


def checkout_session_completed(sender: Any, event: Any, **kwargs: Any) -> None:
    """A "Pay now" session paid (its PaymentIntent is applied to the invoice it names), or a card saved in
    a setup session (synced as the account's payment method, even if the customer never came back)."""
    session = _object(event)
    if session.get("mode") == "payment" and session.get("payment_status") == "paid" and session.get("payment_intent"):
        intent_id = session["payment_intent"]
        intent_id = intent_id["id"] if isinstance(intent_id, dict) else intent_id
        collection.intent_apply(intent=stripe_gateway.payment_intent_retrieve(intent_id=intent_id), now=clock.now())
    elif session.get("mode") == "setup" and session.get("status") == "complete":
        profile = PaymentProfile.objects.select_related("account").filter(stripe_customer_id=session.get("customer"))
        for found in profile[:1]:
            stripe_gateway.checkout_setup_complete(account=found.account, session_id=session["id"])


def charge_refunded(sender: Any, event: Any, **kwargs: Any) -> None:
    collection.stripe_refunds_record(charge=_object(event), now=clock.now())


def charge_dispute_created(sender: Any, event: Any, **kwargs: Any) -> None:
    collection.stripe_dispute_record(dispute=_object(event), now=clock.now())


HANDLERS = {
    "payment_intent.succeeded": payment_intent_succeeded,
    "payment_intent.payment_failed": payment_intent_payment_failed,
    "checkout.session.completed": checkout_session_completed,
    "charge.refunded": charge_refunded,
    "charge.dispute.created": charge_dispute_created,
}
# The events to enable on the Stripe webhook endpoint (docs/operations.md): ours, and ``charge.succeeded``, on
# which dj-stripe keeps its copy of the charge and its balance transaction for the daily reconciliation.
ENABLED_EVENTS = sorted([*HANDLERS, "charge.succeeded"])


def connect() -> None:
    for event_type, handler in HANDLERS.items():
        WEBHOOK_SIGNALS[event_type].connect(handler, sender=Event, dispatch_uid=f"billing-stripe-{event_type}")
