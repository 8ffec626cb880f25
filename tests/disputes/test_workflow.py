"""A dispute's workflow: every step by every role (billing staff, finance admin, customer owner and member, another
account's owner), each allowed step leaving its timeline entry and history row, each forbidden one refused with
the right status and nothing written; SLA targets; credits from a case, with a second person's approval above
the threshold."""

import datetime as dt
from decimal import Decimal as D

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import AccountUser
from accounts.services import api_key_create
from billing.models import CreditNote, InvoiceLine
from billing.services.credit_notes import CreditLine, credit_line_for_quantity
from common.errors import BillingError
from common.models import OutboxEvent
from disputes.models import CreditProposal, Dispute, DisputeAttachment, DisputeEvent, DisputeMessage
from disputes.selectors import dispute_queue, dispute_timeline, sla
from disputes.services import (
    LineClaim,
    credit_proposal_approve,
    credit_proposal_decline,
    dispute_ask_customer,
    dispute_assign,
    dispute_credit_propose,
    dispute_investigate,
    dispute_open,
    dispute_reject,
    dispute_reopen,
    dispute_reply,
    dispute_resolve,
    dispute_withdraw,
)
from tests.accounts.factories import AccountFactory
from tests.disputes.factories import billing_staff, finance_admin, issued_invoice, issued_invoices, portal_user

pytestmark = pytest.mark.django_db
UTC = dt.UTC
DEC_10 = dt.datetime(2026, 12, 10, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _an_hour_after_opening():
    """Steps not dated otherwise happen an hour after the cases are opened (at 09:00 on 10 December)."""
    with time_machine.travel(DEC_10 + dt.timedelta(hours=1), tick=False):
        yield


@pytest.fixture
def invoice(plan):
    invoice = issued_invoice(plan)
    assert (invoice.number, invoice.total) == ("INV-2026-000001", D("574.80"))
    return invoice


@pytest.fixture
def people(invoice):
    account = invoice.account
    other = AccountFactory(name="Contoso")
    return {
        "owner": portal_user(account, AccountUser.Role.OWNER),
        "admin": portal_user(account, AccountUser.Role.ADMIN),
        "billing": portal_user(account, AccountUser.Role.BILLING),
        "member": portal_user(account, AccountUser.Role.MEMBER),
        "stranger": portal_user(other, AccountUser.Role.OWNER),
        "staff": billing_staff(),
        "finance": finance_admin(),
        "finance2": finance_admin("frank"),
    }


def messages_line(invoice):
    return invoice.lines.get(kind=InvoiceLine.Kind.USAGE, metric__code="messages")


def open_case(invoice, actor, *, at=DEC_10, source=Dispute.Source.PORTAL, channel=Dispute.Channel.PORTAL, **kwargs):
    with time_machine.travel(at, tick=False):
        return dispute_open(
            account=invoice.account,
            invoice=invoice,
            subject="Messages counted twice",
            description="Our gateway retried during the outage.",
            category=Dispute.Category.USAGE,
            source=source,
            channel=channel,
            actor=actor,
            **kwargs,
        )


def refused(call, status, code):
    with pytest.raises(BillingError) as caught:
        call()
    assert (caught.value.status, caught.value.code) == (status, code), caught.value.message
    return caught.value


def kinds(dispute):
    return [(e.kind, e.from_state, e.to_state, e.actor_label) for e in DisputeEvent.objects.filter(dispute=dispute)]


# --- Opening ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["owner", "admin", "billing"])
def test_an_owner_admin_or_billing_user_opens_a_case_on_a_line(invoice, people, role):
    line = messages_line(invoice)
    dispute = open_case(invoice, people[role], lines=[LineClaim(invoice_line=line, quantity=D("6000"))])

    assert (dispute.public_id, dispute.state, dispute.source, dispute.currency) == (
        "dsp_000001",
        "open",
        "portal",
        "USD",
    )
    assert dispute.opened_by == people[role]
    assert (dispute.response_due_at, dispute.resolution_due_at) == (
        dt.datetime(2026, 12, 11, 9, 0, tzinfo=UTC),  # 24 hours
        dt.datetime(2026, 12, 20, 9, 0, tzinfo=UTC),  # 10 days
    )
    (claim,) = dispute.lines.all()
    assert (claim.invoice_line, claim.disputed_quantity) == (line, D("6000"))
    label = f"{role}@northwind.example ({role})"
    assert kinds(dispute) == [("opened", "", "open", label), ("message", "", "", label)]
    assert dispute.messages.get().body == "Our gateway retried during the outage."
    assert dispute.history.count() == 1
    (event,) = OutboxEvent.objects.filter(type="billing.dispute_opened")
    assert event.payload["data"] | {"opened_at": None, "updated_at": None} == {
        "dispute_id": "dsp_000001",
        "account_id": invoice.account.public_id,
        "invoice_id": "INV-2026-000001",
        "state": "open",
        "resolution": None,
        "category": "usage",
        "amount": None,
        "currency": "USD",
        "opened_at": None,
        "updated_at": None,
        "credit_note_id": None,
    }


def test_a_member_may_not_open_a_case_and_another_account_is_told_it_does_not_exist(invoice, people):
    error = refused(lambda: open_case(invoice, people["member"]), 403, "permission_denied")
    assert (
        error.message
        == "Members of the account read its disputes; an owner, admin or billing user opens and answers them."
    )
    refused(lambda: open_case(invoice, people["stranger"]), 404, "not_found")
    # Staff open cases for customers only as staff (source staff, with a channel).
    refused(lambda: open_case(invoice, None), 404, "not_found")
    assert not Dispute.objects.exists()


def test_staff_open_a_case_for_a_customer_who_phoned_and_a_second_open_case_is_refused(invoice, people):
    dispute = open_case(invoice, people["staff"], source=Dispute.Source.STAFF, channel=Dispute.Channel.PHONE)
    assert (dispute.source, dispute.channel, dispute.opened_by) == ("staff", "phone", people["staff"])
    assert DisputeEvent.objects.filter(dispute=dispute, kind="opened").get().note == (
        "Opened on the customer's behalf (phone): Messages counted twice"
    )
    error = refused(lambda: open_case(invoice, people["owner"]), 409, "dispute_already_open")
    assert error.message == "INV-2026-000001 already has an open dispute, dsp_000001: add to it instead."
    # A portal user cannot pose as staff.
    refused(
        lambda: open_case(invoice, people["owner"], source=Dispute.Source.STAFF, channel=Dispute.Channel.EMAIL),
        403,
        "permission_denied",
    )


def test_bad_input_is_refused_with_the_field_and_nothing_is_written(invoice, people):
    line = messages_line(invoice)
    owner = people["owner"]
    # The line billed 31,000 messages.
    error = refused(
        lambda: open_case(invoice, owner, lines=[LineClaim(invoice_line=line, quantity=D("31001"))]),
        400,
        "invalid_quantity",
    )
    assert (error.field, error.message) == (
        "lines[0].quantity",
        "The disputed quantity of line 3 must be more than 0 and at most its 31,000.",
    )
    error = refused(
        lambda: open_case(invoice, owner, lines=[LineClaim(invoice_line=line, amount=D("180.01"))]),
        400,
        "invalid_amount",
    )
    assert (error.field, error.message) == (
        "lines[0].amount",
        "The disputed amount of line 3 must be more than 0 and at most its USD 180.00.",
    )
    error = refused(lambda: open_case(invoice, owner, amount=D("574.81")), 400, "invalid_amount")
    assert error.message == "The disputed amount must be more than 0 and at most the invoice's total (USD 574.80)."
    with time_machine.travel(DEC_10, tick=False):
        error = refused(
            lambda: dispute_open(
                account=invoice.account,
                invoice=invoice,
                subject=" ",
                description="x",
                source="portal",
                channel="portal",
                actor=owner,
            ),
            400,
            "required",
        )
    assert error.field == "subject"
    assert not Dispute.objects.exists()


def test_an_attachment_is_checked_by_its_content_and_size(invoice, people, settings):
    settings.DISPUTES_ATTACHMENT_MAX_BYTES = 100
    csv_file = SimpleUploadedFile("retries.csv", b"transaction_id,quantity\nm1,10\n", content_type="text/csv")
    dispute = open_case(invoice, people["owner"], attachments=[csv_file])
    (attachment,) = DisputeAttachment.objects.all()
    assert (attachment.filename, attachment.content_type, attachment.size, attachment.internal) == (
        "retries.csv",
        "text/csv",
        30,
        False,
    )
    assert attachment.file.read() == b"transaction_id,quantity\nm1,10\n"
    assert DisputeEvent.objects.get(kind="attachment").note == "retries.csv (text/csv, 30 bytes)"
    dispute_withdraw(dispute=dispute, actor=people["owner"])

    # An executable renamed .pdf is refused, whatever the browser says; so is a file over the limit.
    fake = SimpleUploadedFile("invoice.pdf", b"MZ\x90\x00binary", content_type="application/pdf")
    error = refused(lambda: open_case(invoice, people["owner"], attachments=[fake]), 400, "attachment_type")
    assert (error.field, error.message) == ("attachment", "invoice.pdf is not a CSV, PDF, PNG or JPEG file.")
    big = SimpleUploadedFile("big.csv", b"a," * 60, content_type="text/csv")
    error = refused(lambda: open_case(invoice, people["owner"], attachments=[big]), 400, "attachment_too_large")
    assert error.message == "big.csv is 120 bytes; attachments may be up to 100 bytes."
    assert Dispute.objects.count() == 1


# --- Transitions by role ----------------------------------------------------------------------------------


def test_staff_work_a_case_through_each_state_and_each_step_is_audited(invoice, people):
    staff, owner = people["staff"], people["owner"]
    dispute = open_case(invoice, owner)
    with time_machine.travel(DEC_10 + dt.timedelta(hours=2), tick=False):
        dispute_investigate(dispute=dispute, actor=staff)
    dispute.refresh_from_db()
    assert (dispute.state, dispute.assigned_to, dispute.first_response_at) == (
        "investigating",
        staff,
        DEC_10 + dt.timedelta(hours=2),
    )
    with time_machine.travel(DEC_10 + dt.timedelta(hours=3), tick=False):
        dispute_ask_customer(dispute=dispute, actor=staff, question="Which tenant retried?")
    dispute.refresh_from_db()
    assert (dispute.state, dispute.waiting_since) == ("waiting_on_customer", DEC_10 + dt.timedelta(hours=3))
    # The customer answers two days later: back to investigating, the resolution target two days later too.
    with time_machine.travel(DEC_10 + dt.timedelta(days=2, hours=3), tick=False):
        dispute_reply(dispute=dispute, actor=owner, body="ten_nw, on the 10th.")
    dispute.refresh_from_db()
    assert (dispute.state, dispute.waiting_since) == ("investigating", None)
    assert dispute.resolution_due_at == dt.datetime(2026, 12, 22, 9, 0, tzinfo=UTC)
    with time_machine.travel(DEC_10 + dt.timedelta(days=3), tick=False):
        dispute_resolve(dispute=dispute, actor=staff, reason="The retries had new transaction ids: billed rightly.")
    dispute.refresh_from_db()
    assert (dispute.state, dispute.resolution, dispute.closed_at) == (
        "resolved",
        "explained",
        DEC_10 + dt.timedelta(days=3),
    )
    assert dispute.resolution_note == "The retries had new transaction ids: billed rightly."
    with time_machine.travel(DEC_10 + dt.timedelta(days=4), tick=False):
        dispute_reopen(dispute=dispute, actor=people["finance"], reason="The customer sent new logs.")
        dispute_reject(dispute=dispute, actor=staff, reason="The logs show distinct requests.")

    staff_label, owner_label = "bianca (billing staff)", "owner@northwind.example (owner)"
    assert [k for k in kinds(dispute) if k[0] == "state"] == [
        ("state", "open", "investigating", staff_label),
        ("state", "investigating", "waiting_on_customer", staff_label),
        ("state", "waiting_on_customer", "investigating", owner_label),
        ("state", "investigating", "resolved", staff_label),
        ("state", "resolved", "investigating", "fiona (finance admin)"),
        ("state", "investigating", "rejected", staff_label),
    ]
    # Every change of the case is in its history, with the user who made it.
    assert dispute.history.filter(history_user=staff).count() >= 4
    assert dispute.history.filter(history_user=owner).count() >= 1
    types = list(OutboxEvent.objects.filter(type__startswith="billing.dispute").values_list("type", flat=True))
    assert types.count("billing.dispute_opened") == 1
    assert types.count("billing.dispute_resolved") == 2  # resolved, then rejected


def test_forbidden_steps_are_refused_by_state_and_by_role(invoice, people):
    dispute = open_case(invoice, people["owner"])
    for who in ("owner", "member"):
        # Customers do not work their own case.
        refused(lambda who=who: dispute_investigate(dispute=dispute, actor=people[who]), 403, "permission_denied")
        refused(
            lambda who=who: dispute_resolve(dispute=dispute, actor=people[who], reason="x"), 403, "permission_denied"
        )
    refused(lambda: dispute_withdraw(dispute=dispute, actor=people["member"]), 403, "permission_denied")
    refused(lambda: dispute_withdraw(dispute=dispute, actor=people["stranger"]), 404, "not_found")
    refused(lambda: dispute_reply(dispute=dispute, actor=people["stranger"], body="hi"), 404, "not_found")
    refused(lambda: dispute_reply(dispute=dispute, actor=people["member"], body="hi"), 403, "permission_denied")
    refused(
        lambda: dispute_reply(dispute=dispute, actor=people["owner"], body="x", internal=True), 403, "permission_denied"
    )
    # A reason is needed to resolve or reject; a question to wait on the customer.
    error = refused(lambda: dispute_resolve(dispute=dispute, actor=people["staff"], reason=" "), 400, "required")
    assert (error.field, error.message) == ("reason", "Give a reason: the customer reads it.")
    refused(lambda: dispute_ask_customer(dispute=dispute, actor=people["staff"], question=""), 400, "required")

    dispute_reject(dispute=dispute, actor=people["staff"], reason="Billed as used.")
    error = refused(
        lambda: dispute_resolve(dispute=dispute, actor=people["staff"], reason="x"), 409, "transition_not_allowed"
    )
    assert error.message == "dsp_000001 is rejected: it cannot be resolved now."
    refused(
        lambda: dispute_ask_customer(dispute=dispute, actor=people["staff"], question="?"),
        409,
        "transition_not_allowed",
    )
    refused(lambda: dispute_withdraw(dispute=dispute, actor=people["owner"]), 409, "transition_not_allowed")
    error = refused(lambda: dispute_reply(dispute=dispute, actor=people["owner"], body="But!"), 409, "dispute_closed")
    assert error.message.startswith("dsp_000001 is rejected: it takes no more messages.")
    # Only the opening and rejection moved the state.
    assert [k[2] for k in kinds(dispute) if k[0] == "state"] == ["rejected"]


def test_the_customer_withdraws_and_an_api_key_needs_the_disputes_scope(invoice, people):
    reader, _ = api_key_create(name="read only", scopes=["read"], account=invoice.account)
    writer, _ = api_key_create(name="support desk", scopes=["disputes"], account=invoice.account)
    error = refused(
        lambda: open_case(invoice, reader, source=Dispute.Source.API, channel=Dispute.Channel.API),
        403,
        "permission_denied",
    )
    assert error.message == "This API key lacks the disputes scope: it cannot open or answer disputes."
    dispute = open_case(invoice, writer, source=Dispute.Source.API, channel=Dispute.Channel.API)
    assert (dispute.opened_by, dispute.opened_by_key) == (None, writer)
    assert (
        DisputeEvent.objects.filter(dispute=dispute).first().actor_label == f"API key {writer.prefix}… (support desk)"
    )
    dispute_withdraw(dispute=dispute, actor=people["admin"], reason="Found the duplicate on our side.")
    dispute.refresh_from_db()
    assert (dispute.state, dispute.resolution) == ("resolved", "withdrawn")


def test_internal_notes_stay_out_of_the_customers_timeline(invoice, people):
    dispute = open_case(invoice, people["owner"])
    dispute_reply(dispute=dispute, actor=people["staff"], body="Looks like the EU gateway.", internal=True)
    dispute_reply(dispute=dispute, actor=people["staff"], body="We are checking the events.")
    dispute_assign(dispute=dispute, assignee=people["finance"], actor=people["staff"])
    customer = [(e.kind, e.message.body if e.message else e.note) for e in dispute_timeline(dispute, for_customer=True)]
    assert customer == [
        ("opened", "Opened: Messages counted twice"),
        ("message", "Our gateway retried during the outage."),
        ("message", "We are checking the events."),
    ]
    staff = [e.kind for e in dispute_timeline(dispute, for_customer=False)]
    assert staff == ["opened", "message", "note", "message", "assigned"]
    assert DisputeMessage.objects.get(internal=True).body == "Looks like the EU gateway."


def test_the_sla_shows_breaches_and_the_queue_puts_them_first(plan):
    northwind, contoso = issued_invoices(plan)
    staff = billing_staff()
    late = open_case(northwind, portal_user(northwind.account))
    fresh = open_case(contoso, portal_user(contoso.account), at=DEC_10 + dt.timedelta(hours=20))
    now = DEC_10 + dt.timedelta(hours=30)
    state = sla(late, now)
    assert (state.age, state.response_breached, state.resolution_breached) == (dt.timedelta(hours=30), True, False)
    assert sla(fresh, now).response_breached is False
    assert list(dispute_queue(now=now)) == [late, fresh]
    # Answered in time: no breach, ever.
    with time_machine.travel(DEC_10 + dt.timedelta(hours=21), tick=False):
        dispute_investigate(dispute=fresh, actor=staff)
    fresh.refresh_from_db()
    assert sla(fresh, DEC_10 + dt.timedelta(days=3)).response_breached is False


# --- Credits ---------------------------------------------------------------------------------------------


def test_a_credit_below_the_threshold_is_issued_at_once_and_resolves_the_case(invoice, people):
    dispute = open_case(
        invoice, people["owner"], lines=[LineClaim(invoice_line=messages_line(invoice), quantity=D("2000"))]
    )
    credit = credit_line_for_quantity(line=messages_line(invoice), quantity=D("2000"))
    assert credit.amount == D("60.00")  # 2,000 × $0.03
    with time_machine.travel(DEC_10 + dt.timedelta(hours=4), tick=False):
        proposal = dispute_credit_propose(
            dispute=dispute, actor=people["staff"], lines=[credit], reason="Retries billed twice."
        )
    proposal.refresh_from_db()
    dispute.refresh_from_db()
    invoice.refresh_from_db()
    note = proposal.credit_note
    # $60.00 + 20 % tax = $72.00; $574.80 − $72.00 = $502.80 due.
    assert (proposal.status, note.subtotal, note.tax, note.total) == ("issued", D("60.00"), D("12.00"), D("72.00"))
    assert (invoice.amount_credited, invoice.amount_due) == (D("72.00"), D("502.80"))
    assert note.reason == "Dispute dsp_000001: Retries billed twice."
    assert (dispute.state, dispute.resolution, dispute.resolution_note) == (
        "resolved",
        "credited",
        "Retries billed twice.",
    )
    assert [k[0] for k in kinds(dispute)][-3:] == ["credit_proposed", "credit_issued", "state"]
    error = refused(
        lambda: dispute_reopen(dispute=dispute, actor=people["staff"], reason="more"), 409, "transition_not_allowed"
    )
    assert error.message == "dsp_000001 was settled by a credit note; open a new case for anything further."


def test_a_credit_above_the_threshold_waits_for_a_second_finance_admin(invoice, people, settings):
    settings.DISPUTES_CREDIT_APPROVAL_ABOVE = "100.00"
    dispute = open_case(invoice, people["owner"])
    line = messages_line(invoice)
    # 6,000 messages at $0.03 = $180.00 + $36.00 tax = $216.00: above $100.00.
    credit = credit_line_for_quantity(line=line, quantity=D("6000"))
    proposal = dispute_credit_propose(dispute=dispute, actor=people["staff"], lines=[credit], reason="Outage retries.")
    assert (proposal.status, proposal.subtotal, proposal.tax, proposal.total) == (
        "pending",
        D("180.00"),
        D("36.00"),
        D("216.00"),
    )
    assert not CreditNote.objects.exists()  # nothing issued before approval
    dispute.refresh_from_db()
    assert dispute.state == "open"
    error = refused(
        lambda: dispute_credit_propose(dispute=dispute, actor=people["staff"], lines=[credit], reason="again"),
        409,
        "credit_pending",
    )
    assert error.message == "dsp_000001 already has a credit awaiting approval: approve, decline or cancel it first."

    # Billing staff cannot approve; a finance admin cannot approve (or decline) a credit they proposed.
    refused(lambda: credit_proposal_approve(proposal=proposal, actor=people["staff"]), 403, "permission_denied")
    credit_proposal_decline(proposal=proposal, actor=people["finance2"], note="Credit the retried quantity only.")
    proposal.refresh_from_db()
    assert (proposal.status, proposal.decided_by) == ("declined", people["finance2"])
    own = dispute_credit_propose(dispute=dispute, actor=people["finance"], lines=[credit], reason="Outage retries.")
    error = refused(
        lambda: credit_proposal_approve(proposal=own, actor=people["finance"]), 403, "approval_by_requester"
    )
    assert (
        error.message
        == "A credit above the approval threshold needs a second person: fiona (finance admin) proposed it."
    )
    refused(lambda: credit_proposal_decline(proposal=own, actor=people["finance2"], note=""), 400, "required")
    assert not CreditNote.objects.exists()
    proposal = own
    approver = people["finance2"]
    with time_machine.travel(DEC_10 + dt.timedelta(hours=5), tick=False):
        note = credit_proposal_approve(proposal=proposal, actor=approver, note="Checked the outage.")
    invoice.refresh_from_db()
    dispute.refresh_from_db()
    proposal.refresh_from_db()
    assert (note.subtotal, note.tax, note.total) == (D("180.00"), D("36.00"), D("216.00"))
    assert (invoice.amount_due, proposal.status, proposal.decided_by) == (D("358.80"), "issued", approver)
    assert (dispute.state, dispute.resolution) == ("resolved", "credited")
    assert [k[0] for k in kinds(dispute)][-4:] == ["credit_proposed", "credit_approved", "credit_issued", "state"]
    refused(lambda: credit_proposal_approve(proposal=proposal, actor=people["finance2"]), 409, "credit_not_pending")


def test_two_partial_credits_never_exceed_the_line(invoice, people):
    dispute = open_case(invoice, people["owner"])
    line = messages_line(invoice)
    dispute_credit_propose(
        dispute=dispute,
        actor=people["finance"],
        lines=[credit_line_for_quantity(line=line, quantity=D("4000"))],
        reason="Part one.",
    )
    # The line billed 6,000 messages beyond the included 25,000: $180.00; $120.00 is credited, $60.00 left.
    second = open_case(invoice, people["owner"], at=DEC_10 + dt.timedelta(days=1))
    error = refused(
        lambda: dispute_credit_propose(
            dispute=second, actor=people["finance"], lines=[CreditLine(line, "more", D("60.01"))], reason="Part two."
        ),
        400,
        "credit_exceeds_line",
    )
    assert "60.01" in error.message
    assert CreditProposal.objects.filter(dispute=second).count() == 0
