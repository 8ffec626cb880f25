"""The portal's sign-in (per login and client address) and password reset (per login) stop answering after
too many attempts, whatever the spelling of the address and whichever other clients share the network address."""

import pytest
from axes.models import AccessAttempt
from django.core import mail
from django.test import override_settings

from accounts.models import AccountUser
from tests.accounts.factories import AccountUserFactory

pytestmark = pytest.mark.django_db
EMAIL = "owner@northwind.example"


@pytest.fixture
def owner():
    return AccountUserFactory(email=EMAIL, role=AccountUser.Role.OWNER, password="right-password-1")


@override_settings(PORTAL_LOGIN_ATTEMPTS=3)
def test_failed_sign_ins_for_an_address_are_limited_then_answered_429(owner, client):
    for _ in range(3):
        response = client.post("/portal/login/", {"username": EMAIL, "password": "wrong"})
        assert response.status_code == 200
        assert "Please enter a correct e-mail address and password" in response.content.decode()

    # The fourth attempt is refused before the password is even checked, the right one included.
    response = client.post("/portal/login/", {"username": EMAIL, "password": "right-password-1"})
    assert response.status_code == 429
    assert int(response["Retry-After"]) == 900
    assert "too many failed sign-in attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session


@override_settings(PORTAL_LOGIN_ATTEMPTS=3)
def test_a_correct_sign_in_below_the_limit_works(owner, client):
    for _ in range(2):
        client.post("/portal/login/", {"username": EMAIL, "password": "wrong"})
    response = client.post("/portal/login/", {"username": EMAIL.upper(), "password": "right-password-1"})
    assert response.status_code == 302
    assert response["Location"] == "/portal/"


@override_settings(PORTAL_RESET_REQUESTS=2)
def test_password_reset_requests_for_an_address_are_limited(owner, client):
    for _ in range(2):
        response = client.post("/portal/password-reset/", {"email": EMAIL})
        assert response.status_code == 302
    assert len(mail.outbox) == 2

    response = client.post("/portal/password-reset/", {"email": EMAIL})
    assert response.status_code == 429
    assert response["Retry-After"] == "900"
    assert len(mail.outbox) == 2  # no third e-mail


def test_failed_sign_ins_with_unknown_addresses_do_not_lock_out_other_people(owner, client):
    # Behind a proxy that is not configured as trusted, every client comes from the same address.
    for n in range(50):
        response = client.post("/portal/login/", {"username": f"nobody{n}@example.com", "password": "guess"})
        assert response.status_code == 200

    response = client.post("/portal/login/", {"username": EMAIL, "password": "right-password-1"})
    assert response.status_code == 302
    assert response["Location"] == "/portal/"


@override_settings(PORTAL_LOGIN_ATTEMPTS=3, LEDGERLINE_TRUSTED_PROXY_COUNT=1)
def test_behind_the_proxy_a_guessing_client_is_locked_out_alone(owner, client):
    guesser = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "203.0.113.9"}
    for _ in range(3):
        client.post("/portal/login/", {"username": EMAIL, "password": "wrong"}, **guesser)
    response = client.post("/portal/login/", {"username": EMAIL, "password": "right-password-1"}, **guesser)
    assert response.status_code == 429

    owner_client = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "198.51.100.7"}
    response = client.post("/portal/login/", {"username": EMAIL, "password": "right-password-1"}, **owner_client)
    assert response.status_code == 302
    assert response["Location"] == "/portal/"


LOOK_ALIKE = "owner@northw\u0131nd.example"  # a dotless ı, which PostgreSQL's UPPER() turns into I
FULL_WIDTH = "\uff4f\uff57\uff4e\uff45\uff52@northwind.example"  # ｏｗｎｅｒ: the same letters, folded by NFKC


def test_a_look_alike_of_an_address_does_not_sign_in(owner, client):
    response = client.post("/portal/login/", {"username": LOOK_ALIKE, "password": "right-password-1"})
    assert response.status_code == 200
    assert "Please enter a correct e-mail address and password" in response.content.decode()
    assert "_auth_user_id" not in client.session


@override_settings(PORTAL_LOGIN_ATTEMPTS=3)
def test_guesses_under_every_spelling_of_an_address_count_against_its_login(owner, client):
    for spelling in (EMAIL, EMAIL.upper(), FULL_WIDTH):
        response = client.post("/portal/login/", {"username": spelling, "password": "wrong"})
        assert response.status_code == 200

    for spelling in (EMAIL, EMAIL.title(), FULL_WIDTH):
        response = client.post("/portal/login/", {"username": spelling, "password": "right-password-1"})
        assert response.status_code == 429
        assert response["Retry-After"] == "900"
    response = client.post("/portal/login/", {"username": LOOK_ALIKE, "password": "right-password-1"})
    assert response.status_code == 200  # no login: a wrong address, never a way around the lock
    assert "_auth_user_id" not in client.session


def test_the_full_width_spelling_of_an_address_signs_in(owner, client):
    response = client.post("/portal/login/", {"username": FULL_WIDTH, "password": "right-password-1"})
    assert response.status_code == 302
    assert response["Location"] == "/portal/"


def test_a_text_that_grows_when_folded_is_counted_like_any_other(client):
    response = client.post("/portal/login/", {"username": "\ufdfa" * 150, "password": "wrong"})
    assert response.status_code == 200


def test_password_reset_finds_the_login_as_signing_in_does(owner, client):
    for spelling in (EMAIL.upper(), EMAIL.title(), LOOK_ALIKE):
        assert client.post("/portal/password-reset/", {"email": spelling}).status_code == 302
    assert [message.to for message in mail.outbox] == [[EMAIL], [EMAIL]]


def test_reset_requests_for_unknown_addresses_do_not_block_other_people(owner, client):
    # Behind a proxy that is not configured as trusted, every client comes from the same address.
    for n in range(30):
        assert client.post("/portal/password-reset/", {"email": f"nobody{n}@example.com"}).status_code == 302
    assert mail.outbox == []

    response = client.post("/portal/password-reset/", {"email": EMAIL})
    assert response.status_code == 302
    assert [message.to for message in mail.outbox] == [[EMAIL]]


@override_settings(PORTAL_RESET_REQUESTS=2, LEDGERLINE_TRUSTED_PROXY_COUNT=1)
def test_reset_requests_for_a_login_are_limited_from_whichever_client_they_come(owner, client):
    for n in (1, 2, 3):
        forwarded = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": f"203.0.113.{n}"}
        response = client.post("/portal/password-reset/", {"email": EMAIL}, **forwarded)
    assert response.status_code == 429
    assert response["Retry-After"] == "900"
    assert "Too many password resets were asked for this address." in response.content.decode()
    assert len(mail.outbox) == 2


@override_settings(PORTAL_LOGIN_ATTEMPTS=3)
def test_a_login_with_a_generated_username_is_counted_under_it(client):
    member = AccountUserFactory(email="o'brien@northwind.example", password="right-password-1")
    assert member.user.username.startswith("user_")
    for spelling in ("o'brien@northwind.example", "O'Brien@Northwind.example", "O'BRIEN@NORTHWIND.EXAMPLE"):
        client.post("/portal/login/", {"username": spelling, "password": "wrong"})
    response = client.post("/portal/login/", {"username": "o'brien@northwind.example", "password": "right-password-1"})
    assert response.status_code == 429
    attempt = AccessAttempt.objects.get()
    assert (attempt.username, attempt.failures_since_start) == (member.user.username, 3)
