import datetime as dt
from decimal import Decimal

import pytest
from django.test import override_settings

from billing.models import BillingRun, Invoice
from billing.services.runs import bill_period
from billing.services.subscriptions import subscription_create
from common.models import OutboxEvent
from common.periods import month_period
from tests.accounts.factories import AccountFactory
from tests.tenants.factories import TenantFactory
from usage.models import ClosedPeriod
from usage.services import events_ingest

pytestmark = pytest.mark.django_db
UTC = dt.UTC
NOVEMBER = month_period(2026, 11)


@override_settings(BILLING_REVIEW_HOURS=0)
def test_business_month_is_invoiced_once(plan):
    account = AccountFactory(name="Northwind")
    subscription_create(
        account=account, plan_version=plan("messaging-business"), started_at=dt.datetime(2026, 1, 1, tzinfo=UTC)
    )
    tenants = [
        TenantFactory(account=account, public_id=f"ten_nw_{i:02d}", activated_at=dt.datetime(2026, 1, 1, tzinfo=UTC))
        for i in range(12)
    ]
    events = [
        {
            "transaction_id": f"m{i}",
            "tenant": tenants[i % 12].public_id,
            "metric": "messages",
            "quantity": 1000,
            "timestamp": "2026-11-10T10:00:00Z",
        }
        for i in range(31)
    ] + [
        {
            "transaction_id": "s1",
            "tenant": tenants[0].public_id,
            "metric": "storage_gb",
            "quantity": 40,
            "timestamp": "2026-11-01T00:00:00Z",
        }
    ]
    events_ingest(account=account, items=events, now=dt.datetime(2026, 11, 20, tzinfo=UTC))
    now = dt.datetime(2026, 12, 1, 0, 5, tzinfo=UTC)
    run = bill_period(period=NOVEMBER, now=now)
    invoice = Invoice.objects.get(account=account)
    assert (invoice.status, invoice.total, invoice.number) == ("finalized", Decimal("562.00"), "INV-2026-000001")
    assert [(line.kind, line.amount) for line in invoice.lines.order_by("position")][:1] == [
        ("base_fee", Decimal("299.00"))
    ]
    assert run.status == BillingRun.Status.COMPLETED
    assert ClosedPeriod.objects.filter(account=account, month=dt.date(2026, 11, 1)).exists()
    assert OutboxEvent.objects.filter(type="billing.invoice_generated", account=account).count() == 1
    bill_period(period=NOVEMBER, now=now)
    assert Invoice.objects.filter(account=account).count() == 1
