"""Tenants (the usage sources of an account) and master partners (shared across its tenants)."""
