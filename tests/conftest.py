import datetime as dt

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.selectors import api_key_cache_clear
from accounts.services import api_key_create
from billing.models import PlanVersion
from billing.services.catalogue_loader import catalogue_load
from billing.services.subscriptions import subscription_create
from tenants.selectors import tenant_cache_clear
from tests import testdb
from tests.accounts.factories import AccountFactory
from tests.tenants.factories import MasterPartnerFactory, TenantFactory
from usage import catalogue_cache

pytest_plugins = ["tests.browser_fixtures"]


@pytest.fixture(scope="session")
def django_db_setup(
    request, django_test_environment, django_db_blocker, django_db_createdb, django_db_modify_db_settings
):
    """Each session works on its own copy of a migrated template database (tests/testdb.py)."""
    from pytest_django.fixtures import _get_databases_for_setup

    aliases, serialized_aliases = _get_databases_for_setup(request.session.items)
    if not aliases:
        yield
        return
    with django_db_blocker.unblock():
        original_name = testdb.session_database_create(
            run_id=getattr(request.config, "workerinput", {}).get("testrunuid"),
            force_rebuild=django_db_createdb,
            serialize=bool(serialized_aliases),
            verbosity=request.config.option.verbose,
        )
    yield
    with django_db_blocker.unblock():
        testdb.session_database_drop(original_name=original_name)


@pytest.fixture(autouse=True)
def _fresh_metric_cache():
    """Each test's database gets its own metric rows; the ingest path's per-process cache must not
    carry ids over from another test; nor may the shared cache."""
    catalogue_cache.clear()
    api_key_cache_clear()
    tenant_cache_clear()
    cache.clear()  # e.g. the portal's sign-in attempt counters (portal.throttle)


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    """Rendered PDFs go to the test's own folder, not the project's media/."""
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def catalogue(db):
    """The standard catalogue, loaded the way operators load it."""
    catalogue_load()


@pytest.fixture
def plan(catalogue):
    """Latest version of a catalogue plan by code: ``plan("messaging-business")``."""

    def get(code: str) -> PlanVersion:
        return PlanVersion.objects.filter(plan__code=code).order_by("-version").first()

    return get


@pytest.fixture
def business(plan):
    """An account on the Business messaging plan (trial long over) with a tenant, a partner and a key."""
    account = AccountFactory(name="Northwind")
    subscription_create(
        account=account, plan_version=plan("messaging-business"), started_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    )
    tenant = TenantFactory(
        account=account, public_id="ten_northwind_eu", activated_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    )
    partner = MasterPartnerFactory(
        account=account,
        public_id="prt_supplier_001",
        name="Acme Supplies",
        activated_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
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
