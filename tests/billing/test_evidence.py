"""Usage evidence of an invoice line (billing.evidence): the events it billed add up, by tenant, partner and
day, to exactly the line's quantity; duplicates refused at ingestion and late usage are shown beside it."""

import datetime as dt
from decimal import Decimal as D

import pytest

from billing.evidence import CSV_HEADER, Share, evidence_csv, line_evidence
from billing.models import InvoiceLine
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import DECEMBER, JAN_1, UTC, close, event, ingest, subscribe
from tests.tenants.factories import MasterPartnerFactory, TenantFactory

pytestmark = pytest.mark.django_db
LATE_AT = dt.datetime(2026, 12, 2, 9, tzinfo=UTC)  # inside the 7-day grace window after November closed
JANUARY_CLOSE = dt.datetime(2027, 1, 1, 0, 5, tzinfo=UTC)


@pytest.fixture
def northwind(plan):
    account = AccountFactory(name="Northwind")
    subscribe(account, plan("messaging-business"))
    TenantFactory(account=account, public_id="ten_eu", name="Northwind EU", activated_at=JAN_1)
    TenantFactory(account=account, public_id="ten_us", name="Northwind US", activated_at=JAN_1)
    MasterPartnerFactory(account=account, public_id="prt_acme", name="Acme", activated_at=JAN_1)
    return account


def messages_sent(account):
    """November: 20,000 + 500 messages from ten_eu through Acme, 11,000 + 1,500 from ten_us without a partner
    (33,000). The second batch repeats m1 (already stored, sent again as 999) and m4 (twice in the batch, the
    repeat sent as 7): both refused as duplicates, neither billed."""
    first = ingest(
        account,
        [
            event("m1", "ten_eu", "messages", 20_000, "2026-11-10T10:00:00Z", partner_id="prt_acme"),
            event("m2", "ten_us", "messages", 11_000, "2026-11-20T10:00:00Z"),
            event("m3", "ten_eu", "messages", 500, "2026-11-20T11:30:00Z", partner_id="prt_acme"),
        ],
        now=dt.datetime(2026, 11, 25, tzinfo=UTC),
    )
    second = ingest(
        account,
        [
            event("m1", "ten_eu", "messages", 999, "2026-11-10T10:05:00Z", partner_id="prt_acme"),
            event("m4", "ten_us", "messages", 1_500, "2026-11-21T08:00:00Z"),
            event("m4", "ten_us", "messages", 7, "2026-11-21T08:00:00Z"),
        ],
    )
    assert (first.accepted, first.duplicates, second.accepted, second.duplicates) == (3, 0, 1, 2)


def shares(rows: list[Share]) -> list[tuple]:
    return [(s.key, s.name, s.events, s.quantity, s.billed) for s in rows]


def november_messages():
    return InvoiceLine.objects.select_related("invoice", "metric").get(
        invoice__period_start__month=11, kind="usage", metric__code="messages"
    )


def test_a_messages_line_reconciles_exactly_with_duplicates_refused_and_not_billed(northwind):
    messages_sent(northwind)
    close()
    line = november_messages()
    assert line.quantity == D(33_000)

    evidence = line_evidence(line)
    assert (evidence.event_count, evidence.quantity, evidence.billed) == (4, D(33_000), D(33_000))
    assert (evidence.reconciles, evidence.difference, evidence.adds_up) == (True, D(0), True)
    assert (evidence.reported_unit, evidence.billing_unit) == ("message", "per 1")
    assert shares(evidence.by_tenant) == [
        ("ten_eu", "Northwind EU", 2, D(20_500), D(20_500)),
        ("ten_us", "Northwind US", 2, D(12_500), D(12_500)),
    ]
    assert shares(evidence.by_partner) == [
        ("prt_acme", "Acme", 2, D(20_500), D(20_500)),
        ("", "no partner", 2, D(12_500), D(12_500)),
    ]
    assert shares(evidence.by_day) == [
        ("2026-11-10", "", 1, D(20_000), D(20_000)),
        ("2026-11-20", "", 2, D(11_500), D(11_500)),
        ("2026-11-21", "", 1, D(1_500), D(1_500)),
    ]
    for parts in (evidence.by_tenant, evidence.by_partner, evidence.by_day):
        assert sum(s.billed for s in parts) == line.quantity
        assert sum(s.events for s in parts) == evidence.event_count
    # Four hourly buckets (Nov 10 10h, Nov 20 10h and 11h, Nov 21 8h) hold the same 33,000.
    rollups = evidence.rollups
    assert (rollups.buckets, rollups.events, rollups.quantity_sum, rollups.billed, rollups.reconciles) == (
        4,
        4,
        D(33_000),
        D(33_000),
        True,
    )
    # Refused: m1 sent again (999, ten_eu) and m4's repeat (7, ten_us).
    refused = evidence.refused
    assert (refused.count, refused.quantity) == (2, D(1_006))
    assert refused.first_refused_at == refused.last_refused_at == dt.datetime(2026, 11, 30, 12, tzinfo=UTC)
    assert shares(refused.by_tenant) == [
        ("ten_eu", "Northwind EU", 1, D(999), D(999)),
        ("ten_us", "Northwind US", 1, D(7), D(7)),
    ]
    assert (evidence.late.events, evidence.late.months) == (0, [])


def test_late_usage_is_shown_beside_the_original_line_and_reconciles_on_the_later_invoice(northwind):
    messages_sent(northwind)
    close()
    ingest(northwind, [event("late-1", "ten_us", "messages", 400, "2026-11-30T22:00:00Z")], now=LATE_AT)

    line = november_messages()
    evidence = line_evidence(line)
    # The November line is unchanged: its events and quantity are those billed on Dec 1.
    assert (line.quantity, evidence.billed, evidence.event_count, evidence.reconciles) == (
        D(33_000),
        D(33_000),
        4,
        True,
    )
    (month,) = evidence.late.months
    assert (month.billing_month, month.invoice_number, month.events, month.quantity) == (
        dt.date(2026, 12, 1),
        None,  # December is not invoiced yet
        1,
        D(400),
    )

    close(period=DECEMBER, now=JANUARY_CLOSE)
    late_line = InvoiceLine.objects.select_related("invoice", "metric").get(kind="late_usage")
    assert (late_line.quantity, late_line.usage_month) == (D(400), dt.date(2026, 11, 1))
    late_evidence = line_evidence(late_line)
    assert (late_evidence.event_count, late_evidence.billed, late_evidence.reconciles) == (1, D(400), True)
    assert shares(late_evidence.by_tenant) == [("ten_us", "Northwind US", 1, D(400), D(400))]
    assert (late_evidence.rollups.billed, late_evidence.rollups.reconciles) == (D(400), True)
    assert (late_evidence.late.events, late_evidence.late.quantity) == (1, D(400))
    # The November line now names the invoice that billed its late event.
    (month,) = line_evidence(november_messages()).late.months
    assert month.invoice_number == late_line.invoice.number
    assert november_messages().quantity == D(33_000)


def test_a_storage_line_reconciles_in_gb_months(northwind):
    """November has 720 hours. ten_eu: 12 GB from Nov 1 (360 h) then 24 GB from Nov 16 (360 h) = 12,960 GB-hours;
    ten_us: 6 GB carried in from Oct 31 until Nov 11 (240 h) then 3 GB (480 h) = 2,880 GB-hours. 15,840 GB-hours
    ÷ 720 = 22 GB-months."""
    ingest(
        northwind,
        [
            event("s0", "ten_us", "storage_gb", 6, "2026-10-31T00:00:00Z"),
            event("s1", "ten_eu", "storage_gb", 12, "2026-11-01T00:00:00Z"),
            event("s2", "ten_us", "storage_gb", 3, "2026-11-11T00:00:00Z"),
            event("s3", "ten_eu", "storage_gb", 24, "2026-11-16T00:00:00Z"),
        ],
    )
    close()
    line = InvoiceLine.objects.select_related("invoice", "metric").get(
        invoice__period_start__month=11, kind="usage", metric__code="storage_gb"
    )
    assert line.quantity == D(22)
    evidence = line_evidence(line)
    assert (evidence.event_count, evidence.quantity, evidence.billed, evidence.reconciles) == (
        3,
        D(15_840),
        D(22),
        True,
    )
    assert (evidence.reported_unit, evidence.billing_unit) == ("GB-hours", "per GB-month")
    assert shares(evidence.by_tenant) == [
        ("ten_eu", "Northwind EU", 2, D(12_960), D(18)),
        ("ten_us", "Northwind US", 1, D(2_880), D(4)),
    ]
    assert shares(evidence.by_partner) == [("", "no partner", 3, D(15_840), D(22))]
    days = {s.key: (s.events, s.quantity) for s in evidence.by_day}
    assert len(days) == 30
    # Nov 1: 12 × 24 + 6 × 24; Nov 11: 12 × 24 + 3 × 24; Nov 16: 24 × 24 + 3 × 24.
    assert (days["2026-11-01"], days["2026-11-11"], days["2026-11-16"]) == ((1, D(432)), (1, D(360)), (1, D(648)))
    assert sum(s.quantity for s in evidence.by_day) == D(15_840)
    assert (evidence.rollups.billed, evidence.rollups.reconciles) == (D(22), True)


def test_a_unique_count_says_its_tenants_do_not_add_up(plan):
    """Active users: u1, u2 on ten_a and u2, u3 on ten_b are 3 distinct users, though each tenant saw 2."""
    account = AccountFactory(name="Platform Co")
    subscribe(account, plan("platform-professional"))
    TenantFactory(account=account, public_id="ten_a", name="A", activated_at=JAN_1)
    TenantFactory(account=account, public_id="ten_b", name="B", activated_at=JAN_1)
    ingest(
        account,
        [
            event("u-1", "ten_a", "active_users", 1, "2026-11-03T10:00:00Z", user_id="u1"),
            event("u-2", "ten_a", "active_users", 1, "2026-11-03T11:00:00Z", user_id="u2"),
            event("u-3", "ten_b", "active_users", 1, "2026-11-04T10:00:00Z", user_id="u2"),
            event("u-4", "ten_b", "active_users", 1, "2026-11-05T10:00:00Z", user_id="u3"),
        ],
    )
    close()
    line = InvoiceLine.objects.select_related("invoice", "metric").get(kind="usage", metric__code="active_users")
    evidence = line_evidence(line)
    assert (line.quantity, evidence.billed, evidence.reconciles, evidence.adds_up) == (D(3), D(3), True, False)
    assert [(s.key, s.quantity) for s in evidence.by_tenant] == [("ten_a", D(2)), ("ten_b", D(2))]
    assert evidence.notes == [
        "The tenant, partner and day figures of a unique count do not add up to the total; the total is the line's."
    ]


def test_the_csv_has_a_section_per_line_and_a_row_per_event(northwind):
    messages_sent(northwind)
    close()
    line = november_messages()
    base_fee = InvoiceLine.objects.get(invoice=line.invoice, kind="base_fee")
    rows = list(evidence_csv([base_fee, line]))
    assert rows[0] == CSV_HEADER
    assert all(len(row) == len(CSV_HEADER) for row in rows)
    column = {name: i for i, name in enumerate(CSV_HEADER)}

    def pick(row, *names):
        return tuple(row[column[n]] for n in names)

    records = [row[column["record"]] for row in rows[1:]]
    assert records == [
        "line",
        "tenant",
        "tenant",
        "tenant_total",
        "partner",
        "partner",
        "partner_total",
        "day",
        "day",
        "day",
        "day_total",
        "reconciliation",
        "rollups",
        "refused_duplicates",
        "event",
        "event",
        "event",
        "event",
    ]
    number = line.invoice.number
    assert pick(rows[1], "invoice", "line", "metric", "name", "billed_quantity") == (
        number,
        str(line.position),
        "messages",
        "Messages",
        "33000",
    )
    assert [pick(r, "key", "events", "quantity", "billed_quantity") for r in rows[2:5]] == [
        ("ten_eu", "2", "20500", "20500"),
        ("ten_us", "2", "12500", "12500"),
        ("", "4", "33000", "33000"),
    ]
    assert pick(rows[12], "billed_quantity", "note") == ("33000", "reconciles")
    assert pick(rows[14], "events", "quantity", "note") == ("2", "1006", "not billed")
    assert [
        pick(r, "transaction_id", "tenant", "partner", "timestamp", "quantity", "received_at", "late")
        for r in rows[15:]
    ] == [
        ("m1", "ten_eu", "prt_acme", "2026-11-10T10:00:00Z", "20000", "2026-11-25T00:00:00Z", "no"),
        ("m2", "ten_us", "", "2026-11-20T10:00:00Z", "11000", "2026-11-25T00:00:00Z", "no"),
        ("m3", "ten_eu", "prt_acme", "2026-11-20T11:30:00Z", "500", "2026-11-25T00:00:00Z", "no"),
        ("m4", "ten_us", "", "2026-11-21T08:00:00Z", "1500", "2026-11-30T12:00:00Z", "no"),
    ]
