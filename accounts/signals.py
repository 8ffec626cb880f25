"""Signals of the accounts app, for the apps above it (which connect to them at start-up)."""

from django.dispatch import Signal

# Sent inside the transaction of every status change of an account, after its history row is written, with
# ``account`` (its new ``status`` set), ``previous`` (the old status), ``reason``, ``actor`` (None: the system)
# and ``cause`` (a dict the caller fills, e.g. ``{"invoice": <Invoice>}``). Billing records it in the outbox.
account_status_changed = Signal()
