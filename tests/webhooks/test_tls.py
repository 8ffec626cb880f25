"""Over https the request goes to the vetted address while TLS checks the certificate against the URL's host name
(SNI and hostname verification), as a browser would: a certificate for another name is a failed attempt."""

import shutil
import ssl
import subprocess

import pytest
from pytest_httpserver import HTTPServer
from standardwebhooks import Webhook

from common.outbox import outbox_emit
from tests.webhooks.conftest import NOW
from tests.webhooks.factories import endpoint_for
from webhooks import transport
from webhooks.models import WebhookDelivery
from webhooks.services.delivery import webhooks_run

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate"),
]


@pytest.fixture
def tls_server(tmp_path, monkeypatch):
    """An https receiver on 127.0.0.1 with a self-signed certificate for "localhost", trusted by this process."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-days", "2", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the default trust store of new TLS contexts
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.start()
    transport.pools_clear()
    yield server
    transport.pools_clear()
    server.stop()


def test_https_verifies_the_certificate_against_the_urls_host(account, tls_server):
    tls_server.expect_request("/hooks", method="POST").respond_with_data("ok")
    _, secret = endpoint_for(account, f"https://localhost:{tls_server.port}/hooks")
    outbox_emit(type="billing.invoice_generated", account_id=account.pk, data={}, now=NOW, dedup_key="k:1")

    webhooks_run()

    ((request, _),) = tls_server.log
    assert request.headers["Host"] == f"localhost:{tls_server.port}"
    assert Webhook(secret).verify(request.get_data(), dict(request.headers))["type"] == "billing.invoice_generated"
    assert WebhookDelivery.objects.get().status == "succeeded"


def test_a_certificate_for_another_name_is_a_failed_attempt(account, tls_server):
    tls_server.expect_request("/hooks", method="POST").respond_with_data("ok")
    endpoint_for(account, f"https://127.0.0.1:{tls_server.port}/hooks")  # the certificate names localhost only
    outbox_emit(type="billing.invoice_generated", account_id=account.pk, data={}, now=NOW, dedup_key="k:1")

    webhooks_run()

    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.last_status_code) == ("pending", None)
    assert "certificate" in delivery.last_error.lower() or "ssl" in delivery.last_error.lower()
    assert tls_server.log == []
