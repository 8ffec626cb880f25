"""Staff sign-ins to the admin are limited per username and client address (django-axes)."""

import datetime as dt

import pytest
import time_machine
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client, override_settings

from accounts.permissions import BILLING_STAFF, FINANCE_ADMIN
from tests.accounts.factories import StaffUserFactory

pytestmark = pytest.mark.django_db
PASSWORD = "staff-pass-123"
NOW = dt.datetime(2026, 11, 10, 9, tzinfo=dt.UTC)
WRONG_PASSWORD_TEXT = "Please enter the correct username and password for a staff account."
LOCKED_TEXT = "There were too many failed sign-in attempts for this username from your address."


@pytest.fixture
def finance_admin():
    return StaffUserFactory(username="fiona", groups=[Group.objects.get(name=FINANCE_ADMIN)])


@pytest.fixture
def superuser():
    return get_user_model().objects.create_superuser("root", "root@ledgerline.example", PASSWORD)


def admin_sign_in(client, username, password, **headers):
    return client.post("/admin/login/", {"username": username, "password": password, "next": "/admin/"}, **headers)


@pytest.mark.parametrize("staff", ["finance_admin", "superuser"])
@override_settings(ADMIN_LOGIN_ATTEMPTS=5)
def test_wrong_passwords_lock_the_admin_sign_in_then_even_the_right_one_is_429(request, client, staff):
    user = request.getfixturevalue(staff)
    for _ in range(5):
        response = admin_sign_in(client, user.username, "wrong")
        assert response.status_code == 200
        assert WRONG_PASSWORD_TEXT in response.content.decode()

    response = admin_sign_in(client, user.username, PASSWORD)
    assert response.status_code == 429
    assert response["Retry-After"] == "900"
    page = response.content.decode()
    assert LOCKED_TEXT in page
    assert "Please wait 15 minutes and try again." in page
    assert "_auth_user_id" not in client.session


@override_settings(ADMIN_LOGIN_ATTEMPTS=5, LOGIN_COOLOFF_SECONDS=900)
def test_the_lock_lifts_after_the_cool_off_and_retry_after_counts_down(client, finance_admin):
    with time_machine.travel(NOW, tick=False) as clock:
        for _ in range(5):
            admin_sign_in(client, "fiona", "wrong")
        clock.shift(dt.timedelta(minutes=10))
        response = admin_sign_in(client, "fiona", PASSWORD)
        assert response.status_code == 429
        # Refused attempts do not extend the lock, which holds through the 300th second.
        assert response["Retry-After"] == "301"
        assert "Please wait 5 minutes and try again." in response.content.decode()

        clock.shift(dt.timedelta(seconds=301))
        response = admin_sign_in(client, "fiona", PASSWORD)
        assert response.status_code == 302
        assert response["Location"] == "/admin/"


@override_settings(ADMIN_LOGIN_ATTEMPTS=5)
def test_a_successful_sign_in_starts_the_count_again(client, finance_admin):
    for _ in range(4):
        admin_sign_in(client, "fiona", "wrong")
    assert admin_sign_in(client, "fiona", PASSWORD).status_code == 302
    client.logout()
    for _ in range(4):
        assert admin_sign_in(client, "fiona", "wrong").status_code == 200
    assert admin_sign_in(client, "fiona", PASSWORD).status_code == 302


@override_settings(ADMIN_LOGIN_ATTEMPTS=5, LEDGERLINE_TRUSTED_PROXY_COUNT=1)
def test_behind_the_proxy_one_clients_failures_do_not_lock_out_another(client, finance_admin):
    attacker = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "203.0.113.9"}
    for _ in range(5):
        admin_sign_in(client, "fiona", "wrong", **attacker)
    assert admin_sign_in(client, "fiona", PASSWORD, **attacker).status_code == 429
    # Writing another address in front of the proxy's entry changes nothing.
    spoofed = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "198.51.100.7, 203.0.113.9"}
    assert admin_sign_in(client, "fiona", PASSWORD, **spoofed).status_code == 429

    fiona = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "198.51.100.7"}
    response = admin_sign_in(client, "fiona", PASSWORD, **fiona)
    assert response.status_code == 302
    assert response["Location"] == "/admin/"


@override_settings(ADMIN_LOGIN_ATTEMPTS=5, PORTAL_LOGIN_ATTEMPTS=10)
def test_wrong_passwords_for_a_staff_login_at_the_portal_count_at_the_admin_too(client, finance_admin):
    for _ in range(5):
        response = client.post("/portal/login/", {"username": "fiona", "password": "wrong"})
        assert response.status_code == 200  # the portal's own limit is higher
    assert admin_sign_in(client, "fiona", PASSWORD).status_code == 429


@override_settings(ADMIN_LOGIN_ATTEMPTS=5)
def test_a_finance_admin_sees_the_lock_and_lifts_it_by_deleting_the_attempt(client, finance_admin):
    StaffUserFactory(username="bruno")
    for _ in range(5):
        admin_sign_in(Client(), "bruno", "wrong")
    assert admin_sign_in(Client(), "bruno", PASSWORD).status_code == 429
    attempt = AccessAttempt.objects.get()
    assert (attempt.username, attempt.ip_address, attempt.failures_since_start) == ("bruno", "127.0.0.1", 5)

    client.force_login(finance_admin)
    page = client.get("/admin/axes/accessattempt/")
    assert page.status_code == 200
    assert "bruno" in page.content.decode()
    response = client.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not AccessAttempt.objects.exists()

    assert admin_sign_in(Client(), "bruno", PASSWORD).status_code == 302


def test_billing_staff_do_not_see_sign_in_attempts(client):
    client.force_login(StaffUserFactory(groups=[Group.objects.get(name=BILLING_STAFF)]))
    assert client.get("/admin/axes/accessattempt/").status_code == 403
