"""The admin's plan changes: the requests queue with Approve and Decline (billing staff and Finance admins, nobody
else), and the subscription's "Change plan" page, which previews the figures before staff confirm."""

import datetime as dt
from decimal import Decimal as D

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.test import Client

from accounts.models import AccountUser
from billing.models import PlanChangeRequest, Subscription
from billing.services.plan_changes import plan_change_request
from tests.accounts.factories import AccountFactory, StaffUserFactory
from tests.billing.cycle import JAN_1, subscribe
from tests.disputes.factories import billing_staff, finance_admin, portal_user
from tests.tenants.factories import TenantFactory

pytestmark = pytest.mark.django_db
UTC = dt.UTC
NOV_16 = dt.datetime(2026, 11, 16, tzinfo=UTC)


def staff_with(*codenames):
    user = StaffUserFactory(username="viewer")
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def account(plan):
    account = AccountFactory(name="Vandelay", billing_emails=["ap@vandelay.example"], tax_rate=D("0"))
    subscribe(account, plan("messaging-business"), started_at=JAN_1)
    for n in range(3):
        TenantFactory(account=account, public_id=f"ten_vandelay_{n}", activated_at=JAN_1)
    return account


@pytest.fixture
def pending(account, plan):
    with time_machine.travel(NOV_16, tick=False):
        return plan_change_request(
            account=account,
            to_version=plan("messaging-startup"),
            timing="now",
            actor=portal_user(account, AccountUser.Role.OWNER),
            channel=PlanChangeRequest.Channel.PORTAL,
        )


def page(change) -> str:
    return f"/admin/billing/planchangerequest/{change.pk}/change/"


@pytest.mark.parametrize("who", [billing_staff, finance_admin])
def test_billing_staff_and_finance_approve_a_waiting_change(pending, plan, who):
    client = logged_in(who())
    html = client.get(page(pending)).content.decode()
    assert 'value="Approve"' in html and 'value="Decline"' in html
    # The figures kept when it was asked: Business 299.00 as things stand; Nov 1–15 Business (149.50) and
    # Nov 16–30 Startup (49.50) with the change: 199.00.
    assert "USD 299.00" in html and "USD 199.00" in html
    with time_machine.travel(NOV_16 + dt.timedelta(hours=2), tick=False):
        answer = client.post(page(pending).replace("change/", "approve/"), {"note": "Fine by us."}, follow=True)
    assert f"Plan change {pending.public_id} is applied." in answer.content.decode()
    pending.refresh_from_db()
    assert pending.state == PlanChangeRequest.State.APPLIED and pending.decision_note == "Fine by us."
    live = pending.account.subscriptions.exclude(status=Subscription.Status.CANCELLED).get()
    assert live.plan_version == plan("messaging-startup")


def test_declining_needs_a_reason_and_changes_nothing(pending):
    client = logged_in(billing_staff())
    decline = page(pending).replace("change/", "decline/")
    answer = client.post(decline, {"note": ""}, follow=True)
    assert "Say why the change is declined" in answer.content.decode()
    pending.refresh_from_db()
    assert pending.state == PlanChangeRequest.State.PENDING
    client.post(decline, {"note": "Your usage needs Business."})
    pending.refresh_from_db()
    assert pending.state == PlanChangeRequest.State.DECLINED and pending.decision_note == "Your usage needs Business."


def test_staff_without_the_permission_see_no_buttons_and_are_refused(pending):
    viewer = staff_with("view_planchangerequest")
    client = logged_in(viewer)
    html = client.get(page(pending)).content.decode()
    assert 'value="Approve"' not in html
    assert client.post(page(pending).replace("change/", "approve/")).status_code == 403
    pending.refresh_from_db()
    assert pending.state == PlanChangeRequest.State.PENDING


def test_change_plan_previews_then_applies(account, plan):
    subscription = account.subscriptions.get()
    client = logged_in(billing_staff())
    url = f"/admin/billing/subscription/{subscription.pk}/change-plan/"
    assert "Change plan" in client.get(f"/admin/billing/subscription/{subscription.pk}/change/").content.decode()
    startup = plan("messaging-startup")
    form = {"plan_version": startup.pk, "timing": "now", "note": "Asked by phone."}
    with time_machine.travel(NOV_16, tick=False):
        html = client.post(url, {**form, "_preview": "1"}).content.decode()
        assert 'name="_confirm"' in html and "USD 199.00" in html and "USD 299.00" in html
        # Confirming without the preview of this very choice shows the figures again first.
        unconfirmed = client.post(url, {**form, "_confirm": "1"}, follow=True).content.decode()
        assert "Preview the change first" in unconfirmed
        assert account.subscriptions.exclude(status=Subscription.Status.CANCELLED).get().pk == subscription.pk
        done = client.post(url, {**form, "_confirm": "1", "previewed": f"{startup.pk}:now"}, follow=True)
    assert "is now on Startup" in done.content.decode()
    change = PlanChangeRequest.objects.get()
    assert change.state == PlanChangeRequest.State.APPLIED and change.channel == "admin"
    assert account.subscriptions.exclude(status=Subscription.Status.CANCELLED).get().plan_version == startup


def test_change_plan_is_not_offered_to_staff_without_the_permission(account):
    subscription = account.subscriptions.get()
    viewer = staff_with("view_subscription")
    client = logged_in(viewer)
    assert "Change plan" not in client.get(f"/admin/billing/subscription/{subscription.pk}/change/").content.decode()
    assert client.get(f"/admin/billing/subscription/{subscription.pk}/change-plan/").status_code == 403
