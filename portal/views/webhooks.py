"""The portal's webhook endpoints: every user sees them, their deliveries and attempts; the owner and admins add,
edit, enable, disable and delete endpoints, rotate a secret (shown once), send a test event and resend
deliveries. The services check the role again (``webhooks.services.endpoints.authorize``)."""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods, require_POST

from common import clock
from common.errors import BillingError
from portal.access import MANAGE_WEBHOOKS, portal_view
from portal.forms_webhooks import WebhookEndpointForm
from webhooks.event_types import EVENT_TYPES, TEST_EVENT
from webhooks.models import WebhookDelivery, event_public_id
from webhooks.selectors import (
    account_endpoints,
    delivery_attempts,
    delivery_for_account,
    delivery_public_id,
    endpoint_deliveries,
    endpoint_for_account,
    endpoint_stats,
    secret_hints,
)
from webhooks.services.endpoints import (
    delivery_resend,
    endpoint_create,
    endpoint_delete,
    endpoint_disable,
    endpoint_enable,
    endpoint_resend_failed,
    endpoint_rotate_secret,
    endpoint_send_test,
    endpoint_update,
)
from webhooks.signing import body_bytes

NEW_SECRET_SESSION = "portal_new_webhook_secret"
RECENT_DELIVERIES = 50
DISABLED_BY_USER = "Disabled in the portal by {email}."


def _can_manage(request) -> bool:
    return request.membership.role in MANAGE_WEBHOOKS


def _status(form) -> int:
    return 400 if form.is_bound and form.errors else 200


def _endpoint(request, public_id: str):
    """The account's endpoint; another account's (or none) is the portal's 404 page."""
    try:
        return endpoint_for_account(account=request.account, public_id=public_id)
    except BillingError as exc:
        raise Http404(exc.message) from exc


def _delivery(request, endpoint, delivery_id: str):
    try:
        delivery = delivery_for_account(account=request.account, public_id=delivery_id)
    except BillingError as exc:
        raise Http404(exc.message) from exc
    if delivery.endpoint_id != endpoint.pk:
        raise Http404("No such delivery of this endpoint.")
    return delivery


def _keep_secret(request, endpoint, secret: str, why: str) -> None:
    request.session[NEW_SECRET_SESSION] = {"endpoint": endpoint.public_id, "secret": secret, "why": why}


@portal_view
def webhook_list(request):
    now = clock.now()
    endpoints = list(account_endpoints(account=request.account))
    ids = [e.pk for e in endpoints]
    stats = endpoint_stats(endpoint_ids=ids, now=now)
    hints = secret_hints(endpoint_ids=ids)
    rows = [{"endpoint": e, "stats": stats.get(e.pk), "hint": hints.get(e.pk, "")} for e in endpoints]
    return render(
        request,
        "portal/webhooks.html",
        {"rows": rows, "can_manage": _can_manage(request), "event_types": EVENT_TYPES, "test_event": TEST_EVENT},
    )


@portal_view(roles=MANAGE_WEBHOOKS)
@require_http_methods(["GET", "POST"])
def webhook_create(request):
    form = WebhookEndpointForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            endpoint, secret = endpoint_create(
                account=request.account,
                url=form.cleaned_data["url"],
                description=form.cleaned_data["description"],
                event_types=form.cleaned_data["event_types"],
                actor=request.user,
            )
        except (BillingError, ValidationError) as exc:
            form.add_service_error(exc)
        else:
            _keep_secret(request, endpoint, secret, "created")
            return redirect("portal:webhook", endpoint.public_id)
    return render(request, "portal/webhook_form.html", {"form": form, "endpoint": None}, status=_status(form))


@portal_view
def webhook_detail(request, public_id):
    endpoint = _endpoint(request, public_id)
    new_secret = request.session.get(NEW_SECRET_SESSION)
    if new_secret and new_secret.get("endpoint") == endpoint.public_id:
        request.session.pop(NEW_SECRET_SESSION)
    else:
        new_secret = None
    status = request.GET.get("status") or ""
    if status not in WebhookDelivery.Status.values:
        status = ""
    recent = endpoint_deliveries(endpoint=endpoint, status=status or None).order_by("-created_at", "-id")
    deliveries = list(recent[:RECENT_DELIVERIES])
    counts = {value: 0 for value in WebhookDelivery.Status.values}
    for value in endpoint_deliveries(endpoint=endpoint).values_list("status", flat=True):
        counts[value] += 1
    context = {
        "endpoint": endpoint,
        "hint": secret_hints(endpoint_ids=[endpoint.pk]).get(endpoint.pk, ""),
        "stats": endpoint_stats(endpoint_ids=[endpoint.pk], now=clock.now()).get(endpoint.pk),
        "deliveries": [{"delivery": d, "id": delivery_public_id(d.pk)} for d in deliveries],
        "counts": counts,
        "status": status,
        "statuses": WebhookDelivery.Status.choices,
        "can_manage": _can_manage(request),
        "new_secret": new_secret,
        "form": WebhookEndpointForm(
            initial={"url": endpoint.url, "description": endpoint.description, "event_types": endpoint.event_types}
        ),
    }
    response = render(request, "portal/webhook.html", context)
    if new_secret:
        add_never_cache_headers(response)  # the back button must not bring the secret back
    return response


@portal_view(roles=MANAGE_WEBHOOKS)
@require_POST
def webhook_edit(request, public_id):
    endpoint = _endpoint(request, public_id)
    form = WebhookEndpointForm(request.POST)
    if form.is_valid():
        try:
            endpoint_update(endpoint=endpoint, data=form.cleaned_data, actor=request.user)
        except (BillingError, ValidationError) as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, f"Endpoint {endpoint.public_id} saved.")
            return redirect("portal:webhook", endpoint.public_id)
    return render(request, "portal/webhook_form.html", {"form": form, "endpoint": endpoint}, status=400)


def _act(request, public_id, action, done: str):
    endpoint = _endpoint(request, public_id)
    try:
        outcome = action(endpoint)
    except BillingError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done.format(endpoint=endpoint.public_id, outcome=outcome))
    return redirect("portal:webhook", endpoint.public_id)


@portal_view(roles=MANAGE_WEBHOOKS)
@require_POST
def webhook_test(request, public_id):
    return _act(
        request,
        public_id,
        lambda endpoint: endpoint_send_test(endpoint=endpoint, actor=request.user),
        "A test event is on its way to {endpoint}; its delivery is listed below within a few seconds.",
    )


@portal_view(roles=MANAGE_WEBHOOKS)
@require_POST
def webhook_resend_failed(request, public_id):
    return _act(
        request,
        public_id,
        lambda endpoint: endpoint_resend_failed(endpoint=endpoint, actor=request.user),
        "{outcome} failed or cancelled deliveries of {endpoint} are being sent again.",
    )


@portal_view(roles=MANAGE_WEBHOOKS)
@require_POST
def webhook_enable(request, public_id):
    return _act(
        request,
        public_id,
        lambda endpoint: endpoint_enable(endpoint=endpoint, actor=request.user),
        "{endpoint} is enabled: it receives events from now on. Resend what it missed if you need it.",
    )


@portal_view(roles=MANAGE_WEBHOOKS)
@require_POST
def webhook_disable(request, public_id):
    email = request.user.email or request.user.get_username()
    return _act(
        request,
        public_id,
        lambda endpoint: endpoint_disable(
            endpoint=endpoint, reason=DISABLED_BY_USER.format(email=email), actor=request.user
        ),
        "{endpoint} is disabled: it receives nothing until it is enabled again.",
    )


@portal_view(roles=MANAGE_WEBHOOKS)
@require_POST
def webhook_rotate(request, public_id):
    endpoint = _endpoint(request, public_id)
    try:
        endpoint, secret = endpoint_rotate_secret(endpoint=endpoint, actor=request.user)
    except BillingError as exc:
        messages.error(request, exc.message)
    else:
        _keep_secret(request, endpoint, secret, "rotated")
    return redirect("portal:webhook", endpoint.public_id)


@portal_view(roles=MANAGE_WEBHOOKS)
@require_http_methods(["GET", "POST"])
def webhook_delete(request, public_id):
    endpoint = _endpoint(request, public_id)
    if request.method == "POST":
        try:
            endpoint_delete(endpoint=endpoint, actor=request.user)
        except BillingError as exc:
            messages.error(request, exc.message)
            return redirect("portal:webhook", endpoint.public_id)
        messages.success(request, f"Endpoint {endpoint.public_id} ({endpoint.url}) deleted.")
        return redirect("portal:webhooks")
    return render(request, "portal/webhook_delete.html", {"endpoint": endpoint})


def _body(delivery) -> str:
    """The body as the receiver gets it (the same bytes every attempt signs), indented for reading."""
    event = delivery.event
    sent = body_bytes(
        event_id=event_public_id(event.pk),
        event_type=event.type,
        created_at=event.created_at,
        data=(event.payload or {}).get("data", {}),
    )
    return json.dumps(json.loads(sent), indent=2, ensure_ascii=False)


@portal_view
def webhook_delivery(request, public_id, delivery_id):
    endpoint = _endpoint(request, public_id)
    delivery = _delivery(request, endpoint, delivery_id)
    return render(
        request,
        "portal/webhook_delivery.html",
        {
            "endpoint": endpoint,
            "delivery": delivery,
            "delivery_id": delivery_public_id(delivery.pk),
            "attempts": list(delivery_attempts(delivery=delivery)),
            "body": _body(delivery),
            "can_manage": _can_manage(request),
        },
    )


@portal_view(roles=MANAGE_WEBHOOKS)
@require_POST
def webhook_delivery_resend(request, public_id, delivery_id):
    endpoint = _endpoint(request, public_id)
    delivery = _delivery(request, endpoint, delivery_id)
    try:
        delivery_resend(delivery=delivery, actor=request.user)
    except BillingError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{delivery_public_id(delivery.pk)} is being sent again with the same webhook-id.")
    return redirect(reverse("portal:webhook_delivery", args=[endpoint.public_id, delivery_public_id(delivery.pk)]))
