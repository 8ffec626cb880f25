"""The demo: a deterministic book of business for ``make demo`` and the test clock that moves it through
months. Its own app because it sits above every other (it builds accounts, usage and invoices through
their services) and because production never needs it."""
