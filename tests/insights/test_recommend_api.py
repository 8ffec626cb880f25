"""``GET /v1/billing/recommendations``: a read key reads its own account's recommendations, an export key those of
an account it may export; other accounts' are a 404, no key a 401, a key of another scope a 403."""

import datetime as dt

import pytest
import time_machine
from django.test import Client

from accounts.services import api_key_create
from insights.services import recommendations_refresh
from tests.accounts.factories import AccountFactory
from tests.insights.test_recommend_worked import NOW, messaging_account

pytestmark = pytest.mark.django_db
URL = "/v1/billing/recommendations"


@pytest.fixture(autouse=True)
def _frozen_time():
    with time_machine.travel(NOW + dt.timedelta(hours=1), tick=False):
        yield


@pytest.fixture
def fabrikam(plan):
    account = messaging_account(plan, "messaging-enterprise", tenants=8, messages=20_000, name="Fabrikam")
    recommendations_refresh(account=account, now=NOW, months=3)
    return account


def key(scopes, account=None, **limits) -> Client:
    _, secret = api_key_create(name="k", scopes=scopes, account=account, **limits)
    return Client(headers={"Authorization": f"Bearer {secret}"})


def test_a_read_key_reads_its_own_accounts_recommendations(fabrikam):
    response = key(["read"], fabrikam).get(URL)

    assert response.status_code == 200
    body = response.json()
    assert body["account"] == fabrikam.public_id
    plan = next(r for r in body["recommendations"] if r["kind"] == "plan")
    assert plan["plan"] == {"code": "messaging-business", "name": "Business", "version": 1, "interval": "month"}
    assert (plan["current_monthly"], plan["proposed_monthly"], plan["saving_monthly"], plan["saving_percent"]) == (
        "999.00",
        "299.00",
        "700.00",
        "70.07",
    )
    assert (plan["months_start"], plan["months_end"]) == ("2026-09-01", "2026-12-01")
    assert body["recommendations"][0]["saving_monthly"] == "700.00"  # the biggest saving first


def test_another_accounts_read_key_finds_none_of_them(fabrikam):
    other = AccountFactory(name="Contoso")
    theirs = key(["read"], other)

    response = theirs.get(URL, {"account": fabrikam.public_id})

    assert response.status_code == 404
    assert response.json()["error"]["field"] == "account"
    assert theirs.get(URL).json() == {"account": other.public_id, "recommendations": []}


def test_an_export_key_reads_an_account_it_may_export_and_not_another(fabrikam):
    other = AccountFactory(name="Contoso")
    limited = key(["export"], export_accounts=[other])

    assert limited.get(URL, {"account": fabrikam.public_id}).status_code == 404
    assert limited.get(URL, {"account": other.public_id}).json()["recommendations"] == []
    everything = key(["export"]).get(URL, {"account": fabrikam.public_id})
    assert everything.status_code == 200
    assert len(everything.json()["recommendations"]) >= 2  # plan and annual terms
    assert key(["export"]).get(URL).status_code == 400  # which account?


def test_no_key_is_a_401_and_a_key_without_read_scope_a_403(fabrikam):
    assert Client().get(URL).status_code == 401
    assert key(["ingest"], fabrikam).get(URL).status_code == 403
