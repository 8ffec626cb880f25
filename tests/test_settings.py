"""Configuration: production refuses to start without a secret, and passes Django's deployment checks."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

ROOT = Path(__file__).resolve().parents[1]


def manage(*args, **env):
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL"))}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )


def test_production_settings_need_a_secret_key():
    result = manage("check", DJANGO_SETTINGS_MODULE="config.settings.production")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


PRODUCTION = {
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    "DJANGO_SECRET_KEY": "x7!kq2m-production-like-secret-key-for-the-check-9f3b1c0d2e4a6b8c",
    "DJANGO_ALLOWED_HOSTS": "billing.example.com",
}
SELLER = {
    "BILLING_SELLER_NAME": "Example Cloud Ltd",
    "BILLING_SELLER_ADDRESS": "2 Main Street|Cork T12 AB34|Ireland",
    "BILLING_SELLER_TAX_ID": "IE1234567T",
    "BILLING_SELLER_EMAIL": "billing@example.com",
    "BILLING_SELLER_PAYMENT_INSTRUCTIONS": "IBAN IE29 AIBK 9311 5212 3456 78",
    "LEDGERLINE_BASE_URL": "https://billing.example.com",
}


def test_production_refuses_the_demo_seller_and_local_links():
    result = manage("check", "--deploy", **PRODUCTION)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "(billing.E001) Invoices would be issued by the demo seller" in output
    assert "(billing.E002) LEDGERLINE_BASE_URL ('http://127.0.0.1:8000') is not a public address" in output


def test_production_settings_pass_the_deployment_checks():
    result = manage("check", "--deploy", **PRODUCTION, **SELLER)
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout + result.stderr
    # The one warning left is HSTS preloading, a decision for the domain owner (docs/operations.md).
    assert re.findall(r"\((\w+\.\w+)\)", output) == ["security.W021"], output
    assert "ERRORS" not in output


@pytest.mark.django_db
def test_models_and_migrations_agree():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


@pytest.mark.parametrize(
    ("host", "port", "base_url"),
    [("127.0.0.1", "8000", "http://127.0.0.1:8000"), ("0.0.0.0", "9000", "http://127.0.0.1:9000")],
)
def test_make_demo_gives_the_demo_the_address_it_serves_on_for_its_links(host, port, base_url):
    plan = subprocess.run(
        ["make", "-n", "demo", f"HOST={host}", f"PORT={port}"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert plan.returncode == 0, plan.stderr
    assert f"LEDGERLINE_BASE_URL={base_url} .venv/bin/python manage.py load_demo" in plan.stdout
    assert f"LEDGERLINE_BASE_URL={base_url} HOST={host} PORT={port} scripts/demo-serve.sh" in plan.stdout


def test_font_subsetting_notices_stay_out_of_the_log_while_pdf_warnings_show():
    import logging

    assert not logging.getLogger("fontTools.ttLib.tables._h_e_a_d").isEnabledFor(logging.WARNING)
    assert logging.getLogger("fontTools.subset").isEnabledFor(logging.ERROR)
    assert logging.getLogger("weasyprint").isEnabledFor(logging.WARNING)


def test_the_demo_settings_answer_api_errors_as_json_and_show_no_debug_page(tmp_path):
    probe = (
        "from django.conf import settings; from django.test import Client; c = Client(HTTP_HOST='127.0.0.1');"
        "r = c.get('/v1/nope'); h = Client(HTTP_HOST='evil.example').get('/v1/events');"
        "s = c.get('/static/portal/portal.css');"
        "print(settings.DEBUG, r.status_code, r.content.decode(), h.status_code, h.content.decode(), s.status_code)"
    )
    result = manage(
        "shell", "-c", probe, DJANGO_SETTINGS_MODULE="config.settings.local", DATABASE_URL=f"sqlite:///{tmp_path}/d.db"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == (
        'False 404 {"error":{"code":"not_found","field":null,"message":"No such endpoint; see /api/docs/ for the API."'
        "}} "
        '400 {"error":{"code":"disallowed_host","field":null,"message":"This host name is not served here."}} 200'
    )
