"""A finalized invoice cannot change: services refuse (409), the database trigger refuses raw writes."""

from decimal import Decimal as D

import pytest
from django.db import IntegrityError, transaction

from billing.models import Invoice, InvoiceLine
from billing.services.invoices import ERR_NOT_DRAFT, invoice_finalize, invoice_hold
from common.errors import BillingError
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import NOVEMBER
from tests.billing.factories import finalized_invoice

pytestmark = pytest.mark.django_db


@pytest.fixture
def finalized(plan):
    invoice = finalized_invoice(plan("platform-basic"), account=AccountFactory(name="Northwind"))
    assert (invoice.status, invoice.total) == ("finalized", D("50.00"))
    return invoice


@pytest.mark.parametrize(
    ("service", "kwargs", "action"),
    [(invoice_hold, {"reason": "check"}, "held"), (invoice_finalize, {}, "finalized")],
)
def test_services_refuse_to_touch_a_finalized_invoice(finalized, service, kwargs, action):
    with pytest.raises(BillingError) as caught:
        service(invoice=finalized, **kwargs)
    assert (caught.value.code, caught.value.status) == ("invoice_not_draft", 409)
    assert caught.value.message == ERR_NOT_DRAFT.format(action=action, invoice=finalized, status="finalized")


def test_a_raw_update_of_the_money_is_refused_by_the_database(finalized):
    with pytest.raises(IntegrityError, match="finalized invoice is immutable"), transaction.atomic():
        Invoice.objects.filter(pk=finalized.pk).update(total=D("1.00"), subtotal=D("1.00"))
    with pytest.raises(IntegrityError, match="finalized invoice is immutable"), transaction.atomic():
        Invoice.objects.filter(pk=finalized.pk).update(number="INV-2026-999999")
    with pytest.raises(IntegrityError, match="finalized invoice is immutable"), transaction.atomic():
        Invoice.objects.filter(pk=finalized.pk).delete()
    finalized.refresh_from_db()
    assert (finalized.number, finalized.total) == ("INV-2026-000001", D("50.00"))


def test_lines_of_a_finalized_invoice_cannot_be_deleted_changed_or_added(finalized):
    line = finalized.lines.get(kind="base_fee")
    with pytest.raises(IntegrityError, match="invoice line: finalized invoice is immutable"), transaction.atomic():
        finalized.lines.all().delete()
    with pytest.raises(IntegrityError, match="invoice line: finalized invoice is immutable"), transaction.atomic():
        InvoiceLine.objects.filter(pk=line.pk).update(amount=D("0.00"))
    with pytest.raises(IntegrityError, match="invoice line: finalized invoice is immutable"), transaction.atomic():
        InvoiceLine.objects.create(
            invoice=finalized,
            position=99,
            kind="usage",
            description="Smuggled in",
            period_start=NOVEMBER.start,
            period_end=NOVEMBER.end,
            amount=D("10.00"),
        )
    assert [(li.kind, li.amount) for li in finalized.lines.filter(amount__gt=0)] == [("base_fee", D("50.00"))]


def test_the_admin_shows_a_finalized_invoice_read_only_and_refuses_to_change_it(finalized, client):
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw-123456"))
    url = f"/admin/billing/invoice/{finalized.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200
    assert b'name="total"' not in page.content and b"INV-2026-000001" in page.content
    client.post(url, {"total": "1.00", "subtotal": "1.00", "status": "draft"})
    finalized.refresh_from_db()
    assert (finalized.status, finalized.total) == ("finalized", D("50.00"))
    assert client.get("/admin/billing/invoice/add/").status_code == 403
    # Actions go through the services: finalizing again is refused with the reason on the page.
    response = client.post(
        "/admin/billing/invoice/",
        {"action": "finalize_action", "_selected_action": [finalized.pk]},
        follow=True,
    )
    assert "Only a draft can be finalized" in response.content.decode()
    # Writing off the unpaid invoice keeps its money and number and clears what is due.
    client.post("/admin/billing/invoice/", {"action": "uncollectible_action", "_selected_action": [finalized.pk]})
    finalized.refresh_from_db()
    assert (finalized.status, finalized.total, finalized.amount_due) == ("uncollectible", D("50.00"), D("0"))


def test_the_database_allows_only_forward_status_moves(finalized):
    Invoice.objects.filter(pk=finalized.pk).update(status="void", amount_due=0)
    for status in ("finalized", "paid", "draft"):
        with pytest.raises(IntegrityError), transaction.atomic():
            Invoice.objects.filter(pk=finalized.pk).update(status=status)
    finalized.refresh_from_db()
    assert finalized.status == "void"
