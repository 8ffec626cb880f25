import datetime as dt
from decimal import Decimal

import pytest
from django.conf import settings
from django.test.utils import setup_databases, teardown_databases
from rest_framework.test import APIClient

from accounts.services import api_key_create
from billing.services.subscriptions import subscription_create
from tests.accounts.factories import AccountFactory
from tests.tenants.factories import MasterPartnerFactory, TenantFactory

if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
    raise pytest.UsageError(
        "tests/sqlite test the demo's SQLite database: run them with --ds=config.settings.test_sqlite (make test does)."
    )

UTC = dt.UTC


@pytest.fixture(scope="session")
def django_db_setup(request, django_test_environment, django_db_blocker):
    """The standard test database, created and migrated for the session (so the guard triggers come from the
    migrations), instead of the PostgreSQL template copy the rest of the suite uses (tests/testdb.py)."""
    with django_db_blocker.unblock():
        databases = setup_databases(verbosity=request.config.option.verbose, interactive=False)
    yield
    with django_db_blocker.unblock():
        teardown_databases(databases, verbosity=request.config.option.verbose)


JAN_1 = dt.datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def northwind(plan):
    """Northwind on the Business messaging plan since January (trial over): tenants ``ten_nw_1`` ...
    ``ten_nw_<tenants>``, the partner ``prt_supplier_001`` and an ingest+read API key (``client``)."""

    def build(*, tenants: int = 1, tax_rate: str = "0") -> dict:
        account = AccountFactory(
            name="Northwind", billing_emails=["ap@northwind.example"], tax_country="GB", tax_rate=Decimal(tax_rate)
        )
        subscription_create(account=account, plan_version=plan("messaging-business"), started_at=JAN_1)
        for n in range(1, tenants + 1):
            TenantFactory(account=account, public_id=f"ten_nw_{n}", activated_at=JAN_1)
        MasterPartnerFactory(account=account, public_id="prt_supplier_001", activated_at=JAN_1)
        _, secret = api_key_create(name="ingest", scopes=["ingest", "read"], account=account)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        return {"account": account, "key": secret, "client": client}

    return build
