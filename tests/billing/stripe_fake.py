"""A local stand-in for Stripe's HTTP API (pytest-httpserver), and signed webhook deliveries.

The fake keeps the objects it made (customers, payment methods, Checkout Sessions, SetupIntents,
PaymentIntents, charges, refunds, disputes) and answers Stripe's endpoints for them the way Stripe does:
form-encoded requests, JSON answers, a declined off-session charge as a 402 ``card_error`` carrying the
PaymentIntent, the same answer again for a repeated ``Idempotency-Key``, 404 ``resource_missing`` for an
unknown id. Every request is recorded, so a test asserts what was asked of Stripe.

``stripe_fake_start`` points both stripe-python's global client (dj-stripe's calls) and our gateway
(``STRIPE_API_BASE``) at it. ``webhook_post`` signs an event with the endpoint's secret as Stripe does
(``Stripe-Signature: t=…,v1=HMAC-SHA256(secret, "t.payload")``) and posts it to dj-stripe's view.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import stripe
from djstripe.models import WebhookEndpoint
from werkzeug import Request, Response

WEBHOOK_SECRET = "whsec_test_local_secret"
API_VERSION = "2026-08-26.dahlia"
# The account the secret key belongs to (dj-stripe asks for it to know whose objects it syncs).
PLATFORM_ACCOUNT = {
    "id": "acct_fakeplatform0001",
    "object": "account",
    "business_profile": {"name": "Ledgerline", "support_email": None, "url": None},
    "business_type": "company",
    "charges_enabled": True,
    "country": "US",
    "default_currency": "usd",
    "details_submitted": True,
    "email": "billing@ledgerline.example",
    "payouts_enabled": True,
    "settings": {
        "branding": {"icon": None, "logo": None, "primary_color": None, "secondary_color": None},
        "dashboard": {"display_name": "Ledgerline", "timezone": "Etc/UTC"},
    },
    "type": "standard",
    "livemode": False,
    "metadata": {},
    "created": 1700000000,
}
CARDS = {
    "pm_card_visa": ("visa", "4242", 12, 2030),
    "pm_card_mastercard": ("mastercard", "4444", 3, 2031),
}


@dataclass
class Recorded:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("Idempotency-Key")


@dataclass
class FakeStripe:
    base_url: str
    requests: list[Recorded] = field(default_factory=list)
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    replies: dict[str, tuple[int, dict]] = field(default_factory=dict)
    # Decline codes for the next charges, one per charge (empty: charges succeed).
    declines: list[str] = field(default_factory=list)
    # The next POST is carried out, but its answer is lost on the way back (a 500 instead).
    lose_next_answer: bool = False
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    # --- what tests read and do -------------------------------------------------------------------------

    def posts(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path == path]

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):06d}"

    def customer_with_card(self, *, email: str = "ap@northwind.example", card: str = "pm_card_visa") -> tuple[str, str]:
        """A customer with a saved default card, as after a completed setup session: (cus_…, pm_…)."""
        customer = self._customer_create({"email": email, "name": "Northwind"})
        pm = self._payment_method(card, customer["id"])
        customer["invoice_settings"]["default_payment_method"] = pm["id"]
        return customer["id"], pm["id"]

    def complete_setup(self, session_id: str, *, card: str = "pm_card_mastercard") -> dict[str, Any]:
        """The customer entered a card on the setup session's page."""
        session = self.objects[session_id]
        pm = self._payment_method(card, session["customer"])
        intent = self._store(
            {
                "id": self.new_id("seti"),
                "object": "setup_intent",
                "customer": session["customer"],
                "payment_method": pm["id"],
                "status": "succeeded",
                "usage": "off_session",
                "payment_method_types": ["card"],
                "metadata": {},
                "livemode": False,
                "created": int(time.time()),
            }
        )
        session.update(status="complete", setup_intent=intent["id"])
        return session

    def complete_payment(self, session_id: str, *, card: str = "pm_card_visa") -> dict[str, Any]:
        """The customer paid on the payment session's page: a succeeded PaymentIntent and its charge."""
        session = self.objects[session_id]
        pm = self._payment_method(card, session["customer"])
        intent = self._intent(
            amount=session["amount_total"],
            currency=session["currency"],
            customer=session["customer"],
            pm=pm,
            metadata=session["_intent_metadata"],
            description=session["_intent_description"],
        )
        session.update(status="complete", payment_status="paid", payment_intent=intent["id"])
        return session

    def refund(self, charge_id: str, amount: int, *, reason: str = "requested_by_customer") -> dict[str, Any]:
        """Refund (part of) a charge from Stripe's dashboard: returns the charge, as charge.refunded carries it."""
        charge = self.objects[charge_id]
        self._store(
            {
                "id": self.new_id("re"),
                "object": "refund",
                "amount": amount,
                "charge": charge_id,
                "currency": charge["currency"],
                "payment_intent": charge["payment_intent"],
                "reason": reason,
                "status": "succeeded",
                "balance_transaction": None,
                "metadata": {},
                "created": int(time.time()),
            }
        )
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        return self._public(charge)

    def dispute(self, charge_id: str, *, reason: str = "fraudulent") -> dict[str, Any]:
        charge = self.objects[charge_id]
        charge["disputed"] = True
        return self._public(
            self._store(
                {
                    "id": self.new_id("dp"),
                    "object": "dispute",
                    "amount": charge["amount"],
                    "charge": charge_id,
                    "currency": charge["currency"],
                    "payment_intent": charge["payment_intent"],
                    "reason": reason,
                    "status": "needs_response",
                    "balance_transaction": None,
                    "balance_transactions": [],
                    "evidence": {},
                    "evidence_details": {"due_by": int(time.time()) + 7 * 86400, "has_evidence": False},
                    "is_charge_refundable": False,
                    "livemode": False,
                    "metadata": {},
                    "created": int(time.time()),
                }
            )
        )

    def get(self, object_id: str) -> dict[str, Any]:
        return self._public(self.objects[object_id])

    def event(self, type: str, obj: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": self.new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()),
            "data": {"object": obj},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": type,
        }

    # --- the HTTP side ----------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        params = dict(parse_qsl(request.get_data(as_text=True), keep_blank_values=True))
        params.update(parse_qsl(request.query_string.decode(), keep_blank_values=True))
        self.requests.append(Recorded(request.method, request.path, params, dict(request.headers)))
        key = request.headers.get("Idempotency-Key")
        if request.method == "POST" and key and key in self.replies:
            status, body = self.replies[key]
            return self._json(body, status)
        status, body = self._route(request.method, request.path, params)
        if request.method == "POST" and key:
            self.replies[key] = (status, body)
        if request.method == "POST" and self.lose_next_answer:
            self.lose_next_answer = False
            return self._json({"error": {"type": "api_error", "message": "An unknown error occurred"}}, 500)
        return self._json(body, status)

    def _route(self, method: str, path: str, params: dict[str, str]) -> tuple[int, dict]:
        expand = {v for k, v in params.items() if k.startswith("expand[")}
        if method == "POST" and path == "/v1/customers":
            return 200, self._public(self._customer_create(params))
        if method == "POST" and path == "/v1/checkout/sessions":
            return 200, self._public(self._session_create(params))
        if method == "POST" and path == "/v1/payment_intents":
            return self._charge(params)
        if method == "GET" and path == "/v1/account":
            return 200, PLATFORM_ACCOUNT
        if method == "GET" and path == "/v1/refunds":
            data = [self._public(o) for o in self.objects.values() if o["object"] == "refund"]
            data = [r for r in data if r["charge"] == params.get("charge")]
            return 200, {"object": "list", "data": data, "has_more": False, "url": "/v1/refunds"}
        match = re.fullmatch(
            r"/v1/(customers|payment_methods|payment_intents|charges|refunds|disputes|setup_intents|checkout/sessions)"
            r"/([A-Za-z0-9_]+)",
            path,
        )
        if match is None or match.group(2) not in self.objects:
            return 404, self._missing(path)
        obj = self.objects[match.group(2)]
        if method == "POST" and obj["object"] == "customer":
            if "invoice_settings[default_payment_method]" in params:
                obj["invoice_settings"]["default_payment_method"] = params["invoice_settings[default_payment_method]"]
        return 200, self._public(obj, expand)

    def _charge(self, params: dict[str, str]) -> tuple[int, dict]:
        pm = self.objects.get(params.get("payment_method", ""))
        if pm is None or pm.get("customer") != params.get("customer"):
            return 400, {
                "error": {
                    "type": "invalid_request_error",
                    "code": "resource_missing",
                    "param": "payment_method",
                    "message": f"No such PaymentMethod: '{params.get('payment_method')}'",
                }
            }
        metadata = {k[len("metadata[") : -1]: v for k, v in params.items() if k.startswith("metadata[")}
        decline = self.declines.pop(0) if self.declines else None
        intent = self._intent(
            amount=int(params["amount"]),
            currency=params["currency"],
            customer=params["customer"],
            pm=pm,
            metadata=metadata,
            description=params.get("description"),
            decline=decline,
        )
        if decline is None:
            return 200, self._public(intent)
        error = dict(intent["last_payment_error"])
        error["payment_intent"] = self._public(intent)
        return 402, {"error": error}

    # --- objects ----------------------------------------------------------------------------------------

    def _store(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.objects[obj["id"]] = obj
        return obj

    def _public(self, obj: dict[str, Any], expand: set[str] | None = None) -> dict[str, Any]:
        out = {k: v for k, v in obj.items() if not k.startswith("_")}
        out = json.loads(json.dumps(out))
        for path in expand or ():
            if path == "invoice_settings.default_payment_method":
                pm = out["invoice_settings"].get("default_payment_method")
                if pm:
                    out["invoice_settings"]["default_payment_method"] = self._public(self.objects[pm])
            elif out.get(path) and isinstance(out[path], str) and out[path] in self.objects:
                out[path] = self._public(self.objects[out[path]])
        return out

    def _missing(self, path: str) -> dict:
        return {"error": {"type": "invalid_request_error", "code": "resource_missing", "message": f"No such {path}"}}

    def _customer_create(self, params: dict[str, str]) -> dict[str, Any]:
        metadata = {k[len("metadata[") : -1]: v for k, v in params.items() if k.startswith("metadata[")}
        return self._store(
            {
                "id": self.new_id("cus"),
                "object": "customer",
                "email": params.get("email"),
                "name": params.get("name"),
                "metadata": metadata,
                "invoice_settings": {"default_payment_method": None, "custom_fields": None, "footer": None},
                "address": None,
                "balance": 0,
                "currency": None,
                "default_source": None,
                "delinquent": False,
                "description": None,
                "discount": None,
                "invoice_prefix": "FAKE0001",
                "livemode": False,
                "phone": None,
                "preferred_locales": [],
                "shipping": None,
                "tax_exempt": "none",
                "created": int(time.time()),
            }
        )

    def _payment_method(self, card: str, customer: str) -> dict[str, Any]:
        brand, last4, month, year = CARDS[card]
        return self._store(
            {
                "id": self.new_id("pm"),
                "object": "payment_method",
                "type": "card",
                "card": {
                    "brand": brand,
                    "last4": last4,
                    "exp_month": month,
                    "exp_year": year,
                    "country": "US",
                    "funding": "credit",
                },
                "billing_details": {"email": None, "name": None, "phone": None, "address": None},
                "customer": customer,
                "livemode": False,
                "metadata": {},
                "created": int(time.time()),
            }
        )

    def _session_create(self, params: dict[str, str]) -> dict[str, Any]:
        session_id = self.new_id("cs_test")
        mode = params["mode"]
        amount = int(params["line_items[0][price_data][unit_amount]"]) if mode == "payment" else None
        return self._store(
            {
                "id": session_id,
                "object": "checkout.session",
                "mode": mode,
                "customer": params.get("customer"),
                "currency": params.get("currency") or params.get("line_items[0][price_data][currency]"),
                "amount_total": amount,
                "status": "open",
                "payment_status": "unpaid" if mode == "payment" else "no_payment_required",
                "payment_intent": None,
                "setup_intent": None,
                "success_url": params.get("success_url"),
                "cancel_url": params.get("cancel_url"),
                "url": f"https://checkout.stripe.com/c/pay/{session_id}",
                "metadata": {k[len("metadata[") : -1]: v for k, v in params.items() if k.startswith("metadata[")},
                "livemode": False,
                "created": int(time.time()),
                "_intent_metadata": {
                    k[len("payment_intent_data[metadata][") : -1]: v
                    for k, v in params.items()
                    if k.startswith("payment_intent_data[metadata][")
                },
                "_intent_description": params.get("payment_intent_data[description]"),
            }
        )

    def _intent(
        self,
        *,
        amount: int,
        currency: str,
        customer: str,
        pm: dict[str, Any],
        metadata: dict[str, str],
        description: str | None,
        decline: str | None = None,
    ) -> dict[str, Any]:
        now = int(time.time())
        intent_id = self.new_id("pi")
        charge = self._store(
            {
                "id": self.new_id("ch"),
                "object": "charge",
                "amount": amount,
                "amount_captured": 0 if decline else amount,
                "amount_refunded": 0,
                "currency": currency,
                "customer": customer,
                "payment_intent": intent_id,
                "payment_method": pm["id"],
                "payment_method_details": {"type": "card", "card": dict(pm["card"])},
                "status": "failed" if decline else "succeeded",
                "paid": not decline,
                "captured": not decline,
                "refunded": False,
                "disputed": False,
                "failure_code": "card_declined" if decline else None,
                "failure_message": "Your card was declined." if decline else None,
                "balance_transaction": None,
                "invoice": None,
                "billing_details": pm["billing_details"],
                "outcome": {"type": "issuer_declined" if decline else "authorized"},
                "livemode": False,
                "metadata": metadata,
                "description": description,
                "created": now,
            }
        )
        error = None
        if decline:
            error = {
                "type": "card_error",
                "code": "card_declined",
                "decline_code": decline,
                "message": "Your card was declined."
                if decline != "insufficient_funds"
                else "Your card has insufficient funds.",
                "charge": charge["id"],
                "payment_method": self._public(pm),
            }
        return self._store(
            {
                "id": intent_id,
                "object": "payment_intent",
                "amount": amount,
                "amount_received": 0 if decline else amount,
                "amount_capturable": 0,
                "currency": currency,
                "customer": customer,
                "payment_method": pm["id"],
                "payment_method_types": ["card"],
                "capture_method": "automatic",
                "confirmation_method": "automatic",
                "status": "requires_payment_method" if decline else "succeeded",
                "latest_charge": charge["id"],
                "last_payment_error": error,
                "metadata": metadata,
                "description": description,
                "on_behalf_of": None,
                "livemode": False,
                "created": now,
            }
        )

    @staticmethod
    def _json(body: dict, status: int) -> Response:
        return Response(
            json.dumps(body), status=status, content_type="application/json", headers={"Request-Id": "req_fake"}
        )


def stripe_fake_start(httpserver, settings, monkeypatch) -> FakeStripe:
    """Stripe's API on 127.0.0.1 (a test module's fixture calls this with pytest's ``httpserver``,
    ``settings`` and ``monkeypatch``): our gateway and dj-stripe both talk to it, with a test secret key."""
    fake = FakeStripe(base_url=httpserver.url_for("").rstrip("/"))
    httpserver.expect_request(re.compile(r"^/v1/.*")).respond_with_handler(fake.handle)
    settings.STRIPE_TEST_SECRET_KEY = "sk_test_LocalFakeStripeKey000000000000"
    settings.STRIPE_LIVE_MODE = False
    settings.STRIPE_API_BASE = fake.base_url
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    monkeypatch.setattr(stripe, "api_base", fake.base_url)
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    return fake


def webhook_endpoint_create() -> WebhookEndpoint:
    """dj-stripe's endpoint row, as created for the Stripe webhook (its URL names the uuid)."""
    return WebhookEndpoint.objects.create(
        id="we_fake_local",
        url="https://billing.example.com/stripe/webhook/",
        secret=WEBHOOK_SECRET,
        enabled_events=["payment_intent.succeeded"],
        status="enabled",
        api_version=API_VERSION,
        livemode=False,
    )


def signature(payload: str, secret: str = WEBHOOK_SECRET, at: int | None = None) -> str:
    at = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{at}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={at},v1={mac}"


def webhook_post(client, endpoint: WebhookEndpoint, event: dict[str, Any], *, secret: str = WEBHOOK_SECRET):
    """Deliver ``event`` as Stripe does: the JSON body signed with the endpoint's secret."""
    payload = json.dumps(event)
    return client.post(
        f"/stripe/webhook/{endpoint.djstripe_uuid}/",
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signature(payload, secret),
    )
