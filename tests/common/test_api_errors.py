from rest_framework import exceptions

from common.api import exception_handler
from common.errors import BillingError


def test_domain_errors_keep_their_code_field_and_status():
    response = exception_handler(BillingError("Already subscribed.", code="already_subscribed", status=409), {})
    assert response.status_code == 409
    assert response.data == {"error": {"code": "already_subscribed", "field": None, "message": "Already subscribed."}}


def test_validation_errors_name_every_field():
    exc = exceptions.ValidationError({"quantity": ["Must not be negative."], "tenant": ["Unknown tenant."]})
    response = exception_handler(exc, {})
    assert response.status_code == 400
    assert response.data["error"] == {"code": "invalid", "field": "quantity", "message": "Must not be negative."}
    assert [e["field"] for e in response.data["errors"]] == ["quantity", "tenant"]


def test_throttling_keeps_retry_after():
    response = exception_handler(exceptions.Throttled(wait=7), {})
    assert response.status_code == 429
    assert response["Retry-After"] == "7"
    assert response.data["error"]["code"] == "rate_limited"
