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
from billing.services.plan_changes import plan_change_decline, plan_change_request
from tests.accounts.factories import AccountFactory, StaffUserFactory
from tests.billing.cycle import JAN_1, subscribe
from tests.disputes.factories import billing_staff, finance_admin, portal_user
from tests.tenants.factories import MasterPartnerFactory, TenantFactory

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


def test_the_queue_lists_waiting_requests_first(account, plan, pending):
    other = AccountFactory(name="Kramerica", billing_emails=["k@kramerica.example"], tax_rate=D("0"))
    subscribe(other, plan("messaging-business"), started_at=JAN_1)
    with time_machine.travel(NOV_16 + dt.timedelta(days=1), tick=False):
        declined = plan_change_request(
            account=other,
            to_version=plan("messaging-startup"),
            timing="now",
            actor=portal_user(other),
            channel=PlanChangeRequest.Channel.PORTAL,
        )
        plan_change_decline(change=declined, actor=billing_staff(), reason="No.")
    client = logged_in(billing_staff("second"))
    html = client.get("/admin/billing/planchangerequest/").content.decode()
    # The later, declined request comes after the earlier one that waits.
    assert html.index(pending.public_id) < html.index(declined.public_id)
    assert "Business → Startup" in html
    waiting = client.get("/admin/billing/planchangerequest/?state__exact=pending").content.decode()
    assert pending.public_id in waiting and declined.public_id not in waiting
    assert "By channel" in html and "By direction" in html


def test_the_subscription_page_links_its_waiting_change(pending):
    client = logged_in(billing_staff())
    html = client.get(f"/admin/billing/subscription/{pending.subscription_id}/change/").content.decode()
    assert (
        f'Plan change <a href="/admin/billing/planchangerequest/{pending.pk}/change/">{pending.public_id}</a>' in html
    )
    assert "waiting for approval" in html


def test_change_plan_shows_refusals_and_offers_no_confirm(plan):
    crowded = AccountFactory(name="Crowded", billing_emails=["ap@crowded.example"], tax_rate=D("0"))
    subscription = subscribe(crowded, plan("messaging-business"), started_at=JAN_1)
    for n in range(12):
        MasterPartnerFactory(account=crowded, public_id=f"prt_crowded_{n}", activated_at=JAN_1)
    client = logged_in(finance_admin())
    url = f"/admin/billing/subscription/{subscription.pk}/change-plan/"
    startup = plan("messaging-startup")
    with time_machine.travel(NOV_16, tick=False):
        html = client.post(url, {"plan_version": startup.pk, "timing": "now", "_preview": "1"}).content.decode()
        assert "Master partners: 12 this month, and Startup allows 10; remove 2 before moving." in html
        assert 'name="_confirm"' not in html
        forced = client.post(
            url, {"plan_version": startup.pk, "timing": "now", "_confirm": "1", "previewed": f"{startup.pk}:now"}
        )
    assert forced.status_code == 200 and not PlanChangeRequest.objects.exists()
    assert crowded.subscriptions.get().plan_version == plan("messaging-business")


def test_change_plan_at_the_period_end_schedules(account, plan):
    subscription = account.subscriptions.get()
    client = logged_in(billing_staff())
    url = f"/admin/billing/subscription/{subscription.pk}/change-plan/"
    enterprise = plan("messaging-enterprise")
    form = {"plan_version": enterprise.pk, "timing": "period_end", "note": ""}
    with time_machine.travel(NOV_16, tick=False):
        html = client.post(url, {**form, "_preview": "1"}).content.decode()
        # December on Enterprise: its base fee 999.00 against Business's 299.00, nothing used yet.
        assert "USD 999.00" in html and "USD 299.00" in html and "USD 700.00" in html
        done = client.post(url, {**form, "_confirm": "1", "previewed": f"{enterprise.pk}:period_end"}, follow=True)
    assert "moves to Enterprise v1 on" in done.content.decode()
    change = PlanChangeRequest.objects.get()
    assert change.state == PlanChangeRequest.State.SCHEDULED
    assert change.effective_at == dt.datetime(2026, 12, 1, tzinfo=UTC)
