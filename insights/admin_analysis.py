"""Admin: analysis."""
