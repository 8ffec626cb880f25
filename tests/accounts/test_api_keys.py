import datetime as dt

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.models import ApiKey
from accounts.permissions import BILLING_STAFF, FINANCE_ADMIN
from accounts.selectors import api_key_for
from accounts.services import api_key_create, api_key_revoke
from common.errors import BillingError
from tests.accounts.factories import AccountFactory, StaffUserFactory
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
