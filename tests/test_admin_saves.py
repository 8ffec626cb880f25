"""Admin save paths and actions: ordinary input never ends in a server error."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from accounts.models import Account
from accounts.permissions import BILLING_STAFF
from accounts.services import account_reactivate, account_suspend, account_user_create
from billing.models import PlanCharge
from billing.services.catalogue import (
    ChargeSpec,
    TierSpec,
    plan_charge_set_tiers,
    plan_version_create,
    plan_version_publish,
)
from billing.services.subscriptions import subscription_cancel, subscription_create
from common.errors import BillingError
from tenants.services import partner_deactivate, tenant_archive
from tests.accounts.factories import AccountFactory, StaffUserFactory
from tests.billing.factories import PlanFactory
from tests.tenants.factories import MasterPartnerFactory, TenantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    client.force_login(StaffUserFactory(groups=[Group.objects.get(name=BILLING_STAFF)]))
    return client


def test_saving_an_unchanged_subscription_page_is_harmless(staff_client, plan):
    sub = subscription_create(account=AccountFactory(), plan_version=plan("platform-basic"))
    response = staff_client.post(f"/admin/billing/subscription/{sub.pk}/change/", {})
    assert response.status_code == 302
    sub.refresh_from_db()
    assert sub.status == "active"


def test_suspend_and_reactivate_follow_the_account_lifecycle(plan):
    account = AccountFactory()
    subscription_create(account=account, plan_version=plan("messaging-business"))
    assert account_suspend(account=account).status == Account.Status.SUSPENDED
    assert account_reactivate(account=account).status == Account.Status.TRIALING  # still inside the trial
    with pytest.raises(BillingError) as exc:
        account_reactivate(account=account)
    assert exc.value.code == "invalid_transition"


def test_a_cancelled_account_cannot_be_suspended_or_reactivated_by_staff(staff_client, plan):
    account = AccountFactory()
    sub = subscription_create(account=account, plan_version=plan("platform-basic"))
    subscription_cancel(subscription=sub, at_period_end=False)
    response = staff_client.post(
        "/admin/accounts/account/", {"action": "reactivate", "_selected_action": [account.pk]}, follow=True
    )
    assert "Only suspended accounts can be reactivated; this one is Cancelled." in response.content.decode()
    account.refresh_from_db()
    assert account.status == Account.Status.CANCELLED


def test_deactivating_a_partner_before_its_activation_is_an_error_message(staff_client):
    partner = MasterPartnerFactory(activated_at=timezone.now() + dt.timedelta(days=3))
    response = staff_client.post(
        "/admin/tenants/masterpartner/", {"action": "deactivate", "_selected_action": [partner.pk]}, follow=True
    )
    assert response.status_code == 200
    assert "cannot be deactivated before it was activated" in response.content.decode()
    partner.refresh_from_db()
    assert partner.deactivated_at is None


def test_tenants_cannot_be_archived_in_the_future():
    tenant = TenantFactory()
    with pytest.raises(BillingError) as exc:
        tenant_archive(tenant=tenant, at=timezone.now() + dt.timedelta(days=1))
    assert exc.value.code == "invalid_archive_time"
    with pytest.raises(BillingError):
        partner_deactivate(partner=MasterPartnerFactory(), at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC))


def test_portal_logins_accept_any_valid_email_address():
    membership = account_user_create(account=AccountFactory(), email="o'brien@example.com", role="owner")
    assert membership.user.email == "o'brien@example.com"
    assert get_user_model().objects.filter(email="o'brien@example.com").count() == 1


def test_a_tiered_charge_can_be_drafted_first_and_priced_before_publishing(catalogue):
    version = plan_version_create(
        plan=PlanFactory(),
        currency="USD",
        base_fee=Decimal("0"),
        charges=[ChargeSpec("messages", pricing_model=PlanCharge.PricingModel.VOLUME)],
    )
    with pytest.raises(BillingError) as exc:
        plan_version_publish(plan_version=version)
    assert exc.value.message == "messages: A tiered charge needs at least one tier."
    plan_charge_set_tiers(charge=version.charges.get(), tiers=[TierSpec(Decimal("0"), None, Decimal("0.01"))])
    assert plan_version_publish(plan_version=version).is_published


def test_account_currency_is_locked_once_a_budget_exists(staff_client):
    from accounts.services import account_update, budget_create

    account = AccountFactory()
    budget_create(account=account, name="Monthly", amount=Decimal("100"))
    with pytest.raises(BillingError):
        account_update(account=account, data={"currency": "EUR"})
