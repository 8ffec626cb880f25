import datetime as dt
import html
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.exceptions import NotAuthenticated

from accounts.authentication import HasWebhooksScope
from accounts.models import ApiKey
from accounts.permissions import BILLING_STAFF, FINANCE_ADMIN
from accounts.selectors import api_key_for
from accounts.services import (
    ERR_KEY_EXPORT_ACCOUNT,
    ERR_KEY_EXPORT_LIMITS,
    ERR_KEY_NEEDS_ACCOUNT,
    ERR_KEY_WEBHOOKS_PINNED,
    api_key_create,
    api_key_revoke,
    api_key_set_export_limits,
)
from common.errors import BillingError
from tests.accounts.factories import AccountFactory, AccountUserFactory, StaffUserFactory
from tests.tenants.factories import TenantFactory

pytestmark = pytest.mark.django_db


def test_a_key_is_stored_only_as_a_hash_and_found_by_its_secret():
    account = AccountFactory()
    api_key, secret = api_key_create(name="ingest", scopes=["ingest", "read"], account=account)
    assert secret.startswith(api_key.prefix + "_")
    assert len(secret) == 64
    stored = ApiKey.objects.get(pk=api_key.pk)
    assert secret.split("_")[-1] not in (stored.secret_hash, stored.prefix)
    assert api_key_for(key=secret, now=timezone.now()) == api_key
    assert api_key_for(key=secret[:-1] + ("0" if secret[-1] != "0" else "1"), now=timezone.now()) is None
    assert api_key_for(key="not-a-key", now=timezone.now()) is None


def test_revoked_and_expired_keys_stop_working():
    account = AccountFactory()
    now = timezone.now()
    expiring, expiring_secret = api_key_create(
        name="e", scopes=["read"], account=account, expires_at=now + dt.timedelta(hours=1)
    )
    assert api_key_for(key=expiring_secret, now=now) == expiring
    assert api_key_for(key=expiring_secret, now=now + dt.timedelta(hours=1)) is None
    revoked, revoked_secret = api_key_create(name="r", scopes=["read"], account=account)
    api_key_revoke(api_key=revoked)
    assert api_key_for(key=revoked_secret, now=now) is None
    with pytest.raises(BillingError) as exc:
        api_key_revoke(api_key=revoked)
    assert exc.value.code == "already_revoked"


@pytest.mark.parametrize(
    "scopes, with_account, code",
    [
        ([], True, "invalid_scopes"),
        (["write"], True, "invalid_scopes"),
        (["export"], True, "invalid_scopes"),
        (["export", "read"], False, "invalid_scopes"),
        (["ingest"], False, "account_required"),
    ],
)
def test_scope_rules(scopes, with_account, code):
    account = AccountFactory() if with_account else None
    with pytest.raises(BillingError) as exc:
        api_key_create(name="k", scopes=scopes, account=account)
    assert exc.value.code == code
    assert ApiKey.objects.count() == 0


def test_export_keys_are_platform_wide():
    api_key, _ = api_key_create(name="erp", scopes=["export"])
    assert (api_key.account, api_key.scopes) == (None, ["export"])


def test_a_key_can_be_pinned_to_a_tenant_of_its_account_only():
    account = AccountFactory()
    own = TenantFactory(account=account)
    assert api_key_create(name="pinned", scopes=["ingest"], account=account, tenant=own)[0].tenant == own
    with pytest.raises(BillingError) as exc:
        api_key_create(name="pinned", scopes=["ingest"], account=account, tenant=TenantFactory())
    assert exc.value.code == "tenant_not_in_account"


def test_create_api_key_command_prints_the_secret_once(capsys):
    account = AccountFactory()
    call_command("create_api_key", "--account", account.public_id, "--scopes", "ingest,read")
    out = capsys.readouterr().out.splitlines()
    api_key = ApiKey.objects.get()
    assert api_key.scopes == ["ingest", "read"]
    assert api_key_for(key=out[-1], now=timezone.now()) == api_key
    call_command("create_api_key", "--scopes", "export")
    assert ApiKey.objects.filter(scope_export=True, account=None).count() == 1


def test_create_api_key_command_explains_mistakes():
    with pytest.raises(CommandError, match="No account with public id 'acc_404404'"):
        call_command("create_api_key", "--account", "acc_404404", "--scopes", "ingest")
    with pytest.raises(CommandError, match="belong to an account"):
        call_command("create_api_key", "--scopes", "ingest")


def _add_key(client, account, **scopes):
    return client.post(
        "/admin/accounts/apikey/add/",
        {
            "account": account.pk if account else "",
            "tenant": "",
            "name": "via admin",
            "expires_at_0": "",
            "expires_at_1": "",
            "rate_limit_per_minute": "",
            **{f"scope_{s}": "on" for s in scopes},
        },
        follow=True,
    )


def test_staff_create_a_key_in_the_admin_and_see_the_secret_once(client):
    staff = StaffUserFactory(groups=[Group.objects.get(name=BILLING_STAFF)])
    account = AccountFactory()
    client.force_login(staff)
    response = _add_key(client, account, ingest=True)
    api_key = ApiKey.objects.get()
    shown = [str(m) for m in response.context["messages"] if "shown only once" in str(m)]
    assert len(shown) == 1
    secret = shown[0].rsplit(" ", 1)[-1]
    assert api_key_for(key=secret, now=timezone.now()) == api_key
    assert api_key.created_by == staff
    assert secret not in client.get(f"/admin/accounts/apikey/{api_key.pk}/change/").content.decode()


def test_only_finance_admins_create_export_keys(client):
    client.force_login(StaffUserFactory(groups=[Group.objects.get(name=BILLING_STAFF)]))
    response = _add_key(client, None, export=True)
    assert "Only Finance admins may create platform-wide export keys." in response.content.decode()
    assert ApiKey.objects.count() == 0
    client.force_login(StaffUserFactory(groups=[Group.objects.get(name=FINANCE_ADMIN)]))
    _add_key(client, None, export=True)
    assert ApiKey.objects.filter(scope_export=True).count() == 1


# The webhooks scope


def test_a_webhooks_key_belongs_to_an_account_and_is_never_pinned_to_a_tenant():
    account = AccountFactory()
    api_key, _ = api_key_create(name="hooks", scopes=["webhooks", "read"], account=account)
    assert (api_key.scope_webhooks, api_key.scopes) == (True, ["read", "webhooks"])
    with pytest.raises(BillingError) as pinned:
        api_key_create(name="hooks", scopes=["webhooks"], account=account, tenant=TenantFactory(account=account))
    assert (pinned.value.message, pinned.value.field) == (ERR_KEY_WEBHOOKS_PINNED, "tenant")
    with pytest.raises(BillingError) as no_account:
        api_key_create(name="hooks", scopes=["webhooks"])
    assert (no_account.value.message, no_account.value.code) == (ERR_KEY_NEEDS_ACCOUNT, "account_required")
    with pytest.raises(BillingError) as with_export:
        api_key_create(name="hooks", scopes=["webhooks", "export"])
    assert with_export.value.message == ERR_KEY_EXPORT_ACCOUNT
    with pytest.raises(BillingError) as unknown:
        api_key_create(name="k", scopes=["write"], account=account)
    assert unknown.value.message == (
        "Scopes must be a non-empty subset of ingest, read, disputes, subscription, webhooks, export; got write."
    )
    assert ApiKey.objects.count() == 1


def test_the_webhooks_permission_reads_the_keys_webhooks_scope():
    account = AccountFactory()
    hooks, _ = api_key_create(name="hooks", scopes=["webhooks"], account=account)
    read, _ = api_key_create(name="read", scopes=["read"], account=account)
    permission = HasWebhooksScope()
    assert permission.has_permission(SimpleNamespace(auth=hooks), None) is True
    assert permission.has_permission(SimpleNamespace(auth=read), None) is False
    assert permission.message == "This API key lacks the 'webhooks' scope."
    with pytest.raises(NotAuthenticated):
        permission.has_permission(SimpleNamespace(auth=None), None)


def test_the_database_refuses_a_webhooks_export_key():
    api_key, _ = api_key_create(name="erp", scopes=["export"])
    with pytest.raises(IntegrityError), transaction.atomic():
        ApiKey.objects.filter(pk=api_key.pk).update(scope_webhooks=True)


# Export keys' least privilege: accounts and datasets


def test_an_export_key_is_limited_to_accounts_and_datasets():
    northwind, globex = AccountFactory(name="Northwind"), AccountFactory(name="Globex")
    api_key, _ = api_key_create(
        name="erp", scopes=["export"], export_accounts=[northwind, globex], export_datasets=["payments", "events"]
    )
    assert set(api_key.export_accounts.all()) == {northwind, globex}
    assert api_key.export_datasets == ["events", "payments"]  # in the datasets' order
    assert api_key.export_datasets_allowed == ("events", "payments")
    unlimited, _ = api_key_create(name="erp all", scopes=["export"])
    assert (list(unlimited.export_accounts.all()), unlimited.export_datasets) == ([], [])
    assert unlimited.export_datasets_allowed == ("events", "invoices", "credit_notes", "payments", "usage")


def test_an_unknown_dataset_is_refused_naming_the_field():
    with pytest.raises(BillingError) as exc:
        api_key_create(name="erp", scopes=["export"], export_datasets=["events", "ledger"])
    assert (exc.value.field, exc.value.code) == ("export_datasets", "invalid_export_datasets")
    assert exc.value.message == (
        "Unknown export dataset(s) ledger; choose from events, invoices, credit_notes, payments, usage."
    )
    assert ApiKey.objects.count() == 0


def test_only_export_keys_carry_export_limits():
    account = AccountFactory()
    for limits in ({"export_accounts": [account]}, {"export_datasets": ["events"]}):
        with pytest.raises(BillingError) as exc:
            api_key_create(name="k", scopes=["read"], account=account, **limits)
        assert exc.value.message == ERR_KEY_EXPORT_LIMITS
    read, _ = api_key_create(name="k", scopes=["read"], account=account)
    with pytest.raises(BillingError):
        api_key_set_export_limits(api_key=read, export_accounts=[], export_datasets=["events"])
    with pytest.raises(IntegrityError), transaction.atomic():
        ApiKey.objects.filter(pk=read.pk).update(export_datasets=["events"])


def test_export_limits_changes_are_audited_with_the_accounts_as_they_were():
    finance = StaffUserFactory(groups=[Group.objects.get(name=FINANCE_ADMIN)])
    northwind, globex = AccountFactory(name="Northwind"), AccountFactory(name="Globex")
    api_key, _ = api_key_create(name="erp", scopes=["export"], export_accounts=[northwind], actor=finance)
    api_key_set_export_limits(api_key=api_key, export_accounts=[globex], export_datasets=["invoices"], actor=finance)
    rows = list(api_key.history.order_by("history_id"))
    assert [(r.history_type, r.history_change_reason) for r in rows] == [
        ("+", "created"),
        ("~", "created: export accounts"),
        ("~", "export limits changed"),
    ]
    assert [r.history_user for r in rows] == [finance, finance, finance]
    assert [[m.account for m in r.export_accounts.all()] for r in rows] == [[], [northwind], [globex]]
    assert [r.export_datasets for r in rows] == [[], [], ["invoices"]]
    assert list(ApiKey.objects.get(pk=api_key.pk).export_accounts.all()) == [globex]


def test_a_revoked_keys_limits_no_longer_change():
    api_key, _ = api_key_create(name="erp", scopes=["export"])
    api_key_revoke(api_key=api_key)
    with pytest.raises(BillingError) as exc:
        api_key_set_export_limits(api_key=api_key, export_accounts=[], export_datasets=["events"])
    assert exc.value.code == "already_revoked"


def test_finance_admins_set_and_change_an_export_keys_limits_in_the_admin(client):
    finance = StaffUserFactory(groups=[Group.objects.get(name=FINANCE_ADMIN)])
    northwind, globex = AccountFactory(name="Northwind"), AccountFactory(name="Globex")
    client.force_login(finance)
    form = client.get("/admin/accounts/apikey/add/").content.decode()
    assert 'name="export_accounts"' in form and 'value="credit_notes"' in form and 'name="scope_webhooks"' in form
    response = client.post(
        "/admin/accounts/apikey/add/",
        {
            "account": "",
            "tenant": "",
            "name": "erp",
            "scope_export": "on",
            "export_accounts": [northwind.pk],
            "export_datasets": ["events", "usage"],
            "expires_at_0": "",
            "expires_at_1": "",
            "rate_limit_per_minute": "",
        },
        follow=True,
    )
    assert any("shown only once" in str(m) for m in response.context["messages"])
    api_key = ApiKey.objects.get()
    assert (list(api_key.export_accounts.all()), api_key.export_datasets) == ([northwind], ["events", "usage"])

    change = f"/admin/accounts/apikey/{api_key.pk}/change/"
    client.post(change, {"export_accounts": [globex.pk, northwind.pk], "export_datasets": ["invoices"]}, follow=True)
    api_key.refresh_from_db()
    assert set(api_key.export_accounts.all()) == {northwind, globex}
    assert api_key.export_datasets == ["invoices"]
    assert api_key.history.latest("history_id").history_change_reason == "export limits changed"
    # The key's other powers stay as issued.
    assert (api_key.scopes, api_key.name) == (["export"], "erp")
    assert client.get(f"/admin/accounts/apikey/{api_key.pk}/history/").status_code == 200


def test_billing_staff_see_an_export_keys_limits_but_cannot_change_them(client):
    northwind = AccountFactory(name="Northwind")
    api_key, _ = api_key_create(name="erp", scopes=["export"], export_accounts=[northwind])
    client.force_login(StaffUserFactory(groups=[Group.objects.get(name=BILLING_STAFF)]))
    change = f"/admin/accounts/apikey/{api_key.pk}/change/"
    page = client.get(change).content.decode()
    assert f"Northwind ({northwind.public_id})" in page and "Every dataset" in page
    assert 'name="export_datasets"' not in page
    client.post(change, {"export_accounts": [], "export_datasets": ["events"]})
    api_key.refresh_from_db()
    assert (list(api_key.export_accounts.all()), api_key.export_datasets) == ([northwind], [])


def test_a_non_export_key_with_export_limits_is_refused_in_the_admin(client):
    account = AccountFactory()
    client.force_login(StaffUserFactory(groups=[Group.objects.get(name=FINANCE_ADMIN)]))
    response = client.post(
        "/admin/accounts/apikey/add/",
        {
            "account": account.pk,
            "tenant": "",
            "name": "k",
            "scope_read": "on",
            "export_datasets": ["events"],
            "expires_at_0": "",
            "expires_at_1": "",
            "rate_limit_per_minute": "",
        },
    )
    assert ERR_KEY_EXPORT_LIMITS in response.content.decode()
    assert ApiKey.objects.count() == 0


def test_owners_create_webhooks_keys_in_the_portal(client):
    account = AccountFactory()
    owner = AccountUserFactory(account=account, role="owner")
    client.force_login(owner.user)
    form = client.get("/portal/api-keys/new/").content.decode()
    assert 'value="webhooks"' in form
    client.post("/portal/api-keys/new/", {"name": "hooks", "scopes": ["webhooks"]})
    assert ApiKey.objects.get(account=account).scopes == ["webhooks"]
    tenant = TenantFactory(account=account)
    pinned = client.post("/portal/api-keys/new/", {"name": "hooks", "scopes": ["webhooks"], "tenant": tenant.pk})
    assert pinned.status_code == 400
    assert html.escape(ERR_KEY_WEBHOOKS_PINNED) in pinned.content.decode()
    assert ApiKey.objects.filter(account=account).count() == 1
