"""Voiding or writing off an issued invoice is a Finance admin decision: the services check the actor's
permission, and the admin neither offers the actions to billing staff nor runs them when posted."""

from decimal import Decimal as D

import pytest
from django.contrib.auth.models import Group

from accounts.permissions import BILLING_STAFF, FINANCE_ADMIN
from billing.models import Invoice
from billing.services.invoices import (
    ERR_VOID_ISSUED_DENIED,
    ERR_WRITE_OFF_DENIED,
    invoice_mark_uncollectible,
    invoice_void,
)
from common.admin_utils import ERR_ACTION_DENIED
from common.errors import BillingError
from tests.accounts.factories import AccountFactory, StaffUserFactory
from tests.billing.cycle import JAN_1, close, subscribe
from tests.tenants.factories import TenantFactory

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/billing/invoice/"


def _customer(plan, name, tenant):
    account = AccountFactory(name=name)
    subscribe(account, plan("platform-basic"))
    TenantFactory(account=account, public_id=tenant, activated_at=JAN_1)
    return account


@pytest.fixture
def issued(plan):
    """Two finalized, unpaid invoices of 50.00 each."""
    first, second = _customer(plan, "Northwind", "ten_nw"), _customer(plan, "Contoso", "ten_co")
    close()
    invoices = [Invoice.objects.get(account=first), Invoice.objects.get(account=second)]
    assert [(i.status, i.amount_due) for i in invoices] == [("finalized", D("50.00"))] * 2
    return invoices


@pytest.fixture
def billing_staff():
    return StaffUserFactory(username="bianca", groups=[Group.objects.get(name=BILLING_STAFF)])


@pytest.fixture
def finance_admin():
    return StaffUserFactory(username="fiona", groups=[Group.objects.get(name=FINANCE_ADMIN)])


def _state(invoice):
    invoice.refresh_from_db()
    return (invoice.status, invoice.amount_due, invoice.voided_at, invoice.history.count())


def _post(client, action, invoices):
    return client.post(CHANGELIST, {"action": action, "_selected_action": [i.pk for i in invoices]}, follow=True)


def test_only_finance_admin_hold_the_void_and_write_off_permissions(billing_staff, finance_admin):
    perms = ["billing.void_issued_invoice", "billing.write_off_invoice"]
    assert finance_admin.has_perms(perms)
    assert [billing_staff.has_perm(p) for p in perms] == [False, False]
    assert billing_staff.has_perm("billing.change_invoice")  # drafts in review stay theirs


def test_the_services_refuse_billing_staff_and_change_nothing(issued, billing_staff):
    first, second = issued
    before = (_state(first), _state(second))
    with pytest.raises(BillingError) as voiding:
        invoice_void(invoice=first, reason="customer asked", actor=billing_staff)
    assert (voiding.value.code, voiding.value.status) == ("permission_denied", 403)
    assert voiding.value.message == ERR_VOID_ISSUED_DENIED.format(invoice=first, status="finalized")
    with pytest.raises(BillingError) as writing_off:
        invoice_mark_uncollectible(invoice=second, reason="insolvent", actor=billing_staff)
    assert (writing_off.value.code, writing_off.value.status) == ("permission_denied", 403)
    assert writing_off.value.message == ERR_WRITE_OFF_DENIED.format(invoice=second)
    assert (_state(first), _state(second)) == before


def test_the_services_let_finance_admin_and_the_system_void_and_write_off(issued, finance_admin):
    first, second = issued
    assert invoice_void(invoice=first, reason="billed twice", actor=finance_admin).status == "void"
    assert invoice_mark_uncollectible(invoice=second, reason="insolvent").status == "uncollectible"  # a task
    assert first.history.latest("history_id").history_user == finance_admin


def test_billing_staff_are_not_offered_void_or_write_off(client, issued, billing_staff):
    client.force_login(billing_staff)
    page = client.get(CHANGELIST).content.decode()
    assert 'value="void_draft_action"' in page and 'value="hold_action"' in page
    assert 'value="void_action"' not in page
    assert 'value="uncollectible_action"' not in page


@pytest.mark.parametrize(
    ("action", "description"),
    [
        ("void_action", "Void selected invoices (drafts or unpaid finalized)"),
        ("uncollectible_action", "Write off selected unpaid invoices (uncollectible)"),
    ],
)
def test_billing_staff_posting_void_or_write_off_change_nothing_and_see_why(
    client, issued, billing_staff, action, description
):
    client.force_login(billing_staff)
    before = [_state(i) for i in issued]
    response = _post(client, action, issued)
    assert response.status_code == 200
    assert ERR_ACTION_DENIED.format(action=description) in response.content.decode()
    assert [_state(i) for i in issued] == before


def test_billing_staff_cannot_void_an_issued_invoice_as_a_draft(client, issued, billing_staff):
    client.force_login(billing_staff)
    first, _ = issued
    before = _state(first)
    response = _post(client, "void_draft_action", [first])
    page = response.content.decode()
    assert f"{first}: " + ERR_VOID_ISSUED_DENIED.format(invoice=first, status="finalized") in page
    assert "voided." not in page
    assert _state(first) == before


def test_billing_staff_void_a_draft_in_review(client, plan, billing_staff):
    account = _customer(plan, "Tailspin", "ten_ts")
    close(review_hours=24)
    draft = Invoice.objects.get(account=account)
    client.force_login(billing_staff)
    response = _post(client, "void_draft_action", [draft])
    assert "1 invoice(s) voided." in response.content.decode()
    draft.refresh_from_db()
    assert (draft.status, draft.number, draft.amount_due) == ("void", None, D("0"))
    assert draft.history.latest("history_id").history_user == billing_staff


def test_finance_admin_void_and_write_off_from_the_invoice_list(client, issued, finance_admin):
    first, second = issued
    client.force_login(finance_admin)
    page = client.get(CHANGELIST).content.decode()
    assert 'value="void_action"' in page and 'value="uncollectible_action"' in page
    assert 'value="void_draft_action"' not in page  # their void action covers drafts
    assert "1 invoice(s) voided." in _post(client, "void_action", [first]).content.decode()
    assert "1 invoice(s) written off." in _post(client, "uncollectible_action", [second]).content.decode()
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.number, first.total, first.amount_due) == ("void", "INV-2026-000001", D("50.00"), 0)
    assert (second.status, second.total, second.amount_due) == ("uncollectible", D("50.00"), 0)
    assert {first.history.latest("history_id").history_user, second.history.latest("history_id").history_user} == {
        finance_admin
    }
