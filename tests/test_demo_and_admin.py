"""The demo book of business, and every admin page over it."""

import datetime as dt

import pytest
import time_machine
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils.formats import date_format

from accounts.models import Account, AccountUser, Budget
from accounts.permissions import BILLING_STAFF, FINANCE_ADMIN, LEDGERLINE_APPS
from billing.models import Invoice, Plan, Subscription
from billing.services.budgets import budget_statuses
from common.models import OutboxEvent
from demo.book import demo_billing, demo_load
from tenants.models import MasterPartner, Tenant
from tests.admin_html import table_rows

pytestmark = pytest.mark.django_db
TODAY = dt.date(2026, 11, 26)


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(dt.datetime(2026, 11, 26, 12, tzinfo=dt.UTC), tick=False):
        yield


@pytest.fixture
def demo():
    result = demo_load(today=TODAY)
    demo_billing(now=dt.datetime(TODAY.year, TODAY.month, TODAY.day, 12, tzinfo=dt.UTC))
    return result


def test_demo_builds_a_book_of_business_across_both_catalogues(demo):
    assert (demo.accounts, demo.tenants, demo.partners) == (20, 67, 211)
    assert Account.objects.count() == 20
    assert Tenant.objects.count() == 67
    assert MasterPartner.objects.count() == 211
    assert Subscription.objects.filter(plan_version__plan__product="messaging").count() == 10
    assert Subscription.objects.filter(plan_version__plan__product="tenant_platform").count() == 10
    assert Plan.objects.filter(kind="custom").count() == 2
    assert AccountUser.objects.filter(role="owner").count() == 20
    User = get_user_model()
    assert User.objects.get(username="finance").groups.get().name == FINANCE_ADMIN
    assert User.objects.get(username="billing").groups.get().name == BILLING_STAFF
    assert Account.objects.filter(status="trialing").count() == 2


def test_demo_is_deterministic_and_loads_once(demo):
    first = list(Tenant.objects.order_by("public_id").values_list("public_id", "activated_at", "archived_at"))
    assert demo_load(today=TODAY).created is False
    assert Account.objects.count() == 20
    assert list(Tenant.objects.order_by("public_id").values_list("public_id", "activated_at", "archived_at")) == first


def test_load_demo_command_prints_the_logins(capsys):
    call_command("load_demo")
    out = capsys.readouterr().out
    assert "Demo loaded: 20 accounts" in out
    assert "finance    / ledgerline-demo" in out
    assert "billing    / ledgerline-demo" in out
    assert "Customer portal logins (Northwind Logistics, acc_000001), at /portal/:" in out
    assert "owner@northwindlogistics.example" in out and "analyst@northwindlogistics.example" in out


def test_load_demo_records_an_alert_for_every_budget_threshold_its_usage_reached(capsys):
    call_command("load_demo")
    out = capsys.readouterr().out
    now = dt.datetime(2026, 11, 26, 12, tzinfo=dt.UTC)
    statuses = budget_statuses(budgets=Budget.objects.select_related("account"), now=now, with_alerts=True)
    assert len(statuses) == 20
    assert all(status.alerts_sent == status.reached for status in statuses)
    # Late in the month the busiest accounts are past their budgets: every threshold fired, once each.
    over = [status for status in statuses if status.percentage >= 100]
    assert over and all(status.alerts_sent == [50, 75, 90, 100] for status in over)
    assert OutboxEvent.objects.filter(type="billing.budget_alert").count() == sum(len(s.reached) for s in statuses)
    assert "Budgets evaluated as the hourly schedule does:" in out


def test_every_admin_page_renders_for_a_superuser(client, demo):
    client.force_login(get_user_model().objects.get(username="admin"))
    assert client.get("/admin/").status_code == 200
    checked = 0
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        if opts.app_label not in LEDGERLINE_APPS:
            continue
        base = f"/admin/{opts.app_label}/{opts.model_name}/"
        assert client.get(base).status_code == 200, base
        assert client.get(base + "?q=a").status_code == 200, base
        if model_admin.has_add_permission(_request_for(client)):
            assert client.get(base + "add/").status_code == 200, base + "add/"
        obj = model.objects.first()
        if obj is not None:
            assert client.get(f"{base}{obj.pk}/change/").status_code == 200, f"{base}{obj.pk}/change/"
            if hasattr(model, "history"):
                assert client.get(f"{base}{obj.pk}/history/").status_code == 200
        checked += 1
    # Every Ledgerline model with an admin page: webhooks, exports, GL accounts and insights (cost analysis, forecasts,
    # recommendations) included.
    assert checked == 37


def _request_for(client):
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = get_user_model().objects.get(username="admin")
    return request


def test_the_account_page_shows_its_inlines(client, demo):
    client.force_login(get_user_model().objects.get(username="billing"))
    account = Account.objects.get(name="Northwind Logistics")
    page = client.get(f"/admin/accounts/account/{account.pk}/change/").content.decode()
    for text in (
        "Subscriptions",
        "Tenants",
        "Master partners",
        "Portal users",
        "Budgets",
        "ten_northwind_logistics_us_east_1",
        "prt_supplier_001",
        "owner@northwindlogistics.example",
        "Business v1",
    ):
        assert text in page, text


def test_each_demo_invoice_history_reads_drafted_then_finalized_with_no_revert(client, demo):
    client.force_login(get_user_model().objects.get(username="billing"))
    invoices = list(Invoice.objects.all())
    # October, closed on the test clock, and Cyberdyne's unpaid September.
    assert len(invoices) == 19
    for invoice in invoices:
        page = client.get(f"/admin/billing/invoice/{invoice.pk}/history/").content.decode()
        rows = [row[1:5] for row in table_rows(page, "change-history")]
        finalized = [date_format(invoice.finalized_at, "DATETIME_FORMAT"), "Changed", "system", "finalized"]
        drafted = [
            date_format(invoice.created_at, "DATETIME_FORMAT"),
            "Created",
            "system",
            "drafted by the billing run",
        ]
        # Oldest last: drafted, then finalized (Stark Freight's was held by billing staff for review, released
        # and finalized by them).
        tail = [finalized, drafted]
        if invoice.account.name == "Stark Freight":
            tail = [
                [*finalized[:2], "billing", "finalized"],
                [finalized[0], "Changed", "billing", "released"],
                [drafted[0], "Changed", "billing", "held: Messages up sharply: confirming with the customer"],
                drafted,
            ]
        assert rows[-len(tail) :] == tail, invoice.number
        # Newer rows: payments applied after the finalization (by card, or recorded by finance), if any.
        assert all(" applied: " in row[3] for row in rows[: -len(tail)]), invoice.number
        assert "Revert" not in page
