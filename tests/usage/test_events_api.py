"""POST /v1/events: every status code, and the stored state after each failure (nothing half-written)."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.test import override_settings

from accounts.services import api_key_create, api_key_revoke
from common.models import IdempotencyRecord
from tests.accounts.factories import AccountFactory
from tests.tenants.factories import TenantFactory
from usage.models import EventKey, UsageEvent, UsageRollup, UsageUniqueValue
from usage.services import period_close

pytestmark = pytest.mark.django_db
UTC = dt.UTC
NOW = dt.datetime(2026, 11, 26, 10, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def event(n=1, **overrides):
    base = {
        "transaction_id": f"txn-{n}",
        "tenant": "ten_northwind_eu",
        "metric": "messages",
        "quantity": 1,
        "timestamp": "2026-11-26T10:00:00Z",
    }
    return {**base, **overrides}


def post(client, body, **headers):
    return client.post("/v1/events", body, format="json", **headers)


def nothing_stored():
    return (
        UsageEvent.objects.count(),
        EventKey.objects.count(),
        UsageRollup.objects.count(),
        UsageUniqueValue.objects.count(),
    ) == (0, 0, 0, 0)


def test_a_single_event_is_accepted_and_rolled_up(business, api):
    response = post(api(business["key"]), event(quantity="2.5", properties={"partner_id": "prt_supplier_001"}))
    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "duplicates": 0}
    stored = UsageEvent.objects.get()
    assert (stored.transaction_id, stored.quantity, stored.partner, stored.is_late) == (
        "txn-1",
        Decimal("2.5"),
        business["partner"],
        False,
    )
    rollup = UsageRollup.objects.get()
    assert (rollup.hour, rollup.quantity_sum, rollup.event_count) == (
        dt.datetime(2026, 11, 26, 10, tzinfo=UTC),
        Decimal("2.5"),
        1,
    )


def test_repeated_transaction_ids_are_duplicates_within_and_across_batches(business, api):
    client = api(business["key"])
    first = post(client, {"events": [event(1), event(2), event(1, quantity=99)]})
    assert first.status_code == 202 and first.json() == {"accepted": 2, "duplicates": 1}
    second = post(client, {"events": [event(2), event(3)]})
    assert second.json() == {"accepted": 1, "duplicates": 1}
    assert UsageEvent.objects.count() == 3
    assert UsageRollup.objects.get().quantity_sum == Decimal("3")


def test_defaults_quantity_one_and_timestamp_now(business, api):
    response = post(api(business["key"]), {"transaction_id": "x", "tenant": "ten_northwind_eu", "metric": "messages"})
    assert response.status_code == 202
    stored = UsageEvent.objects.get()
    assert (stored.quantity, stored.timestamp) == (Decimal("1"), NOW)


@pytest.mark.parametrize(
    "bad, field, code",
    [
        ({"tenant": "ten_nobody"}, "tenant", "unknown_tenant"),
        ({"metric": "sms"}, "metric", "unknown_metric"),
        ({"metric": "tenants"}, "metric", "metric_not_reportable"),
        ({"quantity": -1}, "quantity", "negative_quantity"),
        ({"quantity": "ten"}, "quantity", "invalid_quantity"),
        ({"quantity": True}, "quantity", "invalid_quantity"),
        ({"quantity": "1.123456789"}, "quantity", "invalid_quantity"),
        ({"timestamp": "yesterday"}, "timestamp", "invalid_timestamp"),
        ({"timestamp": "2026-11-26T10:00:00"}, "timestamp", "invalid_timestamp"),
        ({"timestamp": "2026-11-26T10:36:00Z"}, "timestamp", "timestamp_in_future"),
        ({"timestamp": "2026-08-01T00:00:00Z"}, "timestamp", "timestamp_too_old"),
        ({"transaction_id": ""}, "transaction_id", "invalid_transaction_id"),
        ({"transaction_id": "x" * 256}, "transaction_id", "invalid_transaction_id"),
        ({"properties": ["a"]}, "properties", "invalid_properties"),
        ({"properties": {"partner_id": "prt_unknown"}}, "properties.partner_id", "unknown_partner"),
        ({"metric": "active_users"}, "properties.user_id", "missing_property"),
        ({"colour": "blue"}, "colour", "unknown_field"),
        ({"transaction_id": "a\x00b"}, "transaction_id", "invalid_transaction_id"),
        ({"tenant": "ten_\x00"}, "tenant", "unknown_tenant"),
        ({"timestamp": "0001-01-01T00:30:00+01:00"}, "timestamp", "invalid_timestamp"),
        ({"timestamp": "0001-01-01T00:00:00Z"}, "timestamp", "timestamp_too_old"),
        ({"timestamp": "0001-01-01T00:00:00-01:00"}, "timestamp", "timestamp_too_old"),
        ({"timestamp": "9999-12-31T23:59:59Z"}, "timestamp", "timestamp_in_future"),
        ({"timestamp": "9999-12-31T23:59:59-01:00"}, "timestamp", "invalid_timestamp"),
        ({"quantity": "1000000000000"}, "quantity", "invalid_quantity"),
        ({"properties": {"k": "a\x00"}}, "properties.k", "invalid_properties"),
        ({"properties": {"k" * 65: 1}}, "properties", "property_key_too_long"),
        ({"properties": {f"k{i}": i for i in range(51)}}, "properties", "too_many_properties"),
    ],
)
def test_one_invalid_event_rejects_the_whole_batch(business, api, bad, field, code):
    response = post(api(business["key"]), {"events": [event(1), event(2, **bad), event(3)]})
    assert response.status_code == 400
    body = response.json()
    assert body["error"]["code"] == "invalid_events"
    assert [(e["index"], e["field"], e["code"]) for e in body["errors"]] == [(1, field, code)]
    assert body["errors"][0]["message"]
    assert nothing_stored()


def test_missing_required_fields_are_each_reported(business, api):
    response = post(
        api(business["key"]),
        {
            "events": [
                {"tenant": "ten_northwind_eu", "metric": "messages"},
                {"transaction_id": "a", "metric": "messages"},
                "nope",
            ]
        },
    )
    assert response.status_code == 400
    assert [(e["index"], e["field"], e["code"]) for e in response.json()["errors"]] == [
        (0, "transaction_id", "required"),
        (1, "tenant", "required"),
        (2, None, "invalid_event"),
    ]
    assert nothing_stored()


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'{"events": []}', b'{"events": {}}'])
def test_malformed_bodies_are_400(business, api, body):
    response = api(business["key"]).post("/v1/events", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] in ("invalid_json", "invalid_events")
    assert nothing_stored()


def test_no_key_or_a_bad_key_is_401(business, api):
    assert post(api(None), event()).status_code == 401
    response = post(api("ll_000000000000_" + "0" * 48), event())
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert nothing_stored()


def test_a_revoked_key_is_401(business, api):
    api_key, secret = api_key_create(name="old", scopes=["ingest"], account=business["account"])
    api_key_revoke(api_key=api_key)
    assert post(api(secret), event()).status_code == 401


def test_a_key_without_ingest_scope_is_403(business, api):
    _, secret = api_key_create(name="reader", scopes=["read"], account=business["account"])
    response = post(api(secret), event())
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "This API key lacks the 'ingest' scope."
    assert nothing_stored()


def test_a_tenant_of_another_account_is_403(business, api):
    TenantFactory(
        account=AccountFactory(), public_id="ten_someone_else", activated_at=dt.datetime(2026, 1, 1, tzinfo=UTC)
    )
    response = post(api(business["key"]), {"events": [event(1), event(2, tenant="ten_someone_else")]})
    assert response.status_code == 403
    assert response.json()["errors"] == [
        {
            "index": 1,
            "field": "tenant",
            "code": "tenant_not_allowed",
            "message": "Tenant 'ten_someone_else' is not one this API key may report for.",
        }
    ]
    assert nothing_stored()


def test_a_tenant_pinned_key_reports_only_for_its_tenant(business, api):
    other = TenantFactory(
        account=business["account"], public_id="ten_northwind_us", activated_at=dt.datetime(2026, 1, 1, tzinfo=UTC)
    )
    _, secret = api_key_create(name="pinned", scopes=["ingest"], account=business["account"], tenant=business["tenant"])
    assert post(api(secret), event(1, tenant=other.public_id)).status_code == 403
    assert post(api(secret), event(2)).status_code == 202
    assert UsageEvent.objects.count() == 1


def test_more_than_ten_thousand_events_is_413(business, api):
    response = post(api(business["key"]), {"events": [event(i) for i in range(10_001)]})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "batch_too_large"
    assert nothing_stored()


def test_ten_thousand_events_fit_in_one_batch(business, api):
    response = post(api(business["key"]), {"events": [event(i) for i in range(10_000)]})
    assert response.json() == {"accepted": 10_000, "duplicates": 0}
    assert UsageRollup.objects.get().quantity_sum == Decimal(10_000)


def test_the_rate_limit_is_429_with_retry_after(business, api):
    api_key, secret = api_key_create(
        name="slow", scopes=["ingest"], account=business["account"], rate_limit_per_minute=2
    )
    client = api(secret)
    assert [post(client, event(i)).status_code for i in range(2)] == [202, 202]
    response = post(client, event(3))
    assert response.status_code == 429
    assert int(response["Retry-After"]) in range(1, 61)
    assert response.json()["error"]["code"] == "rate_limited"
    assert UsageEvent.objects.count() == 2


def test_late_usage_inside_the_grace_window_is_billed_next_month(business, api):
    period_close(
        account=business["account"], month=dt.date(2026, 10, 1), closed_at=dt.datetime(2026, 11, 22, tzinfo=UTC)
    )
    response = post(api(business["key"]), event(1, timestamp="2026-10-31T23:00:00Z", quantity=5))
    assert response.status_code == 202
    stored = UsageEvent.objects.get()
    assert (stored.is_late, stored.billing_month) == (True, dt.date(2026, 11, 1))


def test_usage_for_an_invoiced_month_after_its_grace_window_is_refused(business, api):
    period_close(
        account=business["account"], month=dt.date(2026, 10, 1), closed_at=dt.datetime(2026, 11, 2, tzinfo=UTC)
    )
    response = post(api(business["key"]), {"events": [event(1), event(2, timestamp="2026-10-31T23:00:00Z")]})
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert (error["index"], error["code"]) == (1, "period_closed")
    assert "2026-10" in error["message"]
    assert nothing_stored()


def test_events_outside_the_tenants_life_are_refused(business, api):
    TenantFactory(account=business["account"], public_id="ten_new", activated_at=dt.datetime(2026, 11, 20, tzinfo=UTC))
    response = post(api(business["key"]), event(1, tenant="ten_new", timestamp="2026-11-10T00:00:00Z"))
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "tenant_inactive"
    assert nothing_stored()


def test_idempotency_key_replays_the_first_response(business, api):
    client = api(business["key"])
    first = post(client, {"events": [event(1), event(2)]}, HTTP_IDEMPOTENCY_KEY="batch-7")
    again = post(client, {"events": [event(1), event(2)]}, HTTP_IDEMPOTENCY_KEY="batch-7")
    assert first.json() == again.json() == {"accepted": 2, "duplicates": 0}
    assert again["Idempotent-Replayed"] == "true"
    assert UsageEvent.objects.count() == 2


def test_idempotency_key_with_another_body_is_409(business, api):
    client = api(business["key"])
    post(client, event(1), HTTP_IDEMPOTENCY_KEY="k1")
    response = post(client, event(2), HTTP_IDEMPOTENCY_KEY="k1")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert UsageEvent.objects.count() == 1


@override_settings(USAGE_LATE_GRACE_DAYS=0)
def test_grace_window_is_configurable(business, api):
    period_close(
        account=business["account"], month=dt.date(2026, 10, 1), closed_at=dt.datetime(2026, 11, 25, tzinfo=UTC)
    )
    response = post(api(business["key"]), event(1, timestamp="2026-10-31T23:00:00Z"))
    assert response.json()["errors"][0]["code"] == "period_closed"


def test_odd_but_valid_numbers_are_normalised(business, api):
    response = post(
        api(business["key"]),
        {
            "events": [
                event(1, quantity="0E+5000"),
                event(2, quantity=2.5e-3),
                event(3, quantity="999999999999.99999999"),
            ]
        },
    )
    assert response.json() == {"accepted": 3, "duplicates": 0}
    assert sorted(UsageEvent.objects.values_list("quantity", flat=True)) == [
        Decimal("0"),
        Decimal("0.0025"),
        Decimal("999999999999.99999999"),
    ]
    assert UsageRollup.objects.get().quantity_sum == Decimal("1000000000000.00249999")


def test_property_names_of_64_characters_and_50_properties_are_accepted(business, api):
    properties = {f"{i:02d}".ljust(64, "k"): i for i in range(50)}
    response = post(api(business["key"]), event(1, properties=properties))
    assert (response.status_code, response.json()) == (202, {"accepted": 1, "duplicates": 0})
    assert UsageEvent.objects.get().properties == properties


def test_a_huge_property_name_or_a_huge_number_of_properties_is_refused_without_echo(business, api):
    client = api(business["key"])
    long_name = post(client, event(1, properties={"x" * 1_000_000: 1}))
    many = post(client, event(2, properties={f"p{i}": i for i in range(10_000)}))
    assert long_name.status_code == many.status_code == 400
    assert long_name.json()["errors"] == [
        {
            "index": 0,
            "field": "properties",
            "code": "property_key_too_long",
            "message": "A property name has at most 64 characters.",
        }
    ]
    assert many.json()["errors"] == [
        {
            "index": 0,
            "field": "properties",
            "code": "too_many_properties",
            "message": "An event has at most 50 properties.",
        }
    ]
    assert nothing_stored()


# Text PostgreSQL cannot store (NUL) in a field name, a property name, the tenant or the metric: a 400 whose
# field and message quote it escaped, stored for replay like any other 400.
NUL_BODIES = [
    (
        b'{"transaction_id": "x", "tenant": "ten_northwind_eu", "metric": "messages", "x\\u0000": 1}',
        "x\\x00",
        "unknown_field",
        "Unknown field 'x\\x00'; an event has: transaction_id, tenant, metric, quantity, timestamp, properties.",
    ),
    (
        b'{"transaction_id": "x", "tenant": "ten_northwind_eu", "metric": "messages", "properties": {"k\\u0000": 1}}',
        "properties.k\\x00",
        "invalid_properties",
        "properties must be a JSON object of strings, numbers or booleans.",
    ),
    (
        b'{"transaction_id": "x", "tenant": "ten_\\u0000", "metric": "messages"}',
        "tenant",
        "unknown_tenant",
        "No tenant 'ten_\\x00'.",
    ),
    (
        b'{"transaction_id": "x", "tenant": "ten_northwind_eu", "metric": "messages\\u0000"}',
        "metric",
        "unknown_metric",
        "No metric 'messages\\x00'.",
    ),
]


@pytest.mark.parametrize("body, field, code, message", NUL_BODIES)
def test_a_nul_character_with_an_idempotency_key_is_a_400_that_replays(business, api, body, field, code, message):
    client = api(business["key"])
    expected = {
        "error": {"code": "invalid_events", "field": "events", "message": "1 invalid event(s); nothing was stored."},
        "errors": [{"index": 0, "field": field, "code": code, "message": message}],
    }
    plain = client.post("/v1/events", body, content_type="application/json")
    first = client.post("/v1/events", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="nul-1")
    again = client.post("/v1/events", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="nul-1")
    assert (plain.status_code, plain.json()) == (first.status_code, first.json()) == (400, expected)
    assert (again.status_code, again.json(), again["Idempotent-Replayed"]) == (400, expected, "true")
    assert list(IdempotencyRecord.objects.values_list("key", "status_code")) == [("nul-1", 400)]
    assert nothing_stored()


def test_an_unknown_field_name_is_quoted_cut_short(business, api):
    response = post(api(business["key"]), event(1, **{"x" * 1_000_000: 1}))
    assert response.json()["errors"] == [
        {
            "index": 0,
            "field": "x" * 64 + "…",
            "code": "unknown_field",
            "message": "Unknown field '"
            + "x" * 64
            + "…'; an event has: transaction_id, tenant, metric, quantity, timestamp, properties.",
        }
    ]
