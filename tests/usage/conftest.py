import datetime as dt

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.services import api_key_create
from billing.services.subscriptions import subscription_create
from tests.accounts.factories import AccountFactory
from tests.tenants.factories import MasterPartnerFactory, TenantFactory

UTC = dt.UTC


@pytest.fixture(autouse=True)
def _clear_rate_limits():
    cache.clear()


@pytest.fixture
def business(plan):
    """An account on the Business messaging plan (trial long over) with a tenant, a partner and a key."""
    account = AccountFactory(name="Northwind")
    subscription_create(
        account=account, plan_version=plan("messaging-business"), started_at=dt.datetime(2026, 1, 1, tzinfo=UTC)
    )
    tenant = TenantFactory(
        account=account, public_id="ten_northwind_eu", activated_at=dt.datetime(2026, 1, 1, tzinfo=UTC)
    )
    partner = MasterPartnerFactory(
        account=account,
        public_id="prt_supplier_001",
        name="Acme Supplies",
        activated_at=dt.datetime(2026, 1, 1, tzinfo=UTC),
    )
    _, secret = api_key_create(name="ingest", scopes=["ingest", "read"], account=account)
    return {"account": account, "tenant": tenant, "partner": partner, "key": secret}


@pytest.fixture
def api():
    def client(key: str | None) -> APIClient:
        c = APIClient()
        if key:
            c.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        return c

    return client
