"""Staff read invoice and credit-note PDFs in the admin only, with the model's view permission."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from accounts.permissions import BILLING_STAFF, FINANCE_ADMIN
from billing.admin.documents import RERENDER_MESSAGE
from billing.models import CreditNote, Document, Invoice
from billing.services.credit_notes import credit_note_issue
from billing.services.documents import document_ready
from tests.accounts.factories import AccountFactory, StaffUserFactory
from tests.billing.cycle import JAN_1, UTC, close, subscribe
from tests.billing.factories import business_invoice
from tests.tenants.factories import TenantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def invoice(plan):
    return business_invoice(plan, tax_rate="20")


@pytest.fixture
def billing_staff(client):
    client.force_login(StaffUserFactory(groups=[Group.objects.get(name=BILLING_STAFF)]))
    return client


def pdf_url(invoice):
    return reverse("admin:billing_invoice_pdf", args=[invoice.pk])


def test_staff_with_view_permission_get_the_pdf_inline(billing_staff, invoice):
    response = billing_staff.get(pdf_url(invoice))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'inline; filename="INV-2026-000001.pdf"'
    assert response.content.startswith(b"%PDF-")
    document = Document.objects.get(invoice=invoice)
    assert (document.status, document.renders, int(response["Content-Length"])) == ("ready", 1, document.size)
    # Served again from the stored file, not rendered again.
    assert billing_staff.get(pdf_url(invoice)).content == response.content
    assert Document.objects.get(invoice=invoice).renders == 1


def test_credit_note_pdf(billing_staff, invoice):
    note = credit_note_issue(
        invoice=invoice,
        lines=[(None, "goodwill", D("10.00"))],
        reason="goodwill",
        now=dt.datetime(2026, 12, 5, tzinfo=UTC),
    )
    response = billing_staff.get(reverse("admin:billing_creditnote_pdf", args=[note.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'inline; filename="CN-2026-000001.pdf"'
    assert response.content.startswith(b"%PDF-")


def test_a_user_who_is_not_staff_is_sent_to_the_admin_login(client, invoice):
    user = StaffUserFactory(is_staff=False)
    user.user_permissions.add(Permission.objects.get(codename="view_invoice", content_type__app_label="billing"))
    client.force_login(user)
    response = client.get(pdf_url(invoice))
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=")
    assert Document.objects.get(invoice=invoice).renders == 0


def test_anonymous_visitors_are_sent_to_the_admin_login(client, invoice):
    response = client.get(pdf_url(invoice))
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_staff_without_the_view_permission_are_refused(client, invoice):
    client.force_login(StaffUserFactory())
    response = client.get(pdf_url(invoice))
    assert response.status_code == 403
    assert Document.objects.get(invoice=invoice).renders == 0


def test_a_draft_is_previewed_with_its_mark_and_not_stored(billing_staff, plan):
    account = AccountFactory(name="Tailspin")
    subscribe(account, plan("platform-basic"))
    TenantFactory(account=account, public_id="ten_ts", activated_at=JAN_1)
    close(review_hours=24)
    draft = Invoice.objects.get(account=account)
    response = billing_staff.get(pdf_url(draft))
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'inline; filename="draft-invoice-{draft.pk}.pdf"'
    assert not Document.objects.exists()


def test_change_page_shows_the_pdf_status_and_link(billing_staff, invoice):
    billing_staff.get(pdf_url(invoice))
    document = Document.objects.get(invoice=invoice)
    page = billing_staff.get(reverse("admin:billing_invoice_change", args=[invoice.pk])).content.decode()
    assert f'href="{pdf_url(invoice)}"' in page
    assert "View PDF" in page
    assert f"{document.size:,} bytes, {document.pages} page(s)" in page
    assert "Ready" in page


def test_a_failed_render_shows_on_the_change_page(billing_staff, invoice):
    # As the render task records a failure (see test_documents for a real one).
    Document.objects.filter(invoice=invoice).update(status=Document.Status.FAILED, error="OSError: cannot load font")
    page = billing_staff.get(reverse("admin:billing_invoice_change", args=[invoice.pk])).content.decode()
    assert "Failed: OSError: cannot load font" in page


def test_rerender_action_renders_the_selected_pdfs_again(billing_staff, invoice, django_capture_on_commit_callbacks):
    billing_staff.get(pdf_url(invoice))
    with django_capture_on_commit_callbacks(execute=True):
        response = billing_staff.post(
            reverse("admin:billing_invoice_changelist"),
            {"action": "rerender_pdf_action", "_selected_action": [invoice.pk]},
            follow=True,
        )
    assert response.status_code == 200
    assert "1 PDF(s) queued for rendering." in response.content.decode()
    document = Document.objects.get(invoice=invoice)
    assert (document.status, document.renders) == ("ready", 2)
    entry = LogEntry.objects.get(object_id=str(invoice.pk), content_type__model="invoice")
    assert (entry.action_flag, entry.get_change_message()) == (CHANGE, RERENDER_MESSAGE)
    assert entry.user == response.wsgi_request.user


def test_staff_who_may_only_view_cannot_re_render(client, invoice, django_capture_on_commit_callbacks):
    user = StaffUserFactory()
    user.user_permissions.add(Permission.objects.get(codename="view_invoice", content_type__app_label="billing"))
    client.force_login(user)
    changelist = reverse("admin:billing_invoice_changelist")
    assert "rerender_pdf_action" not in client.get(changelist).content.decode()
    document_ready(invoice=invoice)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            changelist, {"action": "rerender_pdf_action", "_selected_action": [invoice.pk]}, follow=True
        )
    assert response.status_code == 200
    assert Document.objects.get(invoice=invoice).renders == 1
    assert not LogEntry.objects.exists()


def test_rerender_action_on_credit_notes(client, invoice, django_capture_on_commit_callbacks):
    # Credit notes change only through services: billing staff view them, finance admins may re-render.
    billing_staff = client
    billing_staff.force_login(StaffUserFactory(groups=[Group.objects.get(name=FINANCE_ADMIN)]))
    with django_capture_on_commit_callbacks(execute=True):
        note = credit_note_issue(
            invoice=invoice,
            lines=[(None, "goodwill", D("10.00"))],
            reason="goodwill",
            now=dt.datetime(2026, 12, 5, tzinfo=UTC),
        )
    assert Document.objects.get(credit_note=note).renders == 1
    with django_capture_on_commit_callbacks(execute=True):
        response = billing_staff.post(
            reverse("admin:billing_creditnote_changelist"),
            {"action": "rerender_pdf_action", "_selected_action": [note.pk]},
            follow=True,
        )
    assert "1 PDF(s) queued for rendering." in response.content.decode()
    assert Document.objects.get(credit_note=note).renders == 2
    assert LogEntry.objects.get(object_id=str(note.pk)).get_change_message() == RERENDER_MESSAGE
    assert isinstance(LogEntry.objects.get(object_id=str(note.pk)).get_edited_object(), CreditNote)


def test_the_document_list_is_read_only(billing_staff, invoice):
    billing_staff.get(pdf_url(invoice))
    response = billing_staff.get(reverse("admin:billing_document_changelist"))
    assert response.status_code == 200
    assert "PDF of INV-2026-000001" in response.content.decode()
    assert "/media/" not in response.content.decode()
    document = Document.objects.get(invoice=invoice)
    assert billing_staff.post(reverse("admin:billing_document_change", args=[document.pk]), {}).status_code == 403


def test_a_pdf_whose_file_is_gone_is_rendered_again_for_staff(billing_staff, invoice):
    first = billing_staff.get(pdf_url(invoice))
    document = Document.objects.get(invoice=invoice)
    document.file.storage.delete(document.file.name)

    response = billing_staff.get(pdf_url(invoice))
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'inline; filename="INV-2026-000001.pdf"'
    assert response.content == first.content
    assert Document.objects.get(invoice=invoice).renders == 2
