"""The browser fixtures live in ``tests.browser_fixtures`` (registered by the root conftest), so tests outside this
folder share the one browser."""
