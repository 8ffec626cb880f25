"""Trials: staff extend a running trial (audited, announced in the outbox), the customer is e-mailed three days
before a trial ends what will be charged (once, through a real local SMTP server, with a link to add a card when
none is on file), and a trial that ends without a payment method follows the configured rule."""

import datetime as dt

import pytest
import time_machine

from accounts.models import Account
from billing.models import EmailDelivery, PaymentProfile, Subscription
from billing.services.lifecycle import lifecycle_update
from billing.services.trials import (
    ERR_NOT_LATER,
    ERR_NOT_TRIALING,
    ERR_REASON,
    ERR_TOO_LONG,
    REASON_CANCEL,
    REASON_INVOICE,
    trial_extend,
    trials_notify_due,
)
from common.errors import BillingError
from common.models import OutboxEvent
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import JAN_1, UTC, subscribe
from tests.billing.test_invoice_emails import smtp  # noqa: F401 - the real local SMTP server fixture
from tests.disputes.factories import billing_staff
from tests.tenants.factories import TenantFactory

pytestmark = pytest.mark.django_db

NOV_2 = dt.datetime(2026, 11, 2, tzinfo=UTC)
NOV_16 = dt.datetime(2026, 11, 16, tzinfo=UTC)  # Startup's 14-day trial from November 2 ends here (exclusive)
NOV_30 = dt.datetime(2026, 11, 30, tzinfo=UTC)


def trialing(plan, name="Vandelay", code="messaging-startup"):
    account = AccountFactory(name=name, billing_emails=[f"ap@{name.lower()}.example"])
    subscribe(account, plan(code), started_at=NOV_2, at=NOV_2)
    return account


def live(account) -> Subscription:
    return account.subscriptions.exclude(status=Subscription.Status.CANCELLED).get()


def delivered(smtp, capture, action):  # noqa: F811
    before = len(smtp.messages())
    with capture(execute=True):
        result = action()
    return result, smtp.messages()[before:]


def text_of(message) -> str:
    return " ".join(message.get_body(preferencelist=("plain",)).get_content().split())


# Extending ----------------------------------------------------------------------------------------------


def test_billing_staff_extend_a_running_trial_with_a_reason(plan):
    account = trialing(plan)
    staff = billing_staff()
    subscription = live(account)
    assert subscription.trial_end == NOV_16

    with time_machine.travel(dt.datetime(2026, 11, 10, tzinfo=UTC), tick=False):
        with pytest.raises(BillingError) as no_reason:
            trial_extend(subscription=subscription, until=NOV_30, actor=staff, reason="")
        assert no_reason.value.message == ERR_REASON
        with pytest.raises(BillingError) as earlier:
            trial_extend(subscription=subscription, until=NOV_16, actor=staff, reason="Security review")
        assert earlier.value.message == ERR_NOT_LATER.format(current="16 November 2026, 00:00 UTC")
        with pytest.raises(BillingError) as too_long:
            trial_extend(
                subscription=subscription, until=NOV_2 + dt.timedelta(days=366), actor=staff, reason="Security review"
            )
        # 365 days from November 2, 2026.
        assert too_long.value.message == ERR_TOO_LONG.format(latest="2 November 2027, 00:00 UTC")

        extended = trial_extend(subscription=subscription, until=NOV_30, actor=staff, reason="Security review")

    assert (extended.status, extended.trial_end) == (Subscription.Status.TRIALING, NOV_30)
    row = extended.history.first()
    assert (row.history_user, row.history_change_reason, row.trial_end) == (
        staff,
        "trial extended to 2026-11-30T00:00:00Z: Security review",
        NOV_30,
    )
    assert row.history_date == dt.datetime(2026, 11, 10, tzinfo=UTC)
    [event] = OutboxEvent.objects.filter(type="billing.subscription_updated", dedup_key__startswith="trial_extend:")
    assert event.dedup_key == f"trial_extend:{row.history_id}"
    assert event.payload["data"] == {
        "account_id": account.public_id,
        "subscription_id": subscription.public_id,
        "plan": {"code": "messaging-startup", "name": "Startup", "version": 1, "interval": "month"},
        "status": "trialing",
        "trial_end": "2026-11-30T00:00:00Z",
        "previous_trial_end": "2026-11-16T00:00:00Z",
        "effective_date": "2026-11-10T00:00:00Z",
        "cancel_at_period_end": False,
        "reason": "Security review",
    }
    # The trial ends at its new end: on November 16 it still runs.
    with time_machine.travel(NOV_16, tick=False):
        lifecycle_update(now=NOV_16)
    extended.refresh_from_db()
    assert extended.status == Subscription.Status.TRIALING


def test_a_subscription_that_is_not_trialing_cannot_be_extended(plan):
    account = AccountFactory(name="Paying")
    subscription = subscribe(account, plan("messaging-business"), started_at=JAN_1)  # trial over long ago
    assert subscription.status == Subscription.Status.ACTIVE

    with pytest.raises(BillingError) as refused:
        trial_extend(subscription=subscription, until=NOV_30, actor=billing_staff(), reason="Goodwill", now=NOV_2)

    assert refused.value.message == ERR_NOT_TRIALING.format(subscription=subscription.public_id, status="active")
    assert (refused.value.code, refused.value.status) == ("not_trialing", 409)
    subscription.refresh_from_db()
    assert subscription.trial_end == dt.datetime(2026, 1, 31, tzinfo=UTC)
    assert not OutboxEvent.objects.filter(dedup_key__startswith="trial_extend:").exists()


# The "trial ending" e-mail ------------------------------------------------------------------------------


STARTUP_CHARGES = (
    "Each month includes 3 active tenants, up to 10 master partners, 5,000 messages and 1 GB-month of storage; "
    "beyond that, active tenants cost USD 29.00 per tenant-month, messages USD 0.05 each and storage USD 2.00 "
    "per GB-month."
)


def test_the_trial_ending_email_goes_three_days_before_once_with_what_will_be_charged(
    plan,
    settings,
    smtp,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    settings.STRIPE_TEST_SECRET_KEY = "sk_test_configured"  # Stripe is configured; Vandelay has no card
    vandelay = trialing(plan)
    for number in range(4):  # Startup includes 3 active tenants
        TenantFactory(account=vandelay, public_id=f"ten_vandelay_{number}", activated_at=NOV_2)
    carded = trialing(plan, name="Carded")
    PaymentProfile.objects.create(account=carded, stripe_customer_id="cus_1", payment_method_id="pm_1")
    capture = django_capture_on_commit_callbacks
    three_days_before = NOV_16 - dt.timedelta(days=3)  # November 13, 00:00

    with time_machine.travel(three_days_before - dt.timedelta(minutes=1), tick=False):
        count, mails = delivered(
            smtp, capture, lambda: trials_notify_due(now=three_days_before - dt.timedelta(minutes=1))
        )
    assert (count, mails) == (0, [])

    with time_machine.travel(three_days_before, tick=False):
        count, mails = delivered(smtp, capture, lambda: trials_notify_due(now=three_days_before))
    assert count == 2
    by_address = {message["To"]: message for message in mails}
    mail = by_address["ap@vandelay.example"]
    assert " ".join(mail["Subject"].split()) == "Your Startup trial ends on 16 November 2026, 00:00 UTC"
    body = text_of(mail)
    assert "Your free trial of Startup ends on 16 November 2026, 00:00 UTC." in body
    assert "- Base fee: USD 99.00 a month, billed monthly." in body
    assert f"- {STARTUP_CHARGES}" in body
    # December, the first full month: the base fee 99.00 and the fourth tenant, 1 × 29.00 = 128.00.
    assert (
        "- Estimate: USD 128.00 for December 2026, the first full month, before tax and before usage beyond what is "
        "included (with the account's tenants and stored data as they are now)." in body
    )
    assert "There is no card on file yet. Add one so invoices are paid automatically" in body
    assert "/portal/billing/" in body
    html = mail.get_body(preferencelist=("html",)).get_content()
    assert "Add a card" in html and "USD 99.00 a month" in html
    carded_body = text_of(by_address["ap@carded.example"])
    assert "no card on file" not in carded_body
    assert "- Estimate: USD 99.00 for December 2026, the first full month" in carded_body
    delivery = EmailDelivery.objects.get(account=vandelay, kind="trial_ending")
    assert (delivery.context["first_month"], delivery.context["first_month_estimate"]) == ("December 2026", "128.00")

    with time_machine.travel(NOV_16 - dt.timedelta(days=1), tick=False):
        count, mails = delivered(smtp, capture, lambda: trials_notify_due(now=NOV_16 - dt.timedelta(days=1)))
    assert (count, mails) == (0, [])


def test_without_stripe_the_email_asks_for_no_card_and_an_extended_trial_is_announced_again(plan):
    account = trialing(plan)
    three_days_before = NOV_16 - dt.timedelta(days=3)
    assert trials_notify_due(now=three_days_before) == 1
    delivery = EmailDelivery.objects.get(account=account, kind="trial_ending")
    assert delivery.context["card_needed"] is False
    assert delivery.context["charges_text"] == STARTUP_CHARGES

    trial_extend(subscription=live(account), until=NOV_30, actor=billing_staff(), reason="Pilot", now=three_days_before)
    assert trials_notify_due(now=NOV_30 - dt.timedelta(days=3)) == 1
    assert EmailDelivery.objects.filter(account=account, kind="trial_ending").count() == 2


# A trial that ends without a payment method -------------------------------------------------------------


@pytest.mark.parametrize("rule", ["invoice", "cancel"])
def test_a_trial_ending_without_a_payment_method_follows_the_setting(plan, settings, rule):
    settings.STRIPE_TEST_SECRET_KEY = "sk_test_configured"
    settings.SUBSCRIPTIONS_TRIAL_END_WITHOUT_PAYMENT_METHOD = rule
    account = trialing(plan)
    carded = trialing(plan, name="Carded")
    PaymentProfile.objects.create(account=carded, stripe_customer_id="cus_1", payment_method_id="pm_1")
    subscription, with_card = live(account), live(carded)

    with time_machine.travel(NOV_16, tick=False):
        changes = lifecycle_update(now=NOV_16)

    subscription.refresh_from_db()
    account.refresh_from_db()
    if rule == "invoice":
        assert (changes["trials_ended"], changes["trials_cancelled"]) == (2, 0)
        assert (subscription.status, account.status) == (Subscription.Status.ACTIVE, Account.Status.ACTIVE)
        assert subscription.history.first().history_change_reason == REASON_INVOICE
    else:
        assert (changes["trials_ended"], changes["trials_cancelled"]) == (1, 1)
        assert (subscription.status, subscription.ended_at) == (Subscription.Status.CANCELLED, NOV_16)
        assert account.status == Account.Status.CANCELLED
        assert subscription.history.first().history_change_reason == REASON_CANCEL
        assert account.status_reason == REASON_CANCEL
        [event] = OutboxEvent.objects.filter(dedup_key=f"trial_end_cancel:{subscription.pk}")
        assert event.payload["data"]["effective_date"] == "2026-11-16T00:00:00Z"
        [mail] = EmailDelivery.objects.filter(account=account, kind="subscription")
        assert (mail.context["event"], mail.context["end_date"]) == ("cancelled", "2026-11-16")
    # An account with a card simply starts paying.
    with_card.refresh_from_db()
    assert with_card.status == Subscription.Status.ACTIVE
    assert with_card.history.first().history_change_reason == "trial ended"


def test_without_stripe_a_trial_simply_ends(plan, settings):
    settings.SUBSCRIPTIONS_TRIAL_END_WITHOUT_PAYMENT_METHOD = "cancel"
    account = trialing(plan)

    with time_machine.travel(NOV_16, tick=False):
        lifecycle_update(now=NOV_16)

    subscription = live(account)
    assert subscription.status == Subscription.Status.ACTIVE
    assert subscription.history.first().history_change_reason == "trial ended"
