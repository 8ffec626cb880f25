"""Billing in the admin: the catalogue, subscriptions, invoices with their PDFs and e-mails, credit notes and
billing runs. Each module registers its models."""

from billing.admin import catalogue, collections, invoices, payments, reconciliation, subscriptions  # noqa: F401
