"""The ledger API: an account's billing standing, its invoices (with payments, credit notes and PDFs) and its
payments, for read keys (their own account only: any other is a 404) and export keys (every account)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
import time_machine

from accounts.services import api_key_create
from billing.models import Invoice, Payment, PaymentProfile
from billing.selectors import payment_unapplied
from billing.services.credit_notes import credit_note_issue
from billing.services.payments import payment_record, payment_refund
from common.periods import month_period
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import JAN_1, UTC, close, subscribe
from tests.billing.factories import business_invoice, draft_invoice
from tests.tenants.factories import TenantFactory

pytestmark = pytest.mark.django_db

DEC_5 = dt.datetime(2026, 12, 5, 9, tzinfo=UTC)
DEC_6 = dt.datetime(2026, 12, 6, 10, tzinfo=UTC)
SUMMARY_FIELDS = {
    "number",
    "account_id",
    "status",
    "currency",
    "period_start",
    "period_end",
    "issued_at",
    "due_at",
    "paid_at",
    "voided_at",
    "subtotal",
    "tax",
    "total",
    "amount_paid",
    "amount_credited",
    "amount_due",
    "pdf_url",
}


def key(account, *scopes: str, tenant=None) -> str:
    return api_key_create(name=" ".join(scopes), scopes=list(scopes), account=account, tenant=tenant)[1]


def export_key() -> str:
    return api_key_create(name="erp export", scopes=["export"], account=None)[1]


@pytest.fixture
def northwind(plan):
    """Northwind's finalized November invoice: Business, 31,000 messages, $479.00 due."""
    invoice = business_invoice(plan)
    return {"invoice": invoice, "account": invoice.account, "key": key(invoice.account, "read")}


def pay(account, amount: str, *, invoice=None, reference="NW-DEC-2026", at=DEC_5) -> Payment:
    with time_machine.travel(at, tick=False):
        return payment_record(
            account=account,
            amount=D(amount),
            provider=Payment.Provider.BANK_TRANSFER,
            reference=reference,
            allocations=None if invoice is None else [(invoice, D(amount))],
            received_at=at,
        )


def error_of(response) -> dict:
    return response.json()["error"]


# --- GET /v1/accounts/{account}/billing -----------------------------------------------------------------


def test_billing_has_exactly_the_documented_fields_and_types(api, northwind):
    account = northwind["account"]
    PaymentProfile.objects.create(
        account=account,
        stripe_customer_id="cus_NW123",
        payment_method_id="pm_card_visa",
        payment_method_type=PaymentProfile.MethodType.CARD,
        payment_method_brand="visa",
        payment_method_last4="4242",
        payment_method_exp_month=8,
        payment_method_exp_year=2028,
    )
    pay(account, "500.00")  # $479.00 settles the invoice; $21.00 is left as credit

    with time_machine.travel(DEC_6, tick=False):
        response = api(northwind["key"]).get(f"/v1/accounts/{account.public_id}/billing")

    assert response.status_code == 200
    body = response.json()
    assert body == {
        "account_id": account.public_id,
        "account_status": "active",
        "currency": "USD",
        "customer_id": "cus_NW123",
        "subscription": {
            "id": body["subscription"]["id"],
            "status": "active",
            "current_period_start": "2026-12-01T00:00:00Z",
            "current_period_end": "2027-01-01T00:00:00Z",
            "trial_ends_at": "2026-01-31T00:00:00Z",
            "cancel_at_period_end": False,
        },
        "billing_plan": {"name": "Business", "model": "messaging", "base_fee": "299.00", "message_rate": "0.03"},
        "payment_method": {"type": "card", "last4": "4242", "exp_month": 8, "exp_year": 2028},
        "has_payment_method": True,
        "balance": "21.00",
        "amount_due": "0.00",
    }
    assert body["subscription"]["id"].startswith("sub_")


def test_billing_of_an_account_with_no_subscription_profile_or_invoice_is_mostly_null(api):
    account = AccountFactory(name="Fresh")
    response = api(key(account, "read")).get(f"/v1/accounts/{account.public_id}/billing")
    assert response.status_code == 200
    assert response.json() == {
        "account_id": account.public_id,
        "account_status": "trialing",
        "currency": "USD",
        "customer_id": None,
        "subscription": None,
        "billing_plan": None,
        "payment_method": None,
        "has_payment_method": False,
        "balance": "0.00",
        "amount_due": "0.00",
    }


def test_a_plan_without_a_message_charge_has_no_message_rate(api, plan):
    account = AccountFactory(name="Hooli")
    subscribe(account, plan("platform-basic"))
    body = api(key(account, "read")).get(f"/v1/accounts/{account.public_id}/billing").json()
    assert body["billing_plan"] == {
        "name": "Basic",
        "model": "tenant_platform",
        "base_fee": "50.00",
        "message_rate": None,
    }
    assert (body["subscription"]["status"], body["subscription"]["trial_ends_at"]) == ("active", None)


def test_billing_amount_due_is_what_the_open_invoices_still_ask(api, northwind):
    pay(northwind["account"], "300.00", invoice=northwind["invoice"])
    body = api(northwind["key"]).get(f"/v1/accounts/{northwind['account'].public_id}/billing").json()
    assert (body["amount_due"], body["balance"]) == ("179.00", "0.00")


def test_another_accounts_read_key_gets_404_as_for_an_account_that_does_not_exist(api, northwind):
    other = AccountFactory(name="Globex")
    other_key = key(other, "read")
    theirs = api(other_key).get(f"/v1/accounts/{northwind['account'].public_id}/billing")
    missing = api(other_key).get("/v1/accounts/acc_999999/billing")
    assert theirs.status_code == missing.status_code == 404
    assert error_of(theirs) == {
        "code": "not_found",
        "field": "account",
        "message": f"No account '{northwind['account'].public_id}'.",
    }
    assert error_of(missing)["message"] == "No account 'acc_999999'."


def test_an_ingest_only_key_is_refused_with_403(api, northwind):
    ingest_only = key(northwind["account"], "ingest")
    for path in (f"/v1/accounts/{northwind['account'].public_id}/billing", "/v1/invoices", "/v1/payments"):
        response = api(ingest_only).get(path)
        assert response.status_code == 403, path
        assert error_of(response) == {
            "code": "permission_denied",
            "field": None,
            "message": "This API key needs the 'read' or 'export' scope.",
        }


def test_no_key_is_401_with_the_bearer_challenge(api, northwind):
    number = northwind["invoice"].number
    for path in (
        f"/v1/accounts/{northwind['account'].public_id}/billing",
        "/v1/invoices",
        f"/v1/invoices/{number}",
        f"/v1/invoices/{number}/pdf",
        "/v1/payments",
    ):
        response = api(None).get(path)
        assert response.status_code == 401, path
        assert response["WWW-Authenticate"] == 'Bearer realm="ledgerline"'
        assert error_of(response)["code"] == "not_authenticated"


def test_a_key_pinned_to_a_tenant_reads_no_account_money(api, northwind):
    account = northwind["account"]
    tenant = TenantFactory(account=account, public_id="ten_nw_pinned", activated_at=JAN_1)
    pinned = key(account, "read", tenant=tenant)
    response = api(pinned).get(f"/v1/accounts/{account.public_id}/billing")
    assert response.status_code == 403
    assert error_of(response)["message"] == (
        "This API key is pinned to a tenant: it reads that tenant's usage only; billing, invoices and payments "
        "are the account's."
    )
    assert api(pinned).get("/v1/invoices").status_code == 403


def test_an_export_key_reads_any_accounts_billing(api, northwind):
    response = api(export_key()).get(f"/v1/accounts/{northwind['account'].public_id}/billing")
    assert response.status_code == 200
    assert (response.json()["account_id"], response.json()["amount_due"]) == (
        northwind["account"].public_id,
        "479.00",
    )
    assert api(export_key()).get("/v1/accounts/acc_999999/billing").status_code == 404


# --- GET /v1/invoices ------------------------------------------------------------------------------------


@pytest.fixture
def three_months(plan):
    """An account billed for September, October and November 2026 ($299.00 base fee each)."""
    account = AccountFactory(name="Initech")
    subscribe(account, plan("messaging-business"), at=dt.datetime(2026, 9, 2, tzinfo=UTC))
    for month in (9, 10, 11):
        period = month_period(2026, month)
        close(period=period, now=period.end + dt.timedelta(minutes=5))
    invoices = {i.period_start.month: i for i in Invoice.objects.filter(account=account)}
    return {"account": account, "key": key(account, "read"), "invoices": invoices}


def numbers(response) -> list[str]:
    return [item["number"] for item in response.json()["results"]]


def test_invoices_are_listed_newest_first_in_cursor_pages(api, three_months):
    client = api(three_months["key"])
    sep, oct_, nov = (three_months["invoices"][m].number for m in (9, 10, 11))

    first = client.get("/v1/invoices", {"page_size": 2})
    assert first.status_code == 200
    assert numbers(first) == [nov, oct_]
    assert first.json()["previous"] is None
    assert first.json()["next"].startswith("http://testserver/v1/invoices?cursor=")

    second = client.get(first.json()["next"])
    assert numbers(second) == [sep]
    assert second.json()["next"] is None
    assert numbers(client.get(second.json()["previous"])) == [nov, oct_]


def test_an_invoice_in_the_list_has_its_amounts_and_its_pdf_link(api, three_months):
    results = api(three_months["key"]).get("/v1/invoices", {"period": "2026-10"}).json()["results"]
    october = three_months["invoices"][10]
    assert results == [
        {
            "number": october.number,
            "account_id": three_months["account"].public_id,
            "status": "finalized",
            "currency": "USD",
            "period_start": "2026-10-01T00:00:00Z",
            "period_end": "2026-11-01T00:00:00Z",
            "issued_at": "2026-11-01T00:05:00Z",
            "due_at": "2026-12-01T00:05:00Z",
            "paid_at": None,
            "voided_at": None,
            "subtotal": "299.00",
            "tax": "0.00",
            "total": "299.00",
            "amount_paid": "0.00",
            "amount_credited": "0.00",
            "amount_due": "299.00",
            "pdf_url": f"http://testserver/v1/invoices/{october.number}/pdf",
        }
    ]


def test_invoices_filter_by_status_and_period(api, three_months):
    client = api(three_months["key"])
    invoices = three_months["invoices"]
    pay(three_months["account"], "299.00", invoice=invoices[9])

    assert numbers(client.get("/v1/invoices", {"status": "paid"})) == [invoices[9].number]
    assert numbers(client.get("/v1/invoices", {"status": "finalized"})) == [invoices[11].number, invoices[10].number]
    assert numbers(client.get("/v1/invoices", {"status": "void"})) == []
    assert numbers(client.get("/v1/invoices", {"period": "2026-11"})) == [invoices[11].number]
    in_range = client.get("/v1/invoices", {"period_start": "2026-10-01", "period_end": "2026-12-01"})
    assert numbers(in_range) == [invoices[11].number, invoices[10].number]
    assert numbers(client.get("/v1/invoices", {"period_end": "2026-11-01"})) == [
        invoices[10].number,
        invoices[9].number,
    ]


@pytest.mark.parametrize(
    "query, field, message",
    [
        (
            {"status": "draft"},
            "status",
            "Select a valid choice. draft is not one of the available choices.",
        ),
        ({"period": "2026-13"}, "period", "Give the billed month as YYYY-MM, from 2000-01 to 9998-12."),
        ({"period": "1999-12"}, "period", "Give the billed month as YYYY-MM, from 2000-01 to 9998-12."),
        ({"period_start": "01/10/2026"}, "period_start", "Give a date as YYYY-MM-DD."),
        (
            {"period": "2026-10", "period_end": "2026-12-01"},
            "period",
            "Give either period or period_start/period_end, not both.",
        ),
        (
            {"period_start": "2026-12-01", "period_end": "2026-10-01"},
            "period_end",
            "period_end must be after period_start.",
        ),
        ({"page_size": "0"}, "page_size", "Give page_size as a whole number from 1 to 100."),
        ({"page_size": "101"}, "page_size", "Give page_size as a whole number from 1 to 100."),
        (
            {"cursor": "not-a-cursor"},
            "cursor",
            "The cursor is not valid: use the `next` or `previous` link of a page as it is.",
        ),
    ],
)
def test_an_invalid_filter_is_a_400_naming_the_field(api, northwind, query, field, message):
    response = api(northwind["key"]).get("/v1/invoices", query)
    assert response.status_code == 400
    assert (error_of(response)["field"], error_of(response)["message"]) == (field, message)


def test_drafts_are_never_shown(api, plan):
    invoice = draft_invoice(plan("messaging-business"), account=AccountFactory(name="Umbrella"))
    assert invoice.status == Invoice.Status.DRAFT
    client = api(key(invoice.account, "read"))
    assert client.get("/v1/invoices").json() == {"next": None, "previous": None, "results": []}
    assert client.get("/v1/invoices", {"status": "draft"}).status_code == 400


def test_an_export_key_names_the_account_of_the_list(api, northwind):
    export = api(export_key())

    without = export.get("/v1/invoices")
    assert without.status_code == 400
    assert error_of(without) == {
        "code": "required",
        "field": "account",
        "message": "Export keys name the account: ?account=acc_…",
    }
    assert export.get("/v1/payments").status_code == 400

    listed = export.get("/v1/invoices", {"account": northwind["account"].public_id})
    assert numbers(listed) == [northwind["invoice"].number]
    assert export.get("/v1/invoices", {"account": "acc_999999"}).status_code == 404


# --- GET /v1/invoices/{number} and its PDF -----------------------------------------------------------------


def test_invoice_detail_shows_payments_and_credit_notes_to_the_cent(api, northwind):
    invoice, account = northwind["invoice"], northwind["account"]
    payment = pay(account, "300.00", invoice=invoice)
    with time_machine.travel(DEC_6, tick=False):
        note = credit_note_issue(invoice=invoice, lines=[(None, "Goodwill credit", D("50.00"))], reason="Outage")

    response = api(northwind["key"]).get(f"/v1/invoices/{invoice.number}")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == SUMMARY_FIELDS | {"discount_total", "tax_rate", "lines", "payments", "credit_notes"}
    assert (body["status"], body["total"], body["amount_paid"], body["amount_credited"], body["amount_due"]) == (
        "finalized",
        "479.00",
        "300.00",
        "50.00",
        "129.00",
    )
    assert body["payments"] == [
        {"payment_id": payment.public_id, "amount": "300.00", "kind": "payment", "at": "2026-12-05T09:00:00Z"}
    ]
    assert body["credit_notes"] == [
        {
            "number": note.number,
            "status": "issued",
            "reason": "Outage",
            "total": "50.00",
            "issued_at": "2026-12-06T10:00:00Z",
        }
    ]
    fields = ("kind", "metric", "quantity", "included", "billable", "unit_price", "amount")
    assert [tuple(line[f] for f in fields) for line in body["lines"]] == [
        ("base_fee", None, "1", None, None, "299.00", "299.00"),
        ("usage", "master_partners", "0", None, "0", None, "0.00"),
        ("usage", "messages", "31000", "25000", "6000", "0.03", "180.00"),
        ("usage", "storage_gb", "0", "10", "0", "1.50", "0.00"),
        ("usage", "tenants", "1", "10", "0", "19.00", "0.00"),
    ]
    assert body["pdf_url"] == f"http://testserver/v1/invoices/{invoice.number}/pdf"


def test_money_a_credit_note_releases_shows_as_a_negative_movement(api, northwind):
    invoice, account = northwind["invoice"], northwind["account"]
    pay(account, "479.00", invoice=invoice)
    with time_machine.travel(DEC_6, tick=False):
        credit_note_issue(invoice=invoice, lines=[(None, "Goodwill credit", D("79.00"))], reason="Outage")

    body = api(northwind["key"]).get(f"/v1/invoices/{invoice.number}").json()

    assert [(m["amount"], m["kind"]) for m in body["payments"]] == [("479.00", "payment"), ("-79.00", "release")]
    assert (body["status"], body["amount_paid"], body["amount_credited"], body["amount_due"]) == (
        "paid",
        "400.00",
        "79.00",
        "0.00",
    )
    billing = api(northwind["key"]).get(f"/v1/accounts/{account.public_id}/billing").json()
    assert billing["balance"] == "79.00"


def test_another_accounts_invoice_is_a_404_and_an_export_key_reads_it(api, northwind):
    number = northwind["invoice"].number
    other_key = key(AccountFactory(name="Globex"), "read")
    for path in (f"/v1/invoices/{number}", f"/v1/invoices/{number}/pdf"):
        response = api(other_key).get(path)
        assert response.status_code == 404, path
        assert error_of(response) == {"code": "not_found", "field": None, "message": f"No invoice '{number}'."}
    assert api(export_key()).get(f"/v1/invoices/{number}").json()["amount_due"] == "479.00"


def test_the_pdf_is_served_to_the_api_key(api, northwind):
    number = northwind["invoice"].number
    response = api(northwind["key"]).get(f"/v1/invoices/{number}/pdf")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="{number}.pdf"'
    assert b"".join(response.streaming_content).startswith(b"%PDF-")


def test_the_pdf_is_served_whatever_accept_says_and_errors_stay_json(api, northwind):
    number = northwind["invoice"].number
    client = api(northwind["key"])
    assert client.get(f"/v1/invoices/{number}/pdf", HTTP_ACCEPT="application/pdf").status_code == 200
    missing = client.get("/v1/invoices/INV-1999-000001/pdf", HTTP_ACCEPT="application/pdf")
    assert (missing.status_code, missing["Content-Type"]) == (404, "application/json")


# --- GET /v1/payments ------------------------------------------------------------------------------------


def test_payments_list_each_payment_with_where_it_went(api, northwind):
    invoice, account = northwind["invoice"], northwind["account"]
    first = pay(account, "300.00", invoice=invoice, reference="NW-1", at=DEC_5)
    second = pay(account, "200.00", reference="NW-2", at=DEC_6)  # $179.00 to the invoice, $21.00 credit
    with time_machine.travel(DEC_6 + dt.timedelta(hours=1), tick=False):
        refund = payment_refund(payment=second, amount=D("6.00"), reason="Bank fee returned")

    response = api(northwind["key"]).get("/v1/payments")

    assert response.status_code == 200
    assert response.json()["next"] is None
    assert response.json()["results"] == [
        {
            "id": second.public_id,
            "account_id": account.public_id,
            "provider": "bank_transfer",
            "reference": "NW-2",
            "amount": "200.00",
            "currency": "USD",
            "status": "succeeded",
            "received_at": "2026-12-06T10:00:00Z",
            "payment_method": None,
            "failure_code": None,
            "failure_message": None,
            "allocations": [{"invoice_id": invoice.number, "amount": "179.00"}],
            "refunds": [
                {
                    "id": refund.public_id,
                    "amount": "6.00",
                    "status": "succeeded",
                    "refunded_at": "2026-12-06T11:00:00Z",
                    "reason": "Bank fee returned",
                }
            ],
            "unapplied": "15.00",
        },
        {
            "id": first.public_id,
            "account_id": account.public_id,
            "provider": "bank_transfer",
            "reference": "NW-1",
            "amount": "300.00",
            "currency": "USD",
            "status": "succeeded",
            "received_at": "2026-12-05T09:00:00Z",
            "payment_method": None,
            "failure_code": None,
            "failure_message": None,
            "allocations": [{"invoice_id": invoice.number, "amount": "300.00"}],
            "refunds": [],
            "unapplied": "0.00",
        },
    ]
    assert (payment_unapplied(second), payment_unapplied(first)) == (D("15.00"), D("0.00"))


def test_payments_filter_by_status_and_provider(api, northwind):
    account = northwind["account"]
    transfer = pay(account, "100.00", reference="NW-1")
    with time_machine.travel(DEC_6, tick=False):
        check = payment_record(account=account, amount=D("50.00"), provider=Payment.Provider.CHECK, reference="1042")
        payment_refund(payment=check, amount=D("50.00"), reason="Check bounced back to sender", release_invoices=True)
    client = api(northwind["key"])

    def ids(query):
        response = client.get("/v1/payments", query)
        assert response.status_code == 200
        return [p["id"] for p in response.json()["results"]]

    assert ids({"provider": "check"}) == [check.public_id]
    assert ids({"provider": "bank_transfer"}) == [transfer.public_id]
    assert ids({"status": "refunded"}) == [check.public_id]
    assert ids({"status": "succeeded", "provider": "check"}) == []
    assert ids({"page_size": 1}) == [check.public_id]
    bad = client.get("/v1/payments", {"provider": "cash"})
    assert bad.status_code == 400
    assert error_of(bad)["field"] == "provider"


def test_payments_of_another_account_are_not_listed(api, northwind):
    pay(northwind["account"], "100.00")
    other = AccountFactory(name="Globex")
    assert api(key(other, "read")).get("/v1/payments").json()["results"] == []
    assert (
        len(api(export_key()).get("/v1/payments", {"account": northwind["account"].public_id}).json()["results"]) == 1
    )
