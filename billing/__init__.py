"""Billing: the metric catalogue, versioned plans and their prices, subscriptions (and, as the
product grows, usage rating, invoices and payments)."""
