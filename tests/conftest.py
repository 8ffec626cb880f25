import pytest

from billing.models import PlanVersion
from billing.services.catalogue_loader import catalogue_load


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
