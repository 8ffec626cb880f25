"""The usage API's estimate for a finished month is what the invoice bills, to the cent."""

import datetime as dt
from decimal import Decimal as D

import pytest
import time_machine
from rest_framework.test import APIClient

from accounts.services import api_key_create
from billing.models import Invoice
from billing.services.subscriptions import subscription_change_plan
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import CLOSE_AT, JAN_1, UTC, close, event, ingest, subscribe
from tests.tenants.factories import TenantFactory

pytestmark = pytest.mark.django_db


def test_estimated_charges_at_period_end_equal_the_invoice_subtotal(plan):
    account = AccountFactory(name="Fabrikam", tax_rate=D("20"))
    basic = subscribe(account, plan("platform-basic"))
    TenantFactory(account=account, public_id="ten_fab", activated_at=JAN_1)
    TenantFactory(account=account, public_id="ten_fab_2", activated_at=JAN_1)
    with time_machine.travel(dt.datetime(2026, 11, 15, tzinfo=UTC), tick=False):
        subscription_change_plan(
            subscription=basic, plan_version=plan("platform-professional"), at=dt.datetime(2026, 11, 15, tzinfo=UTC)
        )
    ingest(
        account,
        [
            event("a1", "ten_fab", "api_requests", 1_234_567, "2026-11-03T10:00:00Z"),
            event("a2", "ten_fab_2", "api_requests", 4_321_000, "2026-11-25T10:00:00Z"),
            event("s1", "ten_fab", "storage_gb", "7.25", "2026-11-04T06:00:00Z"),
            event("s2", "ten_fab_2", "storage_gb", 3, "2026-11-18T18:30:00Z"),
        ]
        + [event(f"u{n}", "ten_fab", "active_users", 1, "2026-11-12T10:00:00Z", user_id=f"u-{n}") for n in range(77)],
    )
    _, secret = api_key_create(name="read", scopes=["read"], account=account)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    with time_machine.travel(CLOSE_AT, tick=False):
        body = client.get("/v1/billing/usage?year=2026&month=11").json()
    close()

    invoice = Invoice.objects.get(account=account)
    # Basic Nov 1 → 15 (14/30), Professional Nov 15 → Dec 1 (16/30):
    #   base fees        $50 × 14/30 = $23.33; $200 × 16/30 = $106.67
    #   77 users         Basic (77 − 50) × $2 = $54 × 14/30 = $25.20; Professional: 200 included
    #   API requests     Basic 1,234,567 − 466,666.67 = 767,900.33 / 1,000 × $0.05 = $38.395 → $38.40
    #                    Professional 4,321,000 − 2,666,666.67 = 1,654,333.33 / 1,000 × $0.04 = $66.173 → $66.17
    #   storage          Basic: 7.25 GB × 258 h (Nov 4 06:00 → Nov 15) / 720 h = 2.5979 GB-months,
    #                    minus 0.4667 included = 2.13125 × $2 = $4.2625 → $4.26
    #                    Professional: (7.25 × 384 h + 3 × 293.5 h) / 720 h = 5.09 GB-months < 5.33 included
    #   subtotal $264.03, tax 20 % = $52.806 → $52.81, total $316.84
    assert (invoice.subtotal, invoice.tax, invoice.total) == (D("264.03"), D("52.81"), D("316.84"))
    assert body["usage_to_date"] == {
        "estimated_charges": "264.03",
        "estimated_tax": "52.81",
        "estimated_total": "316.84",
    }
    assert [m["charge"] for m in body["metrics"]] == [
        format(line.amount.quantize(D("0.01")), "f") for line in invoice.lines.filter(kind="usage").order_by("position")
    ]
    # Each span says which part of the month it covers: Basic until the upgrade, Professional after it.
    users = [m["span"] for m in body["metrics"] if m["metric"] == "active_users"]
    assert users == [
        {"start": "2026-11-01T00:00:00Z", "end": "2026-11-15T00:00:00Z"},
        {"start": "2026-11-15T00:00:00Z", "end": "2026-12-01T00:00:00Z"},
    ]
