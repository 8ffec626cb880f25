"""Dispute e-mails through the e-mail machinery to a real SMTP server on 127.0.0.1: the customer's acknowledgement,
staff replies and questions, the outcome with the credit note; staff told of new cases and customers' replies;
internal notes never reach the customer."""

import datetime as dt
from decimal import Decimal as D

import pytest
import time_machine

from accounts.models import AccountUser
from billing.models import EmailDelivery, InvoiceLine
from billing.services.credit_notes import credit_line_for_quantity
from disputes.models import Dispute
from disputes.services import (
    LineClaim,
    dispute_ask_customer,
    dispute_credit_propose,
    dispute_open,
    dispute_reject,
    dispute_reply,
)
from tests.billing.test_invoice_emails import smtp  # noqa: F401 - the real local SMTP server fixture
from tests.disputes.factories import billing_staff, issued_invoice, portal_user

pytestmark = pytest.mark.django_db
DEC_10 = dt.datetime(2026, 12, 10, 9, 0, tzinfo=dt.UTC)
CUSTOMER = ["ap@northwind.example"]
STAFF = ["disputes@ledgerline.example"]


@pytest.fixture
def invoice(plan, settings):
    settings.DISPUTES_STAFF_EMAILS = STAFF
    settings.LEDGERLINE_BASE_URL = "https://billing.example.com"
    invoice = issued_invoice(plan)
    invoice.account.billing_emails = CUSTOMER
    invoice.account.save()
    return invoice


def body(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def sent(smtp, capture, action):  # noqa: F811
    """Run ``action`` and deliver what it queued; the messages the server accepted."""
    before = len(smtp.messages())
    with capture(execute=True):
        action()
    return smtp.messages()[before:]


def test_opening_replying_and_resolving_mail_the_customer_and_internal_notes_do_not(
    smtp,  # noqa: F811
    invoice,
    django_capture_on_commit_callbacks,
):
    owner = portal_user(invoice.account, AccountUser.Role.OWNER)
    staff = billing_staff(email="bianca@ledgerline.example")
    line = invoice.lines.get(kind=InvoiceLine.Kind.USAGE, metric__code="messages")
    capture = django_capture_on_commit_callbacks
    holder = {}

    def open_it():
        with time_machine.travel(DEC_10, tick=False):
            holder["case"] = dispute_open(
                account=invoice.account,
                invoice=invoice,
                subject="Messages counted twice",
                description="Our gateway retried during the outage.",
                category=Dispute.Category.USAGE,
                lines=[LineClaim(invoice_line=line, quantity=D("6000"))],
                source=Dispute.Source.PORTAL,
                channel=Dispute.Channel.PORTAL,
                actor=owner,
            )

    ack, notice = sent(smtp, capture, open_it)
    case = holder["case"]
    assert (ack["To"], ack["Subject"]) == (
        "ap@northwind.example",
        "We received your dispute dsp_000001 about invoice INV-2026-000001",
    )
    assert "Our billing team will answer by 11 December 2026, 09:00 UTC." in body(ack)
    assert "https://billing.example.com/portal/disputes/dsp_000001/" in body(ack)
    assert not [part for part in ack.walk() if part.get_content_type() == "application/pdf"]
    assert notice["To"] == "disputes@ledgerline.example"
    assert notice["Subject"] == "[dsp_000001] New dispute: Northwind, INV-2026-000001: Messages counted twice"
    assert f"https://billing.example.com/admin/disputes/dispute/{case.pk}/change/" in body(notice)

    # An internal note mails nobody; a question goes to the customer only.
    assert (
        sent(smtp, capture, lambda: dispute_reply(dispute=case, actor=staff, body="EU gateway?", internal=True)) == []
    )
    (question,) = sent(
        smtp, capture, lambda: dispute_ask_customer(dispute=case, actor=staff, question="Which tenant retried?")
    )
    assert (question["To"], question["Subject"]) == (
        "ap@northwind.example",
        "A question about your dispute dsp_000001 (invoice INV-2026-000001)",
    )
    assert "Which tenant retried?" in body(question)
    assert "EU gateway?" not in body(question)

    # The customer's answer goes to staff (and the assignee, once there is one).
    case.refresh_from_db()
    case.assigned_to = staff
    case.save()
    (answer,) = sent(smtp, capture, lambda: dispute_reply(dispute=case, actor=owner, body="ten_nw, on the 10th."))
    assert sorted(answer["To"].split(", ")) == ["bianca@ledgerline.example", "disputes@ledgerline.example"]
    assert answer["Subject"] == "[dsp_000001] Customer replied: Northwind, INV-2026-000001: Messages counted twice"
    assert "ten_nw, on the 10th." in body(answer)

    # Credited: the outcome names the credit note and the new amount due; the credit note has its own e-mail.
    credit = credit_line_for_quantity(line=line, quantity=D("2000"))  # $60.00 + 20 % = $72.00
    mails = sent(
        smtp,
        capture,
        lambda: dispute_credit_propose(dispute=case, actor=staff, lines=[credit], reason="Retries billed twice."),
    )
    subjects = sorted(m["Subject"] for m in mails)
    assert subjects == [
        "Credit note CN-2026-000001 for invoice INV-2026-000001: USD 72.00",
        "Your dispute dsp_000001 is credited (invoice INV-2026-000001)",
    ]
    outcome = next(m for m in mails if m["Subject"].startswith("Your dispute"))
    assert "Retries billed twice." in body(outcome)
    assert "We issued credit note CN-2026-000001 of USD 72.00; the invoice's amount due is now USD 502.80." in body(
        outcome
    )
    # No e-mail to the customer ever carried the internal note.
    customer_mail = [m for m in smtp.messages() if m["To"] == "ap@northwind.example"]
    assert len(customer_mail) == 4
    assert all("EU gateway?" not in body(m) for m in customer_mail)
    assert EmailDelivery.objects.filter(kind="dispute_staff").count() == 2


def test_a_staff_reply_and_a_rejection_mail_the_customer_with_the_reason(
    smtp,  # noqa: F811
    invoice,
    django_capture_on_commit_callbacks,
):
    owner = portal_user(invoice.account, AccountUser.Role.OWNER)
    staff = billing_staff(email="bianca@ledgerline.example")
    capture = django_capture_on_commit_callbacks
    with time_machine.travel(DEC_10, tick=False), capture(execute=True):
        case = dispute_open(
            account=invoice.account,
            invoice=invoice,
            subject="Price too high",
            description="We were told $250 a month.",
            category=Dispute.Category.PRICE,
            source=Dispute.Source.PORTAL,
            channel=Dispute.Channel.PORTAL,
            actor=owner,
        )

    (reply,) = sent(
        smtp, capture, lambda: dispute_reply(dispute=case, actor=staff, body="Business is $299 since March.")
    )
    assert (reply["To"], reply["Subject"]) == (
        "ap@northwind.example",
        "News on your dispute dsp_000001 (invoice INV-2026-000001)",
    )
    assert 'Our billing team replied on your dispute dsp_000001 ("Price too high"):' in body(reply)
    assert "Business is $299 since March." in body(reply)
    html = reply.get_body(preferencelist=("html",)).get_content()
    assert 'href="https://billing.example.com/portal/disputes/dsp_000001/"' in html

    (outcome,) = sent(
        smtp, capture, lambda: dispute_reject(dispute=case, actor=staff, reason="The March price list applies.")
    )
    assert (outcome["To"], outcome["Subject"]) == (
        "ap@northwind.example",
        "Your dispute dsp_000001 is rejected (invoice INV-2026-000001)",
    )
    text = body(outcome)
    assert 'Your dispute dsp_000001 about invoice INV-2026-000001 ("Price too high") is rejected.' in text
    assert "The March price list applies." in text
    assert "credit note" not in text
    # Staff heard of the opening only: their own reply and rejection notify nobody on staff.
    assert [m.dedup_key for m in EmailDelivery.objects.filter(kind="dispute_staff")] == [
        f"dispute_staff:{case.pk}:opened"
    ]
