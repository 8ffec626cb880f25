"""Insights: what an account's usage costs and what it could cost instead. Cost analysis per tenant, master
partner, metric and premium feature over any months, efficiency metrics (allowances used, idle tenants and
partners, features paid for and unused, overage share), forecasts of the running month and the next three, and
recommendations found by re-rating the account's real usage under every plan it could be on with the rating
engine that writes the invoices. Its own app because it reads across usage and billing for analysis only: it
writes no invoice, and acts on a recommendation only through billing's plan-change request."""
