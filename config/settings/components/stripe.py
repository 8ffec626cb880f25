"""dj-stripe's settings, from the environment. No Ledgerline code collects through Stripe yet; payments are
recorded against invoices (``billing.services.payments``) without it."""

from config.env import env_bool, env_str

STRIPE_LIVE_MODE = env_bool("STRIPE_LIVE_MODE", False)
STRIPE_LIVE_SECRET_KEY = env_str("STRIPE_LIVE_SECRET_KEY", "")
STRIPE_TEST_SECRET_KEY = env_str("STRIPE_TEST_SECRET_KEY", "")
STRIPE_LIVE_PUBLIC_KEY = env_str("STRIPE_LIVE_PUBLIC_KEY", "")
STRIPE_TEST_PUBLIC_KEY = env_str("STRIPE_TEST_PUBLIC_KEY", "")
DJSTRIPE_WEBHOOK_SECRET = env_str("DJSTRIPE_WEBHOOK_SECRET", "")
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"
