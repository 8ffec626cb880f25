"""Who may manage an account's webhook endpoints, checked by the services whoever calls them: the account's owner
and admins (not its billing users or members), staff with the endpoint permissions, keys with the webhooks scope
(not pinned to a tenant); anyone of another account is told the endpoint does not exist."""

import pytest
from django.contrib.auth.models import Group

from accounts.models import AccountUser
from accounts.permissions import BILLING_STAFF
from accounts.services import api_key_create
from common.errors import BillingError
from tests.accounts.factories import AccountFactory, AccountUserFactory, StaffUserFactory
from tests.tenants.factories import TenantFactory
from webhooks.services.endpoints import endpoint_create, endpoint_delete, endpoint_rotate_secret

pytestmark = pytest.mark.django_db
URL = "https://hooks.example.com/ledgerline"


def user(account, role):
    return AccountUserFactory(account=account, role=role).user


@pytest.mark.parametrize("role", [AccountUser.Role.OWNER, AccountUser.Role.ADMIN])
def test_owners_and_admins_add_endpoints(account, role):
    endpoint, _ = endpoint_create(account=account, url=URL, actor=user(account, role))
    assert endpoint.created_by.account_membership.role == role


@pytest.mark.parametrize("role", [AccountUser.Role.BILLING, AccountUser.Role.MEMBER])
def test_billing_users_and_members_may_not(account, role):
    with pytest.raises(BillingError) as refused:
        endpoint_create(account=account, url=URL, actor=user(account, role))
    assert (refused.value.status, refused.value.message) == (403, "You may not add webhook endpoints.")


def test_another_accounts_owner_or_key_gets_a_404(account):
    endpoint, _ = endpoint_create(account=account, url=URL)
    other = AccountFactory(name="Globex")
    for actor in (
        user(other, AccountUser.Role.OWNER),
        api_key_create(name="w", scopes=["webhooks"], account=other)[0],
    ):
        with pytest.raises(BillingError) as refused:
            endpoint_rotate_secret(endpoint=endpoint, actor=actor)
        assert (refused.value.status, refused.value.message) == (404, "No such webhook endpoint.")


def test_keys_need_the_scope_and_the_whole_account(account):
    read = api_key_create(name="r", scopes=["read"], account=account)[0]
    with pytest.raises(BillingError) as refused:
        endpoint_create(account=account, url=URL, actor=read)
    assert (refused.value.status, refused.value.message) == (403, "This API key lacks the webhooks scope.")
    pinned = api_key_create(name="p", scopes=["read"], account=account, tenant=TenantFactory(account=account))[0]
    with pytest.raises(BillingError) as refused:
        endpoint_create(account=account, url=URL, actor=pinned)
    assert refused.value.status == 403


def test_billing_staff_add_but_do_not_delete(account):
    staff = StaffUserFactory(username="bianca", groups=[Group.objects.get(name=BILLING_STAFF)])
    endpoint, _ = endpoint_create(account=account, url=URL, actor=staff)
    with pytest.raises(BillingError) as refused:
        endpoint_delete(endpoint=endpoint, actor=staff)
    assert (refused.value.status, refused.value.message) == (403, "You may not delete webhook endpoints.")
    assert StaffUserFactory(username="nobody").has_perm("webhooks.add_webhookendpoint") is False
    with pytest.raises(BillingError):
        endpoint_create(account=account, url=URL, actor=StaffUserFactory(username="plain"))
