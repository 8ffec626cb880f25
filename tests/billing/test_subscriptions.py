import datetime as dt
from decimal import Decimal

import pytest
import time_machine

from accounts.models import Account
from billing.models import Subscription
from billing.services.subscriptions import subscription_cancel, subscription_create
from common.errors import BillingError
from tests.accounts.factories import AccountFactory
from tests.billing.factories import PlanFactory, PlanVersionFactory

pytestmark = pytest.mark.django_db
UTC = dt.UTC


@time_machine.travel(dt.datetime(2026, 10, 15, 12, tzinfo=UTC), tick=False)
def test_subscribing_to_a_plan_with_a_trial_starts_trialing(plan):
    account = AccountFactory()
    sub = subscription_create(account=account, plan_version=plan("messaging-business"))
    assert sub.status == Subscription.Status.TRIALING
    assert sub.trial_end == dt.datetime(2026, 11, 14, 12, tzinfo=UTC)
    assert (sub.current_period_start, sub.current_period_end) == (
        dt.datetime(2026, 10, 15, 12, tzinfo=UTC),
        dt.datetime(2026, 11, 1, tzinfo=UTC),
    )
    assert sub.public_id.startswith("sub_")
    account.refresh_from_db()
    assert account.status == Account.Status.TRIALING


@time_machine.travel(dt.datetime(2026, 11, 26, tzinfo=UTC), tick=False)
def test_a_backdated_subscription_past_its_trial_is_active_in_the_current_month(plan):
    account = AccountFactory()
    sub = subscription_create(
        account=account, plan_version=plan("messaging-startup"), started_at=dt.datetime(2026, 3, 3, tzinfo=UTC)
    )
    assert sub.status == Subscription.Status.ACTIVE
    assert (sub.current_period_start, sub.current_period_end) == (
        dt.datetime(2026, 11, 1, tzinfo=UTC),
        dt.datetime(2026, 12, 1, tzinfo=UTC),
    )
    account.refresh_from_db()
    assert account.status == Account.Status.ACTIVE


def test_price_on_request_plans_need_a_custom_contract(plan):
    with pytest.raises(BillingError) as exc:
        subscription_create(account=AccountFactory(), plan_version=plan("platform-enterprise"))
    assert exc.value.code == "price_on_request"
    assert Subscription.objects.count() == 0


def test_currency_must_match_the_account(plan):
    with pytest.raises(BillingError) as exc:
        subscription_create(account=AccountFactory(currency="EUR"), plan_version=plan("platform-basic"))
    assert exc.value.code == "currency_mismatch"
    assert "priced in USD but the account is billed in EUR" in exc.value.message


def test_custom_plans_are_only_for_their_account(catalogue):
    owner = AccountFactory()
    custom = PlanVersionFactory(plan=PlanFactory(account=owner), base_fee=Decimal("2500.00"))
    with pytest.raises(BillingError) as exc:
        subscription_create(account=AccountFactory(), plan_version=custom)
    assert exc.value.code == "plan_not_available"
    assert subscription_create(account=owner, plan_version=custom).plan_version == custom


def test_a_second_live_subscription_is_refused(plan):
    account = AccountFactory()
    first = subscription_create(account=account, plan_version=plan("platform-basic"))
    with pytest.raises(BillingError) as exc:
        subscription_create(account=account, plan_version=plan("platform-professional"))
    assert (exc.value.code, exc.value.status) == ("already_subscribed", 409)
    assert list(account.subscriptions.all()) == [first]


def test_cancel_at_period_end_keeps_billing_the_period(plan):
    sub = subscription_create(account=AccountFactory(), plan_version=plan("platform-basic"))
    sub = subscription_cancel(subscription=sub)
    assert (sub.status, sub.cancel_at_period_end, sub.ended_at) == (Subscription.Status.ACTIVE, True, None)


def test_cancel_now_ends_the_subscription_and_the_account(plan):
    account = AccountFactory()
    sub = subscription_create(account=account, plan_version=plan("platform-basic"))
    sub = subscription_cancel(subscription=sub, at_period_end=False)
    assert sub.status == Subscription.Status.CANCELLED
    assert sub.ended_at is not None
    account.refresh_from_db()
    assert account.status == Account.Status.CANCELLED
    history = list(account.history.order_by("history_id").values_list("status", "history_change_reason"))
    assert history[-1] == ("cancelled", "subscription cancelled")
    # A cancelled account may subscribe again.
    assert subscription_create(account=account, plan_version=plan("platform-basic")).status == "active"
