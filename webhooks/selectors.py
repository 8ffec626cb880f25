"""Reads of webhook endpoints and deliveries, for the API, the admin and the portal."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet

from accounts.models import Account
from common.errors import BillingError
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookSecret

DELIVERY_ID_RE = re.compile(r"whd_([0-9]{1,18})")
SUCCESS_RATE_WINDOW = dt.timedelta(days=7)

ERR_ENDPOINT_NOT_FOUND = "No webhook endpoint '{id}'."
ERR_DELIVERY_NOT_FOUND = "No webhook delivery '{id}'."


def delivery_public_id(delivery_id: int) -> str:
    return f"whd_{delivery_id:06d}"


def _shown(value: str) -> str:
    return value[:60] if value.isprintable() else "…"


def account_endpoints(*, account: Account) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(account=account).select_related("account").order_by("created_at", "id")


def endpoint_for_account(*, account: Account, public_id: str) -> WebhookEndpoint:
    """The account's endpoint ``public_id``; a 404 for another account's, or none (the same answer)."""
    endpoint = (
        account_endpoints(account=account).filter(public_id=public_id).first() if public_id.isprintable() else None
    )
    if endpoint is None:
        raise BillingError(ERR_ENDPOINT_NOT_FOUND.format(id=_shown(public_id)), code="not_found", status=404)
    return endpoint


def delivery_for_account(*, account: Account, public_id: str) -> WebhookDelivery:
    """The account's delivery ``public_id`` (``whd_…``); a 404 for another account's, or none."""
    match = DELIVERY_ID_RE.fullmatch(public_id)
    delivery = (
        WebhookDelivery.objects.filter(account=account, pk=int(match.group(1))).select_related("endpoint").first()
        if match
        else None
    )
    if delivery is None:
        raise BillingError(ERR_DELIVERY_NOT_FOUND.format(id=_shown(public_id)), code="not_found", status=404)
    return delivery


def endpoint_deliveries(*, endpoint: WebhookEndpoint, status: str | None = None) -> QuerySet[WebhookDelivery]:
    deliveries = WebhookDelivery.objects.filter(account_id=endpoint.account_id, endpoint=endpoint).select_related(
        "endpoint"
    )
    return deliveries.filter(status=status) if status else deliveries


def delivery_attempts(*, delivery: WebhookDelivery) -> QuerySet[WebhookAttempt]:
    return WebhookAttempt.objects.filter(delivery=delivery).order_by("at", "id")


def secret_hints(*, endpoint_ids: list[int]) -> dict[int, str]:
    """Each endpoint's current secret as lists show it: ``whsec_…`` and its last characters."""
    rows = WebhookSecret.objects.filter(endpoint_id__in=endpoint_ids, expires_at__isnull=True).values_list(
        "endpoint_id", "secret"
    )
    return {endpoint_id: f"whsec_…{secret[-4:]}" for endpoint_id, secret in rows}


@dataclass(frozen=True)
class EndpointStats:
    attempts: int
    succeeded: int

    @property
    def success_rate(self) -> float | None:
        """Share of 2xx answers among the window's attempts; None without attempts."""
        return None if not self.attempts else self.succeeded / self.attempts


def endpoint_stats(*, endpoint_ids: list[int], now: dt.datetime) -> dict[int, EndpointStats]:
    """Attempts and successes of each endpoint over the last ``SUCCESS_RATE_WINDOW``."""
    rows = (
        WebhookAttempt.objects.filter(delivery__endpoint_id__in=endpoint_ids, at__gte=now - SUCCESS_RATE_WINDOW)
        .values("delivery__endpoint_id")
        .annotate(n=Count("id"), ok=Count("id", filter=Q(status_code__gte=200, status_code__lt=300)))
    )
    return {row["delivery__endpoint_id"]: EndpointStats(attempts=row["n"], succeeded=row["ok"]) for row in rows}
