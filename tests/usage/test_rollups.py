"""Rollups equal a fresh aggregation of the raw events, for random streams with duplicates and late usage."""

import datetime as dt
from collections import defaultdict
from decimal import Decimal

import pytest
import time_machine
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.periods import month_period
from tests.tenants.factories import TenantFactory
from usage.models import Metric, UsageEvent, UsageRollup, UsageUniqueValue
from usage.selectors import gauge_unit_hours, period_usage
from usage.services import events_ingest, period_close

pytestmark = pytest.mark.django_db
UTC = dt.UTC
NOW = dt.datetime(2026, 11, 26, 10, 30, tzinfo=UTC)
NOVEMBER = month_period(2026, 11)
TENANTS = ["ten_northwind_eu", "ten_northwind_us"]

moments = st.builds(
    lambda minutes: dt.datetime(2026, 10, 20, tzinfo=UTC) + dt.timedelta(minutes=minutes),
    st.integers(min_value=0, max_value=int((NOW - dt.datetime(2026, 10, 20, tzinfo=UTC)).total_seconds() // 60)),
)
raw_events = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=60),  # transaction id: small range, so duplicates happen
        st.sampled_from(TENANTS),
        st.sampled_from(["messages", "active_users", "storage_gb", "api_requests"]),
        st.decimals(min_value=0, max_value=1000, places=2),
        moments,
        st.sampled_from(["u1", "u2", "u3", "u4"]),
        st.sampled_from([None, "prt_supplier_001"]),
    ),
    min_size=1,
    max_size=80,
)


def as_payload(items):
    payload = []
    for txn, tenant, metric, quantity, moment, user, partner in items:
        if metric == "storage_gb" and moment.month == 10:
            continue  # October is invoiced: level readings for it are refused (gauge_period_closed)
        properties = {}
        if metric == "active_users":
            properties["user_id"] = user
        if partner and metric == "messages":
            properties["partner_id"] = partner
        payload.append(
            {
                "transaction_id": f"t{txn}",
                "tenant": tenant,
                "metric": metric,
                "quantity": str(quantity),
                "timestamp": moment.isoformat(),
                "properties": properties,
            }
        )
    return payload


def brute_force_gauge_hours(account, metric, period, now):
    hours = defaultdict(Decimal)
    readings = defaultdict(list)
    for tenant_id, at, value in (
        UsageEvent.objects.filter(account=account, metric=metric)
        .order_by("timestamp", "id")
        .values_list("tenant_id", "timestamp", "quantity")
    ):
        readings[tenant_id].append((at, value))
    end = min(period.end, now)
    for tenant_id, series in readings.items():
        level, cursor = Decimal(0), period.start
        for at, value in series:
            if at < period.start:
                level = value
                continue
            if at >= end:
                break
            hours[tenant_id] += level * Decimal(int((at - cursor).total_seconds() * 1_000_000)) / Decimal(3_600_000_000)
            level, cursor = value, at
        hours[tenant_id] += level * Decimal(int((end - cursor).total_seconds() * 1_000_000)) / Decimal(3_600_000_000)
    return {t: round(v, 8) for t, v in hours.items() if v or t in readings}


@pytest.fixture
def setup(business):
    TenantFactory(
        account=business["account"], public_id="ten_northwind_us", activated_at=dt.datetime(2026, 1, 1, tzinfo=UTC)
    )
    period_close(
        account=business["account"], month=dt.date(2026, 10, 1), closed_at=dt.datetime(2026, 11, 22, tzinfo=UTC)
    )
    return business


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=raw_events, cuts=st.lists(st.integers(min_value=1, max_value=79), max_size=4))
def test_rollups_equal_raw_aggregation(setup, items, cuts):
    account = setup["account"]
    payload = as_payload(items)
    bounds = sorted({0, len(payload), *[c for c in cuts if c < len(payload)]})
    with time_machine.travel(NOW, tick=False), transaction.atomic():
        accepted = 0
        for start, end in zip(bounds, bounds[1:], strict=False):
            accepted += events_ingest(account=account, items=payload[start:end], now=NOW).accepted
            # Resending a batch is always all duplicates.
            assert events_ingest(account=account, items=payload[start:end], now=NOW).accepted == 0
        first_seen = {}
        for event in payload:
            first_seen.setdefault(event["transaction_id"], event)
        assert accepted == len(first_seen) == UsageEvent.objects.count()

        raw = defaultdict(lambda: [Decimal(0), 0])
        for e in UsageEvent.objects.values("tenant_id", "metric_id", "partner_id", "billing_month", "quantity"):
            key = (e["tenant_id"], e["metric_id"], e["partner_id"], e["billing_month"])
            raw[key][0] += e["quantity"]
            raw[key][1] += 1
        rolled = defaultdict(lambda: [Decimal(0), 0])
        for r in UsageRollup.objects.values(
            "tenant_id", "metric_id", "partner_id", "billing_month", "quantity_sum", "event_count"
        ):
            key = (r["tenant_id"], r["metric_id"], r["partner_id"], r["billing_month"])
            rolled[key][0] += r["quantity_sum"]
            rolled[key][1] += r["event_count"]
        assert dict(rolled) == dict(raw)

        users = Metric.objects.get(code="active_users")
        raw_users = {
            (e.tenant_id, e.timestamp.date().replace(day=1), e.properties["user_id"])
            for e in UsageEvent.objects.filter(metric=users)
        }
        assert set(UsageUniqueValue.objects.values_list("tenant_id", "usage_month", "value")) == raw_users

        storage = Metric.objects.get(code="storage_gb")
        assert gauge_unit_hours(account=account, metric=storage, period=NOVEMBER, now=NOW) == brute_force_gauge_hours(
            account, storage, NOVEMBER, NOW
        )

        usage = period_usage(account=account, period=NOVEMBER, now=NOW)
        november = dt.date(2026, 11, 1)
        messages = Metric.objects.get(code="messages")
        assert usage["messages"].quantity == sum(
            (e.quantity for e in UsageEvent.objects.filter(metric=messages, billing_month=november)), Decimal(0)
        )
        assert usage["messages"].late_quantity == sum(
            (e.quantity for e in UsageEvent.objects.filter(metric=messages, is_late=True)), Decimal(0)
        )
        # Active users: November's own distinct users, plus each late (month, user) not billed for that month.
        regular = {
            e.properties["user_id"]
            for e in UsageEvent.objects.filter(metric=users, billing_month=november, is_late=False)
        }
        late = {
            (e.timestamp.date().replace(day=1), e.properties["user_id"])
            for e in UsageEvent.objects.filter(metric=users, billing_month=november, is_late=True)
            if not UsageUniqueValue.objects.filter(
                value=e.properties["user_id"],
                usage_month=e.timestamp.date().replace(day=1),
                billing_month=e.timestamp.date().replace(day=1),
            ).exists()
        }
        assert usage["active_users"].quantity == len(regular) + len(late)
        assert usage["active_users"].late_quantity == len(late)
        transaction.set_rollback(True)
