"""Deployment checks (``manage.py check --deploy``): invoices are legal documents, so production must not
issue them with the demo's seller or with links to a local address. The seller is copied onto every
invoice at finalization; a wrong one cannot be fixed by rendering the PDF again."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, register

DEMO_SELLER_NAME = "Ledgerline Demo Ltd"
DEMO_TAX_ID = "IE0000000XX"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "0.0.0.0", "::1", ""}


@register(deploy=True)
def seller_and_links_configured(app_configs, **kwargs) -> list[Error]:
    errors = []
    seller = getattr(settings, "BILLING_SELLER", {})
    instructions = " ".join(seller.get("payment_instructions", []))
    if seller.get("name") == DEMO_SELLER_NAME or seller.get("tax_id") == DEMO_TAX_ID or "DEMO" in instructions:
        errors.append(
            Error(
                "Invoices would be issued by the demo seller (name, tax id or bank details).",
                hint="Set BILLING_SELLER_NAME, BILLING_SELLER_ADDRESS, BILLING_SELLER_TAX_ID, BILLING_SELLER_EMAIL "
                "and BILLING_SELLER_PAYMENT_INSTRUCTIONS (lines separated by '|').",
                id="billing.E001",
            )
        )
    base = urlsplit(getattr(settings, "LEDGERLINE_BASE_URL", ""))
    if base.scheme not in ("http", "https") or (base.hostname or "") in LOCAL_HOSTS:
        errors.append(
            Error(
                f"LEDGERLINE_BASE_URL ({settings.LEDGERLINE_BASE_URL!r}) is not a public address: the links in "
                "invoice e-mails would not reach customers.",
                hint="Set LEDGERLINE_BASE_URL to the portal's public origin, e.g. https://billing.example.com.",
                id="billing.E002",
            )
        )
    return errors
