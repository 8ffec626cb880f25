"""Plan limits: alerts at 75/90/100 % once per account, metric, period and threshold; the quota endpoint."""

import datetime as dt
from decimal import Decimal as D

import pytest
import time_machine

from accounts.models import ApiKey
from accounts.services import api_key_create
from billing.rating.engine import charges_estimate
from billing.services.subscriptions import subscription_create
from common.models import OutboxEvent
from common.periods import month_containing
from tenants.services import tenant_archive
from tests.accounts.factories import AccountFactory
from tests.tenants.factories import TenantFactory
from tests.usage.factories import usage_event, usage_ingest
from usage.services import events_ingest

pytestmark = pytest.mark.django_db
UTC = dt.UTC
NOW = dt.datetime(2026, 11, 26, 10, 30, tzinfo=UTC)


@pytest.fixture
def startup(plan):
    account = AccountFactory()
    subscription_create(
        account=account, plan_version=plan("messaging-startup"), started_at=dt.datetime(2026, 1, 1, tzinfo=UTC)
    )
    TenantFactory(account=account, public_id="ten_startup", activated_at=dt.datetime(2026, 1, 1, tzinfo=UTC))
    api_key, secret = api_key_create(name="k", scopes=["ingest", "read"], account=account)
    return account, api_key, secret


def send(api_key, txn, quantity, metric="messages"):
    item = usage_event(
        transaction_id=txn, tenant="ten_startup", metric=metric, quantity=quantity, at="2026-11-26T10:00:00Z"
    )
    return usage_ingest(account=api_key.account, items=[item], now=NOW)


def alerts(account):
    return [
        (e.type, e.payload["data"]["threshold_percentage"], e.payload["data"]["current_usage"])
        for e in OutboxEvent.objects.filter(account=account).exclude(type="billing.subscription_updated").order_by("id")
    ]


def test_crossing_thresholds_records_each_alert_once(startup):
    account, api_key, _ = startup
    send(api_key, "a", 3700)  # 74 %
    assert alerts(account) == []
    send(api_key, "b", 100)  # 76 %
    assert alerts(account) == [("billing.usage_threshold", 75, "3800")]
    send(api_key, "c", 1200)  # 100 %
    assert alerts(account)[1:] == [("billing.usage_threshold", 90, "5000"), ("billing.usage_threshold", 100, "5000")]
    send(api_key, "d", 1)  # over the limit
    send(api_key, "e", 500)  # still over: nothing new
    assert alerts(account)[3:] == [("billing.limit_exceeded", 100, "5001")]
    assert OutboxEvent.objects.filter(account=account).exclude(type="billing.subscription_updated").count() == 4


def test_alert_payload_has_the_documented_shape(startup):
    account, api_key, _ = startup
    send(api_key, "a", 4000)
    event = OutboxEvent.objects.exclude(type="billing.subscription_updated").get(account=account)
    assert event.payload == {
        "type": "billing.usage_threshold",
        "data": {
            "account_id": account.public_id,
            "threshold_type": "messages",
            "threshold_percentage": 75,
            "current_usage": "4000",
            "plan_limit": "5000",
            "period": "2026-11",
        },
    }


def test_a_duplicate_event_raises_no_alert(startup):
    account, api_key, _ = startup
    send(api_key, "a", 3000)
    send(api_key, "a", 3000)
    assert alerts(account) == []


def test_hourly_limits_alert_per_hour(plan):
    account = AccountFactory()
    subscription_create(
        account=account, plan_version=plan("platform-basic"), started_at=dt.datetime(2026, 1, 1, tzinfo=UTC)
    )
    TenantFactory(account=account, public_id="ten_startup", activated_at=dt.datetime(2026, 1, 1, tzinfo=UTC))
    api_key, _ = api_key_create(name="k", scopes=["ingest"], account=account)
    send(api_key, "a", 5001, metric="api_requests")
    types = {
        (e.type, e.payload["data"]["period"])
        for e in OutboxEvent.objects.filter(account=account).exclude(type="billing.subscription_updated")
    }
    assert ("billing.limit_exceeded", "2026-11-26T10:00Z") in types
    assert all(
        e.payload["data"]["plan_limit"] == "5000"
        for e in OutboxEvent.objects.filter(account=account).exclude(type="billing.subscription_updated")
    )


def test_the_quota_endpoint_shows_every_limit(startup, api):
    account, api_key, secret = startup
    send(api_key, "a", 4600)
    with time_machine.travel(NOW, tick=False):
        response = api(secret).get("/v1/tenants/ten_startup/quota")
    assert response.status_code == 200
    limits = {row["metric"]: row for row in response.json()["limits"]}
    assert limits["messages"] == {
        "metric": "messages",
        "name": "Messages",
        "window": "period",
        "period": "2026-11",
        "limit": "5000",
        "current_usage": "4600",
        "percentage": "92",
        "remaining": "400",
        "exceeded": False,
    }
    assert (limits["tenants"]["current_usage"], limits["tenants"]["limit"]) == ("1", "3")
    assert limits["master_partners"]["limit"] == "10"


def test_the_quota_of_another_accounts_tenant_is_404(startup, api):
    TenantFactory(account=AccountFactory(), public_id="ten_other", activated_at=dt.datetime(2026, 1, 1, tzinfo=UTC))
    _, _, secret = startup
    assert api(secret).get("/v1/tenants/ten_other/quota").status_code == 404
    assert api(secret).get("/v1/tenants/ten_nobody/quota").status_code == 404
    assert ApiKey.objects.count() == 1


def test_the_tenant_limit_counts_the_tenants_billed_for_the_month(startup, api):
    """A tenant archived during the month is billed for it, so the limit counts it too (not only those live now)."""
    account, _, secret = startup
    for n in range(3):
        TenantFactory(account=account, public_id=f"ten_startup_{n}", activated_at=dt.datetime(2026, 1, 1, tzinfo=UTC))
    with time_machine.travel(NOW, tick=False):
        tenant_archive(tenant=account.tenants.get(public_id="ten_startup_2"), at=dt.datetime(2026, 11, 10, tzinfo=UTC))
        response = api(secret).get("/v1/tenants/ten_startup/quota")
    # Four tenants live in November (one until the 10th), three live now; the plan includes and limits 3.
    limits = {row["metric"]: row for row in response.json()["limits"]}
    assert limits["tenants"] == {
        "metric": "tenants",
        "name": "Active tenants",
        "window": "period",
        "period": "2026-11",
        "limit": "3",
        "current_usage": "4",
        "percentage": "133.33",
        "remaining": "0",
        "exceeded": True,
    }
    billed = charges_estimate(account=account, period=month_containing(NOW), now=NOW).line_for("tenants")
    assert (billed.quantity, billed.billable, billed.amount) == (4, 1, D("29.00"))


def test_a_tenant_pinned_key_reads_its_tenants_own_usage_against_the_limits(startup, api):
    account, api_key, secret = startup
    other = TenantFactory(account=account, public_id="ten_other", activated_at=dt.datetime(2026, 1, 1, tzinfo=UTC))
    send(api_key, "mine", 1000)
    with time_machine.travel(NOW, tick=False):
        events_ingest(
            account=account,
            items=[{"transaction_id": "theirs", "tenant": other.public_id, "metric": "messages", "quantity": 3000}],
            now=NOW,
        )
    _, pinned = api_key_create(
        name="pinned", scopes=["read"], account=account, tenant=account.tenants.get(public_id="ten_startup")
    )
    with time_machine.travel(NOW, tick=False):
        whole = api(secret).get("/v1/tenants/ten_startup/quota").json()
        own = api(pinned).get("/v1/tenants/ten_startup/quota")
        elsewhere = api(pinned).get("/v1/tenants/ten_other/quota")
    assert (whole["scope"], {row["metric"]: row["current_usage"] for row in whole["limits"]}["messages"]) == (
        "account",
        "4000",
    )
    assert own.status_code == 200
    body = own.json()
    assert (body["tenant_id"], body["account_id"], body["scope"]) == ("ten_startup", account.public_id, "tenant")
    # Only limits the tenant's own events count towards; tenants and master partners are the account's.
    assert [row["metric"] for row in whole["limits"]] == ["master_partners", "messages", "tenants"]
    assert [row["metric"] for row in body["limits"]] == ["messages"]
    assert {row["metric"]: row for row in body["limits"]}["messages"] == {
        "metric": "messages",
        "name": "Messages",
        "window": "period",
        "period": "2026-11",
        "limit": "5000",
        "current_usage": "1000",
        "percentage": "20",
        "remaining": None,
        "exceeded": None,
    }
    assert elsewhere.status_code == 404
