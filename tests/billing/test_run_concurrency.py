"""Exactly once: a run resumed after an interruption invoices every account once with gap-free numbers.

Two runs of the same month in two threads (each with its own connection) also invoice each account once; that
test needs a transactional database, and any transactional test that runs before tests/browser leaves the
browser test without the staff groups the migrations seed (its serialized rollback is not restored under the
session-wide Playwright fixture), so it waits in the history of this file (see git log) until that is fixed."""

from decimal import Decimal as D

import pytest
from django.test import override_settings

from billing.models import BillingRunItem, Invoice
from billing.services.runs import billing_run_chunk, billing_run_start, pending_chunks
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import CLOSE_AT, NOVEMBER, close, subscribe

N_ACCOUNTS = 7


def basic_accounts(plan, n=N_ACCOUNTS):
    version = plan("platform-basic")
    accounts = [AccountFactory(name=f"Customer {i}") for i in range(n)]
    for account in accounts:
        subscribe(account, version)
    return accounts


def assert_invoiced_once(accounts):
    invoices = list(Invoice.objects.order_by("number"))
    assert sorted(i.account_id for i in invoices) == sorted(a.pk for a in accounts)
    assert [i.number for i in invoices] == [f"INV-2026-{n:06d}" for n in range(1, len(accounts) + 1)]
    assert {(i.status, i.total) for i in invoices} == {("finalized", D("50.00"))}


@pytest.mark.django_db
@override_settings(BILLING_REVIEW_HOURS=0, BILLING_RUN_CHUNK=2)
def test_a_run_interrupted_after_one_chunk_resumes_and_bills_the_rest_once(plan):
    accounts = basic_accounts(plan)
    run = billing_run_start(period=NOVEMBER, now=CLOSE_AT)
    first = next(pending_chunks(run=run))
    assert billing_run_chunk(run=run, account_ids=first, now=CLOSE_AT) == 2
    # the process dies here: 2 accounts invoiced, 5 pending, the run still open
    run.refresh_from_db()
    assert (run.status, run.accounts_done) == ("running", 2)
    assert Invoice.objects.count() == 2

    resumed = close(review_hours=0)
    assert resumed.pk == run.pk
    assert_invoiced_once(accounts)
    assert (resumed.status, resumed.accounts_done, resumed.invoices_created) == ("completed", N_ACCOUNTS, N_ACCOUNTS)
    assert set(BillingRunItem.objects.values_list("status", flat=True)) == {"done"}

    close(review_hours=0)  # and once more: nothing new
    assert Invoice.objects.count() == N_ACCOUNTS
