"""The schema tells the truth about the webhooks operations: schemathesis generates requests from the live schema
(valid, invalid and the schema's examples) for each of them with every kind of key that matters (none, another
scope, the webhooks scope, another account's webhooks key), sends them through the production WSGI stack and checks
every answer is documented (status, content type, body)."""

from __future__ import annotations

import datetime as dt

import pytest
import schemathesis
import time_machine
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.services import api_key_create
from common.outbox import outbox_emit
from tests.accounts.factories import AccountFactory
from webhooks.models import WebhookDelivery
from webhooks.selectors import delivery_public_id
from webhooks.services.delivery import webhooks_dispatch
from webhooks.services.endpoints import endpoint_create

UTC = dt.UTC
NOW = dt.datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
HYPOTHESIS = hypothesis_settings(
    max_examples=15,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_every_webhooks_answer_is_documented(settings):
    from config.wsgi import application

    # Sends (tests and resends run the delivery task once committed) go to a port nobody listens on.
    settings.WEBHOOKS_CONNECT_TIMEOUT_SECONDS = 1
    with time_machine.travel(NOW, tick=True):
        account = AccountFactory(name="Acme")
        endpoint, _ = endpoint_create(account=account, url="http://127.0.0.1:9/hooks")
        outbox_emit(type="billing.payment_failed", account_id=account.pk, data={}, now=NOW, dedup_key="f:1")
        webhooks_dispatch()  # a delivery for the resend operation to find
        keys = {
            "no key": None,
            "read": api_key_create(name="r", scopes=["read"], account=account)[1],
            "webhooks": api_key_create(name="w", scopes=["webhooks"], account=account)[1],
            "other account": api_key_create(name="o", scopes=["webhooks"], account=AccountFactory(name="Globex"))[1],
        }
        schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
        operations = [
            result.ok() for result in schema.get_all_operations() if result.ok().path.startswith("/v1/webhooks")
        ]
        assert len(operations) == 10
        for operation in operations:
            for name, secret in keys.items():
                headers = {} if secret is None else {"Authorization": f"Bearer {secret}"}
                own = []
                if "{id}" in operation.path:
                    delivery = WebhookDelivery.objects.filter(endpoint=endpoint).first()
                    value = (
                        delivery_public_id(delivery.pk)
                        if "/deliveries/" in operation.path and delivery
                        else endpoint.public_id
                    )
                    own.append(operation.as_strategy(headers=headers, path_parameters={"id": value}))
                strategy = st.one_of(
                    operation.as_strategy(GenerationMode.POSITIVE, headers=headers),
                    operation.as_strategy(GenerationMode.NEGATIVE, headers=headers),
                    *schema.get_strategies_from_examples(operation),
                    *own,
                )

                @HYPOTHESIS
                @given(case=strategy)
                def answers_as_documented(case, headers):
                    case.validate_response(case.call(headers=headers), checks=CHECKS)

                try:
                    answers_as_documented(headers=headers)
                except Exception as exc:
                    raise AssertionError(f"{operation.method.upper()} {operation.path} with key: {name}") from exc
