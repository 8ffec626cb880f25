"""``make demo`` on SQLite: ``load_demo`` loads the book of business and its usage, closes last month on the
test clock and finalizes its invoices, each with its PDF and its e-mail; then the API key it prints works.

The figures are those PostgreSQL gives for the same demo (the demo is deterministic for a given day)."""

import datetime as dt
import io
import re
from decimal import Decimal as D

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from django.db import transaction
from django.db.models import Sum
from django.test import TestCase, override_settings
from rest_framework.test import APIClient

from accounts.models import Account
from billing.models import BankStatementLine, CreditNote, Invoice, ReconciliationIssue
from billing.selectors import credit_balance
from disputes.models import CreditProposal, Dispute, DisputeAttachment
from insights.models import Forecast, Recommendation
from usage.models import UsageEvent

pytestmark = pytest.mark.django_db
TODAY_NOON = dt.datetime(2026, 11, 26, 12, tzinfo=dt.UTC)
OCTOBER = (dt.datetime(2026, 10, 1, tzinfo=dt.UTC), dt.datetime(2026, 11, 1, tzinfo=dt.UTC))

# Closed by the demo on the test clock: Cyberdyne's unpaid September first, then October; Stark Freight's
# October draft was held for review and finalized last. (number, account, currency, total)
SEPTEMBER_INVOICE = ("INV-2026-000001", "Cyberdyne Systems", "USD", "99.00")
OCTOBER_INVOICES = [
    ("INV-2026-000002", "Northwind Logistics", "USD", "569.76"),
    ("INV-2026-000003", "Acme Retail Group", "USD", "480.05"),
    ("INV-2026-000004", "Globex Health", "USD", "999.00"),
    ("INV-2026-000005", "Initech Software", "USD", "93.39"),
    ("INV-2026-000006", "Umbrella Pharma", "EUR", "3000.00"),
    ("INV-2026-000007", "Wayne Hospitality", "USD", "378.65"),
    ("INV-2026-000008", "Hooli Cloud", "USD", "1500.00"),
    ("INV-2026-000009", "Vandelay Imports", "USD", "299.00"),
    ("INV-2026-000010", "Soylent Foods", "USD", "632.57"),
    ("INV-2026-000011", "Tyrell Robotics", "USD", "438.65"),
    ("INV-2026-000012", "Cyberdyne Systems", "USD", "102.57"),
    ("INV-2026-000013", "Oceanic Airlines", "USD", "999.00"),
    ("INV-2026-000014", "Pied Piper", "USD", "307.39"),
    ("INV-2026-000015", "Gringotts Exchange", "USD", "358.80"),
    ("INV-2026-000016", "Monarch Media", "USD", "220.85"),
    ("INV-2026-000017", "Massive Dynamic", "USD", "200.00"),
    ("INV-2026-000018", "Aperture Labs", "USD", "258.24"),
    ("INV-2026-000019", "Stark Freight", "USD", "355.71"),
]


@pytest.fixture(scope="module")
def demo_media(tmp_path_factory):
    return tmp_path_factory.mktemp("demo-media")


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker, demo_media) -> dict:
    """``load_demo`` run once for the module, at noon on 26 November 2026: what it printed and the e-mails it
    sent. It runs in a transaction that each test of the module runs inside and that is rolled back after
    them; the PDF renders and e-mails it queues for after its commits run when it returns."""
    out = io.StringIO()
    mail.outbox = []
    with django_db_blocker.unblock(), override_settings(MEDIA_ROOT=demo_media), transaction.atomic():
        with time_machine.travel(TODAY_NOON, tick=False), TestCase.captureOnCommitCallbacks(execute=True):
            call_command("load_demo", stdout=out)
        yield {"output": out.getvalue(), "mails": list(mail.outbox)}
        transaction.set_rollback(True)


@pytest.fixture(autouse=True)
def _media_root(settings, demo_media):
    """The demo's PDFs, for every test of the module (instead of a folder per test)."""
    settings.MEDIA_ROOT = demo_media


def test_the_demo_closes_october_with_an_invoice_for_every_account_past_its_trial(demo):
    assert "Demo loaded: 20 accounts, 67 tenants, 211 master partners." in demo["output"]
    assert "Last month closed on the test clock: 18 invoices finalized" in demo["output"]
    invoices = Invoice.objects.select_related("account").order_by("number")
    assert [(i.number, i.account.name, i.currency, f"{i.total:.2f}") for i in invoices] == [
        SEPTEMBER_INVOICE,
        *OCTOBER_INVOICES,
    ]
    assert {(i.period_start, i.period_end) for i in invoices[1:]} == {OCTOBER}
    # The two newest customers are still in their trial: nothing to bill.
    assert set(Account.objects.filter(invoices__isnull=True).values_list("name", "status")) == {
        ("Blue Sun Mining", "trialing"),
        ("Dunder Mifflin Paper", "trialing"),
    }


def test_northwind_logistics_october_invoice_to_the_cent(demo):
    invoice = Invoice.objects.get(account__name="Northwind Logistics")
    messages = UsageEvent.objects.filter(
        account=invoice.account, metric__code="messages", timestamp__gte=OCTOBER[0], timestamp__lt=OCTOBER[1]
    ).aggregate(total=Sum("quantity"))["total"]
    assert messages == D("31526")
    # Business plan, 12 tenants, 14 master partners, no tax (US):
    #   base fee                                                  $299.00
    #   tenants   (12 − 10 included) × $19.00                     $ 38.00
    #   messages  (31,526 − 25,000 included) × $0.03             $195.78
    #   storage   (34.65016756 − 10 included) GB-months × $1.50   $ 36.98  (36.9752…)
    #   partners  included                                        $  0.00
    #                                                             $569.76
    assert [(line.description, line.quantity, line.amount) for line in invoice.lines.order_by("position")] == [
        ("Business base fee", D("1"), D("299.00")),
        ("Master partners", D("14"), D("0.00")),
        ("Messages", D("31526"), D("195.78")),
        ("Storage", D("34.65016756"), D("36.98")),
        ("Active tenants", D("12"), D("38.00")),
    ]
    assert (invoice.subtotal, invoice.tax, invoice.total) == (D("569.76"), D("0.00"), D("569.76"))


def test_umbrella_pharma_is_topped_up_to_its_minimum_commitment(demo):
    # EUR contract: €2,500.00 base fee, usage within what is included, minimum commitment €3,000.00.
    invoice = Invoice.objects.get(account__name="Umbrella Pharma")
    charged = [(line.kind, line.amount) for line in invoice.lines.order_by("position") if line.amount]
    assert charged == [("base_fee", D("2500.00")), ("minimum_commitment", D("500.00"))]
    assert (invoice.currency, invoice.tax_reverse_charge, invoice.total) == ("EUR", True, D("3000.00"))


def test_every_demo_invoice_has_its_pdf_and_was_mailed_with_it(demo):
    invoices = list(Invoice.objects.select_related("document").order_by("number"))
    for invoice in invoices:
        assert invoice.document.status == "ready", invoice.number
        with invoice.document.file.open("rb") as pdf:
            assert pdf.read(5) == b"%PDF-", invoice.number
        sent = invoice.email_deliveries.filter(kind="invoice").values_list("status", flat=True)
        assert list(sent) == ["sent"], invoice.number
    # Only the invoice and credit-note e-mails carry a PDF (receipts, failed-payment, status and dispute e-mails
    # do not): Acme's dispute was settled by a credit note.
    attached = sorted(name for message in demo["mails"] for name, _content, _type in message.attachments)
    assert attached == ["CN-2026-000001.pdf", *(f"{invoice.number}.pdf" for invoice in invoices)]


def _state(name: str, period_start: dt.datetime = OCTOBER[0]) -> tuple:
    invoice = Invoice.objects.select_related("account", "collection").get(account__name=name, period_start=period_start)
    return (
        invoice.status,
        f"{invoice.amount_paid:.2f}",
        f"{invoice.amount_due:.2f}",
        invoice.collection.state if hasattr(invoice, "collection") else None,
        invoice.account.status,
    )


def test_the_demo_has_paid_partly_paid_retrying_and_suspended_accounts(demo):
    """On 26 November: October's invoices, finalized on 2 November at 01:05, as each customer paid them."""
    # Card on file, charged at finalization (Visa 4242); SEPA debit for the EUR contract.
    assert _state("Northwind Logistics") == ("paid", "569.76", "0.00", "succeeded", "active")
    assert _state("Umbrella Pharma") == ("paid", "3000.00", "0.00", "succeeded", "active")
    # Half of $480.05 by transfer, rounded half up: $240.03 paid, $240.02 due, less its dispute's $13.36 credit.
    assert _state("Acme Retail Group") == ("finalized", "240.03", "226.66", "manual", "active")
    # Matched from the bank statement by its number; the statement's other line waits for staff.
    assert _state("Globex Health") == ("paid", "999.00", "0.00", "succeeded", "active")
    # A check for $118.39 against $93.39: $25.00 left as credit balance.
    assert _state("Initech Software") == ("paid", "93.39", "0.00", "succeeded", "active")
    # Held for review, finalized on 24 November at noon, the card declined: retried three days later.
    assert _state("Stark Freight") == ("finalized", "0.00", "355.71", "retrying", "active")
    stark = Invoice.objects.get(account__name="Stark Freight").collection
    assert (stark.attempts, stark.next_attempt_at, stark.last_failure) == (
        1,
        dt.datetime(2026, 11, 27, 12, tzinfo=dt.UTC),
        "Your card has insufficient funds.",
    )
    # September declined at finalization (2 October) and on days 3, 5 and 7 after: suspended on 9 October.
    september = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)
    assert _state("Cyberdyne Systems", september) == ("finalized", "0.00", "99.00", "exhausted", "suspended")
    assert _state("Wayne Hospitality") == ("finalized", "0.00", "378.65", "manual", "active")
    initech = Account.objects.get(name="Initech Software")
    assert credit_balance(initech) == D("25.00")
    statement = BankStatementLine.objects.order_by("amount").values_list("status", "amount")
    assert [(status, f"{amount:.2f}") for status, amount in statement] == [
        ("unmatched", "120.00"),
        ("matched", "999.00"),
    ]
    assert ReconciliationIssue.objects.filter(kind="statement_line_unmatched", status="open").count() == 1


def test_the_demo_has_open_waiting_credited_pending_and_closed_disputes(demo):
    cases = {
        case.subject: (case.account.name, case.state, case.resolution, case.source)
        for case in Dispute.objects.select_related("account")
    }
    assert cases == {
        "Messages: retries counted twice": ("Northwind Logistics", "open", "", "portal"),
        "Usage spike we cannot explain": ("Stark Freight", "waiting_on_customer", "", "staff"),
        "Duplicate messages from our EU tenant": ("Acme Retail Group", "resolved", "credited", "portal"),
        "Service outage on the 3rd": ("Umbrella Pharma", "investigating", "", "api"),
        "Why are we billed for an extra tenant?": ("Initech Software", "resolved", "explained", "portal"),
        "Chargeback: debit not authorized": ("Umbrella Pharma", "open", "", "stripe"),
    }
    # Acme's credit was issued at once (under the approval threshold); Umbrella's EUR 1,000.00 service credit
    # (twice the threshold, reverse charge: no tax) waits for a Finance admin.
    note = CreditNote.objects.get()
    assert (note.number, note.invoice.account.name, f"{note.total:.2f}") == (
        "CN-2026-000001",
        "Acme Retail Group",
        "13.36",
    )
    pending = CreditProposal.objects.get(status="pending")
    assert (pending.dispute.account.name, pending.currency, f"{pending.total:.2f}") == (
        "Umbrella Pharma",
        "EUR",
        "1000.00",
    )
    assert DisputeAttachment.objects.get().filename == "gateway-retries.csv"
    assert "Disputes (admin: Disputes; portal: Disputes):" in demo["output"]


def test_the_demo_gives_the_clock_back_and_its_api_key_ingests(demo):
    assert "(real time)" in _command("test_clock", "show")
    secret = re.search(r"scopes ingest\+read:\n\s+(ll_\S+)", demo["output"]).group(1)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    event = {
        "transaction_id": "from-the-readme",
        "tenant": "ten_northwind_logistics_us_east_1",
        "metric": "messages",
        "quantity": 25,
        "timestamp": "2026-11-26T11:55:00Z",
    }
    with time_machine.travel(TODAY_NOON, tick=False):
        response = client.post("/v1/events", event, format="json")
    assert (response.status_code, response.json()) == (202, {"accepted": 1, "duplicates": 0})
    stored = UsageEvent.objects.get(transaction_id="from-the-readme")
    assert (stored.account.name, stored.quantity) == ("Northwind Logistics", D("25"))


def _command(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_the_demo_has_an_idle_partner_recommendations_and_forecasts_against_the_bill(demo):
    assert "Insights (portal: Analysis, Forecast, Recommendations; admin: Insights):" in demo["output"]
    northwind = Account.objects.get(name="Northwind Logistics")
    idle = Recommendation.objects.get(account=northwind, kind=Recommendation.Kind.IDLE_PARTNER)
    assert idle.partner.public_id == "prt_legacy_sms_gateway"
    assert idle.title.startswith("Deactivate master partner Legacy SMS gateway (prt_legacy_sms_gateway)")
    # October's weekly forecasts (4th, 11th, 18th, 25th), each against October's invoice (USD 569.76 before tax).
    october = Forecast.objects.filter(account=northwind, month=dt.date(2026, 10, 1)).order_by("made_on")
    assert [f.made_on.day for f in october] == [4, 11, 18, 25]
    assert {f.actual for f in october} == {D("569.76")}
    assert Forecast.objects.filter(account=northwind, month=dt.date(2026, 11, 1), made_on=dt.date(2026, 11, 26))
