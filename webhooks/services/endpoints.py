"""Webhook endpoints: add, edit, enable, disable, delete, rotate the secret; resend deliveries, send a test.

Who may (checked here, for whoever acts):
- staff: ``webhooks.add_webhookendpoint`` adds, ``webhooks.change_webhookendpoint`` edits, enables, disables,
  rotates, resends and tests, ``webhooks.delete_webhookendpoint`` deletes;
- portal users: the owner and admins of the endpoint's account;
- API keys: of the endpoint's account, with the ``webhooks`` scope, not pinned to a tenant;
- ``None``: Ledgerline itself (the automatic disabling of a failing endpoint).
A portal user or key of another account is told the endpoint does not exist (404).

The secret is returned once, by ``endpoint_create`` and ``endpoint_rotate_secret``; nothing else shows more
than its last characters. Every change writes a history row naming the actor (``stamp``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q

from accounts.models import Account, AccountUser, ApiKey
from billing.services.emails.queueing import email_queue_account_notice
from common import clock
from common.audit import stamp
from common.enqueue import enqueue_on_commit
from common.errors import BillingError, from_validation_error
from common.formats import iso_utc
from common.models import OutboxEvent
from common.services import public_id_next
from webhooks.event_types import EVENT_TYPE_NAMES, TEST_EVENT
from webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookSecret
from webhooks.signing import secret_generate
from webhooks.ssrf import url_check_on_save

Status = WebhookDelivery.Status
Trigger = WebhookDelivery.Trigger

DELIVER_TASK = "webhooks.deliver_due"
DISABLED_EMAIL_KIND = "webhook_disabled"
PERM_ADD = "webhooks.add_webhookendpoint"
PERM_CHANGE = "webhooks.change_webhookendpoint"
PERM_DELETE = "webhooks.delete_webhookendpoint"
PORTAL_MANAGERS = (AccountUser.Role.OWNER, AccountUser.Role.ADMIN)
EDITABLE = ("url", "description", "event_types")

ERR_NOT_FOUND = "No such webhook endpoint."
ERR_DENIED = "You may not {what}."
ERR_KEY_SCOPE = "This API key lacks the webhooks scope."
ERR_KEY_PINNED = "This API key is pinned to a tenant; webhook endpoints are the account's."
ERR_EVENT_TYPES_LIST = "Give event_types as a list of event type names (empty: every type)."
ERR_EVENT_TYPE_UNKNOWN = "Unknown event type '{name}'."
ERR_EVENT_TYPE_TEST = "webhook.test is sent on request only (send a test event); it cannot be subscribed to."
ERR_ALREADY_ENABLED = "{endpoint} is enabled already."
ERR_ALREADY_DISABLED = "{endpoint} is disabled already."
ERR_REASON = "Say why the endpoint is disabled."
ERR_DESCRIPTION = "Keep the description to 200 characters."
ERR_URL_LENGTH = "Keep the URL to 2000 characters."
ERR_SINCE_NAIVE = "Give since with its UTC offset, e.g. 2026-12-01T00:00Z."

REASON_AUTO = "Disabled automatically: every delivery failed for {hours} hours (since {since})."
TEST_MESSAGE = "This is a test event from Ledgerline."


# --- Who is acting --------------------------------------------------------------------------------------


def _not_found() -> BillingError:
    return BillingError(ERR_NOT_FOUND, code="not_found", status=404)


def _is_staff(actor: Any) -> bool:
    return isinstance(actor, AbstractBaseUser) and actor.is_active and bool(getattr(actor, "is_staff", False))


def _membership(actor: Any) -> AccountUser | None:
    if not isinstance(actor, AbstractBaseUser) or not actor.is_active:
        return None
    try:
        return actor.account_membership  # type: ignore[attr-defined]
    except AccountUser.DoesNotExist:
        return None


def authorize(actor: Any, *, account_id: int, permission: str, what: str) -> None:
    """Refuse ``actor`` acting on the webhook endpoints of account ``account_id`` (see the module's doc)."""
    if actor is None:
        return
    if isinstance(actor, ApiKey):
        if actor.account_id != account_id:
            raise _not_found()
        if actor.tenant_id is not None:
            raise BillingError(ERR_KEY_PINNED, code="permission_denied", status=403)
        if not getattr(actor, "scope_webhooks", False):
            raise BillingError(ERR_KEY_SCOPE, code="permission_denied", status=403)
        return
    if _is_staff(actor):
        if not actor.has_perm(permission):
            raise BillingError(ERR_DENIED.format(what=what), code="permission_denied", status=403)
        return
    membership = _membership(actor)
    if membership is None or membership.account_id != account_id:
        raise _not_found()
    if membership.role not in PORTAL_MANAGERS:
        raise BillingError(ERR_DENIED.format(what=what), code="permission_denied", status=403)


def _user(actor: Any) -> Any:
    return actor if isinstance(actor, AbstractBaseUser) and actor.is_authenticated else None


def actor_label(actor: Any) -> str:
    if actor is None:
        return "Ledgerline"
    if isinstance(actor, ApiKey):
        return f"API key {actor.prefix}…"
    return str(actor.get_username()) if isinstance(actor, AbstractBaseUser) else str(actor)


# --- Validation -----------------------------------------------------------------------------------------


def event_types_clean(value: Any) -> list[str]:
    """The subscribed types as given, de-duplicated in their order; only known types; never ``webhook.test``."""
    if value is None:
        return []
    if not isinstance(value, list) or any(not isinstance(item, str) for item in value):
        raise BillingError(ERR_EVENT_TYPES_LIST, code="invalid", field="event_types")
    names: list[str] = []
    for name in value:
        if name == TEST_EVENT:
            raise BillingError(ERR_EVENT_TYPE_TEST, code="invalid", field="event_types")
        if name not in EVENT_TYPE_NAMES:
            raise BillingError(ERR_EVENT_TYPE_UNKNOWN.format(name=name[:80]), code="invalid", field="event_types")
        if name not in names:
            names.append(name)
    return names


def _clean(endpoint: WebhookEndpoint) -> None:
    if len(endpoint.url) > 2000:
        raise BillingError(ERR_URL_LENGTH, code="invalid", field="url")
    if len(endpoint.description) > 200:
        raise BillingError(ERR_DESCRIPTION, code="invalid", field="description")
    url_check_on_save(endpoint.url)
    try:
        endpoint.full_clean(exclude=["account", "created_by"])
    except ValidationError as exc:
        raise from_validation_error(exc) from None


# --- Endpoints ------------------------------------------------------------------------------------------


def _secret_create(endpoint: WebhookEndpoint, now: dt.datetime) -> str:
    secret = secret_generate()
    WebhookSecret.objects.create(endpoint=endpoint, secret=secret, created_at=now)
    return secret


@transaction.atomic
def endpoint_create(
    *,
    account: Account,
    url: str,
    description: str = "",
    event_types: list[str] | None = None,
    actor: Any = None,
    now: dt.datetime | None = None,
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint of ``account`` and its signing secret, returned here once."""
    authorize(actor, account_id=account.pk, permission=PERM_ADD, what="add webhook endpoints")
    now = now or clock.now()
    endpoint = WebhookEndpoint(
        account=account,
        url=(url or "").strip(),
        description=(description or "").strip(),
        event_types=event_types_clean(event_types),
        created_at=now,
        updated_at=now,
        created_by=_user(actor),
    )
    _clean(endpoint)
    endpoint.public_id = public_id_next(prefix="we")
    stamp(endpoint, actor=actor, reason=f"created by {actor_label(actor)}"[:100], at=now)
    endpoint.save()
    return endpoint, _secret_create(endpoint, now)


@transaction.atomic
def endpoint_update(
    *, endpoint: WebhookEndpoint, data: dict[str, Any], actor: Any = None, now: dt.datetime | None = None
) -> WebhookEndpoint:
    """Edit the URL, description or subscribed types (keys of ``data`` beyond those are ignored); ``enabled``
    in ``data`` enables or disables it."""
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    authorize(actor, account_id=endpoint.account_id, permission=PERM_CHANGE, what="change webhook endpoints")
    now = now or clock.now()
    changed = []
    for field in EDITABLE:
        if field not in data:
            continue
        value = data[field]
        if field == "event_types":
            value = event_types_clean(value)
        elif isinstance(value, str):
            value = value.strip()
        if getattr(endpoint, field) != value:
            setattr(endpoint, field, value)
            changed.append(field)
    if changed:
        _clean(endpoint)
        endpoint.updated_at = now
        stamp(endpoint, actor=actor, reason=f"changed {', '.join(changed)} ({actor_label(actor)})"[:100], at=now)
        endpoint.save(update_fields=[*changed, "updated_at"])
    if "enabled" in data and bool(data["enabled"]) != endpoint.enabled:
        if data["enabled"]:
            endpoint = endpoint_enable(endpoint=endpoint, actor=actor, now=now)
        else:
            reason = f"Disabled by {actor_label(actor)}."
            endpoint = endpoint_disable(endpoint=endpoint, actor=actor, reason=reason, now=now)
    return endpoint


@transaction.atomic
def endpoint_enable(*, endpoint: WebhookEndpoint, actor: Any = None, now: dt.datetime | None = None) -> WebhookEndpoint:
    """Deliver to it again (events from now on; resend what it missed). Its failing streak starts afresh."""
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    authorize(actor, account_id=endpoint.account_id, permission=PERM_CHANGE, what="enable webhook endpoints")
    if endpoint.enabled:
        raise BillingError(ERR_ALREADY_ENABLED.format(endpoint=endpoint.public_id), code="already_enabled", status=409)
    now = now or clock.now()
    endpoint.enabled, endpoint.disabled_at, endpoint.disabled_reason = True, None, ""
    endpoint.failing_since = None
    endpoint.updated_at = now
    stamp(endpoint, actor=actor, reason=f"enabled by {actor_label(actor)}"[:100], at=now)
    endpoint.save(update_fields=["enabled", "disabled_at", "disabled_reason", "failing_since", "updated_at"])
    return endpoint


@transaction.atomic
def endpoint_disable(
    *, endpoint: WebhookEndpoint, reason: str, actor: Any = None, now: dt.datetime | None = None
) -> WebhookEndpoint:
    """Stop delivering to it: its pending deliveries are cancelled (they can be resent once it is enabled)."""
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    authorize(actor, account_id=endpoint.account_id, permission=PERM_CHANGE, what="disable webhook endpoints")
    if not endpoint.enabled:
        raise BillingError(
            ERR_ALREADY_DISABLED.format(endpoint=endpoint.public_id), code="already_disabled", status=409
        )
    if not reason.strip():
        raise BillingError(ERR_REASON, code="invalid", field="reason")
    now = now or clock.now()
    endpoint.enabled, endpoint.disabled_at, endpoint.disabled_reason = False, now, reason.strip()[:300]
    endpoint.updated_at = now
    stamp(endpoint, actor=actor, reason=f"disabled: {reason.strip()}"[:100], at=now)
    endpoint.save(update_fields=["enabled", "disabled_at", "disabled_reason", "updated_at"])
    WebhookDelivery.objects.filter(endpoint=endpoint, status=Status.PENDING, trigger=Trigger.SCHEDULED).update(
        status=Status.CANCELLED, next_attempt_at=None, updated_at=now
    )
    return endpoint


@transaction.atomic
def endpoint_delete(*, endpoint: WebhookEndpoint, actor: Any = None, now: dt.datetime | None = None) -> None:
    """Remove the endpoint with its secrets and deliveries (the history keeps its last state)."""
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    authorize(actor, account_id=endpoint.account_id, permission=PERM_DELETE, what="delete webhook endpoints")
    stamp(endpoint, actor=actor, reason=f"deleted by {actor_label(actor)}"[:100], at=now or clock.now())
    endpoint.delete()


@transaction.atomic
def endpoint_rotate_secret(
    *, endpoint: WebhookEndpoint, actor: Any = None, now: dt.datetime | None = None
) -> tuple[WebhookEndpoint, str]:
    """A new current secret, returned here once. The previous one stays valid for
    ``WEBHOOKS_SECRET_OVERLAP_HOURS``: until then every request carries both signatures. Older secrets still
    in their overlap end now."""
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    authorize(actor, account_id=endpoint.account_id, permission=PERM_CHANGE, what="rotate webhook secrets")
    now = now or clock.now()
    overlap = dt.timedelta(hours=int(getattr(settings, "WEBHOOKS_SECRET_OVERLAP_HOURS", 24)))
    live = WebhookSecret.objects.filter(endpoint=endpoint).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
    live.exclude(expires_at__isnull=True).update(expires_at=now)
    live.filter(expires_at__isnull=True).update(expires_at=now + overlap)
    secret = _secret_create(endpoint, now)
    endpoint.updated_at = now
    stamp(endpoint, actor=actor, reason=f"secret rotated by {actor_label(actor)}"[:100], at=now)
    endpoint.save(update_fields=["updated_at"])
    return endpoint, secret


# --- Resends and tests ----------------------------------------------------------------------------------


def _deliver_soon() -> None:
    enqueue_on_commit(DELIVER_TASK)


@transaction.atomic
def delivery_resend(*, delivery: WebhookDelivery, actor: Any = None, now: dt.datetime | None = None) -> WebhookDelivery:
    """Send the delivery again now, with the same ``webhook-id``: one attempt (a failed resend is not retried)."""
    delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery.pk)
    authorize(actor, account_id=delivery.account_id, permission=PERM_CHANGE, what="resend webhooks")
    now = now or clock.now()
    delivery.status, delivery.next_attempt_at, delivery.trigger = Status.PENDING, now, Trigger.RESEND
    delivery.updated_at = now
    delivery.save(update_fields=["status", "next_attempt_at", "trigger", "updated_at"])
    _deliver_soon()
    return delivery


@transaction.atomic
def endpoint_resend_failed(
    *,
    endpoint: WebhookEndpoint,
    since: dt.datetime | None = None,
    actor: Any = None,
    now: dt.datetime | None = None,
) -> int:
    """Send again every delivery of the endpoint that failed or was cancelled (of events since ``since``):
    one attempt each. Returns how many."""
    authorize(actor, account_id=endpoint.account_id, permission=PERM_CHANGE, what="resend webhooks")
    if since is not None and (since.tzinfo is None or since.utcoffset() is None):
        raise BillingError(ERR_SINCE_NAIVE, code="invalid", field="since")
    now = now or clock.now()
    failed = WebhookDelivery.objects.filter(endpoint=endpoint, status__in=[Status.FAILED, Status.CANCELLED])
    if since is not None:
        failed = failed.filter(created_at__gte=since)
    count = failed.update(status=Status.PENDING, next_attempt_at=now, trigger=Trigger.RESEND, updated_at=now)
    if count:
        _deliver_soon()
    return count


@transaction.atomic
def endpoint_send_test(
    *, endpoint: WebhookEndpoint, actor: Any = None, now: dt.datetime | None = None
) -> WebhookDelivery:
    """A ``webhook.test`` event to this endpoint only (even a disabled one), delivered and retried like others."""
    authorize(actor, account_id=endpoint.account_id, permission=PERM_CHANGE, what="send test webhooks")
    now = now or clock.now()
    data = {"account_id": endpoint.account.public_id, "endpoint_id": endpoint.public_id, "message": TEST_MESSAGE}
    # Handed over at once (delivered_at set): the fan-out never offers it to the account's other endpoints.
    event = OutboxEvent.objects.create(
        type=TEST_EVENT,
        account_id=endpoint.account_id,
        payload={"type": TEST_EVENT, "data": data},
        created_at=now,
        delivered_at=now,
    )
    delivery = WebhookDelivery.objects.create(
        account_id=endpoint.account_id,
        endpoint=endpoint,
        event=event,
        event_type=TEST_EVENT,
        trigger=Trigger.TEST,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
    _deliver_soon()
    return delivery


# --- Failing endpoints ----------------------------------------------------------------------------------


def _owner_addresses(account: Account) -> list[str]:
    owners = AccountUser.objects.filter(account=account, role=AccountUser.Role.OWNER, user__is_active=True).values_list(
        "user__email", flat=True
    )
    return [address for address in owners if address] or list(account.billing_emails or [])


@transaction.atomic
def endpoints_disable_failing(*, now: dt.datetime | None = None) -> list[WebhookEndpoint]:
    """Disable every enabled endpoint that has failed continuously (no success) for
    ``WEBHOOKS_DISABLE_AFTER_HOURS``, and e-mail its account's owners (billing contacts when it has none)."""
    now = now or clock.now()
    hours = int(getattr(settings, "WEBHOOKS_DISABLE_AFTER_HOURS", 72))
    failing = list(
        WebhookEndpoint.objects.select_for_update(skip_locked=True)
        .filter(enabled=True, failing_since__lte=now - dt.timedelta(hours=hours))
        .select_related("account")
    )
    disabled = []
    for endpoint in failing:
        assert endpoint.failing_since is not None  # the filter above
        since = endpoint.failing_since
        reason = REASON_AUTO.format(hours=hours, since=f"{since:%Y-%m-%d %H:%M} UTC")
        endpoint = endpoint_disable(endpoint=endpoint, reason=reason, now=now)
        email_queue_account_notice(
            account=endpoint.account,
            kind=DISABLED_EMAIL_KIND,
            context={
                "endpoint_id": endpoint.public_id,
                "endpoint_url": endpoint.url,
                "failing_since": iso_utc(since),
                "failing_since_text": f"{since:%-d %B %Y, %H:%M} UTC",
                "disabled_after_hours": hours,
                "disabled_reason": reason,
            },
            now=now,
            dedup_key=f"webhook_disabled:{endpoint.pk}:{iso_utc(now)}"[:120],
            recipients=_owner_addresses(endpoint.account),
        )
        disabled.append(endpoint)
    return disabled
