"""The customer portal: server-rendered pages where an account's own people see their invoices, usage,
credit notes and budgets, and manage their API keys and users.

It is its own app because it is its own product surface: a separate login (portal users belong to one
account and never reach the admin), its own URL space (``/portal/``), templates and access rule (every
object outside the signed-in user's account is a 404). It holds no business rules: views call the
services and selectors of ``accounts``, ``billing`` and ``usage``.
"""
