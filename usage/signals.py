"""What metering tells the apps above it, without importing them."""

from django.dispatch import Signal

# Sent in the transaction that stored new usage, with ``account`` and ``now``. Billing's plan-limit
# check receives it (connected in ``billing.apps``).
usage_written = Signal()
