"""The demo's webhook inboxes on the demo server (see ``demo.webhook_inbox``)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from common import clock
from demo.webhook_inbox import inbox_answer
from webhooks.models import WebhookEndpoint, WebhookSecret


@csrf_exempt
@require_POST
def webhook_inbox(request: HttpRequest, name: str) -> JsonResponse:
    endpoint_ids = [
        e.pk
        for e in WebhookEndpoint.objects.filter(url__endswith=request.path)
        if e.url.split("://", 1)[-1].endswith(request.get_host() + request.path)
    ]
    if not endpoint_ids:
        return JsonResponse({"error": "no endpoint delivers to this inbox"}, status=404)
    now = clock.now()
    secrets = [
        s.secret
        for s in WebhookSecret.objects.filter(endpoint_id__in=endpoint_ids)
        if s.expires_at is None or s.expires_at > now
    ]
    status, answer = inbox_answer(dict(request.headers), request.body, secrets)
    return JsonResponse(answer, status=status)
