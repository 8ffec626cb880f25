"""An account whose invoices go unpaid falls past due after the due date and is suspended
BILLING_SUSPEND_AFTER_DAYS_OVERDUE (30) days later, by the daily lifecycle pass on the test clock; a payment
that settles everything overdue makes it active again at once, unless staff suspended it. Every change is a
``billing.subscription_updated`` event and an e-mail to the account's billing address.

Northwind is on Business ($299.00 a month) since January 1, no tax, 30 days' terms: October's invoice
INV-2026-000001 is $299.00 due December 1 00:05 UTC; November's INV-2026-000002 is $299.00 due
December 31 00:05 UTC."""

import datetime as dt
from decimal import Decimal as D

import pytest
from django.contrib.auth.models import Group

from accounts.permissions import BILLING_STAFF
from accounts.services import account_reactivate, account_suspend
from billing.models import EmailDelivery, Invoice, Payment, Subscription
from billing.services.lifecycle import lifecycle_update
from billing.services.payments import payment_record
from billing.services.subscriptions import subscription_change_plan
from common import clock
from common.models import OutboxEvent
from common.periods import month_period
from tests.accounts.factories import AccountFactory, StaffUserFactory
from tests.billing.cycle import CLOSE_AT, JAN_1, UTC, close, subscribe
from tests.tenants.factories import TenantFactory

pytestmark = pytest.mark.django_db

OCT_2 = dt.datetime(2026, 10, 2, tzinfo=UTC)
NOV_1 = dt.datetime(2026, 11, 1, 0, 5, tzinfo=UTC)
OCTOBER_DUE = dt.datetime(2026, 12, 1, 0, 5, tzinfo=UTC)
NOVEMBER_DUE = dt.datetime(2026, 12, 31, 0, 5, tzinfo=UTC)
SECOND = dt.timedelta(seconds=1)


@pytest.fixture
def books(plan):
    account = AccountFactory(name="Northwind", payment_terms_days=30)
    subscribe(account, plan("messaging-business"), at=OCT_2)
    TenantFactory(account=account, public_id="ten_nw", activated_at=JAN_1)
    close(period=month_period(2026, 10), now=NOV_1)
    close()
    october, november = Invoice.objects.filter(account=account).order_by("period_start")
    assert (october.number, october.total, october.due_at) == ("INV-2026-000001", D("299.00"), OCTOBER_DUE)
    assert (november.number, november.total, november.due_at) == ("INV-2026-000002", D("299.00"), NOVEMBER_DUE)
    account.refresh_from_db()
    assert account.status == "active"
    # The test clock starts where the billing run left off (whatever the wall clock says).
    clock.clock_set(at=CLOSE_AT, allow_backwards=True)
    return account, october, november


@pytest.fixture
def staff():
    return StaffUserFactory(username="bianca", groups=[Group.objects.get(name=BILLING_STAFF)])


def daily_pass(at):
    """The test clock moves to ``at`` and the daily lifecycle pass runs on it."""
    clock.clock_set(at=at)
    return lifecycle_update()


def status(account):
    account.refresh_from_db()
    return account.status, account.status_automatic, account.status_reason


def status_events(account):
    """The account's status events since it subscribed (the subscription's own trialing → active is left out)."""
    events = OutboxEvent.objects.filter(type="billing.subscription_updated", account=account).order_by("pk")
    return [
        {key: e.payload["data"][key] for key in ("previous_status", "account_status", "reason", "invoice_id")}
        for e in events
        if not e.payload["data"]["reason"].startswith("subscribed to")
    ]


def status_emails(account):
    rows = EmailDelivery.objects.filter(invoice__account=account, kind__in=["past_due", "suspended", "reactivated"])
    return list(rows.order_by("pk").values_list("kind", "invoice__number", "recipients", "subject"))


def transfer(account, amount, invoice, reference):
    return payment_record(
        account=account,
        amount=D(amount),
        provider=Payment.Provider.BANK_TRANSFER,
        reference=reference,
        allocations=[(invoice, D(amount))],
    )


def test_an_invoice_unpaid_after_its_due_date_makes_the_account_past_due(books):
    account, _, _ = books
    assert daily_pass(OCTOBER_DUE)["past_due"] == 0  # due today, not overdue yet
    assert status(account)[0] == "active"

    assert daily_pass(OCTOBER_DUE + SECOND)["past_due"] == 1
    assert status(account) == ("past_due", True, "invoice unpaid past its due date")
    assert status_events(account) == [
        {
            "previous_status": "active",
            "account_status": "past_due",
            "reason": "invoice unpaid past its due date",
            "invoice_id": "INV-2026-000001",
        }
    ]
    event = OutboxEvent.objects.filter(type="billing.subscription_updated").latest("pk")
    assert event.payload["data"]["account_id"] == account.public_id
    assert event.payload["data"]["subscription_id"] == Subscription.objects.get(account=account).public_id
    assert event.payload["data"]["changed_at"] == "2026-12-01T00:05:01Z"
    assert status_emails(account) == [
        (
            "past_due",
            "INV-2026-000001",
            ["ap-northwind@example.com"],
            "Your account is past due: invoice INV-2026-000001 (USD 299.00)",
        )
    ]

    # The next day's pass changes nothing and sends nothing again.
    assert daily_pass(OCTOBER_DUE + dt.timedelta(days=1))["past_due"] == 0
    assert (len(status_events(account)), len(status_emails(account))) == (1, 1)


def test_an_invoice_thirty_days_overdue_suspends_the_account(books, settings):
    assert settings.BILLING_SUSPEND_AFTER_DAYS_OVERDUE == 30
    account, _, _ = books
    daily_pass(OCTOBER_DUE + SECOND)
    assert daily_pass(OCTOBER_DUE + dt.timedelta(days=30) - SECOND)["suspended"] == 0
    assert status(account)[0] == "past_due"

    assert daily_pass(OCTOBER_DUE + dt.timedelta(days=30))["suspended"] == 1
    assert status(account) == ("suspended", True, "INV-2026-000001 unpaid 30 days past its due date")
    assert status_events(account)[1] == {
        "previous_status": "past_due",
        "account_status": "suspended",
        "reason": "INV-2026-000001 unpaid 30 days past its due date",
        "invoice_id": "INV-2026-000001",
    }
    assert status_emails(account)[1] == (
        "suspended",
        "INV-2026-000001",
        ["ap-northwind@example.com"],
        "Your account is suspended: invoice INV-2026-000001 is unpaid",
    )


def test_a_transfer_that_settles_everything_overdue_reactivates_the_account_at_once(
    books, django_capture_on_commit_callbacks
):
    account, october, november = books
    daily_pass(OCTOBER_DUE + SECOND)
    daily_pass(OCTOBER_DUE + dt.timedelta(days=30))
    clock.clock_set(at=dt.datetime(2027, 1, 4, 10, tzinfo=UTC))  # November is overdue now as well
    assert status(account)[0] == "suspended"

    with django_capture_on_commit_callbacks(execute=True):
        transfer(account, "299.00", october, "wire 1001")
    october.refresh_from_db()
    assert october.status == "paid"
    assert status(account)[0] == "suspended"  # November is still overdue

    with django_capture_on_commit_callbacks(execute=True):
        transfer(account, "299.00", november, "wire 1002")
    # No daily pass in between: the payment itself lifted the suspension.
    assert status(account) == ("active", True, "overdue invoices settled")
    assert status_events(account)[2] == {
        "previous_status": "suspended",
        "account_status": "active",
        "reason": "overdue invoices settled",
        "invoice_id": "INV-2026-000002",
    }
    event = OutboxEvent.objects.filter(type="billing.subscription_updated").order_by("pk").last()
    assert event.payload["data"]["changed_at"] == "2027-01-04T10:00:00Z"
    assert [(kind, number) for kind, number, _, _ in status_emails(account)] == [
        ("past_due", "INV-2026-000001"),
        ("suspended", "INV-2026-000001"),
        ("reactivated", "INV-2026-000002"),
    ]
    assert status_emails(account)[2][3] == "Your account is active again"

    # The next daily pass agrees.
    assert daily_pass(dt.datetime(2027, 1, 5, tzinfo=UTC))["recovered"] == 0
    assert status(account)[0] == "active"


def test_a_transfer_that_settles_a_past_due_account_reactivates_it_at_once(books, django_capture_on_commit_callbacks):
    account, october, _ = books
    daily_pass(OCTOBER_DUE + SECOND)
    with django_capture_on_commit_callbacks(execute=True):
        transfer(account, "299.00", october, "wire 1001")  # November is not due before December 31
    assert status(account) == ("active", True, "overdue invoices settled")
    assert [e["account_status"] for e in status_events(account)] == ["past_due", "active"]


def test_a_suspension_by_staff_is_not_lifted_by_a_payment(books, staff, django_capture_on_commit_callbacks):
    account, october, november = books
    daily_pass(OCTOBER_DUE + SECOND)
    account_suspend(account=account, reason="fraud review", actor=staff)
    assert status(account) == ("suspended", False, "fraud review")
    assert account.history.order_by("-history_id").first().history_user == staff

    with django_capture_on_commit_callbacks(execute=True):
        transfer(account, "299.00", october, "wire 1001")
        transfer(account, "299.00", november, "wire 1002")
    assert (Invoice.objects.filter(account=account, status="paid").count(), status(account)[0]) == (2, "suspended")
    # Nor by the daily pass: only staff lift what staff decided.
    assert daily_pass(OCTOBER_DUE + dt.timedelta(days=2))["recovered"] == 0
    assert status(account) == ("suspended", False, "fraud review")
    # Staff's own change is an event like any other.
    assert status_events(account) == [
        {
            "previous_status": "active",
            "account_status": "past_due",
            "reason": "invoice unpaid past its due date",
            "invoice_id": "INV-2026-000001",
        },
        {"previous_status": "past_due", "account_status": "suspended", "reason": "fraud review", "invoice_id": None},
    ]

    account_reactivate(account=account, actor=staff)
    assert status(account) == ("active", False, "reactivated by staff")
    assert status_events(account)[-1]["reason"] == "reactivated by staff"


def test_a_plan_change_does_not_reactivate_a_suspended_account(books, plan):
    account, _, _ = books
    daily_pass(OCTOBER_DUE + SECOND)
    daily_pass(OCTOBER_DUE + dt.timedelta(days=30))
    assert status(account)[0] == "suspended"
    events_before = status_events(account)

    live = Subscription.objects.get(account=account, status="active")
    clock.clock_set(at=dt.datetime(2027, 1, 4, 10, tzinfo=UTC))
    changed = subscription_change_plan(
        subscription=live, plan_version=plan("messaging-enterprise"), at=dt.datetime(2027, 1, 4, 10, tzinfo=UTC)
    )
    assert (changed.status, changed.plan_version.plan.code) == ("active", "messaging-enterprise")
    assert status(account) == ("suspended", True, "INV-2026-000001 unpaid 30 days past its due date")
    assert status_events(account) == events_before

    # And the daily pass keeps it suspended: October (and now November) are still unpaid.
    daily_pass(dt.datetime(2027, 1, 5, tzinfo=UTC))
    assert status(account)[0] == "suspended"
