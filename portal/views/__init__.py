"""Portal views, thin: ``billing`` (dashboard, invoices, credit notes), ``settings`` (budgets, API keys,
users) and ``auth`` (login, logout, password reset)."""
