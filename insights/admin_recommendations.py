"""Admin: recommendations."""
