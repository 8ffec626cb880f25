"""The subscription API: ``GET /v1/subscription`` (the account's subscription, plan, term, limits and pending change)
and ``POST /v1/subscription/changes`` (a plan change, under the portal's rules, ``Idempotency-Key`` honoured).

Vandelay is on Startup (USD 99.00 a month) since January 1, 2026, with 3 tenants (all included). Requests are made
on November 16, 2026 at 00:00 UTC: November has 30 days, 15 behind and 15 ahead, so a change to Business now is
Startup for Nov 1–15 (99 × 15/30 = 49.50) and Business for Nov 16–30 (299 × 15/30 = 149.50): USD 199.00 against
USD 99.00 as things stand.
"""

import datetime as dt
from decimal import Decimal as D

import pytest
import time_machine

from accounts.authentication import HasSubscriptionScope
from accounts.services import ERR_KEY_SUBSCRIPTION_PINNED, api_key_create
from billing.apis_subscription import ERR_TENANT_PINNED, ERR_UNKNOWN_PLAN
from billing.models import Contract, Plan, PlanChangeRequest
from billing.schema_subscription import ERR_UNKNOWN_FIELD
from billing.services.catalogue import ChargeSpec, plan_create, plan_version_create
from billing.services.plan_changes import ERR_CHANGE_PENDING
from common.errors import BillingError
from tenants.models import Tenant
from tests.accounts.factories import AccountFactory, StaffUserFactory
from tests.billing.cycle import JAN_1, subscribe
from tests.tenants.factories import MasterPartnerFactory, TenantFactory

pytestmark = pytest.mark.django_db
UTC = dt.UTC
NOV_16 = dt.datetime(2026, 11, 16, tzinfo=UTC)
CHANGES = "/v1/subscription/changes"


@pytest.fixture(autouse=True)
def _november_16():
    with time_machine.travel(NOV_16, tick=False):
        yield


def account_on(plan, code="messaging-startup", *, name="Vandelay", tenants=3, partners=0):
    account = AccountFactory(name=name, billing_emails=["ap@vandelay.example"], tax_rate=D("0"))
    subscribe(account, plan(code), started_at=JAN_1)
    for n in range(tenants):
        TenantFactory(account=account, public_id=f"ten_{name.lower()}_{n}", activated_at=JAN_1)
    for n in range(partners):
        MasterPartnerFactory(account=account, public_id=f"prt_{name.lower()}_{n}", activated_at=JAN_1)
    return account


def keys_of(account) -> dict[str, str | None]:
    tenant = Tenant.objects.filter(account=account).first()
    kinds = {
        "ingest": (["ingest"], account, None),
        "read": (["read"], account, None),
        "subscription": (["subscription"], account, None),
        "export": (["export"], None, None),
        "tenant-pinned": (["ingest", "read"], account, tenant),
    }
    secrets = {name: api_key_create(name=name, scopes=s, account=a, tenant=t)[1] for name, (s, a, t) in kinds.items()}
    return secrets | {"none": None, "bad": "ll_0_0"}


@pytest.fixture
def vandelay(plan):
    account = account_on(plan)
    return {"account": account, "secret": keys_of(account)}


def change(api, vandelay, body, **headers):
    return api(vandelay["secret"]["subscription"]).post(CHANGES, body, format="json", **headers)


# --- Who may -------------------------------------------------------------------------------------------

READS = {
    "ingest": 403,
    "read": 200,
    "subscription": 200,
    "export": 200,
    "tenant-pinned": 403,
    "none": 401,
    "bad": 401,
}
WRITES = {
    "ingest": 403,
    "read": 403,
    "subscription": 201,
    "export": 403,
    "tenant-pinned": 403,
    "none": 401,
    "bad": 401,
}


@pytest.mark.parametrize(("kind", "expected"), READS.items())
def test_read_subscription_and_export_keys_read_the_subscription(vandelay, api, kind, expected):
    account = vandelay["account"].public_id
    query = f"?account={account}" if kind == "export" else ""
    response = api(vandelay["secret"][kind]).get(f"/v1/subscription{query}")
    assert response.status_code == expected
    if expected == 200:
        assert (response.json()["account_id"], response.json()["plan"]["code"]) == (account, "messaging-startup")


@pytest.mark.parametrize(("kind", "expected"), WRITES.items())
def test_only_a_subscription_key_requests_a_change(vandelay, api, kind, expected, settings):
    settings.SUBSCRIPTIONS_UPGRADES_APPLY_AT_ONCE = False
    response = api(vandelay["secret"][kind]).post(
        CHANGES, {"plan": "messaging-business", "timing": "now"}, format="json"
    )
    assert response.status_code == expected
    assert PlanChangeRequest.objects.count() == (1 if expected == 201 else 0)


def test_a_refused_key_is_told_why(vandelay, api):
    pinned = api(vandelay["secret"]["tenant-pinned"]).get("/v1/subscription")
    assert pinned.json() == {"error": {"code": "permission_denied", "field": None, "message": ERR_TENANT_PINNED}}
    read = api(vandelay["secret"]["read"]).post(CHANGES, {"plan": "messaging-business", "timing": "now"}, format="json")
    assert read.json() == {
        "error": {"code": "permission_denied", "field": None, "message": HasSubscriptionScope.message}
    }
    assert HasSubscriptionScope.message == "This API key lacks the 'subscription' scope."


def test_a_subscription_key_cannot_be_pinned_to_a_tenant(vandelay):
    tenant = Tenant.objects.filter(account=vandelay["account"]).first()
    with pytest.raises(BillingError) as refused:
        api_key_create(name="pinned", scopes=["subscription"], account=vandelay["account"], tenant=tenant)
    assert (refused.value.message, refused.value.field) == (ERR_KEY_SUBSCRIPTION_PINNED, "tenant")


def test_an_export_key_names_the_account(vandelay, api):
    client = api(vandelay["secret"]["export"])
    missing = client.get("/v1/subscription")
    unknown = client.get("/v1/subscription?account=acc_999999")
    assert (missing.status_code, missing.json()["error"]["field"]) == (400, "account")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "not_found")


def test_an_account_that_never_subscribed_has_no_subscription(api):
    account = AccountFactory(name="Pendant")
    _, secret = api_key_create(name="read", scopes=["read"], account=account)
    response = api(secret).get("/v1/subscription")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "no_subscription")


# --- The document --------------------------------------------------------------------------------------


def test_the_subscription_document(vandelay, api):
    response = api(vandelay["secret"]["read"]).get("/v1/subscription")
    document = response.json()
    subscription = vandelay["account"].subscriptions.get()

    assert {key: document[key] for key in document if key != "limits"} == {
        "id": subscription.public_id,
        "account_id": vandelay["account"].public_id,
        "status": "active",
        "plan": {
            "code": "messaging-startup",
            "name": "Startup",
            "version": 1,
            "interval": "month",
            "base_fee": "99.00",
            "annual_discount_percent": "0.00",
            "currency": "USD",
        },
        "trial_end": "2026-01-15T00:00:00Z",
        "current_period": {"start": "2026-11-01T00:00:00Z", "end": "2026-12-01T00:00:00Z"},
        "cancel_at": None,
        "term": None,
        "account_manager": None,
        "pending_change": None,
    }
    limits = {limit["metric"]: limit for limit in document["limits"]}
    assert limits["tenants"] == {
        "metric": "tenants",
        "name": "Active tenants",
        "unit": "per tenant-month",
        "included": "3",
        "limit": "3",
        "limit_window": "period",
        "pricing_model": "per_unit",
        "unit_price": "29",
    }
    assert limits["master_partners"]["pricing_model"] == "included_only"
    assert (limits["master_partners"]["included"], limits["master_partners"]["limit"]) == (None, "10")


def test_the_document_names_the_contract_term_and_account_manager(vandelay, api):
    manager = StaffUserFactory(username="dscully", first_name="Dana", last_name="Scully", email="dana@ll.example")
    Contract.objects.create(
        account=vandelay["account"],
        public_id="CT-000001",
        reference="MSA-0142",
        term_start=JAN_1,
        term_months=36,
        term_end=dt.datetime(2029, 1, 1, tzinfo=UTC),
        auto_renew=True,
        commitment_amount=D("3000.00"),
        commitment_period=Contract.CommitmentPeriod.YEAR,
        account_manager=manager,
    )
    document = api(vandelay["secret"]["subscription"]).get("/v1/subscription").json()
    assert document["term"] == {
        "contract_id": "CT-000001",
        "reference": "MSA-0142",
        "start": "2026-01-01T00:00:00Z",
        "end": "2029-01-01T00:00:00Z",
        "months": 36,
        "auto_renew": True,
        "commitment": {"amount": "3000.00", "period": "year"},
        "cancellation": "term_end",
    }
    assert document["account_manager"] == {"name": "Dana Scully", "email": "dana@ll.example"}


# --- Requesting a change -------------------------------------------------------------------------------


def test_an_upgrade_that_waits_is_answered_with_the_change_and_its_preview(vandelay, api, settings):
    settings.SUBSCRIPTIONS_UPGRADES_APPLY_AT_ONCE = False
    response = change(api, vandelay, {"plan": "messaging-business", "timing": "now", "note": "More tenants."})

    assert response.status_code == 201
    document = response.json()
    requested = PlanChangeRequest.objects.get()
    assert {key: document[key] for key in document if key != "preview"} == {
        "id": requested.public_id,
        "state": "pending",
        "from_plan": {"code": "messaging-startup", "name": "Startup", "version": 1, "interval": "month"},
        "to_plan": {"code": "messaging-business", "name": "Business", "version": 1, "interval": "month"},
        "timing": "now",
        "direction": "upgrade",
        "channel": "api",
        "needs_approval": True,
        "requested_at": "2026-11-16T00:00:00Z",
        "requested_by": requested.requested_by_label,
        "note": "More tenants.",
        "effective_at": "2026-11-16T00:00:00Z",
        "decided_at": None,
        "decision_note": None,
        "applied_at": None,
    }
    assert requested.requested_by_label.startswith("API key ll_") and requested.requested_by is None
    preview = document["preview"]
    assert (preview["current_subtotal"], preview["new_subtotal"], preview["difference"]) == (
        "99.00",
        "199.00",
        "100.00",
    )
    base_fees = [(line["amount"], line["first_day"], line["last_day"]) for line in preview["lines"]]
    assert ("49.50", "2026-11-01", "2026-11-15") in base_fees and ("149.50", "2026-11-16", "2026-11-30") in base_fees
    assert (preview["overage"], preview["refusals"]) == ([], [])

    read = api(vandelay["secret"]["read"]).get("/v1/subscription").json()
    assert read["pending_change"]["id"] == requested.public_id
    assert read["plan"]["code"] == "messaging-startup"  # nothing moves until billing staff approve


def test_an_upgrade_that_need_not_wait_is_applied(vandelay, api, settings):
    settings.SUBSCRIPTIONS_UPGRADES_APPLY_AT_ONCE = True
    response = change(api, vandelay, {"plan": "messaging-business", "timing": "now"})

    assert (response.status_code, response.json()["state"], response.json()["applied_at"]) == (
        201,
        "applied",
        "2026-11-16T00:00:00Z",
    )
    read = api(vandelay["secret"]["read"]).get("/v1/subscription").json()
    assert (read["plan"]["code"], read["pending_change"]) == ("messaging-business", None)


def test_a_change_at_the_period_end_is_scheduled(vandelay, api, settings):
    settings.SUBSCRIPTIONS_UPGRADES_APPLY_AT_ONCE = True
    response = change(api, vandelay, {"plan": "messaging-business", "version": 1, "timing": "period_end"})

    assert (response.json()["state"], response.json()["effective_at"]) == ("scheduled", "2026-12-01T00:00:00Z")


def test_a_second_request_while_one_waits_is_a_conflict(vandelay, api, settings):
    settings.SUBSCRIPTIONS_UPGRADES_APPLY_AT_ONCE = False
    first = change(api, vandelay, {"plan": "messaging-business", "timing": "now"})
    second = change(api, vandelay, {"plan": "messaging-enterprise", "timing": "now"})

    assert second.status_code == 409
    assert second.json() == {
        "error": {
            "code": "change_pending",
            "field": None,
            "message": ERR_CHANGE_PENDING.format(change=first.json()["id"], state="waiting for approval"),
        }
    }


def test_an_idempotency_key_replays_the_request(vandelay, api, settings):
    settings.SUBSCRIPTIONS_UPGRADES_APPLY_AT_ONCE = False
    body = {"plan": "messaging-business", "timing": "now"}
    first = change(api, vandelay, body, HTTP_IDEMPOTENCY_KEY="upgrade-1")
    again = change(api, vandelay, body, HTTP_IDEMPOTENCY_KEY="upgrade-1")

    assert (first.status_code, again.status_code, again["Idempotent-Replayed"]) == (201, 201, "true")
    assert again.json() == first.json()
    assert PlanChangeRequest.objects.count() == 1
    other = change(api, vandelay, {**body, "timing": "period_end"}, HTTP_IDEMPOTENCY_KEY="upgrade-1")
    assert (other.status_code, other.json()["error"]["code"]) == (409, "idempotency_key_reused")


def test_a_refusal_is_replayed_too(vandelay, api):
    body = {"plan": "messaging-gold", "timing": "now"}
    first = change(api, vandelay, body, HTTP_IDEMPOTENCY_KEY="gold-1")
    again = change(api, vandelay, body, HTTP_IDEMPOTENCY_KEY="gold-1")
    assert (first.status_code, again.status_code, again["Idempotent-Replayed"]) == (400, 400, "true")


@pytest.mark.parametrize(
    ("body", "field", "code", "message"),
    [
        (
            {"plan": "messaging-gold", "timing": "now"},
            "plan",
            "unknown_plan",
            ERR_UNKNOWN_PLAN.format(plan="messaging-gold"),
        ),
        (
            {"plan": "messaging-business", "timing": "tomorrow"},
            "timing",
            "invalid_choice",
            '"tomorrow" is not a valid choice.',
        ),
        ({"plan": "messaging-business", "timing": "now", "when": "now"}, "when", "unknown_field", ERR_UNKNOWN_FIELD),
        ({"timing": "now"}, "plan", "required", "This field is required."),
        (
            {"plan": "messaging-business", "version": 7, "timing": "now"},
            "version",
            "unknown_version",
            "Business has no published version 7.",
        ),
        (
            {"plan": "messaging-startup", "timing": "now"},
            "plan",
            "change_not_allowed",
            "The account is on Startup v1 already.",
        ),
        (
            {"plan": "messaging-custom-enterprise", "timing": "now"},
            "plan",
            "change_not_allowed",
            "Custom Enterprise is priced on request: ask your account manager for a contract.",
        ),
    ],
)
def test_invalid_input_names_the_field_and_the_reason(vandelay, api, body, field, code, message):
    response = change(api, vandelay, body)
    assert (response.status_code, response.json()["error"]) == (400, {"code": code, "field": field, "message": message})
    assert not PlanChangeRequest.objects.exists()


def test_a_downgrade_the_usage_does_not_fit_is_refused_with_the_reason(plan, api):
    crowded = account_on(plan, "messaging-business", name="Crowded", partners=12)
    _, secret = api_key_create(name="plans", scopes=["subscription"], account=crowded)
    response = api(secret).post(CHANGES, {"plan": "messaging-startup", "timing": "now"}, format="json")
    assert (response.status_code, response.json()["error"]) == (
        400,
        {
            "code": "change_not_allowed",
            "field": "plan",
            "message": "Master partners: 12 this month, and Startup allows 10; remove 2 before moving.",
        },
    )


def test_another_accounts_custom_plan_is_unknown_and_ones_own_is_offered(vandelay, api, plan, settings):
    settings.SUBSCRIPTIONS_UPGRADES_APPLY_AT_ONCE = True
    other = AccountFactory(name="Globex")
    for owner, code in ((other, "custom-globex"), (vandelay["account"], "custom-vandelay")):
        custom = plan_create(code=code, name=f"Custom {owner.name}", product=Plan.Product.MESSAGING, account=owner)
        plan_version_create(
            plan=custom,
            currency="USD",
            base_fee=D("500.00"),
            charges=[ChargeSpec("messages", included_quantity=D("50000"), unit_price=D("0.01"))],
            publish=True,
        )

    theirs = change(api, vandelay, {"plan": "custom-globex", "timing": "now"})
    ours = change(api, vandelay, {"plan": "custom-vandelay", "timing": "now"})

    assert (theirs.status_code, theirs.json()["error"]["code"]) == (400, "unknown_plan")
    # A move to a custom plan is a change of contract: it always waits for billing staff.
    assert (ours.status_code, ours.json()["state"], ours.json()["needs_approval"]) == (201, "pending", True)
