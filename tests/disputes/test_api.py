"""The disputes API: a key with the disputes scope opens a case on one of its account's invoices and replies on it;
read, disputes and export keys read the cases; every other key is refused with the exact status. What a customer
reads of a case never includes staff's internal notes or files; refusals name the field and say why.

Northwind's November invoice (finalized December 1): line 1 Business base fee $299.00, line 2 master
partners (none, $0.00), line 3 messages 31,000 − 25,000 included = 6,000 × $0.03 = $180.00, line 4 storage
($0.00), line 5 active tenants (1 included, $0.00); $479.00 + 20 % tax = $574.80."""

import datetime as dt
import io
import re
from decimal import Decimal as D

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from accounts.models import ApiKey
from accounts.services import ERR_KEY_DISPUTES_PINNED, api_key_create
from billing.models import Invoice
from billing.services.credit_notes import credit_line_for_quantity
from common.errors import BillingError
from common.models import OutboxEvent
from disputes.apis import ERR_INVOICE_NOT_FOUND, ERR_LINE_NOT_ON_INVOICE
from disputes.models import Dispute
from disputes.schema import ERR_UNKNOWN_FIELD
from disputes.services import (
    ERR_ALREADY_OPEN,
    ERR_CLOSED,
    ERR_KEY_PINNED,
    ERR_LINE_QUANTITY,
    attachment_add,
    dispute_ask_customer,
    dispute_credit_propose,
    dispute_open,
    dispute_reject,
    dispute_reply,
)
from tenants.models import Tenant
from tests.accounts.factories import AccountFactory
from tests.disputes.factories import billing_staff, issued_invoice, issued_invoices, portal_user

pytestmark = pytest.mark.django_db
UTC = dt.UTC
OPENED_AT = dt.datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
NOW = dt.datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
ERR_READ_SCOPE = "This API key needs the 'read', 'disputes' or 'export' scope."
ERR_DISPUTES_SCOPE = "This API key lacks the 'disputes' scope."
CSV = b"day,messages\n2026-11-10,25000\n"


@pytest.fixture(autouse=True)
def _december_2():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def northwind(plan):
    """Northwind's issued invoice and a key of each kind (the pinned one reads and ingests for tenant ten_nw)."""
    invoice = issued_invoice(plan)
    account = invoice.account
    tenant = Tenant.objects.get(account=account, public_id="ten_nw")
    kinds = {
        "ingest": (["ingest"], account, None),
        "read": (["read"], account, None),
        "disputes": (["disputes"], account, None),
        "export": (["export"], None, None),
        "tenant-pinned": (["ingest", "read"], account, tenant),
    }
    keys = {name: api_key_create(name=name, scopes=s, account=a, tenant=t) for name, (s, a, t) in kinds.items()}
    return {
        "invoice": invoice,
        "account": account,
        "key": {name: row for name, (row, _secret) in keys.items()},
        "secret": {name: secret for name, (_row, secret) in keys.items()} | {"none": None, "bad": "ll_0_0"},
    }


def _case(northwind, at=OPENED_AT, **kwargs) -> Dispute:
    """A case Northwind's disputes key opened (on December 2 at 09:00) about the whole invoice."""
    with time_machine.travel(at, tick=False):
        return dispute_open(
            account=northwind["account"],
            invoice=northwind["invoice"],
            subject="Messages over-counted",
            description="We sent about 25,000 messages in November, not 31,000.",
            category="usage",
            source=Dispute.Source.API,
            channel=Dispute.Channel.API,
            actor=northwind["key"]["disputes"],
            **kwargs,
        )


def _body(invoice: Invoice, **extra) -> dict:
    return {"invoice": invoice.number, "subject": "Charged twice", "description": "Paid on INV-2026-000002.", **extra}


# --- Who may -------------------------------------------------------------------------------------------

# Each kind of key (and none, and one that does not exist) against the writes and the reads.
WRITES = {"ingest": 403, "read": 403, "disputes": 201, "export": 403, "tenant-pinned": 403, "none": 401, "bad": 401}
READS = {"ingest": 403, "read": 200, "disputes": 200, "export": 200, "tenant-pinned": 403, "none": 401, "bad": 401}


@pytest.mark.parametrize(
    ("kind", "expected"),
    WRITES.items(),
)
def test_only_a_disputes_key_of_the_account_opens_a_case(northwind, api, kind, expected):
    response = api(northwind["secret"][kind]).post("/v1/disputes", _body(northwind["invoice"]), format="json")
    assert response.status_code == expected
    assert Dispute.objects.count() == (1 if expected == 201 else 0)


@pytest.mark.parametrize(
    ("kind", "expected"),
    READS.items(),
)
def test_read_disputes_and_export_keys_list_the_cases(northwind, api, kind, expected):
    case = _case(northwind)
    account = northwind["account"].public_id
    response = api(northwind["secret"][kind]).get(f"/v1/disputes?account={account}")
    assert response.status_code == expected
    if expected == 200:
        assert [item["id"] for item in response.json()["results"]] == [case.public_id]


@pytest.mark.parametrize(
    ("kind", "expected"),
    READS.items(),
)
def test_read_disputes_and_export_keys_read_a_case(northwind, api, kind, expected):
    case = _case(northwind)
    response = api(northwind["secret"][kind]).get(f"/v1/disputes/{case.public_id}")
    assert response.status_code == expected
    if expected == 200:
        assert response.json()["id"] == case.public_id


@pytest.mark.parametrize(
    ("kind", "expected"),
    WRITES.items(),
)
def test_only_a_disputes_key_of_the_account_replies(northwind, api, kind, expected):
    case = _case(northwind)
    response = api(northwind["secret"][kind]).post(
        f"/v1/disputes/{case.public_id}/messages", {"body": "Any news?"}, format="json"
    )
    assert response.status_code == expected
    assert case.messages.count() == (2 if expected == 201 else 1)


@pytest.mark.parametrize(
    ("kind", "method", "path", "message"),
    [
        ("ingest", "get", "/v1/disputes", ERR_READ_SCOPE),
        ("read", "post", "/v1/disputes", ERR_DISPUTES_SCOPE),
        ("export", "post", "/v1/disputes/{id}/messages", ERR_DISPUTES_SCOPE),
        ("tenant-pinned", "get", "/v1/disputes/{id}", ERR_KEY_PINNED),
        ("tenant-pinned", "get", "/v1/disputes", ERR_KEY_PINNED),
    ],
)
def test_a_refused_key_is_told_why(northwind, api, kind, method, path, message):
    case = _case(northwind)
    client = api(northwind["secret"][kind])
    response = getattr(client, method)(path.format(id=case.public_id), {}, format="json")
    assert (response.status_code, response.json()) == (
        403,
        {"error": {"code": "permission_denied", "field": None, "message": message}},
    )


def test_a_disputes_key_cannot_be_pinned_to_a_tenant(northwind):
    tenant = Tenant.objects.get(public_id="ten_nw")
    with pytest.raises(BillingError) as refused:
        api_key_create(name="pinned", scopes=["disputes"], account=northwind["account"], tenant=tenant)
    assert (refused.value.message, refused.value.field) == (ERR_KEY_DISPUTES_PINNED, "tenant")


def test_another_accounts_case_is_not_found(northwind, api):
    case = _case(northwind)
    other = AccountFactory(name="Contoso")
    _, secret = api_key_create(name="contoso", scopes=["read", "disputes"], account=other)
    client = api(secret)
    not_found = {"error": {"code": "not_found", "field": None, "message": f"No dispute '{case.public_id}'."}}
    detail = client.get(f"/v1/disputes/{case.public_id}")
    reply = client.post(f"/v1/disputes/{case.public_id}/messages", {"body": "Hello"}, format="json")
    assert (detail.status_code, detail.json()) == (404, not_found)
    assert (reply.status_code, reply.json()) == (404, not_found)
    assert client.get("/v1/disputes").json()["results"] == []
    assert case.messages.count() == 1


def test_another_accounts_invoice_is_not_found(northwind, api):
    other = AccountFactory(name="Contoso")
    _, secret = api_key_create(name="contoso", scopes=["disputes"], account=other)
    response = api(secret).post("/v1/disputes", _body(northwind["invoice"]), format="json")
    assert (response.status_code, response.json()) == (
        404,
        {
            "error": {
                "code": "not_found",
                "field": "invoice",
                "message": ERR_INVOICE_NOT_FOUND.format(number=northwind["invoice"].number),
            }
        },
    )
    assert Dispute.objects.count() == 0


def test_an_export_key_lists_every_accounts_cases_or_the_one_it_names(plan, api):
    northwind, contoso = issued_invoices(plan)
    cases = {}
    for hour, invoice in enumerate((northwind, contoso)):
        key, _ = api_key_create(name="desk", scopes=["disputes"], account=invoice.account)
        with time_machine.travel(OPENED_AT + dt.timedelta(hours=hour), tick=False):
            cases[invoice.account.name] = dispute_open(
                account=invoice.account,
                invoice=invoice,
                subject="Messages over-counted",
                description="We sent fewer.",
                source=Dispute.Source.API,
                channel=Dispute.Channel.API,
                actor=key,
            )
    _, secret = api_key_create(name="erp", scopes=["export"])
    client = api(secret)
    everyone = client.get("/v1/disputes")
    one = client.get(f"/v1/disputes?account={contoso.account.public_id}")
    unknown = client.get("/v1/disputes?account=acc_nope")
    # Newest first: Contoso's opened at 10:00, Northwind's at 09:00.
    assert [(d["id"], d["account_id"]) for d in everyone.json()["results"]] == [
        (cases["Contoso"].public_id, contoso.account.public_id),
        (cases["Northwind"].public_id, northwind.account.public_id),
    ]
    assert [d["id"] for d in one.json()["results"]] == [cases["Contoso"].public_id]
    assert (unknown.status_code, unknown.json()["error"]["code"], unknown.json()["error"]["field"]) == (
        404,
        "not_found",
        "account",
    )
    detail = client.get(f"/v1/disputes/{cases['Northwind'].public_id}")
    assert (detail.status_code, detail.json()["account_id"]) == (200, northwind.account.public_id)


# --- Opening a case ------------------------------------------------------------------------------------


def test_a_case_opened_on_part_of_a_line_is_answered_with_the_case(northwind, api):
    invoice = northwind["invoice"]
    key = northwind["key"]["disputes"]
    response = api(northwind["secret"]["disputes"]).post(
        "/v1/disputes",
        {
            "invoice": invoice.number,
            "subject": "Messages over-counted",
            "description": "We sent about 25,000 messages in November, not 31,000.",
            "category": "usage",
            "lines": [{"line": 3, "quantity": "6000", "amount": "180.00", "note": "Gateway logged 25,000."}],
        },
        format="json",
    )
    assert response.status_code == 201
    case = Dispute.objects.get()
    opened_by = f"API key {key.prefix}… (disputes)"
    assert response.json() == {
        "id": case.public_id,
        "account_id": northwind["account"].public_id,
        "invoice_id": invoice.number,
        "subject": "Messages over-counted",
        "category": "usage",
        "state": "open",
        "resolution": None,
        # Not given: the sum of the lines' amounts, $180.00.
        "amount": "180.00",
        "currency": "USD",
        "source": "api",
        "opened_at": "2026-12-02T15:00:00Z",
        "updated_at": "2026-12-02T15:00:00Z",
        "closed_at": None,
        "description": "We sent about 25,000 messages in November, not 31,000.",
        "channel": "api",
        "resolution_note": None,
        "first_response_at": None,
        "lines": [
            {
                "line": 3,
                "description": "Messages",
                "line_amount": "180.00",
                "quantity": "6000",
                "amount": "180.00",
                "note": "Gateway logged 25,000.",
            }
        ],
        "messages": [
            {
                "author": "customer",
                "author_name": opened_by,
                "body": "We sent about 25,000 messages in November, not 31,000.",
                "created_at": "2026-12-02T15:00:00Z",
            }
        ],
        "attachments": [],
        "timeline": [
            {
                "kind": "opened",
                "at": "2026-12-02T15:00:00Z",
                "actor": opened_by,
                "from_state": None,
                "to_state": "open",
                "note": "Opened: Messages over-counted",
            },
            {
                "kind": "message",
                "at": "2026-12-02T15:00:00Z",
                "actor": opened_by,
                "from_state": None,
                "to_state": None,
                "note": None,
            },
        ],
        "credit_notes": [],
    }
    assert (case.opened_by_key, case.source, case.channel) == (key, "api", "api")
    event = OutboxEvent.objects.get(type="billing.dispute_opened")
    assert event.payload == {
        "type": "billing.dispute_opened",
        "data": {
            "dispute_id": case.public_id,
            "account_id": northwind["account"].public_id,
            "invoice_id": invoice.number,
            "state": "open",
            "resolution": None,
            "category": "usage",
            "amount": "180.00",
            "currency": "USD",
            "opened_at": "2026-12-02T15:00:00Z",
            "updated_at": "2026-12-02T15:00:00Z",
            "credit_note_id": None,
        },
    }


def test_an_idempotency_key_replays_the_opening(northwind, api):
    client = api(northwind["secret"]["disputes"])
    body = _body(northwind["invoice"])
    first = client.post("/v1/disputes", body, format="json", HTTP_IDEMPOTENCY_KEY="open-1")
    again = client.post("/v1/disputes", body, format="json", HTTP_IDEMPOTENCY_KEY="open-1")
    assert (first.status_code, again.status_code, again["Idempotent-Replayed"]) == (201, 201, "true")
    assert again.json() == first.json()
    assert Dispute.objects.count() == 1


def test_a_second_open_case_on_the_invoice_is_a_conflict_naming_the_first(northwind, api):
    case = _case(northwind)
    response = api(northwind["secret"]["disputes"]).post("/v1/disputes", _body(northwind["invoice"]), format="json")
    assert (response.status_code, response.json()) == (
        409,
        {
            "error": {
                "code": "dispute_already_open",
                "field": None,
                "message": ERR_ALREADY_OPEN.format(number=northwind["invoice"].number, case=case.public_id),
            }
        },
    )


@pytest.mark.parametrize(
    ("change", "field", "code", "message"),
    [
        ({"subject": ""}, "subject", "blank", "This field may not be blank."),
        ({"description": None}, "description", "null", "This field may not be null."),
        ({"category": "chargeback"}, "category", "invalid_choice", '"chargeback" is not a valid choice.'),
        ({"amount": "12.345"}, "amount", "max_decimal_places", "Ensure that there are no more than 2 decimal places."),
        ({"lines": [{"line": 2}, {"line": "two"}]}, "lines[1].line", "invalid", "A valid integer is required."),
        ({"lines": [{"line": 2, "qty": 1}]}, "lines[0].qty", "unknown_field", ERR_UNKNOWN_FIELD),
        ({"line": 2}, "line", "unknown_field", ERR_UNKNOWN_FIELD),
        ({"lines": "2"}, "lines", "not_a_list", 'Expected a list of items but got type "str".'),
    ],
)
def test_invalid_input_names_the_field_and_the_reason(northwind, api, change, field, code, message):
    response = api(northwind["secret"]["disputes"]).post(
        "/v1/disputes", _body(northwind["invoice"], **change), format="json"
    )
    assert (response.status_code, response.json()) == (
        400,
        {"error": {"code": code, "field": field, "message": message}},
    )
    assert Dispute.objects.count() == 0


def test_a_line_not_on_the_invoice_is_refused_naming_it(northwind, api):
    invoice = northwind["invoice"]
    response = api(northwind["secret"]["disputes"]).post(
        "/v1/disputes", _body(invoice, lines=[{"line": 9}]), format="json"
    )
    assert (response.status_code, response.json()) == (
        400,
        {
            "error": {
                "code": "invalid_line",
                "field": "lines[0].line",
                "message": ERR_LINE_NOT_ON_INVOICE.format(number=invoice.number, line=9),
            }
        },
    )


def test_more_than_the_lines_quantity_is_refused_naming_the_line(northwind, api):
    # Line 3 billed 31,000 messages: 31,001 cannot have been billed wrongly.
    response = api(northwind["secret"]["disputes"]).post(
        "/v1/disputes",
        _body(northwind["invoice"], lines=[{"line": 1}, {"line": 3, "quantity": "31001"}]),
        format="json",
    )
    assert (response.status_code, response.json()) == (
        400,
        {
            "error": {
                "code": "invalid_quantity",
                "field": "lines[1].quantity",
                "message": ERR_LINE_QUANTITY.format(line=3, quantity="31,000"),
            }
        },
    )


def test_every_problem_is_listed(northwind, api):
    response = api(northwind["secret"]["disputes"]).post("/v1/disputes", {"subject": "x" * 201}, format="json")
    assert response.status_code == 400
    assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [
        ("invoice", "required"),
        ("subject", "max_length"),
        ("description", "required"),
    ]


def test_a_body_that_is_not_json_is_refused(northwind, api):
    response = api(northwind["secret"]["disputes"]).post("/v1/disputes", "{not json", content_type="application/json")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "parse_error")


# --- Reading a case ------------------------------------------------------------------------------------


def test_the_customer_never_reads_internal_notes_or_files(northwind, api):
    case = _case(northwind)
    staff = billing_staff()
    with time_machine.travel(OPENED_AT + dt.timedelta(hours=1), tick=False):
        dispute_reply(dispute=case, body="Looks like the retry loop again - INTERNAL", actor=staff, internal=True)
        attachment_add(
            dispute=case,
            upload=SimpleUploadedFile("our-logs.csv", CSV, content_type="text/csv"),
            actor=staff,
            internal=True,
        )
        attachment_add(
            dispute=case,
            upload=SimpleUploadedFile("usage-by-day.csv", CSV, content_type="text/csv"),
            actor=staff,
        )
    response = api(northwind["secret"]["read"]).get(f"/v1/disputes/{case.public_id}")
    text = response.content.decode()
    assert "INTERNAL" not in text and "our-logs.csv" not in text
    document = response.json()
    assert [m["body"] for m in document["messages"]] == ["We sent about 25,000 messages in November, not 31,000."]
    assert document["attachments"] == [
        {
            "name": "usage-by-day.csv",
            "content_type": "text/csv",
            "size": 30,
            "uploaded_by": "staff",
            "created_at": "2026-12-02T10:00:00Z",
        }
    ]
    assert [event["kind"] for event in document["timeline"]] == ["opened", "message", "attachment"]


def test_a_credited_case_shows_its_outcome_and_credit_note(northwind, api):
    invoice = northwind["invoice"]
    case = _case(northwind)
    messages = invoice.lines.get(position=3)
    with time_machine.travel(OPENED_AT + dt.timedelta(hours=5), tick=False):
        dispute_credit_propose(
            dispute=case,
            actor=billing_staff(),
            lines=[credit_line_for_quantity(line=messages, quantity=D("6000"))],
            reason="A retry loop counted 6,000 messages twice.",
        )
    document = api(northwind["secret"]["disputes"]).get(f"/v1/disputes/{case.public_id}").json()
    # 6,000 × $0.03 = $180.00, + 20 % tax = $216.00: under the $500.00 approval threshold, issued at once.
    assert (document["state"], document["resolution"], document["closed_at"]) == (
        "resolved",
        "credited",
        "2026-12-02T14:00:00Z",
    )
    assert document["resolution_note"] == "A retry loop counted 6,000 messages twice."
    (note,) = invoice.credit_notes.all()
    assert document["credit_notes"] == [
        {
            "number": note.number,
            "status": "issued",
            "total": "216.00",
            "currency": "USD",
            "issued_at": "2026-12-02T14:00:00Z",
        }
    ]


def test_the_list_is_newest_first_with_filters_and_pages(northwind, api):
    first = _case(northwind)
    staff = billing_staff()
    with time_machine.travel(OPENED_AT + dt.timedelta(hours=1), tick=False):
        dispute_reject(dispute=first, actor=staff, reason="The messages were sent.")
    second = _case(northwind, at=OPENED_AT + dt.timedelta(hours=2))
    client = api(northwind["secret"]["read"])
    everything = client.get("/v1/disputes").json()
    open_ones = client.get("/v1/disputes?state=open").json()
    by_invoice = client.get(f"/v1/disputes?invoice={northwind['invoice'].number}").json()
    other_invoice = client.get("/v1/disputes?invoice=INV-2026-999999").json()
    page = client.get("/v1/disputes?page_size=1").json()
    assert [d["id"] for d in everything["results"]] == [second.public_id, first.public_id]
    assert [d["id"] for d in open_ones["results"]] == [second.public_id]
    assert [d["id"] for d in by_invoice["results"]] == [second.public_id, first.public_id]
    assert other_invoice["results"] == []
    assert [d["id"] for d in page["results"]] == [second.public_id]
    following = client.get(page["next"]).json()
    assert ([d["id"] for d in following["results"]], following["next"]) == ([first.public_id], None)
    assert everything["results"][1] == {
        "id": first.public_id,
        "account_id": northwind["account"].public_id,
        "invoice_id": northwind["invoice"].number,
        "subject": "Messages over-counted",
        "category": "usage",
        "state": "rejected",
        "resolution": None,
        "amount": None,
        "currency": "USD",
        "source": "api",
        "opened_at": "2026-12-02T09:00:00Z",
        "updated_at": "2026-12-02T10:00:00Z",
        "closed_at": "2026-12-02T10:00:00Z",
    }


@pytest.mark.parametrize(
    ("query", "field", "code"),
    [("state=lost", "state", "invalid_choice"), ("page_size=0", "page_size", "invalid"), ("cursor=x", "cursor", None)],
)
def test_an_invalid_filter_is_refused_naming_it(northwind, api, query, field, code):
    response = api(northwind["secret"]["read"]).get(f"/v1/disputes?{query}")
    assert (response.status_code, response.json()["error"]["field"]) == (400, field)
    assert code is None or response.json()["error"]["code"] == code


# --- Replying ------------------------------------------------------------------------------------------


def test_a_reply_to_a_waiting_case_moves_it_back_to_investigating(northwind, api):
    case = _case(northwind)
    key = northwind["key"]["disputes"]
    with time_machine.travel(OPENED_AT + dt.timedelta(hours=2), tick=False):
        dispute_ask_customer(dispute=case, actor=billing_staff(), question="Could you send your gateway's export?")
    response = api(northwind["secret"]["disputes"]).post(
        f"/v1/disputes/{case.public_id}/messages", {"body": "25,012 messages; export sent by e-mail."}, format="json"
    )
    assert (response.status_code, response.json()) == (
        201,
        {
            "author": "customer",
            "author_name": f"API key {key.prefix}… (disputes)",
            "body": "25,012 messages; export sent by e-mail.",
            "created_at": "2026-12-02T15:00:00Z",
            "dispute_id": case.public_id,
            "dispute_state": "investigating",
        },
    )
    case.refresh_from_db()
    assert case.state == Dispute.State.INVESTIGATING


def test_a_closed_case_takes_no_reply(northwind, api):
    case = _case(northwind)
    dispute_reject(dispute=case, actor=billing_staff(), reason="The messages were sent.")
    response = api(northwind["secret"]["disputes"]).post(
        f"/v1/disputes/{case.public_id}/messages", {"body": "But why?"}, format="json"
    )
    assert (response.status_code, response.json()) == (
        409,
        {
            "error": {
                "code": "dispute_closed",
                "field": None,
                "message": ERR_CLOSED.format(case=case.public_id, state="rejected"),
            }
        },
    )


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"body": "   "}, "body", "blank"),
        ({}, "body", "required"),
        ({"body": "Hi", "internal": True}, "internal", None),
    ],
)
def test_a_reply_without_a_message_is_refused(northwind, api, body, field, code):
    case = _case(northwind)
    response = api(northwind["secret"]["disputes"]).post(f"/v1/disputes/{case.public_id}/messages", body, format="json")
    assert (response.status_code, response.json()["error"]["field"]) == (400, field)
    assert response.json()["error"]["code"] == (code or "unknown_field")
    assert case.messages.count() == 1


# --- Issuing a disputes key ----------------------------------------------------------------------------


def test_an_owner_issues_a_disputes_key_in_the_portal_that_opens_a_case(northwind, client, api):
    client.force_login(portal_user(northwind["account"]))
    form = client.get("/portal/api-keys/new/").content.decode()
    assert 'value="disputes"' in form
    page = client.post("/portal/api-keys/new/", {"name": "support desk", "scopes": ["disputes"]}, follow=True)
    text = page.content.decode()
    secret = re.search(r'id="new-key-secret"[^>]*value="(ll_[0-9a-f]{12}_[0-9a-f]{48})"', text).group(1)
    assert "curl -X POST http://testserver/v1/disputes" in text
    key = ApiKey.objects.get(name="support desk")
    assert (key.scopes, key.scope_disputes, key.tenant) == (["disputes"], True, None)
    response = api(secret).post("/v1/disputes", _body(northwind["invoice"]), format="json")
    assert (response.status_code, Dispute.objects.get().opened_by_key) == (201, key)


def test_the_portal_refuses_a_disputes_key_pinned_to_a_tenant(northwind, client):
    client.force_login(portal_user(northwind["account"]))
    tenant = Tenant.objects.get(public_id="ten_nw")
    response = client.post(
        "/portal/api-keys/new/", {"name": "desk", "scopes": ["read", "disputes"], "tenant": tenant.pk}
    )
    assert response.status_code == 400
    assert [str(e) for e in response.context["form"].errors["tenant"]] == [ERR_KEY_DISPUTES_PINNED]
    assert not ApiKey.objects.filter(name="desk").exists()


def test_staff_give_a_key_the_disputes_scope_in_the_admin(northwind, client):
    client.force_login(billing_staff())
    response = client.post(
        "/admin/accounts/apikey/add/",
        {
            "account": northwind["account"].pk,
            "tenant": "",
            "name": "via admin",
            "expires_at_0": "",
            "expires_at_1": "",
            "rate_limit_per_minute": "",
            "scope_read": "on",
            "scope_disputes": "on",
        },
        follow=True,
    )
    assert response.status_code == 200
    key = ApiKey.objects.get(name="via admin")
    assert key.scopes == ["read", "disputes"]
    listed = client.get("/admin/accounts/apikey/?scope_disputes__exact=1").content.decode()
    assert key.prefix in listed and northwind["key"]["read"].prefix not in listed


def test_the_command_issues_a_disputes_key(northwind):
    out = io.StringIO()
    call_command("create_api_key", account=northwind["account"].public_id, scopes="read,disputes", stdout=out)
    key = ApiKey.objects.get(name="read/disputes key (command line)")
    assert key.scopes == ["read", "disputes"]
    assert f"Created API key {key.prefix}… (read, disputes; {northwind['account'].public_id})." in out.getvalue()
