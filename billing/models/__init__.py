from billing.models.catalogue import Plan, PlanCharge, PlanVersion, PriceTier
from billing.models.contract import Contract, ContractDiscountTier, ContractDocument, PrepaidCredit
from billing.models.documents import Document, EmailDelivery
from billing.models.invoice import BillingRun, BillingRunItem, CreditNote, CreditNoteLine, Invoice, InvoiceLine
from billing.models.journal import GlAccount
from billing.models.payment import Collection, Payment, PaymentAllocation, PaymentProfile, Refund
from billing.models.reconciliation import BankStatementLine, ReconciliationIssue
from billing.models.subscription import PlanChangeRequest, Subscription

__all__ = [
    "BankStatementLine",
    "Contract",
    "ContractDiscountTier",
    "ContractDocument",
    "PlanChangeRequest",
    "PrepaidCredit",
    "Collection",
    "Payment",
    "PaymentAllocation",
    "PaymentProfile",
    "ReconciliationIssue",
    "Refund",
    "BillingRun",
    "BillingRunItem",
    "CreditNote",
    "CreditNoteLine",
    "Document",
    "EmailDelivery",
    "GlAccount",
    "Invoice",
    "InvoiceLine",
    "Plan",
    "PlanCharge",
    "PlanVersion",
    "PriceTier",
    "Subscription",
]
