"""``GET /v1/billing/analysis``: the worked months of ``tests.insights.test_analysis_worked`` for a read key's
own account and the account an export key names, the efficiency metrics in the same answer, and what is refused
(401, 403, 404, 400 with the field)."""

from __future__ import annotations

import pytest
import time_machine
from django.test import Client

from accounts.services import api_key_create
from tests.insights.test_analysis_worked import DEC_10, worked_account

pytestmark = pytest.mark.django_db
RANGE = "/v1/billing/analysis?from=2026-10&to=2026-11"


@pytest.fixture(autouse=True)
def _frozen_time():
    with time_machine.travel(DEC_10, tick=False):
        yield


@pytest.fixture
def account(catalogue):
    return worked_account()


def key(scopes, account=None, tenant=None) -> Client:
    _, secret = api_key_create(name="k", scopes=scopes, account=account, tenant=tenant)
    return Client(headers={"Authorization": f"Bearer {secret}"})


def test_a_read_key_reads_its_accounts_analysis_to_the_cent(account):
    response = key(["read"], account).get(RANGE)
    assert response.status_code == 200
    body = response.json()
    assert (body["account_id"], body["currency"], body["start"], body["end"]) == (
        account.public_id,
        "USD",
        "2026-10",
        "2026-11",
    )
    assert body["totals"] == {
        "subtotal": "267.00",
        "tax": "26.70",
        "total": "293.70",
        "credited": "0.00",
        "net": "267.00",
    }
    november = body["months"][1]
    assert (november["month"], november["status"], november["subtotal"]) == ("2026-11", "invoiced", "143.50")
    assert november["tenants"] == [
        {"id": "ten_alpha", "name": "Alpha", "usage": "22.55", "total": "74.39"},
        {"id": "ten_beta", "name": "Beta", "usage": "20.95", "total": "69.11"},
    ]
    assert november["partners"] == [
        {"id": None, "name": "No master partner", "usage": "36.13", "total": "119.19"},
        {"id": "prt_xpress", "name": "Xpress", "usage": "7.37", "total": "24.31"},
    ]
    assert november["charges"][0] == {
        "key": "messages",
        "label": "Messages",
        "kind": "usage",
        "quantity": "3800",
        "included": "1000",
        "amount": "28.00",
    }
    assert november["features"][0] == {
        "feature": "audit",
        "events": 1,
        "days": 1,
        "tenants": 1,
        "paid": True,
        "cost": "10.00",
    }
    assert november["unit_costs"][0] == {
        "metric": "messages",
        "label": "per message",
        "quantity": "3800",
        "amount": "28.00",
        "metric_cost": "0.0074",
        "all_in": "0.0378",
    }
    assert november["change"]["explanation"] == (
        "Up USD 20.00 (+16.2 %) from October 2026: Messages +USD 18.00, mostly Beta (ten_beta) +USD 14.45; "
        "Storage +USD 2.00, mostly Beta (ten_beta) +USD 2.00."
    )
    assert body["months"][0]["change"] is None
    assert [t["total"] for t in body["range"]["tenants"]] == ["174.24", "92.76"]


def test_the_efficiency_metrics_come_with_it(account):
    efficiency = key(["read"], account).get(RANGE).json()["efficiency"]
    assert efficiency["month"] == "2026-11"
    users = next(a for a in efficiency["allowances"] if a["metric"] == "active_users")
    assert (users["used"], users["included"], users["percent"]) == ("3", "8", "37.5")
    assert efficiency["overage"] == {"overage": "43.50", "subtotal": "143.50", "percent": "30.3"}
    assert efficiency["storage"] == [
        {"month": "2026-10", "average_gb": "2.00", "growth_percent": None},
        {"month": "2026-11", "average_gb": "3.00", "growth_percent": "50.0"},
    ]
    assert [(f["feature"], f["flag"]) for f in efficiency["features"]] == [("audit", "barely_used"), ("sso", "")]
    assert (efficiency["idle_days"], efficiency["idle"]) == (30, [])


def test_the_default_range_is_three_closed_months_and_the_running_one(account):
    body = key(["read"], account).get("/v1/billing/analysis").json()
    assert [(m["month"], m["status"]) for m in body["months"]] == [
        ("2026-09", "not_invoiced"),
        ("2026-10", "invoiced"),
        ("2026-11", "invoiced"),
        ("2026-12", "estimate"),
    ]
    assert body["includes_estimate"] is True


def test_an_export_key_names_the_account(account):
    client = key(["export"])
    named = client.get(f"{RANGE}&account={account.public_id}")
    assert (named.status_code, named.json()["totals"]["subtotal"]) == (200, "267.00")
    missing = client.get(RANGE)
    assert (missing.status_code, missing.json()["error"]["field"]) == (400, "account")
    unknown = client.get(f"{RANGE}&account=acc_nobody")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "not_found")


def test_another_accounts_id_is_a_404(account, catalogue):
    other = worked_account(name="Umbrella", ids="u_")
    response = key(["read"], other).get(f"{RANGE}&account={account.public_id}")
    assert (response.status_code, response.json()["error"]["field"]) == (404, "account")
    own = key(["read"], other).get(f"{RANGE}&account={other.public_id}")
    assert (own.status_code, own.json()["account_id"]) == (200, other.public_id)


def test_the_analysis_refuses_what_it_must(account):
    assert Client().get(RANGE).status_code == 401
    assert key(["ingest"], account).get(RANGE).status_code == 403
    assert key(["read"], account, account.tenants.first()).get(RANGE).status_code == 403
    reader = key(["read"], account)
    for query, field, words in [
        ("from=2026-13&to=2026-11", "from", "YYYY-MM"),
        ("from=2026-10&to=november", "to", "YYYY-MM"),
        ("from=2026-11&to=2026-10", "to", "ends before it starts"),
        ("from=2024-11&to=2026-11", "to", "at most 24 months"),
        ("from=2026-11&to=2027-01", "to", "after the running month"),
    ]:
        response = reader.get(f"/v1/billing/analysis?{query}")
        error = response.json()["error"]
        assert (response.status_code, error["field"]) == (400, field), query
        assert words in error["message"]
