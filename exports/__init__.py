"""Exports: the read-only interface through which external billing and ERP systems retrieve billing events,
invoices, credit notes, payments and the monthly usage documents in bulk (cursor pages, NDJSON and CSV
streams), with every request audited. Its own app because it reads across usage, billing and accounts for
keys that belong to no account, and keeps its own audit trail of what left the system."""
