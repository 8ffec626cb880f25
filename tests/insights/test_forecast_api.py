"""``GET /v1/billing/forecast``: the running month with its range, the next three months and the error of November's
forecasts against its invoice, for a read key's own account and the account an export key names; what is refused
(401, 403, 400, 404)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.test import Client

from accounts.services import api_key_create
from tests.insights.test_forecast_record import invoiced_november

pytestmark = pytest.mark.django_db
DEC_10 = dt.datetime(2026, 12, 10, 9, tzinfo=dt.UTC)
URL = "/v1/billing/forecast"


@pytest.fixture
def account(plan):
    november = invoiced_november(plan)
    with time_machine.travel(DEC_10, tick=False):
        yield november


def key(scopes, account=None, tenant=None, **kwargs) -> Client:
    _, secret = api_key_create(name="k", scopes=scopes, account=account, tenant=tenant, **kwargs)
    return Client(headers={"Authorization": f"Bearer {secret}"})


def test_a_read_key_reads_its_accounts_forecast(account):
    response = key(["read"], account).get(URL)
    assert response.status_code == 200
    body = response.json()
    assert (body["account_id"], body["currency"], body["made_at"]) == (account.public_id, "USD", "2026-12-10T09:00:00Z")
    running = body["running_month"]
    assert running["period"] == {"start": "2026-12-01T00:00:00Z", "end": "2027-01-01T00:00:00Z"}
    # No message yet in December: the base fee alone, so far and at the month's end.
    assert (running["days_observed"], running["so_far"], running["expected"], running["low"], running["high"]) == (
        9,
        "99.00",
        "99.00",
        "99.00",
        "99.00",
    )
    messages = next(m for m in running["metrics"] if m["metric"] == "messages")
    assert (messages["method"], messages["so_far"], messages["expected"]) == ("weekday_pattern", "0", "0")
    assert [m["month"] for m in body["next_months"]] == ["2027-01", "2027-02", "2027-03"]
    for month in body["next_months"]:
        assert month["method"] == "damped_trend"  # August to November: four months of history
        assert Decimal(month["low"]) <= Decimal(month["expected"]) <= Decimal(month["high"])
        assert Decimal(month["expected"]) >= Decimal("99.00")
    (november,) = body["accuracy"]
    assert (november["month"], november["actual"]) == ("2026-11", "1039.00")
    assert november["forecasts"] == [
        {
            "made_on": day,
            "expected": "989.00",
            "low": low,
            "high": high,
            "error": "50.00",
            "error_percent": "4.81",
            "in_range": False,
        }
        for day, low, high in (("2026-11-16", "959.50", "1018.50"), ("2026-11-17", "962.00", "1016.00"))
    ]


def test_an_export_key_names_the_account(account, plan):
    client = key(["export"])
    named = client.get(f"{URL}?account={account.public_id}")
    assert (named.status_code, named.json()["account_id"]) == (200, account.public_id)
    missing = client.get(URL)
    assert (missing.status_code, missing.json()["error"]["field"]) == (400, "account")
    unknown = client.get(f"{URL}?account=acc_nobody")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "not_found")


def test_an_export_key_limited_to_other_accounts_finds_none_of_this_one(account, plan):
    from tests.accounts.factories import AccountFactory

    other = AccountFactory(name="Globex")
    limited = key(["export"], export_accounts=[other]).get(f"{URL}?account={account.public_id}")
    assert (limited.status_code, limited.json()["error"]["code"]) == (404, "not_found")
    datasets = key(["export"], export_datasets=["invoices"]).get(f"{URL}?account={account.public_id}")
    assert datasets.status_code == 403


def test_a_read_key_never_reads_another_account(account, plan):
    other = invoiced_november(plan, name="Globex", public_id="ten_globex")
    theirs = key(["read"], other)
    response = theirs.get(f"{URL}?account={account.public_id}")
    assert response.status_code == 404 and response.json()["error"]["field"] == "account"
    assert theirs.get(URL).json()["account_id"] == other.public_id


def test_the_forecast_refuses_what_it_must(account):
    assert Client().get(URL).status_code == 401
    assert key(["ingest"], account).get(URL).status_code == 403
    pinned = key(["read"], account, account.tenants.first()).get(URL)
    assert pinned.status_code == 403
