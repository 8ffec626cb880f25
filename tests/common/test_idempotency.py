"""Idempotency-Key: whatever goes wrong after a key is claimed, the key is given back, so a retry runs again
instead of waiting out a key stuck "in progress"."""

import pytest
from rest_framework.test import APIClient

from accounts.services import api_key_create
from common.models import IdempotencyRecord
from tests.accounts.factories import AccountFactory
from tests.common import idempotency_urls

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.common.idempotency_urls")]


@pytest.fixture
def client():
    idempotency_urls.calls.clear()
    _, secret = api_key_create(name="k", scopes=["ingest"], account=AccountFactory())
    c = APIClient(raise_request_exception=False)
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return c


def test_an_outcome_that_cannot_be_stored_is_answered_and_the_key_given_back(client):
    first = client.post("/v1/test/unstorable", {}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = client.post("/v1/test/unstorable", {}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert (first.status_code, first.json()) == (400, {"error": {"code": "odd", "field": None, "message": "a\x00b"}})
    assert (again.status_code, "Idempotent-Replayed" in again) == (400, False)
    assert idempotency_urls.calls == ["unstorable", "unstorable"]
    assert IdempotencyRecord.objects.count() == 0


def test_a_failing_request_gives_its_key_back(client):
    first = client.post("/v1/test/failing", {}, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    again = client.post("/v1/test/failing", {}, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    assert first.status_code == again.status_code == 500
    assert idempotency_urls.calls == ["failing", "failing"]
    assert IdempotencyRecord.objects.count() == 0
