"""Stripe, through stripe-python and dj-stripe, from the environment. With no secret key Stripe is off: invoices
are collected by hand (bank transfers, checks) and the portal offers no card or "Pay now".

Automatic collection (``billing.services.collection``) and every call to Stripe's API
(``billing.services.stripe_gateway``) use the secret key of the mode in force (``STRIPE_LIVE_MODE``); webhooks
arrive at dj-stripe's endpoint ``/stripe/webhook/<uuid>/``, verified with the secret of the ``WebhookEndpoint``
row of that uuid (docs/operations.md, *Stripe*)."""

from config.env import env_bool, env_str

STRIPE_LIVE_MODE = env_bool("STRIPE_LIVE_MODE", False)
STRIPE_LIVE_SECRET_KEY = env_str("STRIPE_LIVE_SECRET_KEY", "")
STRIPE_TEST_SECRET_KEY = env_str("STRIPE_TEST_SECRET_KEY", "")
STRIPE_LIVE_PUBLIC_KEY = env_str("STRIPE_LIVE_PUBLIC_KEY", "")
STRIPE_TEST_PUBLIC_KEY = env_str("STRIPE_TEST_PUBLIC_KEY", "")
DJSTRIPE_WEBHOOK_SECRET = env_str("DJSTRIPE_WEBHOOK_SECRET", "")
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"
# Where Stripe's API is (empty: Stripe itself). Only for a local stand-in of the API (stripe-mock, a test's
# fake); production leaves it empty. Both our client and dj-stripe's own calls (its sync of webhook objects)
# go there.
STRIPE_API_BASE = env_str("STRIPE_API_BASE", "")
if STRIPE_API_BASE:
    STRIPE_API_HOST = STRIPE_API_BASE  # dj-stripe's name for it, applied to stripe-python's global client
# Stripe's network retries per request (stripe-python retries connection errors and 409/5xx with the same
# idempotency key, so a retried charge is never a second charge).
STRIPE_MAX_NETWORK_RETRIES = 2
