"""Webhook services: endpoints and their secrets (``endpoints``), the fan-out and the deliveries (``delivery``)."""
