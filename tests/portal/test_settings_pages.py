"""Portal budgets, API keys and users pages: what owners, admins and members can do, and the errors they see."""

import datetime as dt
import re
import socket
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.cache import cache
from django.test import Client, override_settings

from accounts.models import AccountUser, ApiKey, Budget
from accounts.services import account_user_remove, api_key_create, budget_create
from billing.services.subscriptions import subscription_create
from portal.forms import ERR_BUDGET_NAME_TAKEN, ERR_EXPIRY_PAST
from tests.accounts.factories import AccountFactory, AccountUserFactory, StaffUserFactory
from tests.tenants.factories import TenantFactory

pytestmark = pytest.mark.django_db
UTC = dt.UTC
NOW = dt.datetime(2026, 11, 10, 9, tzinfo=UTC)
PASSWORD = "portal-pass-123"
ERR_THRESHOLD_RANGE = "Alert thresholds are whole percentages between 1 and 1000."


@pytest.fixture(autouse=True)
def _frozen_time():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()


@pytest.fixture
def account():
    return AccountFactory(name="Northwind")


@pytest.fixture
def owner(account):
    return AccountUserFactory(account=account, email="olivia@northwind.example", role="owner")


def signed_in(membership) -> Client:
    client = Client()
    assert client.login(username=membership.user.username, password=PASSWORD)
    return client


@pytest.fixture
def as_owner(owner):
    return signed_in(owner)


def field_errors(response, field):
    return [str(e) for e in response.context["form"].errors.get(field, [])]


# Budgets


def test_owner_creates_edits_and_deletes_a_budget(as_owner, account, owner):
    response = as_owner.post(
        "/portal/budgets/new/",
        {"name": "Monthly spend", "amount": "450.00", "period": "monthly", "alert_thresholds": "50, 75, 90, 100"},
        follow=True,
    )
    assert response.redirect_chain == [("/portal/budgets/", 302)]
    page = response.content.decode()
    assert "Budget “Monthly spend” created." in page
    assert "USD 450.00" in page
    assert "50%, 75%, 90%, 100%" in page
    budget = Budget.objects.get(account=account)
    assert (budget.name, budget.amount, budget.currency, budget.period, budget.alert_thresholds) == (
        "Monthly spend",
        Decimal("450.0000"),
        "USD",
        "monthly",
        [50, 75, 90, 100],
    )

    edit = as_owner.get(f"/portal/budgets/{budget.pk}/")
    assert 'value="450.00"' in edit.content.decode()
    response = as_owner.post(
        f"/portal/budgets/{budget.pk}/",
        {"name": "Quarterly spend", "amount": "1200", "period": "quarterly", "alert_thresholds": "80,100"},
    )
    assert response.status_code == 302
    budget.refresh_from_db()
    assert (budget.name, budget.amount, budget.period, budget.alert_thresholds, budget.is_active) == (
        "Quarterly spend",
        Decimal("1200.0000"),
        "quarterly",
        [80, 100],
        False,  # the "active" box was left unticked
    )

    confirm = as_owner.get(f"/portal/budgets/{budget.pk}/delete/")
    assert "Delete budget “Quarterly spend”?" in confirm.content.decode()
    assert Budget.objects.filter(pk=budget.pk).exists()
    as_owner.post(f"/portal/budgets/{budget.pk}/delete/")
    assert not Budget.objects.filter(pk=budget.pk).exists()
    history = Budget.history.filter(id=budget.pk).order_by("history_date")
    assert [(h.history_type, h.history_user_id, h.history_change_reason) for h in history] == [
        ("+", owner.user.pk, "created"),
        ("~", owner.user.pk, "updated"),
        ("-", owner.user.pk, "deleted"),
    ]


def test_budget_list_shows_spend_so_far_and_alerts_sent(as_owner, account, plan, django_capture_on_commit_callbacks):
    subscription_create(
        account=account, plan_version=plan("messaging-business"), started_at=dt.datetime(2026, 1, 1, tzinfo=UTC)
    )
    with django_capture_on_commit_callbacks(execute=True):
        budget_create(account=account, name="Monthly spend", amount="500.00")
    page = as_owner.get("/portal/budgets/").content.decode()
    assert "USD 299.00" in page  # the running month's base fee
    assert "(59.8%)" in page
    assert re.search(r'data-label="Alerts sent">50%</td>', page)


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"amount": "-5"}, "amount", "Ensure this value is greater than or equal to 0.01."),
        ({"amount": "12.345"}, "amount", "Ensure that there are no more than 2 decimal places."),
        ({"amount": "lots"}, "amount", "Enter a number."),
        ({"amount": "1" * 17}, "amount", "Ensure that there are no more than 16 digits in total."),
        ({"alert_thresholds": "50, lots"}, "alert_thresholds", "'lots' is not a whole percentage."),
        ({"alert_thresholds": "90, 50"}, "alert_thresholds", "Alert thresholds must be increasing and distinct."),
        ({"alert_thresholds": "0, 50"}, "alert_thresholds", ERR_THRESHOLD_RANGE),
        ({"alert_thresholds": ""}, "alert_thresholds", "This field is required."),
        ({"period": "weekly"}, "period", "Select a valid choice. weekly is not one of the available choices."),
        ({"name": "Taken"}, "name", ERR_BUDGET_NAME_TAKEN.format(name="Taken")),
    ],
)
def test_bad_budget_input_is_a_field_error(as_owner, account, data, field, message):
    budget_create(account=account, name="Taken", amount="10")
    form = {"name": "Monthly spend", "amount": "450", "period": "monthly", "alert_thresholds": "50, 100", **data}
    response = as_owner.post("/portal/budgets/new/", form)
    assert response.status_code == 400
    assert field_errors(response, field) == [message]
    page = response.content.decode()
    assert f'aria-describedby="id_{field}_error' in page
    assert Budget.objects.filter(account=account).count() == 1


def test_renaming_a_budget_to_a_name_in_use_is_a_field_error(as_owner, account):
    budget_create(account=account, name="Taken", amount="10")
    budget = budget_create(account=account, name="Other", amount="10")
    response = as_owner.post(
        f"/portal/budgets/{budget.pk}/",
        {"name": "Taken", "amount": "10", "period": "monthly", "alert_thresholds": "50", "is_active": "on"},
    )
    assert field_errors(response, "name") == [ERR_BUDGET_NAME_TAKEN.format(name="Taken")]


def test_a_member_reads_budgets_but_may_not_change_them(account):
    budget = budget_create(account=account, name="Monthly spend", amount="450")
    member = signed_in(AccountUserFactory(account=account, role="member"))
    listing = member.get("/portal/budgets/")
    assert listing.status_code == 200
    assert "Monthly spend" in listing.content.decode()
    assert "New budget" not in listing.content.decode()
    assert member.get("/portal/budgets/new/").status_code == 403
    response = member.post(
        "/portal/budgets/new/", {"name": "Mine", "amount": "1", "period": "monthly", "alert_thresholds": "50"}
    )
    assert response.status_code == 403
    assert "Not allowed for your role" in response.content.decode()
    assert member.post(f"/portal/budgets/{budget.pk}/delete/").status_code == 403
    assert list(Budget.objects.values_list("name", flat=True)) == ["Monthly spend"]


# API keys


def test_a_new_key_is_shown_once_works_and_stops_working_when_revoked(
    as_owner, account, plan, django_capture_on_commit_callbacks
):
    subscription_create(
        account=account, plan_version=plan("messaging-business"), started_at=dt.datetime(2026, 1, 1, tzinfo=UTC)
    )
    form = as_owner.get("/portal/api-keys/new/").content.decode()
    assert 'value="ingest"' in form and 'value="read"' in form and 'value="export"' not in form

    response = as_owner.post("/portal/api-keys/new/", {"name": "reporting", "scopes": ["read"]}, follow=True)
    page = response.content.decode()
    secret = re.search(r'id="new-key-secret"[^>]*value="(ll_[0-9a-f]{12}_[0-9a-f]{48})"', page).group(1)
    assert "it is shown only this once" in page
    assert f'curl http://testserver/v1/billing/usage/current -H "Authorization: Bearer {secret}"' in page
    assert response["Cache-Control"].startswith("max-age=0") and "no-store" in response["Cache-Control"]
    key = ApiKey.objects.get(account=account)
    assert (key.name, key.scopes, key.created_by, key.tenant) == ("reporting", ["read"], as_owner_user(account), None)
    again = as_owner.get("/portal/api-keys/").content.decode()
    assert secret not in again
    assert f"{key.prefix}…" in again

    usage = Client().get("/v1/billing/usage/current", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert usage.status_code == 200
    assert usage.json()["usage_to_date"]["estimated_total"] == "299.00"

    confirm = as_owner.get(f"/portal/api-keys/{key.prefix}/revoke/")
    assert "Revoke API key “reporting”?" in confirm.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        revoked = as_owner.post(f"/portal/api-keys/{key.prefix}/revoke/", follow=True)
    assert "revoked. It no longer works." in revoked.content.decode()
    assert re.search(r'data-label="Status"><span class="badge key-revoked">revoked<', revoked.content.decode())
    assert Client().get("/v1/billing/usage/current", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 401


def as_owner_user(account):
    return AccountUser.objects.get(account=account, role="owner").user


def test_an_ingest_key_shows_a_curl_example_for_events(as_owner, account):
    tenant = TenantFactory(account=account, public_id="ten_northwind_eu", name="Northwind EU")
    response = as_owner.post(
        "/portal/api-keys/new/",
        {"name": "eu ingest", "scopes": ["ingest"], "tenant": tenant.pk, "expires_on": "2027-01-31"},
        follow=True,
    )
    page = response.content.decode()
    assert "curl -X POST http://testserver/v1/events" in page
    assert '"tenant": "ten_northwind_eu"' in page
    key = ApiKey.objects.get(account=account)
    assert (key.tenant, key.scopes, key.expires_at) == (tenant, ["ingest"], dt.datetime(2027, 1, 31, tzinfo=UTC))


def test_a_tenant_pin_must_be_one_of_the_accounts_tenants(as_owner, account):
    TenantFactory(account=account, public_id="ten_northwind_eu")
    foreign = TenantFactory(account=AccountFactory(), public_id="ten_elsewhere")
    form = as_owner.get("/portal/api-keys/new/").content.decode()
    assert "ten_northwind_eu" in form and "ten_elsewhere" not in form
    response = as_owner.post("/portal/api-keys/new/", {"name": "k", "scopes": ["read"], "tenant": foreign.pk})
    assert response.status_code == 400
    assert field_errors(response, "tenant") == [
        "Select a valid choice. That choice is not one of the available choices."
    ]
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"scopes": ["export"]}, "scopes", "Select a valid choice. export is not one of the available choices."),
        ({"scopes": []}, "scopes", "Pick at least one scope."),
        ({"expires_on": "2026-11-10"}, "expires_on", ERR_EXPIRY_PAST),
        ({"expires_on": "someday"}, "expires_on", "Enter a valid date."),
        ({"name": ""}, "name", "This field is required."),
    ],
)
def test_bad_key_input_is_a_field_error(as_owner, data, field, message):
    response = as_owner.post("/portal/api-keys/new/", {"name": "k", "scopes": ["read"], **data})
    assert response.status_code == 400
    assert field_errors(response, field) == [message]
    assert not ApiKey.objects.exists()


def test_members_and_billing_users_cannot_create_or_revoke_keys(account):
    key, _ = api_key_create(name="prod", scopes=["ingest"], account=account)
    billing = signed_in(AccountUserFactory(account=account, role="billing"))
    assert billing.get("/portal/api-keys/new/").status_code == 403
    assert billing.post(f"/portal/api-keys/{key.prefix}/revoke/").status_code == 403
    key.refresh_from_db()
    assert key.revoked_at is None


# Users


def test_the_owner_invites_a_user_who_sets_a_password_and_signs_in(as_owner, account):
    response = as_owner.post("/portal/users/invite/", {"email": "Bruno@Northwind.example", "role": "admin"})
    assert response.status_code == 302
    membership = AccountUser.objects.get(user__email="bruno@northwind.example")
    assert (membership.account, membership.role, membership.user.has_usable_password()) == (account, "admin", False)
    assert membership.history.get().history_user == as_owner_user(account)

    [invitation] = mail.outbox
    assert invitation.to == ["bruno@northwind.example"]
    assert invitation.subject == "You are invited to Northwind on Ledgerline"
    assert "olivia@northwind.example invited you" in invitation.body
    assert "the link works once, for 3 days" in invitation.body
    link = re.search(r"http://testserver(/portal/reset/[^/\s]+/[^/\s]+/)", invitation.body).group(1)

    browser = Client()
    form_page = browser.get(link)
    assert form_page.status_code == 302  # Django swaps the token for a session and redirects to the form
    new_password = {"new_password1": "Sunny-Harbour-42", "new_password2": "Sunny-Harbour-42"}
    done = browser.post(form_page["Location"], new_password)
    assert done.status_code == 302
    assert done["Location"] == "/portal/reset/done/"
    login = Client().post("/portal/login/", {"username": "bruno@northwind.example", "password": "Sunny-Harbour-42"})
    assert login.status_code == 302
    assert login["Location"] == "/portal/"


def test_an_invitation_that_cannot_be_sent_adds_nobody(as_owner, account):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    smtp = {"EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": port, "EMAIL_TIMEOUT": 5}
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", **smtp):
        response = as_owner.post("/portal/users/invite/", {"email": "bruno@northwind.example", "role": "member"})
    assert response.status_code == 400
    [error] = field_errors(response, "email")
    assert error.startswith("The invitation e-mail could not be sent (")
    assert error.endswith("); nobody was added. Please try again.")
    assert not get_user_model().objects.filter(email="bruno@northwind.example").exists()


def invite(client, email, role="member"):
    return client.post("/portal/users/invite/", {"email": email, "role": role})


def flashed(client) -> list[str]:
    return [str(message) for message in client.get("/portal/users/").context["messages"]]


@pytest.mark.parametrize("holder", ["another account's user", "another account's removed user", "staff"])
def test_inviting_an_address_with_a_login_elsewhere_is_answered_as_a_new_one_and_adds_nobody(as_owner, account, holder):
    if holder == "staff":
        StaffUserFactory(username="taken", email="taken@example.com")
    else:
        taken = AccountUserFactory(account=AccountFactory(name="Contoso"), email="taken@example.com")
        if holder == "another account's removed user":
            account_user_remove(membership=taken)
    logins = get_user_model().objects.count()

    new = invite(as_owner, "new@example.com")
    new_flash = flashed(as_owner)
    response = invite(as_owner, "TAKEN@example.com")
    assert (response.status_code, response["Location"]) == (new.status_code, new["Location"]) == (302, "/portal/users/")
    assert (response.content, new.content) == (b"", b"")
    assert new_flash == ["Invitation sent to new@example.com."]
    assert flashed(as_owner) == ["Invitation sent to taken@example.com."]

    assert get_user_model().objects.count() == logins + 1  # new@example.com only
    assert not AccountUser.objects.filter(account=account, user__email="taken@example.com").exists()
    invitation, notice = mail.outbox
    assert (invitation.to, invitation.subject) == (["new@example.com"], "You are invited to Northwind on Ledgerline")
    assert (notice.to, notice.subject) == (["taken@example.com"], "Your invitation to Northwind on Ledgerline")
    assert notice.body == (
        "olivia@northwind.example tried to invite you to the Ledgerline billing portal of Northwind.\n\n"
        "This address already has a Ledgerline login, and a login belongs to one account only, so you were not "
        "added to Northwind. Nothing has changed for your login.\n\n"
        "If you want to join Northwind, ask olivia@northwind.example to invite another of your e-mail addresses. "
        "If you did not expect this invitation, you need not do anything.\n"
    )


def test_inviting_an_address_in_use_elsewhere_that_cannot_be_told_is_answered_as_a_new_one(as_owner, account):
    AccountUserFactory(account=AccountFactory(), email="taken@example.com")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    smtp = {"EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": port, "EMAIL_TIMEOUT": 5}
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", **smtp):
        errors = [field_errors(invite(as_owner, email), "email") for email in ("new@example.com", "taken@example.com")]
    assert errors[0] == errors[1]
    assert errors[0][0].startswith("The invitation e-mail could not be sent (")


def test_inviting_a_user_of_this_account_says_so(as_owner, account):
    AccountUserFactory(account=account, email="max@northwind.example")
    response = invite(as_owner, "Max@Northwind.example")
    assert response.status_code == 400
    assert field_errors(response, "email") == ["max@northwind.example is already a user of this account."]
    assert mail.outbox == []


def test_a_removed_user_is_invited_again_and_chooses_a_new_password(as_owner, account):
    member = AccountUserFactory(account=account, email="max@northwind.example", role="admin")
    assert as_owner.post(f"/portal/users/{member.pk}/remove/").status_code == 302
    assert flashed(as_owner) == ["max@northwind.example was removed from the account."]

    response = invite(as_owner, "max@northwind.example", role="billing")
    assert (response.status_code, response["Location"]) == (302, "/portal/users/")
    assert flashed(as_owner) == ["Invitation sent to max@northwind.example."]
    membership = AccountUser.objects.get(account=account, user__email="max@northwind.example")
    user = membership.user
    assert (user.pk, membership.role, user.is_active, user.has_usable_password()) == (
        member.user_id,  # the same login: its audit trail goes on
        "billing",
        True,
        False,
    )
    restored = membership.history.latest("history_id")
    assert (restored.history_user, restored.history_change_reason) == (as_owner_user(account), "invited again")

    [invitation] = mail.outbox
    assert invitation.to == ["max@northwind.example"]
    assert invitation.subject == "You are invited to Northwind on Ledgerline"
    link = re.search(r"http://testserver(/portal/reset/[^/\s]+/[^/\s]+/)", invitation.body).group(1)
    browser = Client()
    form_page = browser.get(link)
    new_password = {"new_password1": "Sunny-Harbour-42", "new_password2": "Sunny-Harbour-42"}
    assert browser.post(form_page["Location"], new_password)["Location"] == "/portal/reset/done/"
    login = Client().post("/portal/login/", {"username": "max@northwind.example", "password": "Sunny-Harbour-42"})
    assert (login.status_code, login["Location"]) == (302, "/portal/")


def test_only_the_owner_manages_users(account, owner):
    admin = signed_in(AccountUserFactory(account=account, role="admin"))
    assert admin.get("/portal/users/").status_code == 200
    assert admin.get("/portal/users/invite/").status_code == 403
    assert admin.post(f"/portal/users/{owner.pk}/remove/").status_code == 403


def test_the_owner_changes_a_role_and_removes_a_user(as_owner, account):
    member = AccountUserFactory(account=account, role="member", email="max@northwind.example")
    assert as_owner.post(f"/portal/users/{member.pk}/", {"role": "billing"}).status_code == 302
    member.refresh_from_db()
    assert member.role == "billing"
    page = as_owner.get("/portal/users/").content.decode()
    assert re.search(r'max@northwind.example</span></td>\s*<td data-label="Role">Billing</td>', page)

    assert "Remove max@northwind.example?" in as_owner.get(f"/portal/users/{member.pk}/remove/").content.decode()
    as_owner.post(f"/portal/users/{member.pk}/remove/")
    assert not AccountUser.objects.filter(pk=member.pk).exists()
    user = get_user_model().objects.get(email="max@northwind.example")
    assert not user.is_active
    assert not Client().login(username=user.username, password=PASSWORD)
    removed = AccountUser.history.filter(id=member.pk, history_type="-").get()
    assert (removed.history_user, removed.history_change_reason) == (as_owner_user(account), "removed")


def test_the_last_owner_cannot_be_removed_or_demoted(as_owner, owner):
    response = as_owner.post(f"/portal/users/{owner.pk}/remove/")
    assert response.status_code == 400
    assert "An account needs an owner: make someone else owner first." in response.content.decode()
    response = as_owner.post(f"/portal/users/{owner.pk}/", {"role": "admin"})
    assert response.status_code == 400
    assert field_errors(response, "role") == ["An account needs an owner: make someone else owner first."]
    owner.refresh_from_db()
    assert owner.role == "owner"


def test_an_owner_may_step_down_when_another_owner_remains(as_owner, account, owner):
    AccountUserFactory(account=account, role="owner")
    assert as_owner.post(f"/portal/users/{owner.pk}/", {"role": "admin"}).status_code == 302
    owner.refresh_from_db()
    assert owner.role == "admin"


# Another account's objects


def test_another_accounts_budgets_keys_and_users_are_not_found(as_owner):
    other = AccountFactory(name="Contoso")
    budget = budget_create(account=other, name="Theirs", amount="10")
    key, _ = api_key_create(name="theirs", scopes=["read"], account=other)
    their_user = AccountUserFactory(account=other, role="member")
    urls = [
        f"/portal/budgets/{budget.pk}/",
        f"/portal/budgets/{budget.pk}/delete/",
        f"/portal/api-keys/{key.prefix}/revoke/",
        f"/portal/users/{their_user.pk}/",
        f"/portal/users/{their_user.pk}/remove/",
    ]
    for url in urls:
        assert as_owner.get(url).status_code == 404, url
        assert as_owner.post(url, {"role": "owner", "name": "x", "amount": "1"}).status_code == 404, url
    assert Budget.objects.filter(pk=budget.pk).exists()
    key.refresh_from_db()
    assert key.revoked_at is None
    their_user.refresh_from_db()
    assert their_user.role == "member"
    for page in ("/portal/budgets/", "/portal/api-keys/", "/portal/users/"):
        content = as_owner.get(page).content.decode()
        assert "Theirs" not in content and key.prefix not in content and their_user.user.email not in content
