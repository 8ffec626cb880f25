"""One account's failure never stops the others: each account of a chunk is written and recorded on its own."""

import datetime as dt
from decimal import Decimal as D

import pytest
import time_machine
from django.test import override_settings

from billing.models import BillingRun, BillingRunItem, Invoice
from billing.tasks import invoices_finalize_due_task
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import JAN_1, close, event, ingest, subscribe
from tests.tenants.factories import TenantFactory

pytestmark = pytest.mark.django_db

HUGE = "999999999999.99999999"  # just under the per-event cap of 10^12


@override_settings(BILLING_RUN_CHUNK=200)
def test_an_account_whose_charges_overflow_an_invoice_fails_alone_in_its_chunk(plan):
    basic = plan("platform-basic")
    accounts = [AccountFactory(name=f"Customer {i:03d}") for i in range(199)]
    for account in accounts:
        subscribe(account, basic)
    runaway = AccountFactory(name="Runaway")
    subscribe(runaway, plan("messaging-startup"))
    TenantFactory(account=runaway, public_id="ten_runaway", activated_at=JAN_1)
    # 3,000 events of almost 10^12 messages on Startup ($99, 5,000 included, $0.05 each beyond):
    # (2,999,999,999,999,999.99997 − 5,000) × $0.05 = $149,999,999,999,750.00, plus $99.00.
    result = ingest(
        runaway, [event(f"m{i}", "ten_runaway", "messages", HUGE, "2026-11-10T10:00:00Z") for i in range(3000)]
    )
    assert result.accepted == 3000

    run = close(review_hours=0)

    assert Invoice.objects.count() == 199
    assert set(Invoice.objects.values_list("status", "total")) == {("finalized", D("50.00"))}
    assert not Invoice.objects.filter(account=runaway).exists()
    assert (run.status, run.accounts_total, run.accounts_done, run.accounts_failed, run.invoices_created) == (
        BillingRun.Status.COMPLETED_WITH_FAILURES,
        200,
        199,
        1,
        199,
    )
    failed = BillingRunItem.objects.get(run=run, status=BillingRunItem.Status.FAILED)
    assert failed.account_id == runaway.pk
    assert failed.total is None
    assert failed.error == (
        "The charges (USD 149,999,999,999,849.00) exceed the largest amount an invoice holds "
        "(USD 99,999,999,999,999.99): review the account's usage before billing it."
    )
    assert run.amount_total == {"USD": "9950.00"}


def test_a_draft_that_would_overflow_at_finalization_is_held_for_review_with_the_reason(plan):
    account = AccountFactory(name="Runaway")
    subscribe(account, plan("messaging-startup"))
    TenantFactory(account=account, public_id="ten_runaway", activated_at=JAN_1)
    close(review_hours=24)  # Dec 1 00:05: a $99.00 draft, reviewed until Dec 2 00:05
    draft = Invoice.objects.get(account=account)
    assert (draft.status, draft.total) == ("draft", D("99.00"))

    # November usage that reaches us during the review: it would overflow the invoice.
    ingest(
        account,
        [event(f"m{i}", "ten_runaway", "messages", HUGE, "2026-11-30T10:00:00Z") for i in range(3000)],
        now=dt.datetime(2026, 12, 1, 10, tzinfo=dt.UTC),
    )
    with time_machine.travel(dt.datetime(2026, 12, 2, 0, 6, tzinfo=dt.UTC), tick=False):
        assert invoices_finalize_due_task() == 0

    draft.refresh_from_db()
    assert (draft.status, draft.number, draft.total, draft.held) == ("draft", None, D("99.00"), True)
    assert draft.hold_reason == (
        "not finalized: The charges (USD 149,999,999,999,849.00) exceed the largest amount an invoice holds "
        "(USD 99,999,999,999,999.99): review the account's usage before billing it."
    )
