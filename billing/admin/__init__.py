"""Billing in the admin: the catalogue, subscriptions, invoices with their PDFs and e-mails, credit notes and
billing runs. Each module registers its models."""

from billing.admin import (  # noqa: F401
    catalogue,
    collections,
    contracts,
    invoices,
    journal,
    payments,
    plan_changes,
    reconciliation,
    subscriptions,
)
