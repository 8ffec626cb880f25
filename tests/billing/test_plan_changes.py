"""Plan changes: previewed by the rating engine, requested, approved or declined by billing staff, applied now or
at the period's end; audited, e-mailed through a real local SMTP server, one ``billing.subscription_updated``
per applied change; an account's status never moves with its plan."""

import datetime as dt
from decimal import Decimal as D

import pytest
import time_machine

from accounts.models import Account, AccountUser
from accounts.services import account_set_status
from billing.models import Contract, PlanChangeRequest, Subscription
from billing.services.lifecycle import lifecycle_update
from billing.services.plan_changes import (
    ERR_APPROVE_DENIED,
    ERR_CANCELLATION_PENDING,
    ERR_CHANGE_PENDING,
    ERR_REASON,
    plan_change_approve,
    plan_change_cancel,
    plan_change_decline,
    plan_change_preview,
    plan_change_request,
    plan_change_staff,
)
from billing.services.subscriptions import subscription_cancel, subscription_change_plan
from common.errors import BillingError
from common.models import OutboxEvent
from tests.accounts.factories import AccountFactory, StaffUserFactory
from tests.billing.cycle import JAN_1, event, ingest, subscribe
from tests.billing.test_invoice_emails import smtp  # noqa: F401 - the real local SMTP server fixture
from tests.disputes.factories import billing_staff, portal_user
from tests.tenants.factories import MasterPartnerFactory, TenantFactory

pytestmark = pytest.mark.django_db
UTC = dt.UTC
NOV_16 = dt.datetime(2026, 11, 16, tzinfo=UTC)  # November has 30 days: 15 behind, 15 ahead
CONTACTS = ["ap@vandelay.example"]
PORTAL = PlanChangeRequest.Channel.PORTAL


def account_on(plan, code, *, tenants=3, partners=0, name="Vandelay"):
    account = AccountFactory(name=name, billing_emails=CONTACTS, tax_rate=D("0"))
    subscribe(account, plan(code), started_at=JAN_1)
    for n in range(tenants):
        TenantFactory(account=account, public_id=f"ten_{name.lower()}_{n}", activated_at=JAN_1)
    for n in range(partners):
        MasterPartnerFactory(account=account, public_id=f"prt_{name.lower()}_{n}", activated_at=JAN_1)
    return account


def live(account) -> Subscription:
    return account.subscriptions.exclude(status=Subscription.Status.CANCELLED).get()


def updates(account):
    """The plan changes' events (subscribing recorded the account's status change already)."""
    return list(
        OutboxEvent.objects.filter(
            type="billing.subscription_updated", account_id=account.pk, dedup_key__startswith="plan_change:"
        )
    )


def delivered(smtp, capture, action):  # noqa: F811
    before = len(smtp.messages())
    with capture(execute=True):
        result = action()
    return result, smtp.messages()[before:]


def subjects(messages):
    return [" ".join(m["Subject"].split()) for m in messages]


def test_the_preview_prorates_both_base_fees_by_the_rating_engine(plan):
    account = account_on(plan, "messaging-startup")
    with time_machine.travel(NOV_16, tick=False):
        preview = plan_change_preview(subscription=live(account), to_version=plan("messaging-business"), timing="now")
    # Startup 99.00 for the whole month as things stand; with the change Startup for Nov 1–15 (99 × 15/30 = 49.50)
    # and Business for Nov 16–30 (299 × 15/30 = 149.50): 199.00. Three tenants are included by both plans.
    assert preview.current_subtotal == D("99.00")
    assert preview.new_subtotal == D("199.00")
    assert preview.difference == D("100.00")
    assert preview.direction == "upgrade" and preview.allowed
    base_fees = [(line.description, line.amount, line.first_day, line.last_day) for line in preview.lines]
    base_fees = [fee for fee, line in zip(base_fees, preview.lines, strict=True) if line.kind == "base_fee"]
    assert len(base_fees) == 2
    assert base_fees[0][1:] == (D("49.50"), dt.date(2026, 11, 1), dt.date(2026, 11, 15))
    assert base_fees[1][1:] == (D("149.50"), dt.date(2026, 11, 16), dt.date(2026, 11, 30))


def test_a_downgrade_the_usage_does_not_fit_is_refused_and_overage_is_shown(plan):
    crowded = account_on(plan, "messaging-business", tenants=3, partners=12, name="Crowded")
    with time_machine.travel(NOV_16, tick=False):
        preview = plan_change_preview(subscription=live(crowded), to_version=plan("messaging-startup"), timing="now")
        assert not preview.allowed
        assert preview.refusals == ["Master partners: 12 this month, and Startup allows 10; remove 2 before moving."]
        owner = portal_user(crowded, AccountUser.Role.OWNER)
        with pytest.raises(BillingError) as refused:
            plan_change_request(
                account=crowded, to_version=plan("messaging-startup"), timing="now", actor=owner, channel=PORTAL
            )
    assert refused.value.field == "plan_version" and refused.value.status == 400
    assert not PlanChangeRequest.objects.exists()

    busy = account_on(plan, "messaging-business", tenants=7, name="Busy")
    with time_machine.travel(NOV_16, tick=False):
        preview = plan_change_preview(subscription=live(busy), to_version=plan("messaging-startup"), timing="now")
    # Seven tenants on Startup: 4 above the 3 included at 29.00 each = 116.00 a month.
    assert preview.allowed
    assert preview.overage == [
        "Active tenants: 7 so far this month, 4 above the 3 Startup includes, billed as overage "
        "(USD 116.00 for a whole month at this usage)."
    ]


def test_an_owners_downgrade_waits_and_billing_staff_approve_it(
    plan,
    smtp,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    account = account_on(plan, "messaging-business")
    owner = portal_user(account, AccountUser.Role.OWNER)
    staff = billing_staff()
    capture = django_capture_on_commit_callbacks
    old = live(account)
    with time_machine.travel(NOV_16, tick=False):
        change, mails = delivered(
            smtp,
            capture,
            lambda: plan_change_request(
                account=account,
                to_version=plan("messaging-startup"),
                timing="now",
                actor=owner,
                channel=PORTAL,
                note="We are scaling down.",
            ),
        )
    assert change.state == PlanChangeRequest.State.PENDING and change.needs_approval
    assert change.direction == "downgrade"
    assert subjects(mails) == [f"We received your request to move to Startup ({change.public_id})"]
    assert mails[0]["To"] == CONTACTS[0]
    assert live(account).pk == old.pk and updates(account) == []

    approved_at = NOV_16 + dt.timedelta(hours=9)
    with time_machine.travel(approved_at, tick=False):
        change, mails = delivered(smtp, capture, lambda: plan_change_approve(change=change, actor=staff, note="OK"))
    assert change.state == PlanChangeRequest.State.APPLIED
    assert change.effective_at == approved_at and change.decided_by == staff
    assert subjects(mails) == [
        f"Your plan change to Startup was approved ({change.public_id})",
        f"You are now on Startup ({change.public_id})",
    ]
    new = live(account)
    assert new.plan_version == plan("messaging-startup") and new.started_at == approved_at
    old.refresh_from_db()
    assert old.status == Subscription.Status.CANCELLED and old.ended_at == approved_at
    (update,) = updates(account)
    assert update.payload["data"]["old_plan"]["code"] == "messaging-business"
    assert update.payload["data"]["new_plan"]["code"] == "messaging-startup"
    assert update.payload["data"]["effective_date"] == "2026-11-16T09:00:00Z"
    assert update.payload["data"]["cancel_at_period_end"] is False
    reasons = list(change.history.order_by("history_id").values_list("history_change_reason", flat=True))
    assert reasons[0].startswith("requested") and "approved" in reasons and reasons[-1].startswith("applied")
    assert change.history.filter(history_user=staff).exists()


def test_a_declined_request_changes_nothing_and_says_why(
    plan,
    smtp,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    account = account_on(plan, "messaging-business")
    owner = portal_user(account, AccountUser.Role.ADMIN)
    staff = billing_staff()
    old = live(account)
    with time_machine.travel(NOV_16, tick=False):
        change = plan_change_request(
            account=account, to_version=plan("messaging-startup"), timing="period_end", actor=owner, channel=PORTAL
        )
        with pytest.raises(BillingError) as no_reason:
            plan_change_decline(change=change, actor=staff, reason="  ")
        assert str(no_reason.value) == ERR_REASON
        change, mails = delivered(
            smtp,
            django_capture_on_commit_callbacks,
            lambda: plan_change_decline(change=change, actor=staff, reason="Your contract runs to March."),
        )
    assert change.state == PlanChangeRequest.State.DECLINED
    assert subjects(mails) == [f"Your plan change to Startup was declined ({change.public_id})"]
    assert "Why: Your contract runs to March." in mails[0].get_body(preferencelist=("plain",)).get_content()
    assert live(account).pk == old.pk and updates(account) == []


def test_staff_without_the_permission_cannot_approve(plan):
    account = account_on(plan, "messaging-business")
    with time_machine.travel(NOV_16, tick=False):
        change = plan_change_request(
            account=account,
            to_version=plan("messaging-startup"),
            timing="now",
            actor=portal_user(account),
            channel=PORTAL,
        )
        with pytest.raises(BillingError) as denied:
            plan_change_approve(change=change, actor=StaffUserFactory(username="nobody"))
    assert denied.value.status == 403
    assert str(denied.value) == ERR_APPROVE_DENIED.format(change=change.public_id)
    change.refresh_from_db()
    assert change.state == PlanChangeRequest.State.PENDING


def test_upgrades_apply_at_once_unless_the_setting_says_they_wait(plan, settings):
    account = account_on(plan, "messaging-startup")
    with time_machine.travel(NOV_16, tick=False):
        change = plan_change_request(
            account=account,
            to_version=plan("messaging-business"),
            timing="now",
            actor=portal_user(account),
            channel=PORTAL,
        )
    assert change.state == PlanChangeRequest.State.APPLIED and not change.needs_approval
    assert live(account).plan_version == plan("messaging-business")
    assert len(updates(account)) == 1

    settings.SUBSCRIPTIONS_UPGRADES_APPLY_AT_ONCE = False
    other = account_on(plan, "messaging-startup", name="Waiting")
    with time_machine.travel(NOV_16, tick=False):
        change = plan_change_request(
            account=other,
            to_version=plan("messaging-business"),
            timing="now",
            actor=portal_user(other),
            channel=PORTAL,
        )
        with pytest.raises(BillingError) as twice:
            plan_change_request(
                account=other,
                to_version=plan("messaging-enterprise"),
                timing="now",
                actor=portal_user(other, AccountUser.Role.ADMIN),
                channel=PORTAL,
            )
    assert change.state == PlanChangeRequest.State.PENDING
    assert twice.value.status == 409 and twice.value.code == "change_pending"
    assert str(twice.value) == ERR_CHANGE_PENDING.format(change=change.public_id, state="waiting for approval")


def test_a_change_at_the_period_end_is_scheduled_and_applied_by_the_lifecycle(plan):
    account = account_on(plan, "messaging-startup")
    with time_machine.travel(NOV_16, tick=False):
        change = plan_change_request(
            account=account,
            to_version=plan("messaging-business"),
            timing="period_end",
            actor=portal_user(account),
            channel=PORTAL,
        )
    dec_1 = dt.datetime(2026, 12, 1, tzinfo=UTC)
    assert change.state == PlanChangeRequest.State.SCHEDULED and change.effective_at == dec_1
    with time_machine.travel(dec_1 + dt.timedelta(minutes=5), tick=False):
        lifecycle_update(now=dec_1 + dt.timedelta(minutes=5))
    change.refresh_from_db()
    assert change.state == PlanChangeRequest.State.APPLIED
    new = live(account)
    assert new.plan_version == plan("messaging-business") and new.started_at == dec_1
    assert new.current_period_start == dec_1 and new.current_period_end == dt.datetime(2027, 1, 1, tzinfo=UTC)
    assert len(updates(account)) == 1


def test_a_withdrawn_request_changes_nothing(plan):
    account = account_on(plan, "messaging-business")
    owner = portal_user(account)
    with time_machine.travel(NOV_16, tick=False):
        change = plan_change_request(
            account=account, to_version=plan("messaging-startup"), timing="now", actor=owner, channel=PORTAL
        )
        change = plan_change_cancel(change=change, actor=owner)
    assert change.state == PlanChangeRequest.State.CANCELLED
    assert live(account).plan_version == plan("messaging-business") and updates(account) == []


@pytest.mark.parametrize("status", [Account.Status.SUSPENDED, Account.Status.PAST_DUE])
def test_a_plan_change_leaves_a_suspended_or_past_due_account_as_it_is(plan, status):
    account = account_on(plan, "messaging-startup")
    account_set_status(account=account, status=status, reason="overdue invoice")
    staff = billing_staff()
    with time_machine.travel(NOV_16, tick=False):
        change = plan_change_staff(
            subscription=live(account),
            to_version=plan("messaging-business"),
            timing="now",
            actor=staff,
            note="Customer asked by phone.",
        )
    assert change.state == PlanChangeRequest.State.APPLIED and change.channel == "admin"
    account.refresh_from_db()
    assert account.status == status
    assert live(account).plan_version == plan("messaging-business")


def test_a_change_at_the_period_end_previews_the_first_month_on_the_new_plan(plan):
    account = account_on(plan, "messaging-startup")
    ingest(
        account,
        [
            event("m1", "ten_vandelay_0", "messages", 4000, "2026-11-05T10:00:00Z"),
            event("m2", "ten_vandelay_0", "messages", 20000, "2026-11-20T10:00:00Z"),
        ],
        now=NOV_16 + dt.timedelta(days=5),
    )
    with time_machine.travel(NOV_16 + dt.timedelta(days=5), tick=False):
        preview = plan_change_preview(
            subscription=live(account), to_version=plan("messaging-business"), timing="period_end"
        )
    # At the period's end: December on Business (its base fee 299.00, 3 tenants included), nothing used yet.
    assert preview.effective_at == dt.datetime(2026, 12, 1, tzinfo=UTC)
    assert preview.new_subtotal == D("299.00") and preview.current_subtotal == D("99.00")


def test_a_trialing_account_keeps_what_is_left_of_its_trial(plan):
    account = AccountFactory(name="Trialist", billing_emails=CONTACTS, tax_rate=D("0"))
    nov_10 = dt.datetime(2026, 11, 10, tzinfo=UTC)
    trial = subscribe(account, plan("messaging-startup"), started_at=nov_10, at=nov_10)  # 14 days: to Nov 24
    with time_machine.travel(NOV_16, tick=False):
        change = plan_change_request(
            account=account,
            to_version=plan("messaging-business"),
            timing="now",
            actor=portal_user(account),
            channel=PORTAL,
        )
    assert change.state == PlanChangeRequest.State.APPLIED
    new = live(account)
    # Business's own 30 days do not start again: the trial still ends on Nov 24.
    assert (new.status, new.trial_end) == ("trialing", dt.datetime(2026, 11, 24, tzinfo=UTC))
    assert new.trial_end == trial.trial_end
    account.refresh_from_db()
    assert account.status == Account.Status.TRIALING


def test_a_past_due_subscription_is_past_due_on_the_new_plan(plan):
    account = account_on(plan, "messaging-startup")
    Subscription.objects.filter(pk=live(account).pk).update(status=Subscription.Status.PAST_DUE)
    with time_machine.travel(NOV_16, tick=False):
        plan_change_staff(
            subscription=live(account),
            to_version=plan("messaging-business"),
            timing="now",
            actor=billing_staff(),
            note="",
        )
    assert live(account).status == Subscription.Status.PAST_DUE


def test_no_change_while_a_cancellation_is_pending_and_cancelling_withdraws_an_open_change(plan):
    account = account_on(plan, "messaging-business")
    owner = portal_user(account)
    with time_machine.travel(NOV_16, tick=False):
        waiting = plan_change_request(
            account=account, to_version=plan("messaging-startup"), timing="now", actor=owner, channel=PORTAL
        )
        subscription_cancel(subscription=live(account), at_period_end=True, actor=owner)
        waiting.refresh_from_db()
        assert waiting.state == PlanChangeRequest.State.CANCELLED
        assert waiting.history.latest().history_change_reason == "withdrawn: The subscription is cancelled."
        preview = plan_change_preview(subscription=live(account), to_version=plan("messaging-startup"), timing="now")
        assert preview.refusals == [ERR_CANCELLATION_PENDING.format(date="Dec 1")]
        with pytest.raises(BillingError) as refused:
            plan_change_request(
                account=account, to_version=plan("messaging-startup"), timing="now", actor=owner, channel=PORTAL
            )
        with pytest.raises(BillingError) as direct:
            subscription_change_plan(subscription=live(account), plan_version=plan("messaging-startup"), at=NOV_16)
    assert (refused.value.code, refused.value.status) == ("cancellation_pending", 409)
    assert (direct.value.code, direct.value.status) == ("cancellation_pending", 409)
    assert live(account).plan_version == plan("messaging-business")
    # The cancellation itself is one event: it ends on December 1.
    (cancellation,) = OutboxEvent.objects.filter(type="billing.subscription_updated", dedup_key__startswith="cancel")
    assert cancellation.payload["data"]["cancel_at_period_end"] is True
    assert cancellation.payload["data"]["cancel_at"] == "2026-12-01T00:00:00Z"
    assert updates(account) == []


def test_a_scheduled_change_that_cannot_apply_is_withdrawn_by_the_lifecycle(plan):
    account = account_on(plan, "messaging-startup")
    with time_machine.travel(NOV_16, tick=False):
        change = plan_change_request(
            account=account,
            to_version=plan("messaging-business"),
            timing="period_end",
            actor=portal_user(account),
            channel=PORTAL,
        )
    # Set to end at the same moment by another path than subscription_cancel (a contract's term, say).
    dec_1 = dt.datetime(2026, 12, 1, tzinfo=UTC)
    Subscription.objects.filter(pk=live(account).pk).update(cancel_at=dec_1, cancel_at_period_end=True)
    with time_machine.travel(dec_1 + dt.timedelta(minutes=5), tick=False):
        counts = lifecycle_update(now=dec_1 + dt.timedelta(minutes=5))
    change.refresh_from_db()
    assert (counts["plan_changes_applied"], counts["cancelled"]) == (0, 1)
    assert change.state == PlanChangeRequest.State.CANCELLED
    assert change.history.latest().history_change_reason == (
        "withdrawn: The subscription is set to end on Dec 1, 2026, so it does not move to Business."
    )
    assert not account.subscriptions.filter(plan_version=plan("messaging-business")).exists()
    assert updates(account) == []


def test_changes_of_contract_always_wait(plan):
    # Monthly to yearly: Startup 99.00 a month against Startup (annual) 1,188.00 less 10 % = 1,069.20 a year,
    # 89.10 a month: a downgrade; and a yearly plan is a change of contract.
    account = account_on(plan, "messaging-startup")
    with time_machine.travel(NOV_16, tick=False):
        preview = plan_change_preview(
            subscription=live(account), to_version=plan("messaging-startup-annual"), timing="now"
        )
    assert (preview.direction, preview.needs_approval) == ("downgrade", True)

    # An upgrade waits while a contract is in force, though upgrades apply at once otherwise.
    bound = account_on(plan, "messaging-startup", name="Bound")
    Contract.objects.create(
        account=bound,
        public_id="CT-000001",
        term_start=JAN_1,
        term_months=24,
        term_end=dt.datetime(2028, 1, 1, tzinfo=UTC),
        auto_renew=False,
    )
    with time_machine.travel(NOV_16, tick=False):
        change = plan_change_request(
            account=bound,
            to_version=plan("messaging-business"),
            timing="now",
            actor=portal_user(bound),
            channel=PORTAL,
        )
    assert (change.direction, change.state) == ("upgrade", PlanChangeRequest.State.PENDING)


def test_a_yearly_plans_period_ends_with_the_paid_year(plan):
    account = AccountFactory(name="Yearly", billing_emails=CONTACTS, tax_rate=D("0"))
    mar_1 = dt.datetime(2026, 3, 1, tzinfo=UTC)
    subscribe(account, plan("messaging-business-annual"), started_at=mar_1, at=mar_1)
    with time_machine.travel(NOV_16, tick=False):
        change = plan_change_request(
            account=account,
            to_version=plan("messaging-enterprise-annual"),
            timing="period_end",
            actor=portal_user(account),
            channel=PORTAL,
        )
        # Approved in November: it waits for the end of the year paid for on March 1.
        change = plan_change_approve(change=change, actor=billing_staff())
    assert change.state == PlanChangeRequest.State.SCHEDULED
    assert change.effective_at == dt.datetime(2027, 3, 1, tzinfo=UTC)


def test_staff_asking_for_a_customer_are_recorded_on_the_admin_channel(plan):
    account = account_on(plan, "messaging-business")
    with time_machine.travel(NOV_16, tick=False):
        change = plan_change_request(
            account=account, to_version=plan("messaging-startup"), timing="now", actor=billing_staff(), channel=PORTAL
        )
    assert (change.channel, change.state) == ("admin", PlanChangeRequest.State.PENDING)
    assert change.requested_by_label == "bianca <bianca@ledgerline.example>"


def test_the_stored_preview_is_json_with_money_as_strings(plan):
    account = account_on(plan, "messaging-startup")
    with time_machine.travel(NOV_16, tick=False):
        preview = plan_change_preview(subscription=live(account), to_version=plan("messaging-business"), timing="now")
    data = preview.as_json()
    assert data["from_plan"] == {"code": "messaging-startup", "name": "Startup", "version": 1, "interval": "month"}
    assert (data["current_subtotal"], data["new_subtotal"], data["difference"]) == ("99.00", "199.00", "100.00")
    assert data["effective_at"] == "2026-11-16T00:00:00Z" and data["timing"] == "now"
    base_fees = [line for line in data["lines"] if line["kind"] == "base_fee"]
    assert base_fees == [
        {
            "kind": "base_fee",
            "description": "Startup base fee (Nov 1–Nov 15)",
            "amount": "49.50",
            "first_day": "2026-11-01",
            "last_day": "2026-11-15",
        },
        {
            "kind": "base_fee",
            "description": "Business base fee (Nov 16–Nov 30)",
            "amount": "149.50",
            "first_day": "2026-11-16",
            "last_day": "2026-11-30",
        },
    ]
