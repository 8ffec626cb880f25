"""GET /v1/billing/usage/current and /v1/billing/usage: quantities and charges to the cent."""

import datetime as dt

import pytest
import time_machine

from accounts.services import api_key_create
from billing.services.subscriptions import subscription_create
from tests.accounts.factories import AccountFactory
from tests.tenants.factories import MasterPartnerFactory, TenantFactory
from usage.services import events_ingest

pytestmark = pytest.mark.django_db
UTC = dt.UTC


def ingest(account, events, now):
    with time_machine.travel(now, tick=False):
        return events_ingest(account=account, items=events, now=now)


@pytest.fixture
def business_month(business):
    """The worked example: Business plan, 12 tenants, 31,000 messages and 40 GB-months in November 2026."""
    account = business["account"]
    for n in range(2, 13):
        TenantFactory(account=account, public_id=f"ten_northwind_{n}", activated_at=dt.datetime(2026, 1, 1, tzinfo=UTC))
    MasterPartnerFactory(
        account=account,
        public_id="prt_carrier_002",
        name="Fast Carrier",
        department="Operations",
        activated_at=dt.datetime(2026, 1, 1, tzinfo=UTC),
    )
    at = "2026-11-15T12:00:00Z"
    ingest(
        account,
        [
            {
                "transaction_id": "m1",
                "tenant": "ten_northwind_eu",
                "metric": "messages",
                "quantity": 12000,
                "timestamp": at,
                "properties": {"partner_id": "prt_supplier_001"},
            },
            {
                "transaction_id": "m2",
                "tenant": "ten_northwind_2",
                "metric": "messages",
                "quantity": 19000,
                "timestamp": at,
                "properties": {"partner_id": "prt_carrier_002"},
            },
            {
                "transaction_id": "s1",
                "tenant": "ten_northwind_eu",
                "metric": "storage_gb",
                "quantity": 40,
                "timestamp": "2026-11-01T00:00:00Z",
            },
        ],
        dt.datetime(2026, 11, 30, 12, tzinfo=UTC),
    )
    return business


def test_the_business_worked_example_to_the_cent(business_month, api):
    with time_machine.travel(dt.datetime(2026, 12, 1, 9, tzinfo=UTC), tick=False):
        response = api(business_month["key"]).get("/v1/billing/usage?year=2026&month=11")
    assert response.status_code == 200
    body = response.json()
    metrics = {m["metric"]: m for m in body["metrics"]}
    assert (metrics["tenants"]["quantity"], metrics["tenants"]["billable"], metrics["tenants"]["charge"]) == (
        "12",
        "2",
        "38.00",
    )
    assert (metrics["messages"]["quantity"], metrics["messages"]["billable"], metrics["messages"]["charge"]) == (
        "31000",
        "6000",
        "180.00",
    )
    assert (metrics["storage_gb"]["quantity"], metrics["storage_gb"]["billable"], metrics["storage_gb"]["charge"]) == (
        "40",
        "30",
        "45.00",
    )
    assert body["fees"] == [{"kind": "base_fee", "description": "Business base fee", "amount": "299.00"}]
    assert body["usage_to_date"] == {
        "estimated_charges": "562.00",
        "estimated_tax": "0.00",
        "estimated_total": "562.00",
    }
    assert body["period"] == {"start": "2026-11-01T00:00:00Z", "end": "2026-12-01T00:00:00Z"}


def test_partner_breakdown_shares_add_up_to_the_message_charge(business_month, api):
    with time_machine.travel(dt.datetime(2026, 12, 1, 9, tzinfo=UTC), tick=False):
        body = api(business_month["key"]).get("/v1/billing/usage?year=2026&month=11").json()
    assert body["partner_breakdown"] == [
        {
            "partner_id": "prt_carrier_002",
            "partner_name": "Fast Carrier",
            "department": "Operations",
            "message_count": "19000",
            "cost": "110.32",
        },
        {
            "partner_id": "prt_supplier_001",
            "partner_name": "Acme Supplies",
            "department": "Procurement",
            "message_count": "12000",
            "cost": "69.68",
        },
    ]
    tenants = {t["tenant_id"]: t for t in body["tenants"]}
    assert tenants["ten_northwind_eu"]["usage"]["messages"] == "12000"
    assert sum(float(t["cost"]) for t in body["tenants"]) == pytest.approx(38 + 180 + 45)


def test_current_usage_mid_month_estimates_what_the_invoice_would_show(business_month, api):
    with time_machine.travel(dt.datetime(2026, 11, 30, 12, tzinfo=UTC), tick=False):
        body = api(business_month["key"]).get("/v1/billing/usage/current").json()
    storage = next(m for m in body["metrics"] if m["metric"] == "storage_gb")
    # 40 GB held for 708 of November's 720 hours so far: 39.33333333 GB-months.
    assert storage["quantity"] == "39.33333333"
    assert storage["charge"] == "44.00"
    assert body["usage_to_date"]["estimated_charges"] == "561.00"


def test_export_keys_name_the_account(business_month, api):
    _, secret = api_key_create(name="erp", scopes=["export"])
    client = api(secret)
    with time_machine.travel(dt.datetime(2026, 12, 1, 9, tzinfo=UTC), tick=False):
        missing = client.get("/v1/billing/usage/current")
        unknown = client.get("/v1/billing/usage/current?account=acc_999999")
        found = client.get(f"/v1/billing/usage?year=2026&month=11&account={business_month['account'].public_id}")
    assert (missing.status_code, missing.json()["error"]["field"]) == (400, "account")
    assert unknown.status_code == 404
    assert found.json()["usage_to_date"]["estimated_charges"] == "562.00"


def test_a_read_key_sees_only_its_own_account(business_month, api):
    other = AccountFactory()
    _, secret = api_key_create(name="other", scopes=["read"], account=other)
    body = api(secret).get(f"/v1/billing/usage/current?account={business_month['account'].public_id}").json()
    assert body["account_id"] == other.public_id


def test_month_parameters_are_validated(business_month, api):
    client = api(business_month["key"])
    response = client.get("/v1/billing/usage?year=2026&month=13")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "month"
    with time_machine.travel(dt.datetime(2026, 11, 30, tzinfo=UTC), tick=False):
        future = client.get("/v1/billing/usage?year=2027&month=1")
    assert (future.status_code, future.json()["error"]["code"]) == (400, "future_period")


def test_an_ingest_only_key_cannot_read_usage(business, api):
    _, secret = api_key_create(name="ingest", scopes=["ingest"], account=business["account"])
    assert api(secret).get("/v1/billing/usage/current").status_code == 403


def test_trial_months_charge_nothing(plan, api):
    account = AccountFactory()
    subscription_create(
        account=account, plan_version=plan("messaging-business"), started_at=dt.datetime(2026, 11, 20, tzinfo=UTC)
    )
    _, secret = api_key_create(name="k", scopes=["read"], account=account)
    with time_machine.travel(dt.datetime(2026, 11, 26, tzinfo=UTC), tick=False):
        body = api(secret).get("/v1/billing/usage/current").json()
    assert body["usage_to_date"]["estimated_charges"] == "0.00"
    assert body["fees"] == []


def test_a_tenant_pinned_read_key_sees_only_its_tenant(business_month, api):
    account = business_month["account"]
    pinned_tenant = account.tenants.get(public_id="ten_northwind_2")
    _, pinned = api_key_create(name="tenant 2", scopes=["read"], account=account, tenant=pinned_tenant)
    with time_machine.travel(dt.datetime(2026, 12, 1, 9, tzinfo=UTC), tick=False):
        whole = api(business_month["key"]).get("/v1/billing/usage?year=2026&month=11").json()
        month = api(pinned).get("/v1/billing/usage?year=2026&month=11")
    with time_machine.travel(dt.datetime(2026, 11, 30, 12, tzinfo=UTC), tick=False):
        current = api(pinned).get("/v1/billing/usage/current")
    assert month.status_code == current.status_code == 200
    body = month.json()
    own_row = [row for row in whole["tenants"] if row["tenant_id"] == "ten_northwind_2"]
    assert own_row and len(whole["tenants"]) > 1
    assert body["tenant_id"] == "ten_northwind_2"
    assert body["tenants"] == own_row
    assert (body["metrics"], body["fees"], body["usage_to_date"], body["partner_breakdown"]) == (None, None, None, None)
    assert (body["account_id"], body["currency"], body["period"]) == (
        whole["account_id"],
        whole["currency"],
        whole["period"],
    )
    current_body = current.json()
    assert current_body["tenant_id"] == "ten_northwind_2"
    assert [row["tenant_id"] for row in current_body["tenants"]] == ["ten_northwind_2"]
    assert current_body["usage_to_date"] is None and current_body["partner_breakdown"] is None
    assert whole["tenant_id"] is None and whole["usage_to_date"] is not None


def test_an_account_or_tenant_id_with_a_nul_character_is_not_found(business, api):
    _, export = api_key_create(name="erp", scopes=["export"])
    unknown_account = api(export).get("/v1/billing/usage/current", {"account": "acc_\x00"})
    unknown_tenant = api(business["key"]).get("/v1/tenants/ten_%00/quota")
    assert (unknown_account.status_code, unknown_account.json()) == (
        404,
        {"error": {"code": "not_found", "field": "account", "message": "No account 'acc_\\x00'."}},
    )
    assert (unknown_tenant.status_code, unknown_tenant.json()) == (
        404,
        {"error": {"code": "not_found", "field": None, "message": "Not found."}},
    )
