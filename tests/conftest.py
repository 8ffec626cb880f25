import pytest
from django.core.cache import cache

from accounts.selectors import api_key_cache_clear
from billing.models import PlanVersion
from billing.services.catalogue_loader import catalogue_load
from tenants.selectors import tenant_cache_clear
from usage import catalogue_cache


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
