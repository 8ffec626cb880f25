"""Invoice e-mails: sent to a real SMTP server on 127.0.0.1 with the PDF attached, retried when the server
says "later", failed when it says "never", reminders and overdue notices once per step, staff resends."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import io
import logging
import signal
import socket
from decimal import Decimal as D
from email.message import EmailMessage
from email.policy import default as default_policy

import pytest
import time_machine
from aiosmtpd.controller import Controller
from celery.exceptions import SoftTimeLimitExceeded
from django.contrib.auth.models import Group
from django.core import mail
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from pypdf import PdfReader

from accounts.permissions import BILLING_STAFF
from billing.models import EmailDelivery, Invoice
from billing.services.credit_notes import credit_note_issue
from billing.services.emails.queueing import email_resend, email_retry, emails_requeue_stale
from billing.services.emails.schedule import reminder_step, reminders_queue
from billing.services.emails.sending import email_send
from billing.services.invoices import invoice_void
from billing.services.payments import invoice_payment_record
from billing.tasks import emails_send_task, invoice_reminders_task
from tests.accounts.factories import AccountFactory, StaffUserFactory
from tests.billing.cycle import CLOSE_AT, UTC
from tests.billing.factories import finalized_invoice
from tests.usage.factories import usage_event

pytestmark = pytest.mark.django_db
ADDRESSES = ["ap@northwind.example", "cfo@northwind.example"]
DEC_5 = dt.datetime(2026, 12, 5, 9, tzinfo=UTC)


class Mailbox:
    """An SMTP server's handler: keeps accepted messages; answers with the queued replies first."""

    def __init__(self) -> None:
        self.received: list = []
        self.rcpt_replies: list[str] = []
        self.data_replies: list[str] = []
        self.data_delay = 0.0  # seconds the server stalls before answering DATA
        self.on_data = None  # called (in the server's thread) when the message has arrived

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_replies:
            return self.rcpt_replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.on_data:
            self.on_data()
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        if self.data_replies:
            return self.data_replies.pop(0)
        self.received.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list[EmailMessage]:
        return [email.message_from_bytes(e.content, policy=default_policy) for e in self.received]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp():
    mailbox = Mailbox()
    port = _free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with override_settings(
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=port,
            EMAIL_USE_TLS=False,
            EMAIL_USE_SSL=False,
            EMAIL_HOST_USER="",
            EMAIL_HOST_PASSWORD="",
            EMAIL_TIMEOUT=5,
        ):
            yield mailbox
    finally:
        controller.stop()


@pytest.fixture
def account():
    return AccountFactory(name="Northwind", tax_rate=D("20"), billing_emails=ADDRESSES)


def _bill_november(account, plan) -> Invoice:
    """$479.00 with 20 % tax: $574.80, finalized on 1 December at 00:05 UTC, due 30 days later."""
    messages = usage_event(transaction_id="m1", tenant="ten_nw", quantity=31_000, at="2026-11-10T10:00:00Z")
    return finalized_invoice(plan("messaging-business"), account=account, usage=[messages])


def _pdf_text(part) -> str:
    reader = PdfReader(io.BytesIO(part.get_content()))
    return " ".join(page.extract_text() for page in reader.pages)


def _parts(message: EmailMessage) -> dict[str, list]:
    parts: dict[str, list] = {}
    for part in message.walk():
        if not part.is_multipart():
            parts.setdefault(part.get_content_type(), []).append(part)
    return parts


def test_a_finalized_invoice_is_mailed_with_both_bodies_and_its_pdf(
    smtp, account, plan, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        invoice = _bill_november(account, plan)

    assert (invoice.number, invoice.total) == ("INV-2026-000001", D("574.80"))
    (envelope,) = smtp.received
    assert sorted(envelope.rcpt_tos) == ADDRESSES
    (message,) = smtp.messages()
    assert message["To"] == "ap@northwind.example, cfo@northwind.example"
    assert message["Subject"] == "Invoice INV-2026-000001 for November 2026: USD 574.80"
    parts = _parts(message)
    text, html = parts["text/plain"][0].get_content(), parts["text/html"][0].get_content()
    for body in (text, html):
        assert "INV-2026-000001" in body
        assert "November 2026 (1 Nov 2026 – 30 Nov 2026)" in body
        assert "USD 574.80" in body
        assert "31 December 2026" in body  # due 30 days after 1 December
        assert "http://127.0.0.1:8000/portal/invoices/INV-2026-000001/" in body
        assert "billing@ledgerline.example" in body  # the seller's contact (BILLING_SELLER)
    (pdf,) = parts["application/pdf"]
    assert pdf.get_filename() == "INV-2026-000001.pdf"
    pdf_text = _pdf_text(pdf)
    assert "INV-2026-000001" in pdf_text
    assert "USD 574.80" in pdf_text

    delivery = EmailDelivery.objects.get()
    assert (delivery.kind, delivery.status, delivery.attempts, delivery.dedup_key) == (
        "invoice",
        "sent",
        1,
        f"invoice:{invoice.pk}",
    )
    assert delivery.recipients == ADDRESSES
    assert delivery.subject == message["Subject"]
    assert delivery.message_id == message["Message-ID"]
    assert delivery.message_id.startswith("<") and delivery.sent_at is not None


def test_a_permanent_refusal_fails_at_once_with_the_servers_reply(
    smtp, account, plan, django_capture_on_commit_callbacks
):
    smtp.rcpt_replies = ["550 5.1.1 mailbox unavailable", "550 5.1.1 mailbox unavailable"]
    with django_capture_on_commit_callbacks(execute=True):
        _bill_november(account, plan)

    delivery = EmailDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at, delivery.sent_at) == ("failed", 1, None, None)
    assert delivery.last_error == (
        "550 5.1.1 mailbox unavailable (ap@northwind.example); 550 5.1.1 mailbox unavailable (cfo@northwind.example)"
    )
    assert smtp.received == []


def test_a_temporary_failure_is_retried_with_backoff_and_then_sent(
    smtp, account, plan, django_capture_on_commit_callbacks
):
    smtp.data_replies = ["451 4.3.0 Temporary local problem, try again later"]
    with override_settings(BILLING_EMAIL_RETRY_SECONDS=60), django_capture_on_commit_callbacks(execute=True):
        invoice = _bill_november(account, plan)

    delivery = EmailDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("sent", 2)
    # The reply to the failed attempt stays on the row.
    assert delivery.last_error == "451 4.3.0 Temporary local problem, try again later"
    (message,) = smtp.messages()
    assert invoice.number in message["Subject"]


def test_temporary_failures_stop_after_the_last_attempt(smtp, account, plan, django_capture_on_commit_callbacks):
    smtp.data_replies = ["421 4.7.0 Try again later"] * 3
    with override_settings(BILLING_EMAIL_MAX_ATTEMPTS=3), django_capture_on_commit_callbacks(execute=True):
        _bill_november(account, plan)

    delivery = EmailDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("failed", 3, None)
    assert delivery.last_error == "421 4.7.0 Try again later"
    assert smtp.received == []


def test_no_server_listening_is_a_temporary_failure_with_the_next_attempt_recorded(account, plan, settings):
    from billing.services.emails.sending import email_send

    invoice = _bill_november(account, plan)  # queued: its send task waits for the commit
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 2
    settings.BILLING_EMAIL_RETRY_SECONDS = 60
    delivery = invoice.email_deliveries.get()
    at = dt.datetime(2026, 12, 1, 6, tzinfo=UTC)

    first = email_send(delivery_id=delivery.pk, now=at)
    second = email_send(delivery_id=delivery.pk, now=at + dt.timedelta(seconds=60))

    # 60 s, then 120 s: the base doubles with each attempt.
    assert (first.retry_in, second.retry_in) == (60, 120)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("queued", 2)
    assert delivery.next_attempt_at == at + dt.timedelta(seconds=180)
    assert delivery.last_error.startswith("ConnectionRefusedError")


def test_a_delivery_already_sent_is_not_sent_again(smtp, account, plan, django_capture_on_commit_callbacks):
    from billing.tasks import email_send_task

    with django_capture_on_commit_callbacks(execute=True):
        _bill_november(account, plan)
    delivery = EmailDelivery.objects.get()

    assert email_send_task.delay(delivery.pk).get() == "sent"

    assert len(smtp.received) == 1
    delivery.refresh_from_db()
    assert delivery.attempts == 1


def test_a_credit_note_is_mailed_with_its_own_pdf(smtp, account, plan, django_capture_on_commit_callbacks):
    invoice = _bill_november(account, plan)
    EmailDelivery.objects.all().delete()  # the invoice's own e-mail was never sent (no commit)
    with django_capture_on_commit_callbacks(execute=True):
        note = credit_note_issue(invoice=invoice, lines=[(None, "goodwill", D("30.00"))], reason="goodwill", now=DEC_5)

    (message,) = smtp.messages()
    assert message["Subject"] == "Credit note CN-2026-000001 for invoice INV-2026-000001: USD 36.00"
    parts = _parts(message)
    assert "USD 538.80" in parts["text/plain"][0].get_content()  # $574.80 − $36.00 still due
    (pdf,) = parts["application/pdf"]
    assert pdf.get_filename() == "CN-2026-000001.pdf"
    assert "CN-2026-000001" in _pdf_text(pdf)
    delivery = EmailDelivery.objects.get()
    assert (delivery.kind, delivery.credit_note, delivery.status, delivery.dedup_key) == (
        "credit_note",
        note,
        "sent",
        f"credit_note:{note.pk}",
    )


def test_an_e_mail_is_signed_by_the_seller_as_snapshotted_on_the_invoice(smtp, billed, settings):
    delivery = billed.email_deliveries.get()  # queued at finalization; its task waits for the commit
    settings.BILLING_SELLER = {**settings.BILLING_SELLER, "name": "Renamed Holdings plc", "email": "ar@renamed.example"}

    assert email_send(delivery_id=delivery.pk, now=DEC_5).delivery.status == "sent"

    (message,) = smtp.messages()
    assert message["Reply-To"] == "billing@ledgerline.example"
    parts = _parts(message)
    for body in (parts["text/plain"][0].get_content(), parts["text/html"][0].get_content()):
        assert "Ledgerline Demo Ltd" in body
        assert "billing@ledgerline.example" in body
        assert "Renamed Holdings plc" not in body
        assert "ar@renamed.example" not in body


# ----------------------------------------------------------------------------------------------- reminders


def _remind(at: dt.datetime, django_capture_on_commit_callbacks) -> list[tuple[str, str]]:
    """Run the daily schedule at ``at``; the (kind, dedup key) of what it sent."""
    mail.outbox.clear()
    before = set(EmailDelivery.objects.values_list("pk", flat=True))
    with time_machine.travel(at, tick=False), django_capture_on_commit_callbacks(execute=True):
        invoice_reminders_task.delay()
    new = EmailDelivery.objects.exclude(pk__in=before).order_by("pk")
    assert all(d.status == "sent" for d in new)
    assert len(mail.outbox) == new.count()
    return [(d.kind, d.dedup_key) for d in new]


@pytest.fixture
def billed(account, plan):
    """The November invoice, due on 31 December at 00:05 UTC; its own e-mail is left queued."""
    invoice = _bill_november(account, plan)
    assert invoice.due_at == CLOSE_AT + dt.timedelta(days=30)
    return invoice


def test_reminders_go_out_before_the_due_date_once_each(billed, django_capture_on_commit_callbacks):
    key = billed.pk
    assert _remind(dt.datetime(2026, 12, 23, 8, tzinfo=UTC), django_capture_on_commit_callbacks) == []
    assert _remind(dt.datetime(2026, 12, 24, 8, tzinfo=UTC), django_capture_on_commit_callbacks) == [
        ("reminder", f"reminder:{key}:7d")
    ]
    (message,) = mail.outbox
    assert message.subject == "Reminder: invoice INV-2026-000001 is due on 31 December 2026"
    assert "is due in 7 days" in message.body
    assert message.to == ADDRESSES
    assert message.attachments[0][0] == "INV-2026-000001.pdf"
    # The same day again, and the days between the steps: nothing.
    assert _remind(dt.datetime(2026, 12, 24, 9, tzinfo=UTC), django_capture_on_commit_callbacks) == []
    assert _remind(dt.datetime(2026, 12, 27, 8, tzinfo=UTC), django_capture_on_commit_callbacks) == []
    assert _remind(dt.datetime(2026, 12, 30, 8, tzinfo=UTC), django_capture_on_commit_callbacks) == [
        ("reminder", f"reminder:{key}:1d")
    ]
    assert "is due tomorrow" in mail.outbox[0].body


def test_overdue_notices_go_out_once_per_step_and_a_late_schedule_sends_only_the_latest(
    billed, django_capture_on_commit_callbacks
):
    key = billed.pk
    assert _remind(dt.datetime(2027, 1, 1, 8, tzinfo=UTC), django_capture_on_commit_callbacks) == [
        ("overdue", f"overdue:{key}:1d")
    ]
    assert mail.outbox[0].subject == "Overdue: invoice INV-2026-000001 (USD 574.80 due since 31 December 2026)"
    assert _remind(dt.datetime(2027, 1, 1, 9, tzinfo=UTC), django_capture_on_commit_callbacks) == []
    # The schedule did not run from 2 to 14 January: on the 15th only the 14-day notice goes out.
    assert _remind(dt.datetime(2027, 1, 15, 8, tzinfo=UTC), django_capture_on_commit_callbacks) == [
        ("overdue", f"overdue:{key}:14d")
    ]
    assert _remind(dt.datetime(2027, 1, 16, 8, tzinfo=UTC), django_capture_on_commit_callbacks) == []
    assert not EmailDelivery.objects.filter(dedup_key=f"overdue:{key}:7d").exists()


def test_a_paid_invoice_gets_no_reminder_and_no_overdue_notice(billed, django_capture_on_commit_callbacks):
    invoice_payment_record(invoice=billed, amount=D("574.80"), reference="wire", now=DEC_5)
    assert _remind(dt.datetime(2026, 12, 24, 8, tzinfo=UTC), django_capture_on_commit_callbacks) == []
    assert _remind(dt.datetime(2027, 1, 8, 8, tzinfo=UTC), django_capture_on_commit_callbacks) == []


def test_no_reminder_on_or_before_the_day_the_invoice_went_out():
    due, finalized = dt.date(2026, 12, 8), dt.date(2026, 12, 1)  # 7-day terms
    assert reminder_step(due=due, finalized=finalized, today=finalized, before=[7, 1], after=[1]) is None
    step = reminder_step(due=due, finalized=finalized, today=dt.date(2026, 12, 7), before=[7, 1], after=[1])
    assert (step.kind, step.days) == ("reminder", 1)
    assert reminder_step(due=due, finalized=finalized, today=due, before=[7, 1], after=[1]) is None


def test_a_reminder_retried_after_the_invoice_was_paid_is_cancelled_not_sent(smtp, billed, client):
    dec_24 = dt.datetime(2026, 12, 24, 8, tzinfo=UTC)
    (reminder_id,) = reminders_queue(now=dec_24)  # its send task waits for the commit
    smtp.data_replies = ["451 4.3.0 Temporary local problem, try again later"]

    first = email_send(delivery_id=reminder_id, now=dec_24)
    assert (first.retry_in, first.delivery.status) == (60, "queued")
    invoice_payment_record(invoice=billed, amount=D("574.80"), reference="wire", now=dec_24)
    retry = email_send(delivery_id=reminder_id, now=dec_24 + dt.timedelta(seconds=60))

    assert (retry.retry_in, retry.delivery.status) == (None, "cancelled")
    reminder = EmailDelivery.objects.get(pk=reminder_id)
    assert (reminder.status, reminder.attempts, reminder.next_attempt_at, reminder.sent_at) == (
        "cancelled",
        1,
        None,
        None,
    )
    assert reminder.last_error == "invoice INV-2026-000001 was paid before this reminder went out"
    assert smtp.received == []
    client.force_login(StaffUserFactory(groups=[Group.objects.get(name=BILLING_STAFF)]))
    listing = client.get("/admin/billing/emaildelivery/?status__exact=cancelled").content.decode()
    assert "Cancelled: no longer applies" in listing
    assert "invoice INV-2026-000001 was paid before this reminder went out" in listing


def test_an_invoice_e_mail_whose_invoice_was_voided_before_it_went_out_is_cancelled(smtp, billed):
    delivery = billed.email_deliveries.get()  # queued at finalization; its task waits for the commit
    invoice_void(invoice=billed, reason="billed twice", now=DEC_5)

    outcome = email_send(delivery_id=delivery.pk, now=DEC_5)

    delivery.refresh_from_db()
    assert (outcome.delivery.status, delivery.status, delivery.attempts) == ("cancelled", "cancelled", 0)
    assert delivery.last_error == "invoice INV-2026-000001 was voided before this invoice e-mail went out"
    assert smtp.received == []


def test_a_reminder_retried_by_staff_after_the_due_date_is_cancelled(smtp, billed):
    dec_30 = dt.datetime(2026, 12, 30, 8, tzinfo=UTC)
    (reminder_id,) = reminders_queue(now=dec_30)  # "due tomorrow"
    smtp.rcpt_replies = ["550 5.1.1 mailbox unavailable"] * 2
    assert email_send(delivery_id=reminder_id, now=dec_30).delivery.status == "failed"
    jan_2 = dt.datetime(2027, 1, 2, 10, tzinfo=UTC)

    email_retry(delivery=EmailDelivery.objects.get(pk=reminder_id), now=jan_2)
    email_send(delivery_id=reminder_id, now=jan_2)

    reminder = EmailDelivery.objects.get(pk=reminder_id)
    assert reminder.status == "cancelled"
    assert reminder.last_error == "invoice INV-2026-000001 fell due on 31 December 2026 before this reminder went out"
    assert smtp.received == []


def test_an_overdue_notice_still_goes_out_while_an_amount_is_due(smtp, billed):
    jan_1 = dt.datetime(2027, 1, 1, 8, tzinfo=UTC)
    (notice_id,) = reminders_queue(now=jan_1)

    assert email_send(delivery_id=notice_id, now=jan_1 + dt.timedelta(days=3)).delivery.status == "sent"
    (message,) = smtp.messages()
    assert message["Subject"] == "Overdue: invoice INV-2026-000001 (USD 574.80 due since 31 December 2026)"


# ----------------------------------------------------------------------------------------------- admin


@pytest.fixture
def billing_staff():
    return StaffUserFactory(groups=[Group.objects.get(name=BILLING_STAFF)])


def test_staff_resend_an_invoice_e_mail_from_the_admin(
    smtp, account, plan, billing_staff, client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        invoice = _bill_november(account, plan)
    client.force_login(billing_staff)

    page = client.get(f"/admin/billing/invoice/{invoice.pk}/change/").content.decode()
    assert "E-mail deliveries" in page
    assert "billing.invoice_generated" in page  # the outbox event about this invoice

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/billing/invoice/",
            {"action": "resend_email_action", "_selected_action": [invoice.pk]},
            follow=True,
        )

    assert "1 invoice e-mail(s) queued." in [str(m) for m in response.context["messages"]]
    first, second = EmailDelivery.objects.order_by("pk")
    assert (second.kind, second.status, second.dedup_key, second.requested_by) == (
        "invoice",
        "sent",
        None,
        billing_staff,
    )
    assert first.status == "sent"
    assert len(smtp.received) == 2
    assert smtp.messages()[1]["Subject"] == "Invoice INV-2026-000001 for November 2026: USD 574.80"


def test_the_invoice_page_reads_its_deliveries_without_a_query_per_row(billed, billing_staff, client):
    client.force_login(billing_staff)
    url = f"/admin/billing/invoice/{billed.pk}/change/"
    note = credit_note_issue(invoice=billed, lines=[(None, "goodwill", D("30.00"))], reason="goodwill", now=DEC_5)
    email_resend(invoice=billed, actor=billing_staff)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    queries()  # warms the per-process caches (content types)
    three_rows = queries()  # the invoice e-mail, the credit note's, one resend
    for _ in range(3):
        email_resend(invoice=billed, actor=billing_staff)

    page = client.get(url).content.decode()
    assert page.count(f'<a href="/admin/auth/user/{billing_staff.pk}/change/">{billing_staff}</a>') == 4
    assert note.number in page
    assert queries() == three_rows


def test_staff_retry_failed_deliveries_from_the_admin(
    smtp, account, plan, billing_staff, client, django_capture_on_commit_callbacks
):
    smtp.rcpt_replies = ["550 5.1.1 mailbox unavailable"] * 2
    with django_capture_on_commit_callbacks(execute=True):
        _bill_november(account, plan)
    delivery = EmailDelivery.objects.get()
    assert delivery.status == "failed"
    client.force_login(billing_staff)

    listing = client.get("/admin/billing/emaildelivery/?status__exact=failed").content.decode()
    assert "550 5.1.1 mailbox unavailable" in listing
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/billing/emaildelivery/",
            {"action": "retry_action", "_selected_action": [delivery.pk]},
            follow=True,
        )

    assert "1 delivery(ies) queued again." in [str(m) for m in response.context["messages"]]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.requested_by) == ("sent", 1, billing_staff)
    assert len(smtp.received) == 1


def test_renders_and_e_mails_whose_task_was_lost_are_sent_by_the_sweep(
    smtp, account, plan, django_capture_on_commit_callbacks
):
    """The month closes but the after-commit tasks never run (broker down): ten minutes later the sweep
    renders the PDF and sends the e-mail; a second sweep finds nothing left."""
    from billing.models import Document
    from billing.tasks import deliveries_sweep_task

    invoice = _bill_november(account, plan)  # on-commit callbacks are not run here: the tasks are "lost"
    assert Document.objects.get(invoice=invoice).status == "pending"
    assert EmailDelivery.objects.get(invoice=invoice).status == "queued"
    assert smtp.received == []

    with time_machine.travel(CLOSE_AT + dt.timedelta(minutes=5), tick=False):
        assert deliveries_sweep_task() == {"documents": 0, "emails": 0}  # not stale yet
    with (
        time_machine.travel(CLOSE_AT + dt.timedelta(minutes=11), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert deliveries_sweep_task() == {"documents": 1, "emails": 1}
    with time_machine.travel(CLOSE_AT + dt.timedelta(minutes=11), tick=False):
        assert deliveries_sweep_task() == {"documents": 0, "emails": 0}

    assert Document.objects.get(invoice=invoice).status == "ready"
    delivery = EmailDelivery.objects.get(invoice=invoice)
    assert (delivery.status, delivery.attempts) == ("sent", 1)
    (message,) = smtp.messages()
    assert message["Subject"] == "Invoice INV-2026-000001 for November 2026: USD 574.80"


def test_the_sweep_queues_a_lost_delivery_again_at_most_once_per_interval(billed, django_capture_on_commit_callbacks):
    delivery = billed.email_deliveries.get()  # its task is lost (the commit never runs it)
    first_sweep = CLOSE_AT + dt.timedelta(minutes=11)

    with django_capture_on_commit_callbacks() as queued:  # queued, but the task is lost again
        assert emails_requeue_stale(now=first_sweep) == 1
    assert len(queued) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.next_attempt_at, delivery.attempts) == ("queued", first_sweep, 0)

    # The next sweeps within the interval leave it alone; once the interval has passed again it is queued again.
    assert emails_requeue_stale(now=first_sweep + dt.timedelta(minutes=5)) == 0
    assert emails_requeue_stale(now=first_sweep + dt.timedelta(minutes=10)) == 0
    assert emails_requeue_stale(now=first_sweep + dt.timedelta(minutes=11)) == 1


def test_a_batch_goes_on_past_a_delivery_that_cannot_be_loaded(smtp, billed, caplog):
    invoice_e_mail = billed.email_deliveries.get()
    gone = email_resend(invoice=billed)
    resend = email_resend(invoice=billed)
    gone_id = gone.pk
    gone.delete()

    with caplog.at_level(logging.ERROR, logger="billing.tasks"):
        assert emails_send_task.delay([invoice_e_mail.pk, gone_id, resend.pk]).get() == 2

    assert len(smtp.received) == 2
    assert set(EmailDelivery.objects.values_list("pk", "status")) == {(invoice_e_mail.pk, "sent"), (resend.pk, "sent")}
    assert f"E-mail delivery {gone_id} not sent" in caplog.text


def test_a_send_cut_short_by_the_task_time_limit_is_a_temporary_failure(smtp, billed, settings):
    """The worker raises SoftTimeLimitExceeded from a signal handler in the middle of the SMTP conversation,
    as Celery's prefork pool does when a task's soft time limit passes."""
    settings.BILLING_EMAIL_RETRY_SECONDS = 60
    delivery = billed.email_deliveries.get()
    smtp.data_delay = 2  # the server stalls after the message
    # The limit passes 0.2 s into that stall, however long rendering the PDF before it took.
    smtp.on_data = lambda: signal.setitimer(signal.ITIMER_REAL, 0.2)

    def time_limit(signum, frame):
        raise SoftTimeLimitExceeded()

    previous = signal.signal(signal.SIGALRM, time_limit)
    try:
        outcome = email_send(delivery_id=delivery.pk, now=DEC_5)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

    delivery.refresh_from_db()
    assert (outcome.retry_in, delivery.status, delivery.attempts) == (60, "queued", 1)
    assert delivery.next_attempt_at == DEC_5 + dt.timedelta(seconds=60)
    assert delivery.last_error == "Timed out: the attempt took longer than the send task's time limit"
