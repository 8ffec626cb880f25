"""What suspension means for integrations: events of a suspended account are still accepted and stored (usage
is never lost), and the quota answer says ``account_status: suspended`` so the vendor's applications can block."""

import datetime as dt

import pytest
import time_machine

from accounts.models import Account
from accounts.services import account_suspend
from usage.models import UsageEvent

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 11, 26, 10, 30, tzinfo=dt.UTC)


@time_machine.travel(NOW, tick=False)
def test_a_suspended_account_still_reports_usage_and_the_quota_says_suspended(business, api):
    account = business["account"]
    client = api(business["key"])
    assert client.get("/v1/tenants/ten_northwind_eu/quota").json()["account_status"] == "active"
    account_suspend(account=account, reason="all payment retries for INV-2026-000001 failed")

    event = {"transaction_id": "after-suspension-1", "tenant": "ten_northwind_eu", "metric": "messages", "quantity": 25}
    response = client.post("/v1/events", event, format="json")

    assert response.status_code in (200, 201, 202)
    assert UsageEvent.objects.filter(account=account, transaction_id="after-suspension-1").count() == 1
    quota = client.get("/v1/tenants/ten_northwind_eu/quota")
    assert (quota.status_code, quota.json()["account_status"]) == (200, "suspended")
    assert Account.objects.get(pk=account.pk).status == "suspended"
