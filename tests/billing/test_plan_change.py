"""subscription_change_plan: one subscription ends where the next begins; the account never looks cancelled."""

import datetime as dt

import pytest
import time_machine

from billing.models import Subscription
from billing.services.subscriptions import subscription_cancel, subscription_change_plan
from common.errors import BillingError
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import UTC, subscribe

pytestmark = pytest.mark.django_db
NOV_15 = dt.datetime(2026, 11, 15, tzinfo=UTC)


def test_the_change_is_audited_and_the_account_stays_active(plan):
    account = AccountFactory()
    basic = subscribe(account, plan("platform-basic"))
    with time_machine.travel(NOV_15, tick=False):
        professional = subscription_change_plan(
            subscription=basic, plan_version=plan("platform-professional"), at=NOV_15
        )
    account.refresh_from_db()
    assert account.status == "active"
    assert list(account.subscriptions.order_by("started_at").values_list("status", "started_at", "ended_at")) == [
        ("cancelled", basic.started_at, NOV_15),
        ("active", NOV_15, None),
    ]
    assert basic.history.latest().history_change_reason == "plan changed to Professional v1"
    assert professional.history.latest().history_change_reason == "created"
    assert (professional.current_period_start, professional.current_period_end) == (
        NOV_15,
        dt.datetime(2026, 12, 1, tzinfo=UTC),
    )


def test_a_cancelled_subscription_cannot_change_plan(plan):
    account = AccountFactory()
    basic = subscribe(account, plan("platform-basic"))
    with time_machine.travel(NOV_15, tick=False):
        subscription_cancel(subscription=basic, at_period_end=False, at=NOV_15)
        with pytest.raises(BillingError) as caught:
            subscription_change_plan(subscription=basic, plan_version=plan("platform-professional"), at=NOV_15)
    assert (caught.value.code, caught.value.status) == ("already_cancelled", 409)
    assert Subscription.objects.filter(account=account).count() == 1


def test_a_change_before_the_subscription_started_is_refused(plan):
    account = AccountFactory()
    basic = subscribe(account, plan("platform-basic"), started_at=NOV_15)
    with pytest.raises(BillingError) as caught:
        subscription_change_plan(
            subscription=basic, plan_version=plan("platform-professional"), at=dt.datetime(2026, 11, 1, tzinfo=UTC)
        )
    assert (caught.value.code, caught.value.field) == ("invalid_change_time", "at")
    basic.refresh_from_db()
    assert (basic.status, basic.ended_at) == ("active", None)
