"""Exactly once: concurrent runs of the same month, and a run resumed after an interruption, invoice every
account once with gap-free numbers."""

import threading
from decimal import Decimal as D

import pytest
from django.db import connection
from django.test import override_settings

from billing.models import BillingRun, BillingRunItem, Invoice
from billing.services.runs import bill_period, billing_run_chunk, billing_run_start, pending_chunks
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


# serialized_rollback: the flush after a transactional test would drop the rows migrations seed (staff groups).
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@override_settings(BILLING_REVIEW_HOURS=0, BILLING_RUN_CHUNK=2)
def test_two_runs_of_the_same_month_at_the_same_time_invoice_each_account_once(plan):
    accounts = basic_accounts(plan)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run():
        try:
            barrier.wait(timeout=30)
            bill_period(period=NOVEMBER, now=CLOSE_AT)
        except BaseException as exc:  # reported to the test below
            errors.append(exc)
        finally:
            connection.close()  # each thread has its own connection

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert_invoiced_once(accounts)
    run = BillingRun.objects.get(dry_run=False)
    assert (run.status, run.accounts_total, run.accounts_done, run.invoices_created) == (
        "completed",
        N_ACCOUNTS,
        N_ACCOUNTS,
        N_ACCOUNTS,
    )


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
