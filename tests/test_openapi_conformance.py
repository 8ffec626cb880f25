"""The OpenAPI schema tells the truth: schemathesis generates requests from the live schema (``/api/schema/``),
valid and invalid ones and the schema's examples, for every operation with every kind of API key, sends them
to the production WSGI stack (``config.wsgi``: the lean events handler in front of Django) and checks every
answer: no server error, a documented status code and content type, and a body matching the documented
schema."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import schemathesis
import time_machine
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.models import Account
from accounts.services import api_key_create
from billing.models import Invoice, Payment
from billing.services.payments import payment_record
from billing.services.subscriptions import subscription_create
from common.periods import month_period
from disputes.models import Dispute
from disputes.services import dispute_open
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import close
from tests.tenants.factories import MasterPartnerFactory, TenantFactory

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 26, 10, 30, tzinfo=UTC)
OPERATIONS = [
    "GET /v1/accounts/{account}/billing",
    "GET /v1/billing/allocation",
    "GET /v1/billing/analysis",
    "GET /v1/billing/forecast",
    "GET /v1/billing/journal",
    "GET /v1/billing/recommendations",
    "GET /v1/billing/usage",
    "GET /v1/billing/usage/current",
    "GET /v1/disputes",
    "GET /v1/disputes/{id}",
    "GET /v1/export/credit-notes",
    "GET /v1/export/events",
    "GET /v1/export/invoices",
    "GET /v1/export/payments",
    "GET /v1/export/usage",
    "GET /v1/invoices",
    "GET /v1/invoices/{number}",
    "GET /v1/invoices/{number}/pdf",
    "GET /v1/payments",
    "GET /v1/subscription",
    "GET /v1/tenants/{tenant}/quota",
    "POST /v1/disputes",
    "POST /v1/disputes/{id}/messages",
    "POST /v1/events",
    "POST /v1/subscription/changes",
    *(
        [
            "GET /v1/webhooks/endpoints",
            "POST /v1/webhooks/endpoints",
            "GET /v1/webhooks/endpoints/{id}",
            "PATCH /v1/webhooks/endpoints/{id}",
            "DELETE /v1/webhooks/endpoints/{id}",
            "POST /v1/webhooks/endpoints/{id}/rotate-secret",
            "POST /v1/webhooks/endpoints/{id}/test",
            "GET /v1/webhooks/endpoints/{id}/deliveries",
            "POST /v1/webhooks/endpoints/{id}/resend-failed",
            "POST /v1/webhooks/deliveries/{id}/resend",
        ]
    ),
]
# Checked with the keys that matter to them (and an endpoint and deliveries to find) in
# tests/webhooks/test_openapi_webhooks.py.
CHECKED_ELSEWHERE = "/v1/webhooks/"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Per operation and key: enough to reach every answer of these small endpoints, few enough that the run
# takes about half a minute on a busy 2-core machine.
MAX_EXAMPLES = 25
HYPOTHESIS = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,  # the same requests on every run: no flakiness, no example database
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # a failure is reported as found (with a curl line), unshrunk
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def keys(plan) -> dict[str, str | None]:
    """An account with the tenants and partner the schema's examples name, a dispute case on its invoice, and a
    key of each kind (the subscription key's plan changes move the account between the catalogue's plans)."""
    account = AccountFactory(name="Acme")
    subscription_create(
        account=account, plan_version=plan("messaging-business"), started_at=dt.datetime(2026, 1, 1, tzinfo=UTC)
    )
    tenant = TenantFactory(account=account, public_id="ten_acme_eu", activated_at=dt.datetime(2026, 1, 1, tzinfo=UTC))
    TenantFactory(account=account, public_id="ten_acme_us", activated_at=dt.datetime(2026, 1, 1, tzinfo=UTC))
    MasterPartnerFactory(
        account=account, public_id="prt_supplier_001", activated_at=dt.datetime(2026, 1, 1, tzinfo=UTC)
    )
    # An October invoice, partly paid, for the invoice and payment endpoints to find.
    close(period=month_period(2026, 10), now=dt.datetime(2026, 11, 1, 0, 5, tzinfo=UTC))
    with time_machine.travel(dt.datetime(2026, 11, 5, tzinfo=UTC), tick=False):
        payment_record(account=account, amount=Decimal("100.00"), provider=Payment.Provider.BANK_TRANSFER)
    kinds = {
        "ingest": (["ingest"], account, None),
        "read": (["read"], account, None),
        "read+ingest": (["ingest", "read"], account, None),
        "tenant-pinned": (["ingest", "read"], account, tenant),
        "disputes": (["disputes"], account, None),
        "subscription": (["subscription"], account, None),
        "export": (["export"], None, None),
    }
    found: dict[str, str | None] = {"no key": None}
    rows = {}
    for name, (scopes, owner, pinned) in kinds.items():
        rows[name], found[name] = api_key_create(name=name, scopes=scopes, account=owner, tenant=pinned)
    with time_machine.travel(dt.datetime(2026, 11, 20, 9, 0, tzinfo=UTC), tick=False):
        dispute_open(
            account=account,
            invoice=Invoice.objects.get(account=account, number__isnull=False),
            subject="Messages over-counted",
            description="We sent fewer messages in October.",
            source=Dispute.Source.API,
            channel=Dispute.Channel.API,
            actor=rows["disputes"],
        )
    return found


# Requests go through the WSGI stack in this thread, which ends each request as a server does (closing the
# database connection if it is in a transaction): the test runs outside one.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_every_answer_is_documented_by_the_schema(keys):
    from config.wsgi import application

    with time_machine.travel(NOW, tick=True):
        schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert sorted(f"{op.method.upper()} {op.path}" for op in operations) == sorted(OPERATIONS)
        (account_id,) = Account.objects.values_list("public_id", flat=True)
        (invoice_number,) = Invoice.objects.exclude(number=None).values_list("number", flat=True)
        (dispute_id,) = Dispute.objects.values_list("public_id", flat=True)
        for operation in operations:
            if operation.path.startswith(CHECKED_ELSEWHERE):
                continue
            for name, secret in keys.items():
                headers = {} if secret is None else {"Authorization": f"Bearer {secret}"}
                # Generated tenants are never found: the quota of the account's own tenants is asked too.
                own_tenants = [
                    operation.as_strategy(headers=headers, path_parameters={"tenant": tenant})
                    for tenant in ("ten_acme_eu", "ten_acme_us")
                    if "{tenant}" in operation.path
                ]
                # Likewise the account's own billing, invoices and case, and (export keys) its lists.
                own_ledger = [
                    operation.as_strategy(headers=headers, path_parameters={parameter: value})
                    for parameter, value in (("account", account_id), ("number", invoice_number), ("id", dispute_id))
                    if f"{{{parameter}}}" in operation.path
                ]
                if operation.path in (
                    "/v1/invoices",
                    "/v1/payments",
                    "/v1/subscription",
                    "/v1/billing/journal",
                    "/v1/billing/allocation",
                    "/v1/billing/forecast",
                    "/v1/billing/analysis",
                    "/v1/billing/recommendations",
                    "/v1/export/events",
                    "/v1/export/invoices",
                    "/v1/export/credit-notes",
                    "/v1/export/payments",
                ) or (operation.path == "/v1/disputes" and operation.method.upper() == "GET"):
                    own_ledger.append(operation.as_strategy(headers=headers, query={"account": account_id}))
                # The journal and allocation of October (invoiced) and November (its invoice issued on the 1st).
                if operation.path in ("/v1/billing/journal", "/v1/billing/allocation", "/v1/export/usage"):
                    for month in (10, 11):
                        for query in (
                            {"year": 2026, "month": month},
                            {"year": 2026, "month": month, "account": account_id},
                        ):
                            own_ledger.append(operation.as_strategy(headers=headers, query=query))
                if operation.path == "/v1/billing/analysis":  # October (invoiced) to November (running)
                    for query in ({"from": "2026-10", "to": "2026-11"}, {"from": "2026-10", "account": account_id}):
                        own_ledger.append(operation.as_strategy(headers=headers, query=query))
                strategy = st.one_of(
                    operation.as_strategy(GenerationMode.POSITIVE, headers=headers),
                    operation.as_strategy(GenerationMode.NEGATIVE, headers=headers),
                    *schema.get_strategies_from_examples(operation),
                    *own_tenants,
                    *own_ledger,
                )

                @HYPOTHESIS
                @given(case=strategy)
                def answers_as_documented(case, headers):
                    case.validate_response(case.call(headers=headers), checks=CHECKS)

                try:
                    answers_as_documented(headers=headers)
                except Exception as exc:
                    raise AssertionError(f"{operation.method.upper()} {operation.path} with key: {name}") from exc


def test_the_schema_states_what_the_events_endpoint_takes():
    from django.test import Client

    document = Client().get("/api/schema/?format=json").json()
    components = document["components"]["schemas"]
    body = document["paths"]["/v1/events"]["post"]["requestBody"]
    assert (list(body["content"]), body["required"]) == (["application/json"], True)
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/EventsRequest"}
    assert components["EventsRequest"] == {
        "oneOf": [{"$ref": "#/components/schemas/Event"}, {"$ref": "#/components/schemas/EventsBatch"}]
    }
    assert components["EventsBatch"]["properties"]["events"] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/Event"},
        "minItems": 1,
        "maxItems": 10_000,
    }
    event = components["Event"]
    assert (event["required"], event["additionalProperties"]) == (["transaction_id", "tenant", "metric"], False)
    assert event["properties"]["quantity"]["oneOf"] == [
        {"type": "number", "minimum": 0, "maximum": 1_000_000_000_000, "exclusiveMaximum": True},
        {"type": "string", "pattern": "^[0-9]{1,12}(\\.[0-9]{1,8})?$"},
    ]
    assert event["properties"]["properties"]["maxProperties"] == 50
    month = {p["name"]: p for p in document["paths"]["/v1/billing/usage"]["get"]["parameters"]}
    assert (month["year"]["schema"], month["month"]["schema"]) == (
        {"type": "integer", "minimum": 2000, "maximum": 9998},
        {"type": "integer", "minimum": 1, "maximum": 12},
    )
    assert components["EventErrors"]["required"] == components["Error"]["required"] == ["error"]
