"""Webhooks: per-account endpoints that receive the product's events, signed per the Standard Webhooks
specification and delivered from the outbox by Celery with retries. Its own app because endpoints, their
secrets, deliveries and attempts are a capability of their own with their own worker, fed by every app's
events; it sits above billing (it reads the running month's usage for the hourly report and e-mails through
billing's queue) and below the portal."""
