"""Billing writes. Import from the submodules: ``billing.services.catalogue``,
``billing.services.subscriptions``."""
