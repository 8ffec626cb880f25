"""Plan change and cancellation e-mails, through a real local SMTP server: every step of a plan change reaches
all the account's billing contacts with a subject saying what happened, the text and HTML bodies say the same,
and the outbox holds exactly one ``billing.subscription_updated`` per applied change."""

import datetime as dt
from decimal import Decimal as D

import pytest
import time_machine

from accounts.models import AccountUser
from billing.models import EmailDelivery, PlanChangeRequest, Subscription
from billing.services.lifecycle import lifecycle_update
from billing.services.plan_changes import (
    plan_change_approve,
    plan_change_cancel,
    plan_change_decline,
    plan_change_request,
    plan_change_staff,
)
from billing.services.subscriptions import subscription_cancel
from common.models import OutboxEvent
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import JAN_1, subscribe
from tests.billing.test_invoice_emails import smtp  # noqa: F401 - the real local SMTP server fixture
from tests.disputes.factories import billing_staff, portal_user
from tests.tenants.factories import TenantFactory

pytestmark = pytest.mark.django_db
UTC = dt.UTC
NOV_16 = dt.datetime(2026, 11, 16, tzinfo=UTC)
DEC_1 = dt.datetime(2026, 12, 1, tzinfo=UTC)
CONTACTS = ["ap@vandelay.example", "cfo@vandelay.example"]
PORTAL = PlanChangeRequest.Channel.PORTAL


@pytest.fixture
def account(plan):
    account = AccountFactory(name="Vandelay", billing_emails=CONTACTS, tax_rate=D("0"))
    subscribe(account, plan("messaging-business"), started_at=JAN_1)
    for n in range(3):
        TenantFactory(account=account, public_id=f"ten_vandelay_{n}", activated_at=JAN_1)
    return account


@pytest.fixture
def send(smtp, django_capture_on_commit_callbacks):  # noqa: F811
    """Run ``action`` and return its result and the messages the SMTP server received meanwhile."""

    def run(action):
        before = len(smtp.messages())
        with django_capture_on_commit_callbacks(execute=True):
            result = action()
        return result, smtp.messages()[before:]

    return run


def subject(message) -> str:
    return " ".join(message["Subject"].split())


def text(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def html(message) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


def recipients(message) -> list[str]:
    return [address.strip() for address in message["To"].split(",")]


def subscription_events(account) -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(type="billing.subscription_updated", account_id=account.pk).order_by("pk"))


def test_a_downgrade_is_mailed_when_asked_approved_and_applied(account, plan, send):
    owner = portal_user(account, AccountUser.Role.OWNER)
    events_before = len(subscription_events(account))
    with time_machine.travel(NOV_16, tick=False):
        change, (asked,) = send(
            lambda: plan_change_request(
                account=account,
                to_version=plan("messaging-startup"),
                timing="now",
                actor=owner,
                channel=PORTAL,
                note="We are scaling down.",
            )
        )
    chg = change.public_id
    assert recipients(asked) == CONTACTS
    assert subject(asked) == f"We received your request to move to Startup ({chg})"
    body = text(asked)
    assert "asked to move the account from Business to Startup (now (prorated))." in body
    assert "Our billing team reviews the request" in body
    # The figures when asked: Business 299.00 for November as things stand; Business Nov 1–15 (149.50) and
    # Startup Nov 16–30 (49.50) with the change: 199.00.
    assert "Preview when requested: 299.00 USD on the current plan, 199.00 USD with the change (before tax)." in body
    assert "299.00 → 199.00 USD" in html(asked)

    with time_machine.travel(NOV_16 + dt.timedelta(hours=3), tick=False):
        change, (approved, applied) = send(
            lambda: plan_change_approve(change=change, actor=billing_staff(), note="Welcome to Startup.")
        )
    assert [subject(approved), subject(applied)] == [
        f"Your plan change to Startup was approved ({chg})",
        f"You are now on Startup ({chg})",
    ]
    assert recipients(approved) == recipients(applied) == CONTACTS
    assert "Welcome to Startup." in text(approved) and "Welcome to Startup." in html(approved)
    assert "The account is now on Startup (from Business), in force since 2026-11-16." in text(applied)
    assert "You are now on Startup" in html(applied)
    # One event for the one applied change; the account's status did not move, so nothing else.
    (update,) = subscription_events(account)[events_before:]
    new = account.subscriptions.exclude(status=Subscription.Status.CANCELLED).get()
    assert update.dedup_key == f"plan_change:{change.pk}"
    assert update.payload["data"]["subscription_id"] == new.public_id
    assert update.payload["data"]["change_id"] == chg
    assert update.payload["data"]["status"] == "active"
    assert EmailDelivery.objects.filter(account=account, kind="plan_change").count() == 3


def test_a_declined_change_is_mailed_with_its_reason(account, plan, send):
    with time_machine.travel(NOV_16, tick=False):
        change = plan_change_request(
            account=account,
            to_version=plan("messaging-startup"),
            timing="period_end",
            actor=portal_user(account),
            channel=PORTAL,
        )
        change, (declined,) = send(
            lambda: plan_change_decline(change=change, actor=billing_staff(), reason="Your contract runs to March.")
        )
    assert recipients(declined) == CONTACTS
    assert subject(declined) == f"Your plan change to Startup was declined ({change.public_id})"
    assert "the account stays on Business." in text(declined)
    assert "Why: Your contract runs to March." in text(declined)
    assert "Why: Your contract runs to March." in html(declined)
    assert [e.dedup_key for e in subscription_events(account) if e.dedup_key.startswith("plan_change")] == []


def test_a_change_at_the_period_end_is_mailed_when_scheduled_and_when_applied(account, plan, send):
    with time_machine.travel(NOV_16, tick=False):
        change, (asked, scheduled) = send(
            lambda: plan_change_request(
                account=account,
                to_version=plan("messaging-enterprise"),
                timing="period_end",
                actor=portal_user(account),
                channel=PORTAL,
            )
        )
    chg = change.public_id
    assert [subject(asked), subject(scheduled)] == [
        f"Your move to Enterprise ({chg})",
        f"Your plan changes to Enterprise on 2026-12-01 ({chg})",
    ]
    assert "The account moves from Business to Enterprise on 2026-12-01" in text(scheduled)
    events_before = len(subscription_events(account))
    at = DEC_1 + dt.timedelta(minutes=5)
    with time_machine.travel(at, tick=False):
        _, mails = send(lambda: lifecycle_update(now=at))
    assert [subject(m) for m in mails] == [f"You are now on Enterprise ({chg})"]
    assert len(subscription_events(account)[events_before:]) == 1
    # Running the step again applies (and mails) nothing more.
    with time_machine.travel(at + dt.timedelta(hours=1), tick=False):
        _, again = send(lambda: lifecycle_update(now=at + dt.timedelta(hours=1)))
    assert again == [] and len(subscription_events(account)[events_before:]) == 1


def test_withdrawals_are_mailed_with_why(account, plan, send):
    owner = portal_user(account)
    with time_machine.travel(NOV_16, tick=False):
        change = plan_change_request(
            account=account, to_version=plan("messaging-startup"), timing="now", actor=owner, channel=PORTAL
        )
        change, (withdrawn,) = send(lambda: plan_change_cancel(change=change, actor=owner))
        assert subject(withdrawn) == f"Your plan change to Startup was withdrawn ({change.public_id})"
        assert "was withdrawn; nothing changed." in text(withdrawn) and "Why:" not in text(withdrawn)

        again = plan_change_request(
            account=account, to_version=plan("messaging-startup"), timing="now", actor=owner, channel=PORTAL
        )
        subscription = account.subscriptions.exclude(status=Subscription.Status.CANCELLED).get()
        _, (superseded, cancellation) = send(
            lambda: subscription_cancel(subscription=subscription, at_period_end=True, actor=owner)
        )
    assert subject(superseded) == f"Your plan change to Startup was withdrawn ({again.public_id})"
    assert "Why: The subscription is cancelled." in text(superseded)
    assert recipients(cancellation) == CONTACTS
    assert subject(cancellation) == f"Your Business subscription ends on 2026-12-01 ({subscription.public_id})"
    assert "it runs, and is billed, to the end of the period it is in, and ends on 2026-12-01" in text(cancellation)
    assert "Your subscription ends on 2026-12-01" in html(cancellation)


def test_an_immediate_cancellation_is_mailed(account, send):
    subscription = account.subscriptions.get()
    with time_machine.travel(NOV_16, tick=False):
        _, (cancelled,) = send(
            lambda: subscription_cancel(subscription=subscription, at_period_end=False, actor=billing_staff())
        )
    assert subject(cancelled) == f"Your Business subscription is cancelled ({subscription.public_id})"
    assert "is cancelled as of 2026-11-16" in text(cancelled)


def test_a_staff_change_is_mailed_once_applied(account, plan, send):
    with time_machine.travel(NOV_16, tick=False):
        change, (applied,) = send(
            lambda: plan_change_staff(
                subscription=account.subscriptions.get(),
                to_version=plan("messaging-enterprise"),
                timing="now",
                actor=billing_staff(),
                note="Asked by phone.",
            )
        )
    assert subject(applied) == f"You are now on Enterprise ({change.public_id})"
