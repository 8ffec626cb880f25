"""The insights admin: each part registers its own models."""

from insights import admin_analysis, admin_forecast, admin_recommendations  # noqa: F401
