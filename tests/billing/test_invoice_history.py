"""An invoice's history in the admin tells what happened, in order, when (on the billing clock) and by whom;
no history entry of a money document (or of anything else) can be reverted."""

import datetime as dt
from decimal import Decimal as D

import pytest
from django.contrib.auth.models import Group
from django.utils.formats import date_format

from accounts.permissions import BILLING_STAFF, FINANCE_ADMIN
from billing.models import CreditNote, Invoice
from billing.services.credit_notes import credit_note_issue
from billing.tasks import invoices_finalize_due_task
from common.clock import clock_set
from tests.accounts.factories import AccountFactory, StaffUserFactory
from tests.admin_html import table_rows
from tests.billing.cycle import CLOSE_AT, JAN_1, UTC, close, subscribe
from tests.tenants.factories import TenantFactory

pytestmark = pytest.mark.django_db
# The review window of 24 hours has passed when the schedule finalizes drafts on the test clock, which may
# well be in the past of the real time the suite runs at.
FINALIZE_AT = dt.datetime(2026, 12, 2, 0, 15, tzinfo=UTC)


def when(moment):
    return date_format(moment, "DATETIME_FORMAT")


@pytest.fixture
def billing_staff():
    return StaffUserFactory(username="bianca", groups=[Group.objects.get(name=BILLING_STAFF)])


@pytest.fixture
def finance_admin():
    return StaffUserFactory(username="fiona", groups=[Group.objects.get(name=FINANCE_ADMIN)])


@pytest.fixture
def draft(plan):
    account = AccountFactory(name="Northwind")
    subscribe(account, plan("platform-basic"))
    TenantFactory(account=account, public_id="ten_nw", activated_at=JAN_1)
    close(review_hours=24)  # Dec 1 00:05: a draft in review until Dec 2 00:05
    return Invoice.objects.get(account=account)


def history(client, invoice):
    response = client.get(f"/admin/billing/invoice/{invoice.pk}/history/")
    assert response.status_code == 200
    return response.content.decode(), [row[1:5] for row in table_rows(response.content.decode(), "change-history")]


def test_a_draft_finalized_by_the_schedule_reads_drafted_then_finalized(client, draft, billing_staff):
    draft_label = str(draft)
    clock_set(at=FINALIZE_AT, allow_backwards=True)
    assert invoices_finalize_due_task() == 1
    invoice = Invoice.objects.get(pk=draft.pk)
    assert (invoice.status, invoice.number, invoice.total) == ("finalized", "INV-2026-000001", D("50.00"))

    client.force_login(billing_staff)
    page, rows = history(client, invoice)
    assert rows == [
        [when(FINALIZE_AT), "Changed", "system", "finalized"],
        [when(CLOSE_AT), "Created", "system", "drafted by the billing run"],
    ]
    entries = table_rows(page, "change-history")
    assert [row[0] for row in entries] == ["INV-2026-000001", draft_label]
    changes = entries[0][5]
    assert "Status: draft → finalized" in changes
    assert "Number: – → INV-2026-000001" in changes
    assert "finalized → draft" not in page
    # No revert: no instruction, no button, no link to an old version.
    assert "Revert" not in page and "revert" not in page
    assert f"/admin/billing/invoice/{invoice.pk}/history/" + "1" not in page
    assert "View history: INV-2026-000001" in page


def test_staff_actions_are_recorded_with_their_user_in_the_order_they_happened(
    client, draft, billing_staff, finance_admin
):
    client.force_login(billing_staff)
    for action in ("hold_action", "release_action", "finalize_action"):
        client.post("/admin/billing/invoice/", {"action": action, "_selected_action": [draft.pk]})
    client.force_login(finance_admin)
    response = client.post(
        "/admin/billing/invoice/", {"action": "void_action", "_selected_action": [draft.pk]}, follow=True
    )
    assert "1 invoice(s) voided." in response.content.decode()

    _, rows = history(client, draft)
    assert [row[1:] for row in rows] == [
        ["Changed", "fiona", "voided: voided by fiona"],
        ["Changed", "bianca", "finalized"],
        ["Changed", "bianca", "released"],
        ["Changed", "bianca", "held: held by bianca"],
        ["Created", "system", "drafted by the billing run"],
    ]
    invoice = Invoice.objects.get(pk=draft.pk)
    assert invoice.status == "void"
    # Each row is dated by the clock the services decided by (here the real time, as no test clock is set).
    dates = list(invoice.history.order_by("-history_id").values_list("history_date", flat=True))
    assert dates == sorted(dates, reverse=True)
    assert invoice.history.get(history_change_reason="finalized").history_date == invoice.finalized_at
    assert invoice.history.get(history_change_reason__startswith="voided").history_date == invoice.voided_at


@pytest.mark.parametrize("method", ["get", "post"])
def test_the_revert_page_of_an_issued_invoice_is_refused(client, draft, billing_staff, method):
    clock_set(at=FINALIZE_AT, allow_backwards=True)
    invoices_finalize_due_task()
    drafted = Invoice.history.filter(id=draft.pk).earliest("history_id")
    client.force_login(billing_staff)
    url = f"/admin/billing/invoice/{draft.pk}/history/{drafted.history_id}/"
    response = getattr(client, method)(url, {"_save": "Revert"} if method == "post" else None)
    assert response.status_code == 403
    invoice = Invoice.objects.get(pk=draft.pk)
    assert (invoice.status, invoice.number, invoice.history.count()) == ("finalized", "INV-2026-000001", 2)


def test_a_draft_cannot_be_reverted_either(client, draft, billing_staff):
    client.force_login(billing_staff)
    client.post("/admin/billing/invoice/", {"action": "hold_action", "_selected_action": [draft.pk]})
    drafted = Invoice.history.filter(id=draft.pk).earliest("history_id")
    page, _ = history(client, draft)
    assert "Revert" not in page
    response = client.post(f"/admin/billing/invoice/{draft.pk}/history/{drafted.history_id}/", {"_save": "Revert"})
    assert response.status_code == 403
    assert Invoice.objects.get(pk=draft.pk).held is True


def test_credit_notes_and_accounts_offer_no_revert(client, draft, finance_admin):
    clock_set(at=FINALIZE_AT, allow_backwards=True)
    invoices_finalize_due_task()
    note = credit_note_issue(
        invoice=Invoice.objects.get(pk=draft.pk), lines=[(None, "goodwill", D("5.00"))], reason="goodwill"
    )
    client.force_login(finance_admin)
    for model, obj in (("billing/creditnote", note), ("accounts/account", draft.account)):
        page = client.get(f"/admin/{model}/{obj.pk}/history/")
        assert page.status_code == 200
        assert b"Revert" not in page.content
        version = type(obj).history.filter(id=obj.pk).earliest("history_id")
        assert client.get(f"/admin/{model}/{obj.pk}/history/{version.history_id}/").status_code == 403
    assert CreditNote.objects.get(pk=note.pk).history.get().history_date == note.issued_at == FINALIZE_AT
