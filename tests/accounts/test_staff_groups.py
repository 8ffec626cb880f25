"""The two staff groups created by migration, and what they can do in the admin console."""

import pytest
from django.contrib.auth.models import Group

from accounts.permissions import BILLING_STAFF, FINANCE_ADMIN
from billing.models import Plan
from tests.accounts.factories import AccountFactory, StaffUserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def billing_staff():
    return StaffUserFactory(groups=[Group.objects.get(name=BILLING_STAFF)])


@pytest.fixture
def finance_admin():
    return StaffUserFactory(groups=[Group.objects.get(name=FINANCE_ADMIN)])


def test_billing_staff_work_accounts_and_disputes_but_only_view_the_catalogue(billing_staff):
    assert billing_staff.has_perms(
        [
            "accounts.change_account",
            "accounts.add_account",
            "tenants.add_tenant",
            "tenants.change_masterpartner",
            "billing.add_subscription",
            "disputes.change_dispute",
            "billing.view_plan",
            "billing.view_planversion",
        ]
    )
    for perm in [
        "billing.change_plan",
        "billing.add_plan",
        "billing.change_planversion",
        "usage.add_metric",
        "billing.change_pricetier",
        "accounts.delete_account",
        "billing.delete_subscription",
    ]:
        assert not billing_staff.has_perm(perm), perm


def test_finance_admin_may_change_everything_including_the_catalogue(finance_admin):
    assert finance_admin.has_perms(
        [
            "billing.change_plan",
            "billing.add_planversion",
            "billing.change_pricetier",
            "usage.add_metric",
            "accounts.delete_budget",
            "disputes.change_dispute",
        ]
    )


def test_billing_staff_see_plans_read_only_and_cannot_save_them(client, billing_staff, catalogue):
    basic = Plan.objects.get(code="platform-basic")
    client.force_login(billing_staff)
    page = client.get(f"/admin/billing/plan/{basic.pk}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    response = client.post(
        f"/admin/billing/plan/{basic.pk}/change/",
        {"name": "Hacked", "description": "", "display_order": 1, "is_active": "on"},
    )
    assert response.status_code == 403
    basic.refresh_from_db()
    assert basic.name == "Basic"


def test_finance_admin_can_rename_a_plan_and_the_change_is_audited(client, finance_admin, catalogue):
    basic = Plan.objects.get(code="platform-basic")
    client.force_login(finance_admin)
    response = client.post(
        f"/admin/billing/plan/{basic.pk}/change/",
        {
            "name": "Basic (2026)",
            "description": "",
            "display_order": 1,
            "is_active": "on",
            "versions-TOTAL_FORMS": 1,
            "versions-INITIAL_FORMS": 1,
            "versions-MIN_NUM_FORMS": 0,
            "versions-MAX_NUM_FORMS": 1000,
            "versions-0-id": basic.versions.get().pk,
            "versions-0-plan": basic.pk,
        },
    )
    assert response.status_code == 302, response.content[:2000]
    basic.refresh_from_db()
    assert basic.name == "Basic (2026)"
    assert basic.history.latest("history_id").history_user == finance_admin


def test_billing_staff_add_a_tenant_from_the_account_page(client, billing_staff):
    account = AccountFactory()
    client.force_login(billing_staff)
    page = client.get(f"/admin/accounts/account/{account.pk}/change/")
    assert page.status_code == 200
    form = {
        "name": account.name,
        "legal_name": "",
        "currency": "USD",
        "billing_emails": "ap@example.com, finance@example.com",
        "payment_terms_days": 30,
        "timezone": "UTC",
        "tax_id": "",
        "tax_country": "US",
        "tax_rate": "0",
    }
    for prefix in ("subscriptions", "tenants", "partners", "users", "budgets"):
        form |= {
            f"{prefix}-TOTAL_FORMS": 0,
            f"{prefix}-INITIAL_FORMS": 0,
            f"{prefix}-MIN_NUM_FORMS": 0,
            f"{prefix}-MAX_NUM_FORMS": 1000,
        }
    form |= {
        "tenants-TOTAL_FORMS": 1,
        "tenants-0-public_id": "ten_new_store",
        "tenants-0-name": "New store",
        "tenants-0-status": "active",
        "tenants-0-activated_at_0": "2026-11-01",
        "tenants-0-activated_at_1": "00:00:00",
        "tenants-0-account": account.pk,
    }
    response = client.post(f"/admin/accounts/account/{account.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    account.refresh_from_db()
    assert account.billing_emails == ["ap@example.com", "finance@example.com"]
    tenant = account.tenants.get()
    assert (tenant.public_id, tenant.name, tenant.status) == ("ten_new_store", "New store", "active")
    assert tenant.history.get().history_user == billing_staff


def test_billing_staff_do_not_see_the_internal_tables(client, billing_staff, finance_admin):
    internal = ("common.view_counter", "common.view_outboxevent", "common.view_idempotencyrecord", "common.view_clock")
    assert [billing_staff.has_perm(p) for p in internal] == [False] * 4
    assert finance_admin.has_perms(internal)
    client.force_login(billing_staff)
    index = client.get("/admin/").content.decode()
    assert "Invoices" in index and "Accounts" in index
    assert "Number series" not in index and "Outbox events" not in index
    for url in ("/admin/common/counter/", "/admin/common/outboxevent/"):
        assert client.get(url).status_code == 403, url
    client.force_login(finance_admin)
    index = client.get("/admin/").content.decode()
    assert "Number series" in index and "Outbox events" in index
    for url in ("/admin/common/counter/", "/admin/common/outboxevent/"):
        assert client.get(url).status_code == 200, url
