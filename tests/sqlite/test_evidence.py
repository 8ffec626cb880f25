"""Usage evidence of an invoice line on SQLite (the demo's database): grouped sums, UTC days, a storage gauge's
GB-months and the refused duplicates reconcile exactly as on PostgreSQL."""

from decimal import Decimal as D

import pytest

from billing.evidence import evidence_csv, line_evidence
from billing.models import InvoiceLine
from tests.billing.cycle import close, event, ingest

pytestmark = pytest.mark.django_db


def test_a_messages_and_a_storage_line_reconcile(northwind):
    account = northwind(tenants=2)["account"]
    ingest(
        account,
        [
            event("m1", "ten_nw_1", "messages", "20000.5", "2026-11-10T10:00:00Z", partner_id="prt_supplier_001"),
            event("m2", "ten_nw_2", "messages", "10999.5", "2026-11-20T10:00:00Z"),
            # 10 GB on ten_nw_1 all month (720 h) and 5 GB on ten_nw_2 from Nov 16 (360 h): 9,000 GB-hours.
            event("s1", "ten_nw_1", "storage_gb", 10, "2026-11-01T00:00:00Z"),
            event("s2", "ten_nw_2", "storage_gb", 5, "2026-11-16T00:00:00Z"),
        ],
    )
    ingest(account, [event("m1", "ten_nw_1", "messages", 3, "2026-11-10T10:30:00Z")])  # refused, tallied
    close()
    messages = InvoiceLine.objects.select_related("invoice", "metric").get(kind="usage", metric__code="messages")
    evidence = line_evidence(messages)
    assert (messages.quantity, evidence.billed, evidence.reconciles) == (D(31_000), D(31_000), True)
    assert [(s.key, s.billed) for s in evidence.by_tenant] == [("ten_nw_1", D("20000.5")), ("ten_nw_2", D("10999.5"))]
    assert [(s.key, s.billed) for s in evidence.by_day] == [("2026-11-10", D("20000.5")), ("2026-11-20", D("10999.5"))]
    assert (evidence.rollups.billed, evidence.refused.count, evidence.refused.quantity) == (D(31_000), 1, D(3))

    storage = InvoiceLine.objects.select_related("invoice", "metric").get(kind="usage", metric__code="storage_gb")
    gauge = line_evidence(storage)
    # 9,000 GB-hours ÷ 720 = 12.5 GB-months.
    assert (storage.quantity, gauge.quantity, gauge.billed, gauge.reconciles) == (D("12.5"), D(9_000), D("12.5"), True)
    assert [(s.key, s.quantity, s.billed) for s in gauge.by_tenant] == [
        ("ten_nw_1", D(7_200), D(10)),
        ("ten_nw_2", D(1_800), D("2.5")),
    ]
    rows = list(evidence_csv([messages, storage]))
    assert [row[0] for row in rows].count("event") == 4
