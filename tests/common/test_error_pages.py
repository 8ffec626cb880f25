"""With DEBUG off, API paths (/v1/...) answer errors raised outside the REST framework (no such path, a host
name not served, a server error) in the API's error shape; other paths keep Django's HTML pages."""

import pytest
from django.test import Client, override_settings

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    return Client(raise_request_exception=False)


@override_settings(DEBUG=False)
@pytest.mark.parametrize("method, path", [("get", "/v1/nothing"), ("post", "/v1/events/"), ("get", "/v1/")])
def test_an_unknown_api_path_is_a_json_404(client, method, path):
    response = getattr(client, method)(path)
    assert (response.status_code, response["Content-Type"]) == (404, "application/json")
    assert response.json() == {
        "error": {"code": "not_found", "field": None, "message": "No such endpoint; see /api/docs/ for the API."}
    }


@override_settings(DEBUG=False)
def test_an_api_path_on_a_host_not_served_is_a_json_400(client):
    response = client.post("/v1/events", b"{}", content_type="application/json", HTTP_HOST="elsewhere.example")
    assert (response.status_code, response["Content-Type"]) == (400, "application/json")
    assert response.json() == {
        "error": {"code": "disallowed_host", "field": None, "message": "This host name is not served here."}
    }


@override_settings(DEBUG=False)
@pytest.mark.urls("tests.common.error_urls")
def test_a_server_error_on_an_api_path_is_a_json_500(client):
    response = client.get("/v1/test/failing")
    assert (response.status_code, response["Content-Type"]) == (500, "application/json")
    assert response.json() == {
        "error": {
            "code": "server_error",
            "field": None,
            "message": "The server failed to answer this request; it may be retried.",
        }
    }


@override_settings(DEBUG=False)
@pytest.mark.urls("tests.common.error_urls")
def test_pages_keep_the_html_error_pages(client):
    missing = client.get("/nothing")
    wrong_host = client.get("/", HTTP_HOST="elsewhere.example")
    failed = client.get("/test/failing")
    assert [(r.status_code, r["Content-Type"]) for r in (missing, wrong_host, failed)] == [
        (404, "text/html; charset=utf-8"),
        (400, "text/html; charset=utf-8"),
        (500, "text/html; charset=utf-8"),
    ]
    assert b"<h1>Not Found</h1>" in missing.content
