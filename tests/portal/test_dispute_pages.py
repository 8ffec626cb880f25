"""The customer's side of disputes in the portal: an owner disputes a line of an invoice with a CSV, follows the
case (thread, files, timeline, SLA, outcome), replies and withdraws; members only read; another account's
customer learns nothing (404); internal notes and files never reach the page; bad input is a 400 on the form.

Northwind's November invoice (``business_invoice``, tax 20 %): Business base fee $299.00 and 31,000 messages of
which 6,000 are billable at $0.03 = $180.00; $479.00 + $95.80 tax = $574.80. The portal is read on
December 10, 2026 at 14:30 UTC; with the default SLA (24 hours to answer, 10 days to resolve) a case opened then
is answered by December 11, 14:30 and resolved by December 20, 14:30.
"""

import datetime as dt
import re
from decimal import Decimal as D

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils.html import escape

from accounts.models import AccountUser
from accounts.permissions import BILLING_STAFF
from billing.models import CreditNote, InvoiceLine
from billing.services.credit_notes import CreditLine
from disputes.models import Dispute, DisputeAttachment, DisputeLine
from disputes.services import (
    ERR_ATTACHMENT_TYPE,
    ERR_CLOSED,
    LineClaim,
    attachment_add,
    dispute_ask_customer,
    dispute_credit_propose,
    dispute_open,
    dispute_reply,
)
from tests.accounts.factories import AccountUserFactory, StaffUserFactory
from tests.billing.factories import business_invoice

pytestmark = pytest.mark.django_db
UTC = dt.UTC
NOW = dt.datetime(2026, 12, 10, 14, 30, tzinfo=UTC)
CSV = b"day,tenant,messages\n2026-11-10,ten_nw,31000\n"


@pytest.fixture(autouse=True)
def _december_10():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def northwind(plan):
    invoice = business_invoice(plan, tax_rate="20")
    account = invoice.account
    owner = AccountUserFactory(account=account, email="owner@northwind.example", role=AccountUser.Role.OWNER)
    member = AccountUserFactory(account=account, email="member@northwind.example", role=AccountUser.Role.MEMBER)
    return {
        "account": account,
        "invoice": invoice,
        "messages_line": invoice.lines.get(kind=InvoiceLine.Kind.USAGE, metric__code="messages"),
        "owner": owner.user,
        "member": member.user,
    }


@pytest.fixture
def staff():
    return StaffUserFactory(username="bianca", first_name="Bianca", groups=[Group.objects.get(name=BILLING_STAFF)])


def open_case(northwind, **kwargs) -> Dispute:
    """A case the owner opened through the service (as the portal does), about 2,000 of the messages."""
    return dispute_open(
        account=northwind["account"],
        invoice=northwind["invoice"],
        subject="Messages counted twice",
        description="Our logs show 29,000 messages on November 10, not 31,000.",
        category=Dispute.Category.USAGE,
        lines=[LineClaim(invoice_line=northwind["messages_line"], quantity=D("2000"))],
        source=Dispute.Source.PORTAL,
        channel=Dispute.Channel.PORTAL,
        actor=northwind["owner"],
        **kwargs,
    )


def case_url(dispute: Dispute) -> str:
    return f"/portal/disputes/{dispute.public_id}/"


def form_url(northwind) -> str:
    return f"/portal/invoices/{northwind['invoice'].number}/dispute/"


def text_of(html: str, element_id: str, tag: str = "") -> str:
    """The text of the element with ``element_id`` up to its first closing tag (or the closing ``tag``)."""
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</{tag}', html, re.S)
    assert match, f"#{element_id} not on the page"
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


def test_an_owner_disputes_a_line_with_a_csv_and_is_sent_to_the_case(northwind, client):
    client.force_login(northwind["owner"])
    line = northwind["messages_line"]
    form = client.get(form_url(northwind))
    assert form.status_code == 200
    page = form.content.decode()
    assert 'enctype="multipart/form-data"' in page
    assert 'accept=".csv,.pdf,.png,.jpg,.jpeg,text/csv,application/pdf,image/png,image/jpeg"' in page
    assert "CSV, PDF, PNG or JPEG, up to 5.0\xa0MB each; up to 5 files." in page
    assert f'<label class="choice" for="id_line_{line.pk}"><input type="checkbox" name="line_{line.pk}"' in page

    response = client.post(
        form_url(northwind),
        {
            f"line_{line.pk}": "on",
            f"line_{line.pk}_quantity": "2000",
            "category": "usage",
            "subject": "Messages counted twice",
            "description": "Our logs show 29,000 messages on November 10, not 31,000.",
            "attachment": SimpleUploadedFile("november-logs.csv", CSV, content_type="text/csv"),
        },
    )

    dispute = Dispute.objects.get(account=northwind["account"])
    assert response.status_code == 302 and response["Location"] == case_url(dispute)
    assert (dispute.invoice, dispute.state, dispute.category) == (northwind["invoice"], "open", "usage")
    assert (dispute.source, dispute.channel, dispute.opened_by) == ("portal", "portal", northwind["owner"])
    assert list(DisputeLine.objects.filter(dispute=dispute).values_list("invoice_line", "disputed_quantity")) == [
        (line.pk, D("2000"))
    ]
    attachment = DisputeAttachment.objects.get(dispute=dispute)
    assert (attachment.filename, attachment.content_type, attachment.size, attachment.internal) == (
        "november-logs.csv",
        "text/csv",
        len(CSV),
        False,
    )
    assert attachment.file.read() == CSV

    page = client.get(case_url(dispute)).content.decode()
    assert f"Dispute {dispute.public_id}: Messages counted twice" in page
    assert text_of(page, "state") == "Open"
    assert text_of(page, "sla", "div") == (
        "We will answer by Dec 11, 2026 at 14:30 UTC.We aim to resolve it by Dec 20, 2026 at 14:30 UTC."
    )
    assert "Our logs show 29,000 messages on November 10, not 31,000." in page
    assert f'href="{case_url(dispute)}attachments/{attachment.token}/" download>november-logs.csv</a>' in page
    assert f'<tr data-line="{line.pk}">' in page and "2,000" in page
    assert text_of(page, "invoice-amount-due") == "USD 574.80"
    listing = client.get("/portal/disputes/").content.decode()
    assert f'<a href="{case_url(dispute)}">{dispute.public_id}</a>' in listing


def test_an_attachment_downloads_under_its_own_name_never_sniffed_or_cached(northwind, client):
    upload = SimpleUploadedFile('Übersicht "Nov".csv', CSV, content_type="application/x-msdownload")
    dispute = open_case(northwind, attachments=[upload])
    attachment = dispute.attachments.get()
    client.force_login(northwind["member"])  # members read cases and their files

    response = client.get(f"{case_url(dispute)}attachments/{attachment.token}/")

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == CSV
    assert response["Content-Type"] == "text/csv"  # what the service found, not what the browser claimed
    assert response["Content-Disposition"] == "attachment; filename*=utf-8''%C3%9Cbersicht%20%22Nov%22.csv"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Cache-Control"] == "private, no-store"


def test_a_member_reads_cases_but_may_not_open_reply_or_withdraw(northwind, client):
    dispute = open_case(northwind)
    client.force_login(northwind["member"])
    line = northwind["messages_line"]

    assert client.get(form_url(northwind)).status_code == 403
    refused = client.post(
        form_url(northwind),
        {f"line_{line.pk}": "on", "category": "usage", "subject": "Again", "description": "Twice."},
    )
    assert refused.status_code == 403
    assert b"<h1>Not allowed for your role</h1>" in refused.content and b"Your role is member;" in refused.content
    assert client.post(f"{case_url(dispute)}reply/", {"body": "Any news?"}).status_code == 403
    assert client.post(f"{case_url(dispute)}withdraw/", {}).status_code == 403

    page = client.get(case_url(dispute))
    assert page.status_code == 200
    assert b"Send reply" not in page.content and b">Withdraw</button>" not in page.content
    assert b"Dispute this invoice" not in client.get(f"/portal/invoices/{northwind['invoice'].number}/").content
    assert Dispute.objects.count() == 1 and dispute.messages.count() == 1
    assert Dispute.objects.get().state == "open"


def test_another_accounts_owner_finds_no_case_message_or_file(northwind, client):
    dispute = open_case(northwind, attachments=[SimpleUploadedFile("logs.csv", CSV)])
    token = dispute.attachments.get().token
    stranger = AccountUserFactory(email="owner@globex.example", role=AccountUser.Role.OWNER)
    client.force_login(stranger.user)

    assert client.get(case_url(dispute)).status_code == 404
    assert client.post(f"{case_url(dispute)}reply/", {"body": "Hello"}).status_code == 404
    assert client.post(f"{case_url(dispute)}withdraw/", {}).status_code == 404
    assert client.get(f"{case_url(dispute)}attachments/{token}/").status_code == 404
    assert client.get(form_url(northwind)).status_code == 404
    assert dispute.public_id.encode() not in client.get("/portal/disputes/").content
    assert dispute.messages.count() == 1
    assert Dispute.objects.get().state == "open"


def test_internal_notes_and_files_never_reach_the_customer(northwind, client, staff):
    dispute = open_case(northwind)
    dispute_reply(dispute=dispute, body="Internal: check the retry storm on Nov 10.", actor=staff, internal=True)
    internal = attachment_add(
        dispute=dispute,
        upload=SimpleUploadedFile("ingest-trace.csv", b"at,events\n10:00,31000\n"),
        actor=staff,
        internal=True,
    )
    dispute_reply(dispute=dispute, body="We are checking the ingestion logs.", actor=staff)
    client.force_login(northwind["owner"])

    page = client.get(case_url(dispute)).content.decode()

    assert "We are checking the ingestion logs." in page
    assert "retry storm" not in page
    assert "ingest-trace.csv" not in page and internal.token not in page
    assert "Internal note" not in page
    assert text_of(page, "sla", "div") == (
        "We first answered on Dec 10, 2026 at 14:30 UTC.We aim to resolve it by Dec 20, 2026 at 14:30 UTC."
    )
    assert client.get(f"{case_url(dispute)}attachments/{internal.token}/").status_code == 404


def test_a_reply_moves_a_case_waiting_on_the_customer_back_to_investigating(northwind, client, staff):
    dispute = open_case(northwind)
    dispute_ask_customer(dispute=dispute, actor=staff, question="Which tenant sent the 29,000 messages?")
    client.force_login(northwind["owner"])
    waiting = client.get(case_url(dispute)).content.decode()
    assert text_of(waiting, "state") == "Waiting on customer"
    assert "We are waiting for your answer: reply below." in waiting

    response = client.post(
        f"{case_url(dispute)}reply/",
        {"body": "ten_nw, all of them.", "attachment": SimpleUploadedFile("tenant.csv", CSV)},
    )

    assert response.status_code == 302 and response["Location"] == case_url(dispute)
    dispute.refresh_from_db()
    assert dispute.state == "investigating"
    reply = dispute.messages.order_by("-created_at", "-id").first()
    assert (reply.body, reply.author_kind, reply.author) == ("ten_nw, all of them.", "customer", northwind["owner"])
    assert list(reply.attachments.values_list("filename", flat=True)) == ["tenant.csv"]
    page = client.get(case_url(dispute)).content.decode()
    assert "Which tenant sent the 29,000 messages?" in page and "ten_nw, all of them." in page
    assert "Reply sent." in page
    assert text_of(page, "state") == "Investigating"


def test_the_owner_withdraws_the_case_and_it_takes_no_more_replies(northwind, client):
    dispute = open_case(northwind)
    client.force_login(northwind["owner"])

    response = client.post(f"{case_url(dispute)}withdraw/", {"reason": "Found the duplicate on our side."})

    assert response.status_code == 302 and response["Location"] == case_url(dispute)
    dispute.refresh_from_db()
    assert (dispute.state, dispute.resolution) == ("resolved", "withdrawn")
    assert dispute.resolution_note == "Found the duplicate on our side."
    page = client.get(case_url(dispute)).content.decode()
    assert "Withdrawn by the customer." in page and "Found the duplicate on our side." in page
    assert "Send reply" not in page and ">Withdraw</button>" not in page

    late = client.post(f"{case_url(dispute)}reply/", {"body": "One more thing"})
    assert late.status_code == 409
    assert escape(ERR_CLOSED.format(case=dispute.public_id, state="resolved")) in late.content.decode()
    assert dispute.messages.count() == 1


def test_an_attachment_of_another_type_is_refused_on_the_form(northwind, client):
    client.force_login(northwind["owner"])
    line = northwind["messages_line"]
    data = {
        f"line_{line.pk}": "on",
        "category": "usage",
        "subject": "Messages counted twice",
        "description": "See the attached notes.",
    }

    response = client.post(form_url(northwind), {**data, "attachment": SimpleUploadedFile("notes.txt", b"hello")})

    assert response.status_code == 400
    page = response.content.decode()
    assert f'<ul class="errorlist" id="id_attachment_error"><li>{ERR_ATTACHMENT_TYPE.format(name="notes.txt")}' in page
    assert 'role="alert"' in page
    assert Dispute.objects.count() == 0 and DisputeAttachment.objects.count() == 0

    missing = client.post(form_url(northwind), {**data, "subject": ""})
    assert missing.status_code == 400
    assert '<ul class="errorlist" id="id_subject_error"><li>This field is required.' in missing.content.decode()

    too_many = client.post(form_url(northwind), {**data, f"line_{line.pk}_quantity": "31001"})
    assert too_many.status_code == 400
    assert (
        f'<ul class="errorlist" id="id_line_{line.pk}_quantity_error"><li>The disputed quantity of line '
        f"{line.position} must be more than 0 and at most its 31,000." in too_many.content.decode()
    )
    assert Dispute.objects.count() == 0


def test_an_invoice_with_an_open_case_links_to_it_instead_of_a_second_form(northwind, client):
    client.force_login(northwind["owner"])
    invoice_url = f"/portal/invoices/{northwind['invoice'].number}/"
    before = client.get(invoice_url).content.decode()
    assert (
        f'<a class="button secondary" id="dispute-invoice" href="{form_url(northwind)}">Dispute this invoice</a>'
        in (before)
    )
    assert 'id="disputes-heading"' not in before

    dispute = open_case(northwind)

    after = client.get(invoice_url).content.decode()
    assert f'<a href="{case_url(dispute)}">{dispute.public_id}: Messages counted twice</a>' in after
    form = client.get(form_url(northwind)).content.decode()
    assert 'id="open-case"' in form and f'href="{case_url(dispute)}"' in form
    assert 'name="subject"' not in form
    again = client.post(form_url(northwind), {"category": "usage", "subject": "Again", "description": "Twice."})
    assert again.status_code == 409
    assert 'id="open-case"' in again.content.decode()
    assert Dispute.objects.count() == 1


def test_the_outcome_shows_the_credit_note_and_the_lower_amount_due(northwind, client, staff):
    dispute = open_case(northwind)
    # 2,000 messages at $0.03 = $60.00 + 20 % tax = $72.00; $574.80 − $72.00 = $502.80 still due.
    dispute_credit_propose(
        dispute=dispute,
        actor=staff,
        lines=[CreditLine(invoice_line=northwind["messages_line"], description="2,000 messages", amount=D("60.00"))],
        reason="2,000 messages were counted twice on November 10.",
    )
    note = CreditNote.objects.get(invoice=northwind["invoice"])
    assert note.total == D("72.00")
    client.force_login(northwind["owner"])

    page = client.get(case_url(dispute)).content.decode()

    assert text_of(page, "state") == "Resolved"
    assert "<strong>Credited.</strong>" in page
    assert text_of(page, "resolution-note") == "2,000 messages were counted twice on November 10."
    assert f'<tr data-credit-note="{note.number}"><th scope="row" data-label="Credit note">{note.number}</th>' in page
    assert f'href="/portal/credit-notes/{note.number}/pdf" download>' in page
    assert "USD 72.00" in page
    assert text_of(page, "outcome-amount-due") == "USD 502.80"
    assert text_of(page, "invoice-amount-due") == "USD 502.80"
    assert "Send reply" not in page
    listing = client.get("/portal/disputes/").content.decode()
    assert '<td data-label="Outcome">Credited</td>' in listing
