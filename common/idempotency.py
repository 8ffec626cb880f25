"""One idempotency rule for every POST of the API: send ``Idempotency-Key: <unique string>`` and a retry
with the same key and body gets the stored response (with ``Idempotent-Replayed: true``); the same key
with a different body is a 409. Keys are per API key and kept for 24 hours."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable

from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.response import Response

from common.api import error_response
from common.models import IdempotencyRecord

HEADER = "Idempotency-Key"
RETENTION = dt.timedelta(hours=24)
ERR_REUSED = "This Idempotency-Key was already used with a different request body."
ERR_IN_PROGRESS = "A request with this Idempotency-Key is still being processed; retry shortly."
ERR_KEY = "An Idempotency-Key is 1 to 255 printable characters."
# Outcomes worth replaying. Rate limits and server errors are not: the retry should run again.
STORED = range(200, 500)
NOT_STORED = {409, 429}


def idempotent(request, handler: Callable[[], Response]) -> Response:
    key = request.headers.get(HEADER)
    if key is None:
        return handler()
    if not 0 < len(key) <= 255 or not key.isprintable():
        return error_response([{"code": "invalid_idempotency_key", "field": HEADER, "message": ERR_KEY}], 400)
    api_key = request.auth
    digest = hashlib.sha256(request.method.encode() + b" " + request.path.encode() + b"\n" + request.body).hexdigest()
    now = timezone.now()
    try:
        with transaction.atomic():
            IdempotencyRecord.objects.filter(api_key=api_key, key=key, created_at__lt=now - RETENTION).delete()
            record = IdempotencyRecord.objects.create(api_key=api_key, key=key, request_hash=digest, created_at=now)
    except IntegrityError:
        existing = IdempotencyRecord.objects.get(api_key=api_key, key=key)
        if existing.request_hash != digest:
            return error_response([{"code": "idempotency_key_reused", "field": HEADER, "message": ERR_REUSED}], 409)
        if existing.status_code is None:
            return error_response(
                [{"code": "idempotency_key_in_progress", "field": HEADER, "message": ERR_IN_PROGRESS}],
                409,
                {"Retry-After": "1"},
            )
        return Response(existing.body, status=existing.status_code, headers={"Idempotent-Replayed": "true"})
    try:
        response = handler()
    except BaseException:
        record.delete()
        raise
    if response.status_code in STORED and response.status_code not in NOT_STORED:
        record.status_code, record.body = response.status_code, response.data
        record.save(update_fields=["status_code", "body"])
    else:
        record.delete()
    return response
