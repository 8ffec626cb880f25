"""The document exports (invoices, credit notes, payments) and the monthly usage export, with Northwind's November
invoice: Business, 31,000 messages, $299 + (31,000 − 25,000) × $0.03 = $479.00."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import orjson
import pytest
import time_machine

from accounts.services import api_key_create
from billing.models import Payment
from billing.services.credit_notes import credit_note_issue
from billing.services.payments import payment_record
from exports.models import ExportRequest
from tests.billing.factories import business_invoice

pytestmark = pytest.mark.django_db
UTC = dt.UTC
DEC_5 = dt.datetime(2026, 12, 5, 9, tzinfo=UTC)
DEC_6 = dt.datetime(2026, 12, 6, 10, tzinfo=UTC)


@pytest.fixture
def northwind(plan):
    invoice = business_invoice(plan)
    with time_machine.travel(DEC_5, tick=False):
        payment = payment_record(
            account=invoice.account,
            amount=Decimal("100.00"),
            provider=Payment.Provider.BANK_TRANSFER,
            reference="NW-DEC",
            allocations=[(invoice, Decimal("100.00"))],
            received_at=DEC_5,
        )
        note = credit_note_issue(
            invoice=invoice, lines=[(None, "Goodwill for the outage", Decimal("20.00"))], reason="Outage credit"
        )
    return {"account": invoice.account, "invoice": invoice, "payment": payment, "note": note}


def export_key(**limits) -> str:
    return api_key_create(name="erp", scopes=["export"], **limits)[1]


def get(api, secret, path, at=DEC_6, **headers):
    with time_machine.travel(at, tick=False):
        return api(secret).get(path, **headers)


def test_invoices_export_issued_invoices_with_lines_and_amounts_as_strings(api, northwind):
    body = get(api, export_key(), "/v1/export/invoices").json()
    assert body["has_more"] is False
    [invoice] = body["data"]
    assert invoice["cursor"] == body["next_cursor"]
    assert (invoice["number"], invoice["account_id"], invoice["currency"]) == (
        northwind["invoice"].number,
        northwind["account"].public_id,
        "USD",
    )
    # $479.00 − $100.00 paid − $20.00 credited = $359.00 due.
    assert (invoice["total"], invoice["amount_paid"], invoice["amount_credited"], invoice["amount_due"]) == (
        "479.00",
        "100.00",
        "20.00",
        "359.00",
    )
    charged = [(line["kind"], line["metric"], line["amount"]) for line in invoice["lines"] if line["amount"] != "0.00"]
    assert charged == [("base_fee", None, "299.00"), ("usage", "messages", "180.00")]
    assert get(api, export_key(), "/v1/export/invoices?billing_month=2026-10").json()["data"] == []
    assert len(get(api, export_key(), "/v1/export/invoices?billing_month=2026-11&status=finalized").json()["data"]) == 1


def test_credit_notes_and_payments_export_with_their_currency(api, northwind):
    secret = export_key()
    [note] = get(api, secret, "/v1/export/credit-notes").json()["data"]
    assert {k: note[k] for k in ("number", "invoice_number", "status", "currency", "subtotal", "total")} == {
        "number": northwind["note"].number,
        "invoice_number": northwind["invoice"].number,
        "status": "issued",
        "currency": "USD",
        "subtotal": "20.00",
        "total": "20.00",
    }
    assert note["lines"] == [{"description": "Goodwill for the outage", "amount": "20.00"}]
    [payment] = get(api, secret, "/v1/export/payments").json()["data"]
    assert (payment["id"], payment["amount"], payment["currency"], payment["status"]) == (
        northwind["payment"].public_id,
        "100.00",
        "USD",
        "succeeded",
    )
    assert payment["allocations"] == [{"invoice_id": northwind["invoice"].number, "amount": "100.00"}]
    assert get(api, secret, "/v1/export/payments?from=2026-12-06").json()["data"] == []


def test_a_document_stays_out_of_the_export_until_it_has_settled(api, northwind):
    # The payment and the credit note were recorded at DEC_5: two seconds later they are still settling.
    assert get(api, export_key(), "/v1/export/payments", at=DEC_5 + dt.timedelta(seconds=2)).json()["data"] == []


def test_documents_stream_as_ndjson_and_flat_csv(api, northwind):
    secret = export_key()
    lines = get(api, secret, "/v1/export/invoices?format=ndjson").getvalue().splitlines()
    assert [orjson.loads(line)["lines"][0]["amount"] for line in lines] == ["299.00"]
    rows = list(
        csv.reader(io.StringIO(get(api, secret, "/v1/export/payments", HTTP_ACCEPT="text/csv").getvalue().decode()))
    )
    assert rows[0][:4] == ["cursor", "id", "account_id", "provider"]
    assert rows[1][1:9] == [
        northwind["payment"].public_id,
        northwind["account"].public_id,
        "bank_transfer",
        "NW-DEC",
        "succeeded",
        "USD",
        "100.00",
        "0.00",
    ]


def test_a_key_limited_to_another_account_sees_none_of_northwinds_documents(api, northwind):
    from tests.accounts.factories import AccountFactory

    other = AccountFactory(name="Globex")
    secret = export_key(export_accounts=[other])
    assert get(api, secret, "/v1/export/invoices").json()["data"] == []
    response = get(api, secret, f"/v1/export/invoices?account={northwind['account'].public_id}")
    assert response.status_code == 404


def test_the_usage_export_has_each_visible_accounts_month_with_its_partner_breakdown(api, northwind):
    secret = export_key()
    body = get(api, secret, "/v1/export/usage?year=2026&month=11").json()
    [row] = [r for r in body["data"] if r["document"]["account_id"] == northwind["account"].public_id]
    assert row["document"]["usage_to_date"]["estimated_charges"] == "479.00"
    assert row["document"]["partner_breakdown"] == []
    assert get(api, secret, "/v1/export/usage?year=2027&month=1").json()["error"]["field"] == "month"
    assert get(api, secret, "/v1/export/usage?year=2026").json()["error"]["field"] == "month"
    read = api_key_create(name="r", scopes=["read"], account=northwind["account"])[1]
    own = get(api, read, "/v1/export/usage?year=2026&month=11&format=ndjson").getvalue().splitlines()
    assert [orjson.loads(line)["document"]["account_id"] for line in own] == [northwind["account"].public_id]
    assert ExportRequest.objects.filter(dataset="usage", status="completed").count() == 2
