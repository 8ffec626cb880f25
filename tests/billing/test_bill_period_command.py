"""``manage.py bill_period``: dry runs write nothing, bad input is a clear CommandError."""

import io

import pytest
from django.core.management import CommandError, call_command

from billing.models import BillingRun, Invoice
from common.clock import clock_set
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import CLOSE_AT, JAN_1, event, ingest, subscribe
from tests.tenants.factories import TenantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_accounts(plan):
    """Business with 31,000 messages ($479.00) and Basic with nothing but its base fee ($50.00)."""
    business = AccountFactory(name="Northwind")
    subscribe(business, plan("messaging-business"))
    TenantFactory(account=business, public_id="ten_nw", activated_at=JAN_1)
    ingest(business, [event("m1", "ten_nw", "messages", 31_000, "2026-11-10T10:00:00Z")])
    basic = AccountFactory(name="Initech")
    subscribe(basic, plan("platform-basic"))
    clock_set(at=CLOSE_AT, allow_backwards=True)  # CLOSE_AT may lie in the real past
    return business, basic


def test_dry_run_prints_the_totals_and_writes_no_invoice(two_accounts):
    out = io.StringIO()
    call_command("bill_period", "2026-11", "--dry-run", stdout=out)
    # $479.00 + $50.00
    assert "2026-11: 2 of 2 accounts done, 0 failed, 0 invoices; 529.00 USD would be invoiced (dry run)" in (
        out.getvalue()
    )
    assert not Invoice.objects.exists()
    assert list(BillingRun.objects.values_list("dry_run", flat=True)) == [True]


def test_one_account_is_billed_alone(two_accounts):
    business, basic = two_accounts
    out = io.StringIO()
    call_command("bill_period", "2026-11", "--account", basic.public_id, stdout=out)
    assert "2026-11: 1 of 1 accounts done, 0 failed, 1 invoices; 50.00 USD invoiced" in out.getvalue()
    assert list(Invoice.objects.values_list("account_id", "total")) == [(basic.pk, 50)]


@pytest.mark.parametrize("month", ["2026-13", "November", "2026/11"])
def test_a_bad_month_is_refused(month):
    with pytest.raises(CommandError, match=f"^Expected a month as YYYY-MM, got '{month}'.$"):
        call_command("bill_period", month)


def test_an_unknown_account_is_refused(two_accounts):
    with pytest.raises(CommandError, match="^No account acc_999999.$"):
        call_command("bill_period", "2026-11", "--account", "acc_999999")
    assert not BillingRun.objects.exists()


def test_a_month_not_over_yet_is_refused(two_accounts):
    with pytest.raises(CommandError, match=r"^2026-12 has not ended yet \(it ends 2027-01-01T00:00:00\+00:00\)"):
        call_command("bill_period", "2026-12")
