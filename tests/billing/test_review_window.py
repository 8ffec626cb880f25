"""Drafts under review: late-arriving usage of the month is included at finalization; held drafts wait."""

import datetime as dt
from decimal import Decimal as D

import pytest

from billing.models import Invoice
from billing.services.invoices import invoice_hold, invoice_release
from billing.tasks import invoices_finalize_due_task
from common.clock import clock_set
from common.models import OutboxEvent
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import JAN_1, UTC, close, event, ingest, subscribe
from tests.tenants.factories import TenantFactory

pytestmark = pytest.mark.django_db


def business_account(plan, name, tenant):
    account = AccountFactory(name=name)
    subscribe(account, plan("messaging-business"))
    TenantFactory(account=account, public_id=tenant, activated_at=JAN_1)
    ingest(account, [event(f"{tenant}-m1", tenant, "messages", 31_000, "2026-11-10T10:00:00Z")])
    return account


def test_drafts_are_finalized_after_review_with_the_usage_that_arrived_meanwhile(plan):
    northwind = business_account(plan, "Northwind", "ten_nw")
    contoso = business_account(plan, "Contoso", "ten_co")
    close(review_hours=24)  # Dec 1 00:05: drafts, reviewed until Dec 2 00:05

    drafts = {i.account_id: i for i in Invoice.objects.all()}
    assert {(i.status, i.number, i.review_until) for i in drafts.values()} == {
        ("draft", None, dt.datetime(2026, 12, 2, 0, 5, tzinfo=UTC))
    }
    # $299 + (31,000 − 25,000) × $0.03 = $479.00
    assert drafts[northwind.pk].total == D("479.00")
    assert not OutboxEvent.objects.filter(type="billing.invoice_generated").exists()

    # A November event reaches us during the review (the month is not closed until finalization).
    result = ingest(
        northwind,
        [event("nw-straggler", "ten_nw", "messages", 1_000, "2026-11-30T23:30:00Z")],
        now=dt.datetime(2026, 12, 1, 10, tzinfo=UTC),
    )
    assert result.accepted == 1
    invoice_hold(invoice=drafts[contoso.pk], reason="customer disputes the message count")

    # The test clock starts in the past of the real time the suite runs at.
    clock_set(at=dt.datetime(2026, 12, 1, 12, tzinfo=UTC), allow_backwards=True)
    assert invoices_finalize_due_task() == 0  # still in review

    clock_set(at=dt.datetime(2026, 12, 2, 0, 6, tzinfo=UTC))
    assert invoices_finalize_due_task() == 1  # the held draft waits
    finalized = Invoice.objects.get(account=northwind)
    # $299 + (32,000 − 25,000) × $0.03 = $299 + $210 = $509.00
    assert (finalized.status, finalized.number, finalized.total) == ("finalized", "INV-2026-000001", D("509.00"))
    assert finalized.lines.get(metric__code="messages").quantity == D(32_000)
    assert Invoice.objects.get(account=contoso).status == "draft"

    invoice_release(invoice=drafts[contoso.pk])
    clock_set(at=dt.datetime(2026, 12, 2, 9, tzinfo=UTC))
    assert invoices_finalize_due_task() == 1
    released = Invoice.objects.get(account=contoso)
    assert (released.status, released.number, released.total) == ("finalized", "INV-2026-000002", D("479.00"))

    assert invoices_finalize_due_task() == 0
    events = OutboxEvent.objects.filter(type="billing.invoice_generated").order_by("id")
    assert [(e.account_id, e.payload["data"]["invoice_number"]) for e in events] == [
        (northwind.pk, "INV-2026-000001"),
        (contoso.pk, "INV-2026-000002"),
    ]
    data = events[0].payload["data"]
    assert (data["account_id"], data["total"], data["amount_due"], data["currency"], data["period"]) == (
        northwind.public_id,
        "509.00",
        "509.00",
        "USD",
        {"start": "2026-11-01T00:00:00Z", "end": "2026-12-01T00:00:00Z"},
    )


def test_drafting_and_finalizing_are_in_the_invoice_history(plan):
    from billing.models import Invoice
    from tests.accounts.factories import AccountFactory
    from tests.billing.cycle import JAN_1, close, subscribe
    from tests.tenants.factories import TenantFactory

    account = AccountFactory(name="Audited")
    subscribe(account, plan("platform-basic"))
    TenantFactory(account=account, public_id="ten_au", activated_at=JAN_1)
    close()
    invoice = Invoice.objects.get(account=account)
    history = list(invoice.history.order_by("history_id").values_list("history_change_reason", "status", "number"))
    assert history == [
        ("drafted by the billing run", "draft", None),
        ("finalized", "finalized", "INV-2026-000001"),
    ]
