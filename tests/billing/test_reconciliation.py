"""Reconciling a month: the figures per currency and provider, each kind of mismatch found once (and kept
resolved once resolved), none in a clean month; the daily task; the admin report and who may resolve."""

import datetime as dt
from decimal import Decimal as D

import pytest
import time_machine
from django.contrib.auth.models import Group
from django_celery_beat.models import PeriodicTask
from djstripe.models import BalanceTransaction, Charge, PaymentIntent

from accounts.permissions import BILLING_STAFF, FINANCE_ADMIN
from billing.models import BankStatementLine, Invoice, ReconciliationIssue
from billing.services.bank_statements import bank_statement_import, bank_statement_line_match
from billing.services.credit_notes import credit_note_issue
from billing.services.payments import payment_record
from billing.services.reconciliation import (
    ERR_RESOLUTION,
    ERR_RESOLVE_DENIED,
    BalanceMovement,
    InvoiceFigure,
    MoneyFigure,
    StripeBalanceFigure,
    reconciliation_daily,
    reconciliation_figures,
    reconciliation_issue_resolve,
    reconciliation_run,
)
from billing.tasks import reconcile_task
from common.errors import BillingError
from common.schedule import schedule_install
from tests.accounts.factories import AccountFactory, StaffUserFactory
from tests.admin_html import table_rows
from tests.billing.cycle import DECEMBER, JAN_1, NOVEMBER, UTC, close, subscribe
from tests.tenants.factories import TenantFactory

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 12, 20, 9, tzinfo=UTC)
REPORT = "/admin/billing/reconciliationissue/report/"


def at(day, hour=10):
    return dt.datetime(2026, 12, day, hour, tzinfo=UTC)


@pytest.fixture
def invoices(plan):
    """Four customers on Platform Basic, each with a finalized November invoice of USD 50.00 (December 1)."""
    accounts = []
    for name, tenant in (("Northwind", "ten_nw"), ("Contoso", "ten_co"), ("Fabrikam", "ten_fa"), ("Initech", "ten_in")):
        account = AccountFactory(name=name)
        subscribe(account, plan("platform-basic"))
        TenantFactory(account=account, public_id=tenant, activated_at=JAN_1)
        accounts.append(account)
    close()
    found = {i.account.name: i for i in Invoice.objects.select_related("account")}
    assert [(n, found[n].number, found[n].total, found[n].status) for n in ("Northwind", "Contoso", "Fabrikam")] == [
        ("Northwind", "INV-2026-000001", D("50.00"), "finalized"),
        ("Contoso", "INV-2026-000002", D("50.00"), "finalized"),
        ("Fabrikam", "INV-2026-000003", D("50.00"), "finalized"),
    ]
    return found


def stripe_charge(charge_id, intent_id, cents, *, day=3, currency="usd", status="succeeded", fee=None):
    """Stripe's own record of a card payment as dj-stripe syncs it (the outside world)."""
    created = at(day)
    if intent_id:
        PaymentIntent.objects.get_or_create(id=intent_id, defaults={"stripe_data": {"id": intent_id}})
    txn = None
    if fee is not None:
        txn = BalanceTransaction.objects.create(
            id=f"txn_{charge_id[3:]}",
            amount=cents,
            currency=currency,
            type="charge",
            source=charge_id,
            created=created,
            stripe_data={"amount": cents, "fee": fee, "net": cents - fee, "status": "available"},
        )
    return Charge.objects.create(
        id=charge_id,
        amount=D(cents) / 100,
        currency=currency,
        status=status,
        payment_intent_id=intent_id,
        balance_transaction=txn,
        created=created,
        stripe_data={"id": charge_id, "amount": cents, "currency": currency, "payment_intent": intent_id},
    )


def stripe_payment(account, intent_id, amount, *, day=3, invoice=None):
    allocations = [(invoice, amount)] if invoice else None
    return payment_record(
        account=account,
        amount=amount,
        provider="stripe",
        received_at=at(day),
        reference=intent_id,
        external_id=intent_id,
        payment_method="card_ending_4242",
        allocations=allocations,
        now=at(day),
    )


def bank_transfer(account, amount, *, day, invoice=None, allocations=None):
    if invoice is not None:
        allocations = [(invoice, amount)]
    return payment_record(
        account=account,
        amount=amount,
        provider="bank_transfer",
        received_at=at(day),
        reference=f"transfer of 2026-12-{day:02d}",
        allocations=allocations,
        now=at(day),
    )


@pytest.fixture
def clean_december(invoices):
    """Northwind paid by card, Contoso partly by transfer, Fabrikam credited 10.00 and paid the rest; Globex,
    with nothing invoiced, paid 25.00 ahead (a credit balance, not a mismatch)."""
    northwind, contoso, fabrikam = invoices["Northwind"], invoices["Contoso"], invoices["Fabrikam"]
    stripe_charge("ch_nw", "pi_nw", 5000, fee=175)
    stripe_payment(northwind.account, "pi_nw", D("50.00"), invoice=northwind)
    bank_transfer(contoso.account, D("20.00"), day=4, invoice=contoso)
    credit_note_issue(invoice=fabrikam, lines=[(None, "goodwill", D("10.00"))], reason="outage", now=at(5))
    bank_transfer(fabrikam.account, D("40.00"), day=6, invoice=fabrikam)
    payment_record(account=AccountFactory(name="Globex"), amount=D("25.00"), provider="check", now=at(2))
    # Initech's invoice stays open, unpaid: money owed is not a mismatch either.
    return invoices


def test_a_clean_month_has_no_mismatch_and_its_figures_add_up(clean_december):
    summary = reconciliation_run(period=DECEMBER, now=NOW)

    assert (summary.found, summary.new, summary.open) == (0, 0, 0)
    assert ReconciliationIssue.objects.count() == 0
    figures = summary.figures
    # 4 × 50.00 issued; paid 50.00 + 20.00 + 40.00; 10.00 credited; 30.00 (Contoso) + 50.00 (Initech) due
    assert figures.invoices == [InvoiceFigure("USD", 4, D("200.00"), D("110.00"), D("10.00"), D("80.00"), voided=0)]
    assert figures.payments == [
        MoneyFigure("USD", 2, D("60.00"), provider="bank_transfer"),
        MoneyFigure("USD", 1, D("25.00"), provider="check"),
        MoneyFigure("USD", 1, D("50.00"), provider="stripe"),
    ]
    assert figures.refunds == []
    assert figures.credit_notes == [MoneyFigure("USD", 1, D("10.00"))]
    # 135.00 received, 110.00 of it applied to invoices: Globex's 25.00 is the credit balance
    assert figures.balance == [BalanceMovement("USD", D("0"), D("135.00"), D("110.00"), D("0"))]
    assert figures.balance[0].closing == D("25.00")
    assert figures.stripe_charges == [MoneyFigure("USD", 1, D("50.00"))]
    assert figures.stripe_payments == [MoneyFigure("USD", 1, D("50.00"), provider="stripe")]
    assert figures.stripe_balance == [StripeBalanceFigure("USD", "charge", 1, D("50.00"), D("1.75"), D("48.25"))]


def test_november_saw_no_money_and_no_invoice_issued(clean_december):
    """The invoices for November were issued on December 1: they belong to December's figures."""
    figures = reconciliation_figures(period=NOVEMBER)
    assert (figures.invoices, figures.payments, figures.balance) == ([], [], [])


@pytest.fixture
def mismatched(invoices):
    """One of each kind of mismatch in December (and two things that look like one and are not)."""
    northwind, contoso, fabrikam, initech = (invoices[n] for n in ("Northwind", "Contoso", "Fabrikam", "Initech"))
    stripe_charge("ch_orphan", "pi_orphan", 7500, day=6)  # Stripe took 75.00 the ledger never heard of
    stripe_charge("ch_short", "pi_short", 5500, day=3)  # charged 55.00, recorded 50.00
    stripe_payment(northwind.account, "pi_short", D("50.00"), invoice=northwind)
    stripe_charge("ch_failed", "pi_failed", 5000, day=3, status="failed")  # no money: not a mismatch
    # Contoso's 20.00 was applied to nothing though its invoice is open; the 5.00 of yesterday is within the grace.
    bank_transfer(contoso.account, D("20.00"), day=2, allocations=[])
    bank_transfer(contoso.account, D("5.00"), day=19, allocations=[])
    # Fabrikam paid 10.00, but its invoice says 15.00 (no service writes that: a seeded fault)
    bank_transfer(fabrikam.account, D("10.00"), day=4, invoice=fabrikam)
    Invoice.objects.filter(pk=fabrikam.pk).update(amount_paid=D("15.00"), amount_due=D("35.00"))
    # Initech's invoice marked paid with no money at all
    Invoice.objects.filter(pk=initech.pk).update(status="paid", amount_paid=D("50.00"), amount_due=0, paid_at=at(7))
    bank_statement_import(content="2026-12-08,99.00,thanks for everything\n", currency="USD", now=at(8))
    return invoices


def _issues():
    return [
        (i.kind, i.description, i.amount, i.currency, i.status)
        for i in ReconciliationIssue.objects.order_by("kind", "key")
    ]


EXPECTED = [
    (
        "amount_mismatch",
        "Stripe charge ch_short is USD 55.00; its payment pay_000001 is USD 50.00.",
        D("5.00"),
        "USD",
        "open",
    ),
    (
        "amount_mismatch",
        "INV-2026-000003 records USD 15.00 paid; its allocations add up to USD 10.00.",
        D("5.00"),
        "USD",
        "open",
    ),
    (
        "charge_without_payment",
        "Stripe charge ch_orphan (USD 75.00) has no payment in the ledger.",
        D("75.00"),
        "USD",
        "open",
    ),
    (
        "paid_without_money",
        "INV-2026-000004 is paid, but money applied to it covers USD 0.00 of USD 50.00.",
        D("50.00"),
        "USD",
        "open",
    ),
    (
        "payment_without_invoice",
        "pay_000002 (USD 20.00) has USD 20.00 unapplied while Contoso (acc_000002) has invoices open.",
        D("20.00"),
        "USD",
        "open",
    ),
    (
        "statement_line_unmatched",
        "Bank statement line of 2026-12-08, USD 99.00 “thanks for everything”, is not matched.",
        D("99.00"),
        "USD",
        "open",
    ),
]


def test_each_kind_of_mismatch_is_found(mismatched):
    summary = reconciliation_run(period=DECEMBER, now=NOW)

    assert (summary.found, summary.new, summary.closed, summary.open) == (6, 6, 0, 6)
    assert summary.kinds == {
        "charge_without_payment": 1,
        "amount_mismatch": 2,
        "payment_without_invoice": 1,
        "paid_without_money": 1,
        "statement_line_unmatched": 1,
    }
    assert _issues() == EXPECTED
    issue = ReconciliationIssue.objects.get(kind="charge_without_payment")
    assert (issue.external_id, issue.month, issue.detected_at) == ("ch_orphan", dt.date(2026, 12, 1), NOW)
    assert ReconciliationIssue.objects.get(kind="paid_without_money").invoice == mismatched["Initech"]


def test_found_again_an_issue_stays_one_row_and_a_resolved_one_stays_resolved(mismatched, finance_admin):
    reconciliation_run(period=DECEMBER, now=NOW)
    orphan = ReconciliationIssue.objects.get(kind="charge_without_payment")
    reconciliation_issue_resolve(
        issue=orphan, resolution="refunded at Stripe by hand", actor=finance_admin, now=NOW + dt.timedelta(hours=1)
    )

    again = reconciliation_run(period=DECEMBER, now=NOW + dt.timedelta(days=1))

    assert (again.found, again.new, again.closed, again.open) == (6, 0, 0, 5)
    assert ReconciliationIssue.objects.count() == 6
    orphan.refresh_from_db()
    assert (orphan.status, orphan.resolution, orphan.resolved_by, orphan.resolved_at) == (
        "resolved",
        "refunded at Stripe by hand",
        finance_admin,
        NOW + dt.timedelta(hours=1),
    )
    assert orphan.detected_at == NOW


def test_an_issue_no_longer_found_is_closed_by_the_next_run(mismatched, finance_admin):
    reconciliation_run(period=DECEMBER, now=NOW)
    # The missing card payment is recorded, and the statement line is matched by hand to Contoso.
    stripe_payment(mismatched["Initech"].account, "pi_orphan", D("75.00"), day=6)
    line = ReconciliationIssue.objects.get(kind="statement_line_unmatched")
    bank_statement_line_match(
        line=BankStatementLine.objects.get(), account=mismatched["Contoso"].account, actor=finance_admin, now=NOW
    )
    line.refresh_from_db()
    assert (line.status, line.resolved_by) == ("resolved", finance_admin)
    assert line.resolution.startswith("Matched by hand to Contoso (acc_000002) by fiona.")

    later = NOW + dt.timedelta(days=1)
    summary = reconciliation_run(period=DECEMBER, now=later)

    orphan = ReconciliationIssue.objects.get(kind="charge_without_payment")
    assert (orphan.status, orphan.resolved_by, orphan.resolution) == (
        "resolved",
        None,
        "Not found again when 2026-12 was reconciled on 2026-12-21 09:00 UTC.",
    )
    # The 99.00 paid Contoso's invoice (oldest open first): with nothing open, its unapplied 20.00 is now a
    # credit balance, no longer a mismatch.
    unapplied = ReconciliationIssue.objects.get(kind="payment_without_invoice")
    assert (unapplied.status, unapplied.resolution) == ("resolved", orphan.resolution)
    assert (summary.found, summary.closed, summary.open) == (3, 2, 3)


def test_resolving_needs_a_note_and_finance_admin(mismatched, billing_staff, finance_admin):
    reconciliation_run(period=DECEMBER, now=NOW)
    issue = ReconciliationIssue.objects.get(kind="charge_without_payment")
    with pytest.raises(BillingError) as denied:
        reconciliation_issue_resolve(issue=issue, resolution="fine", actor=billing_staff)
    assert (denied.value.status, denied.value.message) == (403, ERR_RESOLVE_DENIED)
    with pytest.raises(BillingError) as empty:
        reconciliation_issue_resolve(issue=issue, resolution="   ", actor=finance_admin)
    assert (empty.value.field, empty.value.message) == ("resolution", ERR_RESOLUTION)
    issue.refresh_from_db()
    assert issue.status == "open"


def test_the_daily_task_reconciles_the_month_so_far_and_the_month_before(mismatched):
    with time_machine.travel(dt.datetime(2027, 1, 1, 2, 15, tzinfo=UTC), tick=False):
        outcome = reconcile_task.apply().get()
    # On January 1, "yesterday" is December 31: December, then November. Contoso's 5.00 of December 19 is
    # past its grace by now: a seventh mismatch.
    assert outcome == {"2026-12": 7, "2026-11": 0}
    late = ReconciliationIssue.objects.get(kind="payment_without_invoice", payment__amount=D("5.00"))
    assert (
        late.description == "pay_000003 (USD 5.00) has USD 5.00 unapplied while Contoso (acc_000002) has invoices open."
    )
    summaries = reconciliation_daily(now=dt.datetime(2027, 1, 2, 2, 15, tzinfo=UTC))
    assert [(s.period.label, s.new, s.open) for s in summaries] == [("2027-01", 0, 0), ("2026-12", 0, 7)]


def test_the_task_is_on_the_schedule():
    schedule_install()
    task = PeriodicTask.objects.get(name="reconcile-payments")
    assert (task.task, task.crontab.minute, task.crontab.hour) == ("billing.reconcile", "15", "2")


# --- the admin -----------------------------------------------------------------------------------------------


@pytest.fixture
def billing_staff():
    return StaffUserFactory(username="bianca", groups=[Group.objects.get(name=BILLING_STAFF)])


@pytest.fixture
def finance_admin():
    return StaffUserFactory(username="fiona", groups=[Group.objects.get(name=FINANCE_ADMIN)])


def test_billing_staff_see_the_report_but_cannot_reconcile_or_resolve(client, mismatched, billing_staff):
    reconciliation_run(period=DECEMBER, now=NOW)
    issue = ReconciliationIssue.objects.get(kind="charge_without_payment")
    client.force_login(billing_staff)
    with time_machine.travel(NOW, tick=False):
        page = client.get(REPORT, {"month": "2026-12"})
        assert page.status_code == 200
        html = page.content.decode()
        assert table_rows(html, "invoices") == [["USD", "4", "USD 200.00", "USD 115.00", "USD 0.00", "USD 85.00", "0"]]
        assert table_rows(html, "payments") == [
            ["Bank transfer", "USD", "3", "USD 35.00"],
            ["Stripe", "USD", "1", "USD 50.00"],
        ]
        assert table_rows(html, "stripe") == [["USD", "2", "USD 130.00", "1", "USD 50.00"]]
        assert len(table_rows(html, "issues")) == 6
        assert "Resolve</a>" not in html and "Reconcile 2026-12 now" not in html

        assert client.post(REPORT, {"month": "2026-12"}).status_code == 403
        resolve = f"/admin/billing/reconciliationissue/{issue.pk}/resolve/"
        assert client.get(resolve).status_code == 403
        assert client.post(resolve, {"resolution": "fine"}).status_code == 403
    issue.refresh_from_db()
    assert issue.status == "open"


def test_finance_admin_resolve_from_the_report_with_a_note(client, mismatched, finance_admin):
    client.force_login(finance_admin)
    with time_machine.travel(NOW, tick=False):
        reconciled = client.post(REPORT, {"month": "2026-12"}, follow=True)
        html = reconciled.content.decode()
        assert "2026-12 reconciled: 6 mismatch(es) found, 6 new, 0 no longer found; 6 open." in html
        issue = ReconciliationIssue.objects.get(kind="charge_without_payment")
        resolve = f"/admin/billing/reconciliationissue/{issue.pk}/resolve/"
        assert f'href="{resolve}"' in html

        refused = client.post(resolve, {"resolution": ""})
        assert refused.status_code == 200 and "This field is required." in refused.content.decode()
        done = client.post(resolve, {"resolution": "a test charge, refunded at Stripe"})
        assert (done.status_code, done["Location"]) == (302, f"{REPORT}?month=2026-12")
    issue.refresh_from_db()
    assert (issue.status, issue.resolution, issue.resolved_by, issue.resolved_at) == (
        "resolved",
        "a test charge, refunded at Stripe",
        finance_admin,
        NOW,
    )


def test_finance_admin_resolve_several_from_the_list(client, mismatched, finance_admin):
    reconciliation_run(period=DECEMBER, now=NOW)
    chosen = list(ReconciliationIssue.objects.filter(kind="amount_mismatch"))
    client.force_login(finance_admin)
    selected = {"action": "resolve_action", "_selected_action": [i.pk for i in chosen]}
    form = client.post("/admin/billing/reconciliationissue/", selected)
    assert form.status_code == 200 and "Resolve reconciliation issues" in form.content.decode()
    client.post("/admin/billing/reconciliationissue/", {**selected, "apply": "yes", "resolution": "corrected"})
    assert sorted(ReconciliationIssue.objects.filter(status="resolved").values_list("kind", "resolution")) == [
        ("amount_mismatch", "corrected"),
        ("amount_mismatch", "corrected"),
    ]
