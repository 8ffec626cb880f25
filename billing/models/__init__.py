from billing.models.catalogue import Plan, PlanCharge, PlanVersion, PriceTier
from billing.models.documents import Document, EmailDelivery
from billing.models.invoice import BillingRun, BillingRunItem, CreditNote, CreditNoteLine, Invoice, InvoiceLine
from billing.models.subscription import Subscription

__all__ = [
    "BillingRun",
    "BillingRunItem",
    "CreditNote",
    "CreditNoteLine",
    "Document",
    "EmailDelivery",
    "Invoice",
    "InvoiceLine",
    "Plan",
    "PlanCharge",
    "PlanVersion",
    "PriceTier",
    "Subscription",
]
