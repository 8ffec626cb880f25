"""After the run: trials end, unpaid accounts fall past due, cancellations at period end take effect."""

import datetime as dt
from decimal import Decimal as D

import pytest
import time_machine

from billing.models import Invoice
from billing.services.lifecycle import lifecycle_update
from billing.services.payments import invoice_payment_record
from billing.services.subscriptions import subscription_cancel
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import CLOSE_AT, JAN_1, UTC, close, subscribe
from tests.tenants.factories import TenantFactory

pytestmark = pytest.mark.django_db


def test_a_trial_that_ended_makes_the_account_active(plan):
    account = AccountFactory(name="Contoso")
    # 30-day trial from Oct 11 12:00 to Nov 10 12:00; on Nov 2 the account is trialing.
    subscription = subscribe(account, plan("messaging-business"), started_at=dt.datetime(2026, 10, 11, 12, tzinfo=UTC))
    account.refresh_from_db()
    assert (account.status, subscription.status) == ("trialing", "trialing")
    close()
    account.refresh_from_db()
    subscription.refresh_from_db()
    assert (account.status, subscription.status) == ("active", "active")
    assert (subscription.current_period_start, subscription.current_period_end) == (
        dt.datetime(2026, 12, 1, tzinfo=UTC),
        dt.datetime(2027, 1, 1, tzinfo=UTC),
    )


def test_an_invoice_unpaid_past_its_due_date_makes_the_account_past_due(plan):
    account = AccountFactory(name="Initech", payment_terms_days=30)
    subscribe(account, plan("platform-basic"))
    close()
    invoice = Invoice.objects.get(account=account)
    assert invoice.due_at == CLOSE_AT + dt.timedelta(days=30)

    lifecycle_update(now=invoice.due_at)  # due, not yet overdue
    account.refresh_from_db()
    assert account.status == "active"

    lifecycle_update(now=invoice.due_at + dt.timedelta(seconds=1))
    account.refresh_from_db()
    assert account.status == "past_due"

    invoice_payment_record(
        invoice=invoice, amount=D("50.00"), reference="wire 42", now=invoice.due_at + dt.timedelta(days=2)
    )
    lifecycle_update(now=invoice.due_at + dt.timedelta(days=2))
    account.refresh_from_db()
    invoice.refresh_from_db()
    assert (account.status, invoice.status, invoice.amount_due) == ("active", "paid", D("0.00"))


def test_cancel_at_period_end_bills_the_month_then_cancels(plan):
    account = AccountFactory(name="Hooli")
    subscription = subscribe(account, plan("platform-basic"))
    TenantFactory(account=account, public_id="ten_ho", activated_at=JAN_1)
    with time_machine.travel(dt.datetime(2026, 11, 20, tzinfo=UTC), tick=False):
        subscription_cancel(subscription=subscription, at_period_end=True)
    subscription.refresh_from_db()
    assert (subscription.status, subscription.cancel_at_period_end) == ("active", True)

    close()
    subscription.refresh_from_db()
    account.refresh_from_db()
    assert (subscription.status, subscription.ended_at) == ("cancelled", dt.datetime(2026, 12, 1, tzinfo=UTC))
    assert account.status == "cancelled"
    # November is still billed in full
    assert Invoice.objects.get(account=account).total == D("50.00")
