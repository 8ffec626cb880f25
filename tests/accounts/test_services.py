from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from accounts.models import Account
from accounts.services import account_create, account_update, account_user_create, budget_create
from billing.services.subscriptions import subscription_create
from common.errors import BillingError
from tests.accounts.factories import AccountFactory, StaffUserFactory

pytestmark = pytest.mark.django_db


def test_accounts_get_sequential_public_ids():
    first = account_create(name="A", currency="USD", billing_emails=["a@example.com"])
    second = account_create(name="B", currency="USD", billing_emails=["b@example.com"])
    assert int(second.public_id[4:]) == int(first.public_id[4:]) + 1
    assert first.public_id.startswith("acc_") and len(first.public_id) == 10


def test_account_needs_a_valid_billing_address():
    with pytest.raises(ValidationError) as exc:
        account_create(name="A", currency="USD", billing_emails=["not-an-email"])
    assert "billing_emails" in exc.value.error_dict
    assert Account.objects.count() == 0


def test_account_changes_are_audited_with_the_actor():
    staff = StaffUserFactory()
    account = AccountFactory(name="Old name")
    account_update(account=account, data={"name": "New name"}, actor=staff)
    latest = account.history.latest("history_id")
    assert (latest.name, latest.history_user, latest.history_change_reason) == ("New name", staff, "updated")
    assert latest.prev_record.name == "Old name"


def test_currency_is_locked_once_subscribed(plan):
    account = AccountFactory()
    subscription_create(account=account, plan_version=plan("platform-basic"))
    with pytest.raises(BillingError) as exc:
        account_update(account=account, data={"currency": "EUR"})
    assert (exc.value.code, exc.value.field) == ("currency_locked", "currency")
    account.refresh_from_db()
    assert account.currency == "USD"


def test_portal_user_emails_are_unique():
    account = AccountFactory()
    account_user_create(account=account, email="Owner@Example.com", role="owner")
    with pytest.raises(BillingError) as exc:
        account_user_create(account=AccountFactory(), email="owner@example.com")
    assert exc.value.code == "email_taken"


def test_budget_takes_the_account_currency_and_refuses_another():
    account = AccountFactory(currency="EUR")
    assert budget_create(account=account, name="Monthly", amount=Decimal("500.00")).currency == "EUR"
    with pytest.raises(BillingError) as exc:
        budget_create(account=account, name="Other", amount=Decimal("1"), currency="USD")
    assert exc.value.code == "currency_mismatch"


def test_budget_thresholds_must_increase():
    with pytest.raises(ValidationError) as exc:
        budget_create(account=AccountFactory(), name="M", amount=Decimal("10"), alert_thresholds=[90, 75])
    assert "alert_thresholds" in exc.value.error_dict
