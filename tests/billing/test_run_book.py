"""A run says which accounts on the books it does not bill, and why (a trial that started after the month,
no subscription), in the admin and in ``bill_period``'s output."""

import datetime as dt
import io

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command

from accounts.permissions import BILLING_STAFF
from billing.models import BillingRun
from common.clock import clock_set
from tests.accounts.factories import AccountFactory, StaffUserFactory
from tests.billing.cycle import CLOSE_AT, close, subscribe

pytestmark = pytest.mark.django_db
LATER = "subscribed after November 2026 (a trial or a new customer): billed from their first month"


@pytest.fixture
def book(plan):
    """Four accounts: two billed for November, one whose trial starts December 1st, one never subscribed."""
    billed = [AccountFactory(name="Northwind"), AccountFactory(name="Initech")]
    for account in billed:
        subscribe(account, plan("platform-basic"))
    trial = AccountFactory(name="Dunder Mifflin")
    subscribe(trial, plan("messaging-startup"), started_at=dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC), at=CLOSE_AT)
    prospect = AccountFactory(name="Prospect")
    return billed, trial, prospect


def test_the_run_page_counts_the_accounts_on_the_books_it_leaves_out_and_why(book, client):
    _billed, trial, prospect = book
    run = close(review_hours=0)

    assert (run.accounts_total, run.accounts_done, run.invoices_created, run.accounts_in_book) == (2, 2, 2, 4)
    assert run.not_in_run == [
        {"reason": LATER, "count": 1, "accounts": [trial.public_id]},
        {"reason": "no subscription", "count": 1, "accounts": [prospect.public_id]},
    ]
    client.force_login(StaffUserFactory(groups=[Group.objects.get(name=BILLING_STAFF)]))
    listing = client.get("/admin/billing/billingrun/").content.decode()
    assert "2 / 2 (4 on the books)" in listing
    page = client.get(f"/admin/billing/billingrun/{run.pk}/change/").content.decode()
    assert f"1: {LATER} ({trial.public_id})" in page
    assert f"1: no subscription ({prospect.public_id})" in page
    assert "USD 100.00" in page  # two Basic accounts at $50.00
    assert 'name="_save"' not in page  # a report: nothing on it is edited


def test_bill_period_prints_the_accounts_it_does_not_bill(book):
    _billed, trial, prospect = book
    clock_set(at=CLOSE_AT, allow_backwards=True)  # CLOSE_AT may lie in the real past
    out = io.StringIO()
    call_command("bill_period", "2026-11", stdout=out)
    assert f"  not billed, 1: {LATER} ({trial.public_id})" in out.getvalue()
    assert f"  not billed, 1: no subscription ({prospect.public_id})" in out.getvalue()
    assert BillingRun.objects.get().accounts_in_book == 4
