"""Invoice and credit-note PDFs: what they print (read back from the PDF), determinism, and rendering."""

from __future__ import annotations

import datetime as dt
import io
import re
from decimal import Decimal as D

import pytest
import time_machine
from django.test import override_settings
from pypdf import PdfReader

from billing.models import Document, Invoice
from billing.services.credit_notes import credit_note_issue
from billing.services.documents import (
    document_pdf_bytes,
    document_ready,
    document_render,
    document_request,
    documents_requeue_stale,
    invoice_preview_pdf,
)
from billing.services.invoices import invoice_finalize, invoice_mark_uncollectible, invoice_void
from billing.services.payments import invoice_payment_record
from common.errors import BillingError
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import DECEMBER, JAN_1, UTC, close, event, ingest, subscribe
from tests.billing.test_worked_examples import enterprise_eu
from tests.tenants.factories import MasterPartnerFactory, TenantFactory

pytestmark = pytest.mark.django_db
DEC_5 = dt.datetime(2026, 12, 5, 9, tzinfo=UTC)
REVERSE_CHARGE = "Reverse charge: VAT to be accounted for by the recipient (Article 196, Council Directive 2006/112/EC)"


def pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


def read(document: Document) -> bytes:
    with document.file.open("rb") as handle:
        return handle.read()


def text_lines(data: bytes) -> list[str]:
    return [" ".join(line.split()) for line in pdf_text(data).splitlines()]


@pytest.fixture
def northwind(plan):
    """Business plan, 20 % tax, 12 tenants, two master partners: $562.00 + $112.40 tax."""
    account = AccountFactory(
        name="Northwind", legal_name="Northwind Traders GmbH", tax_id="DE811111111", tax_rate=D("20")
    )
    subscribe(account, plan("messaging-business"))
    for i in range(12):
        TenantFactory(account=account, public_id=f"ten_nw_{i:02d}", name=f"Store {i:02d}", activated_at=JAN_1)
    MasterPartnerFactory(account=account, public_id="prt_a", name="Acme Supply", activated_at=JAN_1)
    MasterPartnerFactory(account=account, public_id="prt_b", name="Bolt Freight", activated_at=JAN_1)
    at = "2026-11-10T10:00:00Z"
    ingest(
        account,
        [
            event("m1", "ten_nw_00", "messages", 12400, at, partner_id="prt_a"),
            event("m2", "ten_nw_01", "messages", 18600, at, partner_id="prt_b"),
            event("s1", "ten_nw_00", "storage_gb", 40, "2026-11-01T00:00:00Z"),
        ],
    )
    close()
    return Invoice.objects.get(account=account)


def test_invoice_pdf_prints_every_figure_of_the_invoice(northwind):
    invoice = northwind
    assert (invoice.number, invoice.subtotal, invoice.tax, invoice.total) == (
        "INV-2026-000001",
        D("562.00"),
        D("112.40"),
        D("674.40"),
    )
    document = document_ready(invoice=invoice)
    assert (document.status, document.pages) == ("ready", 3)
    lines = text_lines(read(document))

    for expected in [
        "Invoice INV-2026-000001",
        "Invoice number INV-2026-000001",
        "Issue date 1 December 2026",
        "Due date 31 December 2026",
        "Period 1–30 November 2026",
        # seller, as snapshotted at finalization
        "Ledgerline Demo Ltd",
        "Tax id: IE0000000XX",
        "Bank transfer to IBAN IE00 DEMO 0000 0000 0000 00 (BIC DEMOIE2D)",
        # buyer
        "Northwind Traders GmbH",
        "Customer acc_000001",
        "Tax id: DE811111111",
        # every line: quantity, included, billed, unit price, amount
        "Business base fee 1 USD 299.00 USD 299.00",
        "Master partners 2 0 USD 0.00",
        "Messages 31,000 25,000 6,000 USD 0.03 USD 180.00",
        "Storage 40.00 10.00 30.00 USD 1.50 USD 45.00",
        "Active tenants 12 10 2 USD 19.00 USD 38.00",
        "Subtotal USD 562.00",
        "Tax 20% USD 112.40",
        "Total USD 674.40",
        "Amount due USD 674.40",
        "Please pay USD 674.40 by 31 December 2026.",
        # grouped by tenant: account-level charges, then each tenant's share
        "Business base fee 1 USD 299.00 USD 299.00",
        "Total Account USD 299.00",
        "Store 00 (ten_nw_00)",
        "Messages 12,400 USD 72.00",
        "Storage 40.00 USD 45.00",
        "Total Store 00 (ten_nw_00) USD 120.17",
        "Messages 18,600 USD 108.00",
        "Total Store 01 (ten_nw_01) USD 111.17",
        "Total Store 07 (ten_nw_07) USD 3.17",
        "Total Store 08 (ten_nw_08) USD 3.16",
        # master partners
        "Acme Supply (prt_a) Messages 12,400 USD 72.00",
        "Bolt Freight (prt_b) Messages 18,600 USD 108.00",
        "Invoice INV-2026-000001 Page 1 of 3",
        "Invoice INV-2026-000001 Page 3 of 3",
    ]:
        assert expected in lines, expected
    # The tenant groups add up to the subtotal to the cent: $299.00 + $120.17 + $111.17 + 6 × $3.17 + 4 × $3.16.
    group_totals = [
        D(m.group(1).replace(",", "")) for line in lines if (m := re.match(r"Total \S.* USD ([\d,.]+)$", line))
    ]
    assert len(group_totals) == 13
    assert sum(group_totals) == D("562.00")
    text = "\n".join(lines)
    for absent in ("Reverse charge", "Amount paid", "Amount credited", "DRAFT", "Discount"):
        assert absent not in text


def test_reverse_charge_invoice_with_discount_and_commitment(catalogue):
    account = AccountFactory(
        name="Globex",
        currency="EUR",
        tax_country="DE",
        tax_id="DE123456789",
        tax_rate=D("19"),
        tax_reverse_charge=True,
    )
    subscribe(account, enterprise_eu(account))
    TenantFactory(account=account, public_id="ten_gx_a", name="Globex Berlin", activated_at=JAN_1)
    TenantFactory(account=account, public_id="ten_gx_b", name="Globex Hamburg", activated_at=JAN_1)
    ingest(
        account,
        [
            event("m1", "ten_gx_a", "messages", 120_000, "2026-11-10T10:00:00Z"),
            event("m2", "ten_gx_b", "messages", 180_000, "2026-11-10T10:00:00Z"),
        ],
    )
    close()
    invoice = Invoice.objects.get(account=account)
    # €2,500 + 50,000 × €0.008 = €400 − 10 % discount €40 = €2,860: topped up by €140 to €3,000; no tax.
    assert (invoice.subtotal, invoice.discount_total, invoice.tax, invoice.total) == (
        D("3000.00"),
        D("40.00"),
        D("0.00"),
        D("3000.00"),
    )
    lines = text_lines(read(document_ready(invoice=invoice)))
    for expected in [
        "Custom Enterprise – Globex base fee 1 EUR 2,500.00 EUR 2,500.00",
        "Volume discount 10% on usage EUR -40.00",
        "Minimum commitment top-up to 3,000.00 EUR EUR 140.00",
        "Subtotal EUR 3,000.00",
        "Discount (included in the subtotal) EUR -40.00",
        "Tax (reverse charge) EUR 0.00",
        "Total EUR 3,000.00",
        "Amount due EUR 3,000.00",
        REVERSE_CHARGE,
        "Customer tax id: DE123456789",
        # the account-level lines (base fee, discount, top-up) and each tenant's share of the messages
        "Total Account EUR 2,600.00",
        "Messages 120,000 EUR 160.00",
        "Total Globex Berlin (ten_gx_a) EUR 160.00",
        "Messages 180,000 EUR 240.00",
        "Total Globex Hamburg (ten_gx_b) EUR 240.00",
        "Invoice INV-2026-000001 Page 1 of 2",
    ]:
        assert expected in lines, expected


def test_late_usage_is_printed_with_the_month_it_belongs_to(plan):
    account = AccountFactory(name="Northwind")
    subscribe(account, plan("messaging-business"))
    TenantFactory(account=account, public_id="ten_nw", activated_at=JAN_1)
    ingest(account, [event("nov-1", "ten_nw", "messages", 31_000, "2026-11-10T10:00:00Z")])
    close()
    ingest(
        account,
        [event("nov-late", "ten_nw", "messages", 1_000, "2026-11-29T23:00:00Z")],
        now=dt.datetime(2026, 12, 3, 9, tzinfo=UTC),
    )
    january_close = dt.datetime(2027, 1, 1, 0, 5, tzinfo=UTC)
    close(period=DECEMBER, now=january_close)
    december = Invoice.objects.get(account=account, period_start__month=12)

    lines = text_lines(read(document_ready(invoice=december)))
    assert "Late usage: Messages, November 2026 1,000 USD 30.00" in lines
    assert "Period 1–31 December 2026" in lines
    assert "Issue date 1 January 2027" in lines
    assert "Total USD 329.00" in lines


def test_credit_note_pdf_and_the_invoice_after_the_credit(northwind):
    invoice = northwind
    line = invoice.lines.get(metric__code="messages")
    note = credit_note_issue(
        invoice=invoice, lines=[(line, "1,000 messages in dispute", D("30.00"))], reason="Disputed messages", now=DEC_5
    )
    lines = text_lines(read(document_ready(credit_note=note)))
    for expected in [
        "Credit note CN-2026-000001",
        "Issue date 5 December 2026",
        "Credits invoice INV-2026-000001 of 1 December 2026",
        "Invoice period 1–30 November 2026",
        "Reason Disputed messages",
        "1,000 messages in dispute USD 30.00",
        "Subtotal USD 30.00",
        "Tax 20% USD 6.00",
        "Total credited USD 36.00",
        "Ledgerline Demo Ltd",
        "Northwind Traders GmbH",
        "Tax id: DE811111111",
        "Credit note CN-2026-000001 Page 1 of 1",
    ]:
        assert expected in lines, expected

    # Re-rendered after the credit, the invoice shows it: $674.40 − $36.00.
    invoice.refresh_from_db()
    document_request(invoice=invoice)
    document = document_render(document_id=invoice.document.pk)
    lines = text_lines(read(document))
    assert "Amount credited USD 36.00" in lines
    assert "Amount due USD 638.40" in lines
    assert "Total USD 674.40" in lines


def test_voiding_an_invoice_renders_its_pdf_again_marked_void(northwind, django_capture_on_commit_callbacks):
    assert "VOID" not in pdf_text(read(document_ready(invoice=northwind)))
    with django_capture_on_commit_callbacks(execute=True):
        invoice_void(invoice=northwind, reason="billed twice")
    document = Document.objects.get(invoice=northwind)
    assert (document.status, document.renders) == ("ready", 2)
    text = pdf_text(read(document))
    assert "VOID" in text
    assert "Invoice INV-2026-000001" in text


def test_seller_is_printed_as_it_was_at_finalization(northwind):
    other = {
        "name": "Renamed Seller BV",
        "address": ["Somewhere else 2"],
        "tax_id": "NL000000000B01",
        "email": "x@example.com",
        "payment_instructions": [],
    }
    assert northwind.snapshot["seller"]["name"] == "Ledgerline Demo Ltd"
    with override_settings(BILLING_SELLER=other):
        text = pdf_text(read(document_ready(invoice=northwind)))
    assert "Ledgerline Demo Ltd" in text
    assert "Renamed Seller BV" not in text


def test_a_draft_preview_is_marked_and_a_draft_has_no_document(plan):
    account = AccountFactory(name="Tailspin")
    subscribe(account, plan("platform-basic"))
    TenantFactory(account=account, public_id="ten_ts", activated_at=JAN_1)
    close(review_hours=24)
    draft = Invoice.objects.get(account=account)
    assert draft.status == "draft"

    text = pdf_text(invoice_preview_pdf(invoice=draft))
    assert "DRAFT — not a valid invoice" in text
    assert "Draft invoice" in text
    for service in (document_request, document_ready):
        with pytest.raises(BillingError) as caught:
            service(invoice=draft)
        assert caught.value.code == "invoice_draft"
    assert not Document.objects.exists()

    with time_machine.travel(dt.datetime(2026, 12, 2, tzinfo=UTC), tick=False):
        final = invoice_finalize(invoice=draft)
    text = pdf_text(read(document_ready(invoice=final)))
    assert "DRAFT" not in text
    assert "Invoice INV-2026-000001" in text


def test_rendering_twice_gives_the_same_bytes(northwind):
    with time_machine.travel(dt.datetime(2026, 12, 1, 1, tzinfo=UTC), tick=False):
        first = document_ready(invoice=northwind)
        first_bytes, first_sha = read(first), first.sha256
    # Later, on another day: re-requested and rendered again.
    with time_machine.travel(dt.datetime(2027, 3, 14, 15, 9, 26, tzinfo=UTC), tick=False):
        document_request(invoice=northwind)
        second = document_render(document_id=first.pk)
    assert second.renders == 2
    assert read(second) == first_bytes
    assert second.sha256 == first_sha
    assert document_pdf_bytes(second) == first_bytes
    # The PDF's dates are the invoice's own (finalized Dec 1 00:05 UTC), not the time of rendering.
    info = PdfReader(io.BytesIO(first_bytes)).metadata
    assert info["/CreationDate"] == info["/ModDate"] == "D:20261201000500Z"
    assert info["/Title"] == "Invoice INV-2026-000001"


def test_the_pdf_is_rendered_once_after_finalization_and_rerender_requests_collapse(
    plan, django_capture_on_commit_callbacks
):
    account = AccountFactory(name="Tailspin")
    subscribe(account, plan("platform-basic"))
    TenantFactory(account=account, public_id="ten_ts", activated_at=JAN_1)
    with django_capture_on_commit_callbacks(execute=True):
        close()
    invoice = Invoice.objects.get(account=account)
    document = Document.objects.get(invoice=invoice)
    assert (document.status, document.renders, document.pages) == ("ready", 1, 2)
    assert document.file.name == f"documents/INV-2026-000001-{document.sha256[:12]}.pdf"
    assert read(document).startswith(b"%PDF-")

    # Three requests before the worker gets to them: one task, one render.
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        for _ in range(3):
            document_request(invoice=invoice)
    assert len(callbacks) == 1
    document.refresh_from_db()
    assert (document.status, document.renders) == ("ready", 2)


def test_a_failed_render_is_recorded_and_a_later_request_retries(plan, tmp_path, settings):
    account = AccountFactory(name="Tailspin")
    subscribe(account, plan("platform-basic"))
    TenantFactory(account=account, public_id="ten_ts", activated_at=JAN_1)
    close()
    invoice = Invoice.objects.get(account=account)
    # A broken template (it includes one that does not exist) shadows the real one.
    broken = tmp_path / "billing" / "pdf"
    broken.mkdir(parents=True)
    (broken / "invoice.html").write_text('{% include "billing/pdf/missing.html" %}')
    templates = [{**settings.TEMPLATES[0], "DIRS": [tmp_path, *settings.TEMPLATES[0]["DIRS"]]}]
    with override_settings(TEMPLATES=templates):
        document = document_request(invoice=invoice)
        document = document_render(document_id=document.pk)
    assert document.status == "failed"
    assert document.error == "TemplateDoesNotExist: billing/pdf/missing.html"
    assert (document.renders, document.file.name) == (0, "")

    document = document_request(invoice=invoice)
    assert (document.status, document.error) == ("pending", "TemplateDoesNotExist: billing/pdf/missing.html")
    document = document_render(document_id=document.pk)
    assert (document.status, document.error, document.renders) == ("ready", "", 1)


def stored_lines(invoice: Invoice) -> list[str]:
    return text_lines(read(Document.objects.get(invoice=invoice)))


def test_recording_a_payment_renders_the_pdf_again_with_the_balance(northwind, django_capture_on_commit_callbacks):
    assert "Please pay USD 674.40 by 31 December 2026." in stored_lines_of_ready(northwind)
    with django_capture_on_commit_callbacks(execute=True):
        invoice_payment_record(invoice=northwind, amount=D("74.40"), reference="wire 1", now=DEC_5)
    lines = stored_lines(northwind)
    assert "Amount paid USD 74.40" in lines
    assert "Amount due USD 600.00" in lines
    assert "Please pay USD 600.00 by 31 December 2026." in lines

    with django_capture_on_commit_callbacks(execute=True):
        invoice_payment_record(invoice=northwind, amount=D("600.00"), reference="wire 2", now=DEC_5)
    document = Document.objects.get(invoice=northwind)
    assert (document.status, document.renders) == ("ready", 3)
    lines = stored_lines(northwind)
    assert "Amount paid USD 674.40" in lines
    assert "Amount due USD 0.00" in lines
    assert "PAID" in lines
    assert not any("Please pay" in line for line in lines)


def test_issuing_a_credit_note_renders_the_invoice_pdf_again(northwind, django_capture_on_commit_callbacks):
    stored_lines_of_ready(northwind)
    with django_capture_on_commit_callbacks(execute=True):
        credit_note_issue(invoice=northwind, lines=[(None, "goodwill", D("30.00"))], reason="goodwill", now=DEC_5)
    lines = stored_lines(northwind)
    assert "Amount credited USD 36.00" in lines
    assert "Amount due USD 638.40" in lines
    assert "Please pay USD 638.40 by 31 December 2026." in lines

    # Credited in full: nothing is due and nothing is asked for.
    with django_capture_on_commit_callbacks(execute=True):
        credit_note_issue(invoice=northwind, lines=[(None, "the rest", D("532.00"))], reason="closing", now=DEC_5)
    lines = stored_lines(northwind)
    assert "Amount credited USD 674.40" in lines
    assert "Amount due USD 0.00" in lines
    assert not any("Please pay" in line for line in lines)


def test_writing_an_invoice_off_renders_the_pdf_again_without_asking_for_payment(
    northwind, django_capture_on_commit_callbacks
):
    stored_lines_of_ready(northwind)
    with django_capture_on_commit_callbacks(execute=True):
        invoice_mark_uncollectible(invoice=northwind, reason="customer insolvent")
    document = Document.objects.get(invoice=northwind)
    assert (document.status, document.renders) == ("ready", 2)
    lines = stored_lines(northwind)
    assert "Amount due USD 0.00" in lines
    assert not any("Please pay" in line for line in lines)
    assert "PAID" not in lines


def stored_lines_of_ready(invoice: Invoice) -> list[str]:
    return text_lines(read(document_ready(invoice=invoice)))


def test_a_ready_document_whose_file_is_gone_is_rendered_again(northwind, django_capture_on_commit_callbacks):
    document = document_ready(invoice=northwind)
    original = read(document)
    document.file.storage.delete(document.file.name)

    again = document_ready(invoice=northwind)
    assert (again.status, again.renders) == ("ready", 2)
    assert read(again) == original
    # The render task does not skip it either.
    again.file.storage.delete(again.file.name)
    with django_capture_on_commit_callbacks(execute=True):
        rendered = document_render(document_id=again.pk)
    assert rendered.renders == 3
    assert read(rendered) == original


def test_a_new_render_replaces_the_old_file_only_after_commit(northwind, django_capture_on_commit_callbacks):
    first = document_ready(invoice=northwind)
    storage, old_name = first.file.storage, first.file.name
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        invoice_payment_record(invoice=northwind, amount=D("10.00"), now=DEC_5)
        document = document_render(document_id=first.pk)
    # Until the transaction commits, the old row's file is still there.
    assert document.file.name != old_name
    assert storage.exists(old_name)
    assert storage.exists(document.file.name)
    for callback in callbacks:
        callback()
    assert not storage.exists(old_name)
    assert storage.exists(Document.objects.get(invoice=northwind).file.name)


def test_the_sweep_queues_a_lost_render_again_at_most_once_per_interval(plan):
    account = AccountFactory(name="Tailspin")
    subscribe(account, plan("platform-basic"))
    TenantFactory(account=account, public_id="ten_ts", activated_at=JAN_1)
    close()
    invoice = Invoice.objects.get(account=account)
    asked = dt.datetime(2026, 12, 1, 0, 5, tzinfo=UTC)
    # Finalization asked for the render at 00:05 and its task was lost (the callbacks never ran here).
    document = Document.objects.get(invoice=invoice)
    assert (document.status, document.requested_at) == ("pending", asked)
    first_sweep = asked + dt.timedelta(minutes=11)
    assert documents_requeue_stale(now=first_sweep) == 1
    document.refresh_from_db()
    assert document.requested_at == first_sweep

    # Say that task was lost too (tasks run eagerly here, so put the row back as a lost task leaves it):
    # the next sweep, ten minutes after the first, leaves it alone; the one after queues it again.
    Document.objects.filter(pk=document.pk).update(status=Document.Status.PENDING)
    assert documents_requeue_stale(now=first_sweep + dt.timedelta(minutes=10)) == 0
    assert documents_requeue_stale(now=first_sweep + dt.timedelta(minutes=20)) == 1
