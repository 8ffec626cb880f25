"""An endpoint that fails without a success for 72 hours is disabled, with the reason in its history and an
e-mail to the account's owners; a success resets the streak; enabling it again starts afresh."""

import datetime as dt

import pytest

from billing.models import EmailDelivery
from common.outbox import outbox_emit
from tests.webhooks.conftest import NOW
from tests.webhooks.factories import endpoint_for
from webhooks.models import WebhookDelivery
from webhooks.services.delivery import webhooks_run
from webhooks.services.endpoints import endpoint_enable

pytestmark = pytest.mark.django_db
HOUR = dt.timedelta(hours=1)


def emit(account, key, at):
    outbox_emit(type="billing.invoice_generated", account_id=account.pk, data={}, now=at, dedup_key=f"k:{key}")


def hourly_runs(clock, hours):
    for _ in range(hours):
        clock.shift(HOUR)
        webhooks_run()


def test_failing_for_72_hours_disables_the_endpoint_and_emails_the_owners(account, receiver, clock):
    endpoint, _ = endpoint_for(account, receiver.url)
    receiver.status = 503
    emit(account, "1", NOW)
    webhooks_run()
    endpoint.refresh_from_db()
    assert endpoint.failing_since == NOW

    hourly_runs(clock, 71)
    endpoint.refresh_from_db()
    assert endpoint.enabled is True  # 71 hours: still trying

    hourly_runs(clock, 1)
    endpoint.refresh_from_db()
    assert (endpoint.enabled, endpoint.disabled_at) == (False, NOW + 72 * HOUR)
    assert endpoint.disabled_reason == (
        "Disabled automatically: every delivery failed for 72 hours (since 2026-12-07 09:00 UTC)."
    )
    last = endpoint.history.order_by("-history_id").first()
    assert (last.enabled, last.history_change_reason) == (False, f"disabled: {endpoint.disabled_reason}"[:100])
    mail = EmailDelivery.objects.get(kind="webhook_disabled")
    assert mail.recipients == ["owner@northwind.example"]
    assert mail.account_id == account.pk
    assert mail.subject == f"Webhook endpoint {endpoint.public_id} disabled after 72 hours of failed deliveries"
    assert mail.context["endpoint_url"] == receiver.url

    # Nothing is sent to a disabled endpoint, and later events are not handed to it.
    sent = len(receiver.received)
    emit(account, "2", NOW + 72 * HOUR)
    hourly_runs(clock, 3)
    assert len(receiver.received) == sent
    assert WebhookDelivery.objects.count() == 1


def test_a_success_resets_the_failing_streak(account, receiver, clock):
    endpoint, _ = endpoint_for(account, receiver.url)
    receiver.status = 503
    emit(account, "1", NOW)
    webhooks_run()
    hourly_runs(clock, 40)
    receiver.status = 200
    emit(account, "2", NOW + 40 * HOUR)
    webhooks_run()
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None

    receiver.status = 503
    emit(account, "3", NOW + 40 * HOUR)
    clock.shift(dt.timedelta(minutes=1))
    webhooks_run()
    hourly_runs(clock, 40)  # 80 hours after the first failure, 40 after the last success
    endpoint.refresh_from_db()
    assert endpoint.enabled is True
    assert endpoint.failing_since == NOW + 40 * HOUR + dt.timedelta(minutes=1)
    assert not EmailDelivery.objects.filter(kind="webhook_disabled").exists()


def test_enabling_again_clears_the_failing_streak(account, receiver, clock):
    endpoint, _ = endpoint_for(account, receiver.url)
    receiver.status = 503
    emit(account, "1", NOW)
    webhooks_run()
    hourly_runs(clock, 72)
    endpoint.refresh_from_db()
    assert endpoint.enabled is False

    endpoint = endpoint_enable(endpoint=endpoint)

    endpoint.refresh_from_db()
    assert (endpoint.enabled, endpoint.disabled_at, endpoint.disabled_reason, endpoint.failing_since) == (
        True,
        None,
        "",
        None,
    )
    assert endpoint.history.order_by("-history_id").first().history_change_reason == "enabled by Ledgerline"
