"""The dispute workbench in the admin: billing staff find cases in the queue (open ones first, breaches on top),
open a case for a customer who phoned, work it from its page through one service per action, and propose
credits that a Finance admin other than the proposer approves above the threshold; the case page shows the
disputed lines' usage evidence, whose tables add up to the line; a portal user reaches none of it."""

import csv
import datetime as dt
import html as html_lib
import io
from decimal import Decimal as D

import pytest
import time_machine
from django.apps import apps
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from playwright.sync_api import expect

from accounts.models import AccountUser
from accounts.permissions import BILLING_STAFF, FINANCE_ADMIN, staff_groups_sync
from billing.models import CreditNote, Invoice, InvoiceLine
from disputes.models import CreditProposal, Dispute, DisputeMessage
from disputes.services import (
    ERR_ALREADY_OPEN,
    ERR_REASON,
    ERR_TRANSITION,
    LineClaim,
    dispute_assign,
    dispute_investigate,
    dispute_open,
    dispute_reject,
)
from tests.accounts.factories import AccountFactory, AccountUserFactory, StaffUserFactory
from tests.admin_html import table_header, table_rows
from tests.billing.cycle import JAN_1, close, event, ingest, subscribe
from tests.browser_fixtures import ARTIFACTS
from tests.tenants.factories import MasterPartnerFactory, TenantFactory

pytestmark = pytest.mark.django_db
UTC = dt.UTC
OPENED_AT = dt.datetime(2026, 12, 10, 9, 0, tzinfo=UTC)
STAFF_AT = dt.datetime(2026, 12, 10, 14, 30, tzinfo=UTC)  # 5 h 30 min after the case was opened
QUEUE = "/admin/disputes/dispute/"


@pytest.fixture(autouse=True)
def _december_10():
    """Staff work on December 10, 2026, 14:30 UTC (the invoices were issued on December 1)."""
    with time_machine.travel(STAFF_AT, tick=False):
        yield


def customer(plan, name, usage):
    """``name`` (tax 20 %) on Business since January with its tenants and November ``usage``; its invoice is
    issued by the next ``close()``."""
    account = AccountFactory(name=name, tax_rate=D("20"))
    subscribe(account, plan("messaging-business"))
    for tenant in sorted({item["tenant"] for item in usage}):
        region = tenant.rsplit("_", 1)[-1].upper()
        TenantFactory(account=account, public_id=tenant, name=f"{name} {region}", activated_at=JAN_1)
    owner = AccountUserFactory(account=account, email=f"owner@{name.lower()}.example", role=AccountUser.Role.OWNER)
    return {"account": account, "owner": owner.user, "usage_items": usage}


def issued(found):
    invoice = Invoice.objects.get(account=found["account"])
    return {**found, "invoice": invoice, "usage": usage_line(invoice)}


NORTHWIND_EU = event("nov-eu", "ten_nw_eu", "messages", 20_000, "2026-11-10T10:00:00Z", partner_id="prt_acme")


def northwind_before_close(plan):
    found = customer(
        plan,
        "Northwind",
        [NORTHWIND_EU, event("nov-us", "ten_nw_us", "messages", 11_000, "2026-11-20T10:00:00Z")],
    )
    MasterPartnerFactory(account=found["account"], public_id="prt_acme", name="Acme Supplies", activated_at=JAN_1)
    ingest(found["account"], found["usage_items"])
    ingest(found["account"], [NORTHWIND_EU])  # the same transaction again: refused, never billed
    return found


@pytest.fixture
def northwind(plan):
    """Northwind (tax 20 %) on Business, two tenants, one partner. November: 20,000 messages from ten_nw_eu
    through partner prt_acme on the 10th (reported twice: the second copy is refused as a duplicate) and
    11,000 from ten_nw_us on the 20th: $299 + (31,000 − 25,000) × $0.03 = $479.00 + 20 % = $574.80."""
    found = northwind_before_close(plan)
    close()
    found = issued(found)
    invoice = found["invoice"]
    assert (invoice.number, invoice.status, invoice.total) == ("INV-2026-000001", "finalized", D("574.80"))
    return found


def usage_line(invoice):
    return invoice.lines.get(kind=InvoiceLine.Kind.USAGE, metric__code="messages")


@pytest.fixture
def bianca():
    if not Group.objects.filter(name=BILLING_STAFF).exists():
        staff_groups_sync(apps)  # a transactional test (the browser's) may have flushed what the migrations seeded
    return StaffUserFactory(username="bianca", first_name="Bianca", groups=[Group.objects.get(name=BILLING_STAFF)])


@pytest.fixture
def fiona():
    return StaffUserFactory(username="fiona", first_name="Fiona", groups=[Group.objects.get(name=FINANCE_ADMIN)])


@pytest.fixture
def frank():
    return StaffUserFactory(username="frank", first_name="Frank", groups=[Group.objects.get(name=FINANCE_ADMIN)])


def logged_in(user):
    client = Client()
    client.force_login(user)
    return client


def open_case(found, *, at=OPENED_AT, lines=None, subject="Messages counted twice"):
    with time_machine.travel(at, tick=False):
        return dispute_open(
            account=found["account"],
            invoice=found["invoice"],
            subject=subject,
            description="Our gateway retried during the outage; we think each retry was billed.",
            category=Dispute.Category.USAGE,
            lines=[LineClaim(invoice_line=found["usage"], quantity=D("6000"))] if lines is None else lines,
            source=Dispute.Source.PORTAL,
            channel=Dispute.Channel.PORTAL,
            actor=found["owner"],
        )


def case_url(dispute):
    return f"{QUEUE}{dispute.pk}/change/"


def act(client, dispute, action, **data):
    return client.post(f"{QUEUE}{dispute.pk}/act/{action}/", data, follow=True)


def messages_of(response):
    return [(m.level_tag, str(m)) for m in response.context["messages"]]


def page(client, url):
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def queue_ids(html):
    return [row[1] for row in table_rows(html, "result_list")]


# --- The queue -----------------------------------------------------------------------------------------------


@pytest.fixture
def three_cases(plan, bianca):
    """Northwind's open case (5 h 30 min old, unassigned); Contoso's, opened 2 days earlier, assigned to Bianca
    and being investigated; Initech's, rejected a week ago."""
    found = [northwind_before_close(plan)]
    for name in ("Contoso", "Initech"):
        other = customer(
            plan, name, [event(f"{name}-1", f"ten_{name.lower()}", "messages", 26_000, "2026-11-12T10:00:00Z")]
        )
        ingest(other["account"], other["usage_items"])
        found.append(other)
    close()
    northwind, contoso, initech = (issued(f) for f in found)
    fresh = open_case(northwind)
    older = open_case(contoso, at=OPENED_AT - dt.timedelta(days=2), subject="Price looks wrong")
    with time_machine.travel(OPENED_AT - dt.timedelta(days=2, hours=-1), tick=False):
        dispute_investigate(dispute=older, actor=bianca)
    closed = open_case(initech, at=OPENED_AT - dt.timedelta(days=8), subject="Old complaint")
    with time_machine.travel(OPENED_AT - dt.timedelta(days=7), tick=False):
        dispute_reject(dispute=closed, actor=bianca, reason="The charges are right: the usage is in the export.")
    return fresh, older, closed


def test_the_queue_shows_open_cases_oldest_first_with_age_and_sla(three_cases, bianca):
    fresh, older, _ = three_cases
    html = page(logged_in(bianca), QUEUE)
    assert table_header(html, "result_list")[1:] == [
        "ID",
        "Account",
        "Invoice",
        "Subject",
        "State",
        "Assignee",
        "Age",
        "SLA",
        "Last update",
    ]
    rows = table_rows(html, "result_list")
    # Contoso's case answered within its day: on track; the older one first. The rejected case is not open.
    assert [row[1:] for row in rows] == [
        [
            older.public_id,
            "Contoso",
            older.invoice.number,
            "Price looks wrong",
            "Investigating",
            "Bianca",
            "2 d 5 h",
            "Resolution in 7 d 18 h",
            "2026-12-08 10:00 UTC",
        ],
        [
            fresh.public_id,
            "Northwind",
            fresh.invoice.number,
            "Messages counted twice",
            "Open",
            "–",
            "5 h 30 min",
            "Response in 18 h 30 min",
            "2026-12-10 09:00 UTC",
        ],
    ]


def test_the_queue_filters_by_status_assignee_age_and_search(three_cases, bianca):
    fresh, older, closed = three_cases
    client = logged_in(bianca)
    assert queue_ids(page(client, QUEUE + "?status=all")) == [older.public_id, fresh.public_id, closed.public_id]
    assert queue_ids(page(client, QUEUE + "?status=rejected")) == [closed.public_id]
    assert queue_ids(page(client, QUEUE + "?assignee=me")) == [older.public_id]
    assert queue_ids(page(client, QUEUE + "?assignee=none")) == [fresh.public_id]
    assert queue_ids(page(client, QUEUE + "?age=lt1d")) == [fresh.public_id]
    assert queue_ids(page(client, QUEUE + "?age=1to3d")) == [older.public_id]
    assert queue_ids(page(client, QUEUE + "?age=gt7d&status=all")) == [closed.public_id]
    assert queue_ids(page(client, QUEUE + "?q=Contoso")) == [older.public_id]
    assert queue_ids(page(client, QUEUE + f"?q={fresh.public_id}")) == [fresh.public_id]
    assert queue_ids(page(client, QUEUE + f"?q={fresh.invoice.number}")) == [fresh.public_id]
    # The account page's link lists all of the account's cases, closed ones too.
    initech = closed.account
    assert queue_ids(page(client, QUEUE + f"?account__id__exact={initech.pk}")) == [closed.public_id]
    html = page(client, QUEUE)
    assert 'href="?status=all"' in html and "Open cases" in html and "Anyone" in html


def test_assign_to_me_assigns_the_selected_cases(three_cases, bianca, fiona):
    fresh, older, _ = three_cases
    response = logged_in(fiona).post(
        QUEUE, {"action": "assign_to_me", "_selected_action": [fresh.pk, older.pk]}, follow=True
    )
    assert messages_of(response) == [("success", "2 case(s) assigned to you.")]
    assert {d.assigned_to for d in Dispute.objects.filter(pk__in=[fresh.pk, older.pk])} == {fiona}
    assert queue_ids(page(logged_in(fiona), QUEUE + "?assignee=me")) == [older.public_id, fresh.public_id]


def test_a_missed_response_target_shows_breached_in_red_and_comes_first(three_cases, bianca):
    fresh, older, _ = three_cases
    # December 11, 10:00: a day and an hour after Northwind's case was opened, nobody has answered it.
    with time_machine.travel(dt.datetime(2026, 12, 11, 10, 0, tzinfo=UTC), tick=False):
        client = logged_in(bianca)
        html = page(client, QUEUE)
        rows = table_rows(html, "result_list")
        assert [(row[1], row[7], row[8]) for row in rows] == [
            (fresh.public_id, "1 d 1 h", "breached"),
            (older.public_id, "3 d 1 h", "Resolution in 6 d 23 h"),
        ]
        assert '<strong class="sla-breached" title="Response target missed" style="color: #ba2121">breached' in html
        assert queue_ids(page(client, QUEUE + "?sla=breached")) == [fresh.public_id]
        case = page(client, case_url(fresh))
        response_row = [row for row in table_rows(case, "case-header") if row[0] == "SLA: Response"]
        assert response_row == [["SLA: Response", "breached: due 2026-12-11 09:00 UTC, not answered yet"]]


# --- Opening a case for a customer ------------------------------------------------------------------------------


def test_staff_open_a_case_for_a_customer_who_phoned(northwind, bianca):
    client = logged_in(bianca)
    account, invoice, line = northwind["account"], northwind["invoice"], northwind["usage"]
    assert "open-account-form" in page(client, QUEUE + "add/")
    choose = page(client, QUEUE + f"add/?account={account.pk}")
    assert table_rows(choose, "disputable-invoices") == [
        [
            "INV-2026-000001",
            "2026-11",
            "Finalized",
            "USD 574.80",
            "USD 0.00",
            "USD 0.00",
            "USD 574.80",
            "Dispute this invoice",
        ]
    ]
    url = QUEUE + f"add/?account={account.pk}&invoice={invoice.pk}"
    form = page(client, url)
    assert f'name="line_{line.pk}_quantity"' in form
    response = client.post(
        url,
        {
            "subject": "Retries billed twice",
            "description": "Called in: the customer says retries during the outage were billed.",
            "category": "usage",
            "channel": "phone",
            "amount": "60.00",
            f"line_{line.pk}": "on",
            f"line_{line.pk}_quantity": "2000",
            f"line_{line.pk}_note": "retries on the 10th",
            "attachment": SimpleUploadedFile("retries.csv", b"transaction_id,quantity\nnov-eu,2000\n"),
        },
    )
    dispute = Dispute.objects.get()
    assert response.status_code == 302 and response["Location"] == case_url(dispute)
    assert (dispute.source, dispute.channel, dispute.opened_by, dispute.state, dispute.amount) == (
        "staff",
        "phone",
        bianca,
        "open",
        D("60.00"),
    )
    assert [(d.invoice_line, d.disputed_quantity, d.note) for d in dispute.lines.all()] == [
        (line, D("2000"), "retries on the 10th")
    ]
    assert [a.filename for a in dispute.attachments.all()] == ["retries.csv"]


def test_opening_a_second_case_on_an_invoice_is_refused_on_the_form(northwind, bianca):
    first = open_case(northwind)
    client = logged_in(bianca)
    account, invoice = northwind["account"], northwind["invoice"]
    choose = page(client, QUEUE + f"add/?account={account.pk}")
    assert table_rows(choose, "disputable-invoices")[0][-1] == f"open case {first.public_id}"
    response = client.post(
        QUEUE + f"add/?account={account.pk}&invoice={invoice.pk}",
        {"subject": "Again", "description": "Same thing", "category": "usage", "channel": "email"},
    )
    assert response.status_code == 200
    message = ERR_ALREADY_OPEN.format(number=invoice.number, case=first.public_id)
    assert html_lib.escape(message) in response.content.decode()  # on the form, nothing opened
    assert Dispute.objects.count() == 1


def test_opening_a_case_needs_the_add_permission(northwind):
    nobody = StaffUserFactory(username="viewer")
    assert logged_in(nobody).get(QUEUE + "add/").status_code == 403


# --- The case page and its actions -----------------------------------------------------------------------------


def test_the_case_page_is_read_only_with_header_lines_and_timeline(northwind, bianca):
    dispute = open_case(northwind)
    html = page(logged_in(bianca), case_url(dispute))
    header = dict((row[0], row[1]) for row in table_rows(html, "case-header"))
    assert header["State"] == "Open"
    assert header["Invoice"] == (
        "INV-2026-000001 (2026-11, finalized) · total USD 574.80 · paid USD 0.00 · credited USD 0.00 · due USD 574.80"
    )
    assert header["SLA: Response"] == "due 2026-12-11 09:00 UTC (in 18 h 30 min)"
    assert header["Age"] == "5 h 30 min"
    assert table_rows(html, "disputed-lines")[0][:6] == [
        northwind["usage"].description,
        "31,000",
        "6,000",
        "USD 180.00",
        "6,000",
        "–",
    ]
    assert 'name="_save"' not in html
    assert "list events" in html
    offered = {
        name
        for name in ("investigate", "ask", "reply", "note", "assign", "resolve", "reject")
        if f'id="action-{name}"' in html
    }
    assert offered == {"investigate", "ask", "reply", "note", "assign", "resolve", "reject"}
    assert 'id="action-reopen"' not in html and 'id="action-propose_credit"' in html


ACTION_STEPS = [
    # (action, state before, data, state after)
    ("investigate", "open", {"note": "Checking the gateway logs."}, "investigating"),
    ("ask", "investigating", {"question": "Which tenant ran the retries?"}, "waiting_on_customer"),
    ("reply", "investigating", {"body": "We are checking the events of the 10th."}, "investigating"),
    ("note", "open", {"body": "The retries carry new transaction ids."}, "open"),
    ("resolve", "investigating", {"reason": "Each retry was a separate message the gateway sent."}, "resolved"),
    ("reject", "open", {"reason": "The events are all distinct."}, "rejected"),
    ("reopen", "rejected", {"reason": "The customer sent new logs."}, "investigating"),
]


@pytest.mark.parametrize("who", ["bianca", "fiona"])
@pytest.mark.parametrize(("action", "before", "data", "after"), ACTION_STEPS, ids=[s[0] for s in ACTION_STEPS])
def test_billing_staff_and_finance_admins_work_a_case(request, northwind, bianca, who, action, before, data, after):
    user = request.getfixturevalue(who)
    dispute = open_case(northwind)
    if before in ("investigating", "rejected"):
        dispute_investigate(dispute=dispute, actor=bianca)
    if before == "rejected":
        dispute_reject(dispute=dispute, actor=bianca, reason="The events are all distinct.")
    client = logged_in(user)
    assert f'id="action-{action}"' in page(client, case_url(dispute))
    response = act(client, dispute, action, **data)
    assert response.status_code == 200
    assert [level for level, _ in messages_of(response)] == ["success"]
    dispute.refresh_from_db()
    assert dispute.state == after
    if action in ("reply", "note"):
        message = DisputeMessage.objects.filter(dispute=dispute, author=user).get()
        assert (message.body, message.internal) == (data["body"], action == "note")


def test_an_internal_note_is_marked_internal_on_the_timeline(northwind, bianca):
    dispute = open_case(northwind)
    client = logged_in(bianca)
    act(client, dispute, "note", body="Customer is on the enterprise deal; be generous.")
    act(client, dispute, "reply", body="We are looking into it.")
    rows = table_rows(page(client, case_url(dispute)), "timeline")
    notes = [row for row in rows if "Customer is on the enterprise deal" in row[3]]
    replies = [row for row in rows if "We are looking into it." in row[3]]
    assert len(notes) == 1 and notes[0][2].startswith("Internal")
    assert len(replies) == 1 and not replies[0][2].startswith("Internal")


def test_a_refused_step_is_an_error_message_and_changes_nothing(northwind, bianca):
    dispute = open_case(northwind)
    response = act(logged_in(bianca), dispute, "resolve", reason="")
    assert response.status_code == 200
    assert messages_of(response) == [("error", ERR_REASON)]
    dispute.refresh_from_db()
    assert dispute.state == "open"
    # A step the state does not allow (reopening an open case) is refused the same way, by the service.
    response = act(logged_in(bianca), dispute, "reopen", reason="why not")
    assert messages_of(response) == [
        ("error", ERR_TRANSITION.format(case=dispute.public_id, state="open", what="be reopened"))
    ]
    dispute.refresh_from_db()
    assert dispute.state == "open"


def test_assign_from_the_case_page(northwind, bianca, fiona):
    dispute = open_case(northwind)
    response = act(logged_in(bianca), dispute, "assign", assignee=fiona.pk)
    assert [level for level, _ in messages_of(response)] == ["success"]
    dispute.refresh_from_db()
    assert dispute.assigned_to == fiona
    act(logged_in(bianca), dispute, "assign", assignee="")
    dispute.refresh_from_db()
    assert dispute.assigned_to is None


def test_a_staff_login_without_dispute_permissions_gets_403(northwind):
    dispute = open_case(northwind)
    viewer = StaffUserFactory(username="viewer")
    client = logged_in(viewer)
    assert client.get(case_url(dispute)).status_code == 403
    assert client.post(f"{QUEUE}{dispute.pk}/act/investigate/", {"note": ""}).status_code == 403
    dispute.refresh_from_db()
    assert dispute.state == "open"


# --- Credits ---------------------------------------------------------------------------------------------------


def credit_data(invoice, **lines):
    """The credit form's data: every line credited nothing unless ``lines`` says (``line_<pk>=(mode, value)``)."""
    data = {"reason": "Retries billed twice during the outage.", "excess_to": "balance", "goodwill_amount": ""}
    data["goodwill_description"] = "Goodwill credit"
    for line in invoice.lines.all():
        mode, value = lines.get(f"line_{line.pk}", ("none", ""))
        data[f"line_{line.pk}_mode"], data[f"line_{line.pk}_value"] = mode, value
    return data


def test_a_credit_within_the_threshold_is_previewed_then_issued_at_once(northwind, bianca):
    dispute = open_case(northwind)
    invoice, line = northwind["invoice"], northwind["usage"]
    client = logged_in(bianca)
    url = f"{QUEUE}{dispute.pk}/credit/"
    assert "credit-form" in page(client, url)
    # 2,000 messages at $0.03 = $60.00, + 20 % tax $12.00 = $72.00: below $500.00, no approval needed.
    data = credit_data(invoice, **{f"line_{line.pk}": ("quantity", "2000")})
    preview = client.post(url, {**data, "_preview": "1"})
    html = preview.content.decode()
    assert table_rows(html, "credit-preview")[:3] == [
        ["Subtotal", "USD 60.00"],
        ["Tax", "USD 12.00"],
        ["Total", "USD 72.00"],
    ]
    assert "Issued at once" in html
    response = client.post(url, {**data, "previewed_total": "72.00", "_propose": "1"}, follow=True)
    note = CreditNote.objects.get()
    assert (note.total, note.invoice) == (D("72.00"), invoice)
    assert messages_of(response)[0][0] == "success"
    dispute.refresh_from_db()
    assert (dispute.state, dispute.resolution) == ("resolved", "credited")
    html = response.content.decode()
    assert 'id="action-reopen"' not in html  # a credited case is not reopened


def test_a_credit_above_the_threshold_waits_for_another_finance_admin(northwind, bianca, fiona, frank):
    dispute = open_case(northwind)
    invoice = northwind["invoice"]
    base = invoice.lines.get(kind=InvoiceLine.Kind.BASE_FEE)
    line = northwind["usage"]
    url = f"{QUEUE}{dispute.pk}/credit/"
    # The whole invoice: $299.00 + $180.00 = $479.00, + $95.80 tax = $574.80: above $500.00.
    data = credit_data(invoice, **{f"line_{base.pk}": ("whole", ""), f"line_{line.pk}": ("whole", "")})
    client = logged_in(fiona)
    preview = client.post(url, {**data, "_preview": "1"}).content.decode()
    assert ["Total", "USD 574.80"] in table_rows(preview, "credit-preview")
    assert "Needs Finance approval" in preview
    response = client.post(url, {**data, "previewed_total": "574.80", "_propose": "1"}, follow=True)
    proposal = CreditProposal.objects.get()
    assert (proposal.status, proposal.total, proposal.requested_by) == ("pending", D("574.80"), fiona)
    assert not CreditNote.objects.exists()
    html = response.content.decode()
    assert "Credit of USD 574.80 awaiting Finance approval</strong> (requested by Fiona" in html
    # The requester is offered no approval, and posting it anyway is refused.
    assert 'id="action-approve"' not in html
    refused = client.post(f"{QUEUE}{dispute.pk}/act/approve/", {"proposal": proposal.pk, "note": ""})
    assert refused.status_code == 403
    # Billing staff may not approve either.
    staff_page = page(logged_in(bianca), case_url(dispute))
    assert "awaiting Finance approval" in staff_page and 'id="action-approve"' not in staff_page
    assert logged_in(bianca).post(f"{QUEUE}{dispute.pk}/act/approve/", {"proposal": proposal.pk}).status_code == 403
    assert not CreditNote.objects.exists()
    # Another Finance admin approves: the credit note is issued and the case resolved as credited.
    approver = logged_in(frank)
    assert 'id="action-approve"' in page(approver, case_url(dispute))
    response = act(approver, dispute, "approve", proposal=proposal.pk, note="Outage confirmed.")
    assert [level for level, _ in messages_of(response)] == ["success"]
    note = CreditNote.objects.get()
    assert (note.total, note.invoice) == (D("574.80"), invoice)
    proposal.refresh_from_db()
    assert (proposal.status, proposal.decided_by, proposal.credit_note) == ("issued", frank, note)
    dispute.refresh_from_db()
    assert (dispute.state, dispute.resolution) == ("resolved", "credited")
    rows = table_rows(response.content.decode(), "credit-proposals")
    assert rows[0][:4] == ["Issued", "USD 479.00", "USD 95.80", "USD 574.80"]


def test_a_finance_admin_declines_a_pending_credit_with_a_note(northwind, bianca, frank):
    dispute = open_case(northwind)
    invoice = northwind["invoice"]
    base = invoice.lines.get(kind=InvoiceLine.Kind.BASE_FEE)
    url = f"{QUEUE}{dispute.pk}/credit/"
    # $299.00 + $150.00 goodwill = $449.00 + $89.80 tax = $538.80: above the threshold.
    data = credit_data(invoice, **{f"line_{base.pk}": ("whole", "")}) | {"goodwill_amount": "150.00"}
    logged_in(bianca).post(url, {**data, "previewed_total": "538.80", "_propose": "1"})
    proposal = CreditProposal.objects.get()
    assert proposal.status == "pending"
    response = act(logged_in(frank), dispute, "decline", proposal=proposal.pk, note="Too generous for one day.")
    assert [level for level, _ in messages_of(response)] == ["success"]
    proposal.refresh_from_db()
    assert (proposal.status, proposal.decision_note) == ("declined", "Too generous for one day.")
    assert not CreditNote.objects.exists()


# --- Evidence -------------------------------------------------------------------------------------------------


def test_the_case_page_shows_evidence_that_reconciles_and_exports_it(northwind, bianca):
    dispute = open_case(northwind)
    client = logged_in(bianca)
    html = page(client, case_url(dispute))
    line = northwind["usage"]
    # 20,000 + 11,000 = 31,000 messages, the line's quantity, by tenant, by partner and by day alike.
    assert table_header(html, f"evidence-{line.pk}-tenants") == ["Tenant", "Events", "Quantity", "Billed"]
    assert table_rows(html, f"evidence-{line.pk}-tenants") == [
        ["ten_nw_eu (Northwind EU)", "1", "20,000", "20,000"],
        ["ten_nw_us (Northwind US)", "1", "11,000", "11,000"],
        ["Total", "2", "31,000", "31,000"],
    ]
    assert table_rows(html, f"evidence-{line.pk}-partners") == [
        ["prt_acme (Acme Supplies)", "1", "20,000", "20,000"],
        ["no partner", "1", "11,000", "11,000"],
        ["Total", "2", "31,000", "31,000"],
    ]
    assert table_rows(html, f"evidence-{line.pk}-days") == [
        ["2026-11-10", "1", "20,000", "20,000"],
        ["2026-11-20", "1", "11,000", "11,000"],
        ["Total", "2", "31,000", "31,000"],
    ]
    section = html.split(f'id="evidence-{line.pk}"', 1)[1].split("</section>", 1)[0]
    assert f'id="evidence-{line.pk}-reconciles"' in section
    assert "✓ reconciles: the events' total is the line's quantity, 31,000" in section
    assert "the rating engine reads 31,000 from them" in section
    # The second copy of nov-eu was refused at ingestion: shown, never billed.
    assert table_rows(html, f"evidence-{line.pk}-refused-tenants") == [["ten_nw_eu (Northwind EU)", "1", "20,000"]]
    assert "list events" in section

    response = client.get(f"{QUEUE}{dispute.pk}/evidence.csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="{dispute.public_id}-evidence.csv"'
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["record"], r["key"], r["quantity"]) for r in rows if r["record"] in ("tenant", "tenant_total")] == [
        ("tenant", "ten_nw_eu", "20000"),
        ("tenant", "ten_nw_us", "11000"),
        ("tenant_total", "", "31000"),
    ]
    assert [(r["transaction_id"], r["tenant"], r["quantity"]) for r in rows if r["record"] == "event"] == [
        ("nov-eu", "ten_nw_eu", "20000"),
        ("nov-us", "ten_nw_us", "11000"),
    ]
    assert [r["note"] for r in rows if r["record"] == "reconciliation"] == ["reconciles"]


# --- Who may reach it ----------------------------------------------------------------------------------------


def test_a_portal_user_reaches_none_of_the_dispute_admin(northwind):
    dispute = open_case(northwind)
    attachment_token = "nothing"
    client = logged_in(northwind["owner"])
    for url in (
        QUEUE,
        QUEUE + "add/",
        case_url(dispute),
        f"{QUEUE}{dispute.pk}/credit/",
        f"{QUEUE}{dispute.pk}/evidence.csv",
        f"{QUEUE}{dispute.pk}/attachments/{attachment_token}/",
    ):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), url
    response = client.post(f"{QUEUE}{dispute.pk}/act/investigate/", {"note": "hi"})
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    dispute.refresh_from_db()
    assert dispute.state == "open"


def test_staff_download_internal_and_public_attachments(northwind, bianca):
    dispute = open_case(northwind)
    client = logged_in(bianca)
    upload = SimpleUploadedFile("gateway.csv", b"transaction_id,quantity\nnov-eu,20000\n", content_type="text/csv")
    client.post(f"{QUEUE}{dispute.pk}/act/note/", {"body": "Our own export.", "attachment": upload})
    attachment = dispute.attachments.get()
    assert attachment.internal is True
    response = client.get(f"{QUEUE}{dispute.pk}/attachments/{attachment.token}/")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"transaction_id,quantity\nnov-eu,20000\n"
    assert 'attachment; filename="gateway.csv"' in response["Content-Disposition"]


def test_assigning_through_the_service_shows_on_the_queue(northwind, bianca):
    dispute = open_case(northwind)
    dispute_assign(dispute=dispute, assignee=bianca, actor=bianca)
    rows = table_rows(page(logged_in(bianca), QUEUE), "result_list")
    assert rows[0][6] == "Bianca"


# --- In real Chromium, on a laptop screen -----------------------------------------------------------------------

LAPTOP = {"width": 1366, "height": 768}


@pytest.mark.browser
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_queue_and_the_case_page_fit_a_laptop_screen_in_chromium(live_server, three_cases, browser):
    fresh, _, _ = three_cases
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport=LAPTOP)
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(f"{live_server.url}/admin/")
        page.get_by_label("Username").fill("bianca")
        page.get_by_label("Password").fill("staff-pass-123")
        page.get_by_role("button", name="Log in").click()

        page.goto(f"{live_server.url}{QUEUE}?status=all")
        last_column = page.locator("#result_list thead th").last
        expect(last_column).to_have_text("Last update")
        box = last_column.bounding_box()
        assert box["x"] + box["width"] <= LAPTOP["width"]
        assert page.evaluate("document.documentElement.scrollWidth") <= LAPTOP["width"]
        assert page.evaluate("(r => r.scrollWidth <= r.clientWidth)(document.querySelector('.results'))")
        expect(page.locator("#result_list tbody tr")).to_have_count(3)

        page.get_by_role("link", name=fresh.public_id).click()
        expect(page.locator("#case-state")).to_have_text("Open")
        expect(page.locator(".reconciles").first).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= LAPTOP["width"]
        page.locator("#action-investigate summary").click()
        page.locator("#action-investigate input[type=submit]").click()
        expect(page.locator(".messagelist")).to_contain_text(f"Investigating {fresh.public_id}.")
        expect(page.locator("#case-state")).to_have_text("Investigating")
        page.screenshot(path=str(ARTIFACTS / "admin-dispute-case.png"), full_page=True)
    finally:
        context.close()
