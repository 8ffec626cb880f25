"""How an invoice's balance and payment status read on portal pages, the same way as on its PDF
(``billing.presentation``): ``{% invoice_balance invoice as balance %}``, ``{% payment_status invoice as status %}``."""

from django import template

from billing.models import Invoice
from billing.presentation import InvoiceBalance, invoice_payment_status
from billing.presentation import invoice_balance as balance_of
from common import clock

register = template.Library()
NOW_KEY = "portal_payments_now"


@register.simple_tag
def invoice_balance(invoice: Invoice) -> InvoiceBalance:
    """What paid the invoice: the credit balance applied and each payment (one query for its allocations)."""
    return balance_of(invoice)


@register.simple_tag(takes_context=True)
def payment_status(context, invoice: Invoice) -> dict[str, str]:
    """``{% payment_status invoice as status %}`` → ``{"label": "Partly paid", "css": "finalized"}``: Paid,
    Partly paid, Open, Overdue, Void, Written off. The clock is read once per page, not once per invoice."""
    now = context.render_context.get(NOW_KEY)
    if now is None:
        now = context.render_context[NOW_KEY] = clock.now()
    label, css = invoice_payment_status(invoice, now)
    return {"label": label, "css": css}
