"""The demo's webhook endpoints and what they received: the portal account's ERP bridge (every event type) and its
usage feed (the hourly usage report, invoices and thresholds), delivered, signed and verified by the demo's own
inboxes (``demo.webhook_inbox``); another account's endpoint on an address where nothing answers, retrying; and an
endpoint that had failed for four days, disabled by the schedule's check with its owners e-mailed. Written through
the same services as the portal, the admin and the schedule."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db.models import Count

from accounts.models import Account
from common.periods import month_containing, previous_month
from demo.webhook_inbox import INBOX_PATH, temporary_inbox
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services.delivery import webhooks_deliver_due, webhooks_run
from webhooks.services.endpoints import endpoint_create, endpoint_send_test, endpoints_disable_failing
from webhooks.usage_report import usage_reports_emit

ERP = "erp-bridge"
USAGE_FEED = "usage-feed"
USAGE_FEED_TYPES = [
    "billing.usage_reported",
    "billing.invoice_generated",
    "billing.usage_threshold",
    "billing.limit_exceeded",
]
# Nothing listens on the discard port: every attempt is refused, and the delivery waits for its next retry.
UNREACHABLE_URL = "http://127.0.0.1:9/ledgerline/events"
DISABLE_AFTER_DAYS = 4


def _others(main: Account) -> list[Account]:
    return list(Account.objects.exclude(pk=main.pk).order_by("public_id")[:2])


def demo_webhooks(*, now: dt.datetime, base_url: str | None = None) -> bool:
    """Create the endpoints and deliver the book's events to them; False when the demo has endpoints already."""
    if WebhookEndpoint.objects.exists():
        return False
    main = Account.objects.earliest("public_id")
    others = _others(main)
    # The endpoints were there before last month began, so the whole book's events are theirs.
    since = previous_month(month_containing(now)).start - dt.timedelta(days=1)
    secrets: dict[str, list[str]] = {}
    with temporary_inbox(base_url or settings.LEDGERLINE_BASE_URL, secrets) as inbox:
        for name, description, types in (
            (ERP, "ERP bridge: every event", []),
            (USAGE_FEED, "Usage feed: hourly usage, invoices and thresholds", USAGE_FEED_TYPES),
        ):
            path = INBOX_PATH.format(name=name)
            _, secret = endpoint_create(
                account=main, url=inbox + path, description=description, event_types=types, now=since
            )
            secrets[path] = [secret]
        if others:
            endpoint_create(
                account=others[0],
                url=UNREACHABLE_URL,
                description="Old CRM hook (switched off on their side)",
                now=since,
            )
        stale = None
        if len(others) > 1:
            stale, _ = endpoint_create(
                account=others[1], url=UNREACHABLE_URL, description="Staging receiver", now=since
            )
        usage_reports_emit(now=now)
        webhooks_run(now=now)
        erp = WebhookEndpoint.objects.get(account=main, url=inbox + INBOX_PATH.format(name=ERP))
        endpoint_send_test(endpoint=erp, now=now)
        webhooks_run(now=now)
        _retry_local_misses(WebhookEndpoint.objects.filter(account=main), now=now)
    if stale is not None:
        # As if its deliveries had failed for four days: the schedule's check disables it and e-mails the owners.
        WebhookEndpoint.objects.filter(pk=stale.pk).update(failing_since=now - dt.timedelta(days=DISABLE_AFTER_DAYS))
        endpoints_disable_failing(now=now)
    return True


def _retry_local_misses(endpoints, *, now: dt.datetime, rounds: int = 3) -> None:
    """The demo's own receivers run in this process: an attempt they missed (a busy machine, a connection refused
    while the receiver's queue was full) is retried at once rather than at its scheduled time, so they end up with
    every event; the missed attempt stays in the log."""
    for _ in range(rounds):
        missed = WebhookDelivery.objects.filter(endpoint__in=endpoints, status=WebhookDelivery.Status.PENDING)
        if not missed.update(next_attempt_at=now):
            return
        webhooks_deliver_due(now=now)


def demo_webhooks_summary() -> list[str]:
    lines = ["Webhooks (portal: Webhooks; admin: Webhooks):"]
    for endpoint in WebhookEndpoint.objects.select_related("account").order_by("account__public_id", "id"):
        counts = dict(
            WebhookDelivery.objects.filter(endpoint=endpoint).values_list("status").annotate(n=Count("id")).order_by()
        )
        state = "enabled" if endpoint.enabled else "disabled"
        figures = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no deliveries"
        lines.append(f"  {endpoint.account.name} {endpoint.public_id} ({state}): {endpoint.description}: {figures}")
    return lines
