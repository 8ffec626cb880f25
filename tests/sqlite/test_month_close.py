"""Closing a month on SQLite as an operator of the demo does it: usage in through the API, then the test clock
and the commands (``test_clock``, ``bill_period``, ``finalize_invoices``); the invoice checked to the cent, its
PDF rendered and its e-mail sent."""

import datetime as dt
import io
from decimal import Decimal as D

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from pypdf import PdfReader

from billing.models import Invoice

pytestmark = pytest.mark.django_db
UTC = dt.UTC


def command(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def message(txn: str, tenant: str, quantity: int) -> dict:
    return {
        "transaction_id": txn,
        "tenant": tenant,
        "metric": "messages",
        "quantity": quantity,
        "timestamp": "2026-11-15T12:00:00Z",
        "properties": {"partner_id": "prt_supplier_001"},
    }


@pytest.fixture
def november(northwind):
    """Northwind (Business plan, 20 % tax) in November 2026: 12 tenants, 31,000 messages (one batch
    sent twice) and 40 GB stored all month, reported through the API on 30 November."""
    with time_machine.travel(dt.datetime(2026, 11, 30, 12, tzinfo=UTC), tick=False):
        book = northwind(tenants=12, tax_rate="20")
        client = book["client"]
        storage = {"transaction_id": "s1", "tenant": "ten_nw_1", "metric": "storage_gb", "quantity": 40}
        first = client.post(
            "/v1/events",
            {"events": [message("m1", "ten_nw_1", 12_000), {**storage, "timestamp": "2026-11-01T00:00:00Z"}]},
            format="json",
        )
        second = client.post(
            "/v1/events",
            {"events": [message("m1", "ten_nw_1", 12_000), message("m2", "ten_nw_2", 19_000)]},
            format="json",
        )
        assert (first.json(), second.json()) == ({"accepted": 2, "duplicates": 0}, {"accepted": 1, "duplicates": 1})
        estimate = client.get("/v1/billing/usage/current").json()["usage_to_date"]
    # To date the 40 GB were stored 29.5 of November's 30 days: (39.33 − 10) GB-months × $1.50 = $44.00, a
    # dollar less than the whole month's storage below.
    assert estimate == {"estimated_charges": "561.00", "estimated_tax": "112.20", "estimated_total": "673.20"}
    return book


def test_closing_november_drafts_finalizes_renders_and_mails_the_invoice(november, django_capture_on_commit_callbacks):
    account = november["account"]
    with time_machine.travel(dt.datetime(2026, 11, 30, 12, tzinfo=UTC), tick=False):
        command("test_clock", "set", "2026-12-01T00:05Z")  # the schedule's month close: 00:05 UTC on the 1st
        with django_capture_on_commit_callbacks(execute=True):
            closed = command("bill_period", "2026-11")
        assert "2026-11: 1 of 1 accounts done, 0 failed, 1 invoices; 674.40 USD invoiced" in closed
        draft = Invoice.objects.get(account=account)
        assert (draft.status, draft.review_until) == ("draft", dt.datetime(2026, 12, 2, 0, 5, tzinfo=UTC))
        assert mail.outbox == []  # a draft is not sent

        command("test_clock", "advance", "25h")  # the 24-hour review window has passed
        with django_capture_on_commit_callbacks(execute=True):
            assert command("finalize_invoices").strip() == "1 invoice(s) finalized."

    invoice = Invoice.objects.get(account=account)
    # $299.00 base fee
    # + (12 − 10 included) tenants × $19.00 = $38.00
    # + (31,000 − 25,000 included) messages × $0.03 = $180.00 (the batch sent twice counts once)
    # + (40 − 10 included) GB-months × $1.50 = $45.00
    # = $562.00, + 20 % tax $112.40 = $674.40.
    assert (invoice.number, invoice.status, invoice.currency) == ("INV-2026-000001", "finalized", "USD")
    assert (invoice.subtotal, invoice.tax, invoice.total, invoice.amount_due) == (
        D("562.00"),
        D("112.40"),
        D("674.40"),
        D("674.40"),
    )
    assert sorted((line.description, line.quantity, line.amount) for line in invoice.lines.all()) == [
        ("Active tenants", D("12"), D("38.00")),
        ("Business base fee", D("1"), D("299.00")),
        ("Master partners", D("1"), D("0.00")),
        ("Messages", D("31000"), D("180.00")),
        ("Storage", D("40"), D("45.00")),
    ]

    document = invoice.document
    assert document.status == "ready"
    with document.file.open("rb") as pdf:
        text = "".join(page.extract_text() for page in PdfReader(pdf).pages)
    assert "INV-2026-000001" in text and "674.40" in text

    [sent] = mail.outbox
    assert sent.to == ["ap@northwind.example"]
    assert "INV-2026-000001" in sent.subject
    assert [(name, mimetype) for name, _content, mimetype in sent.attachments] == [
        ("INV-2026-000001.pdf", "application/pdf")
    ]
    assert sent.attachments[0][1][:5] == b"%PDF-"
    assert list(invoice.email_deliveries.values_list("kind", "status")) == [("invoice", "sent")]
