"""Admin: forecast."""
