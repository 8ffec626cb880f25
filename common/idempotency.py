"""One idempotency rule for every POST of the API: send ``Idempotency-Key: <unique string>`` and a retry
with the same key and body gets the stored response (with ``Idempotent-Replayed: true``); the same key
with a different body is a 409. Keys are per API key and kept for 24 hours."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError, transaction
from django.db.models import Model, Q
from rest_framework.response import Response

from common import clock
from common.api import error_response
from common.models import IdempotencyRecord

if TYPE_CHECKING:
    from rest_framework.request import Request

logger = logging.getLogger(__name__)
HEADER = "Idempotency-Key"
RETENTION = dt.timedelta(hours=24)
ABANDONED = dt.timedelta(minutes=5)  # an in-progress record this old belongs to a request that died
ERR_REUSED = "This Idempotency-Key was already used with a different request body."
ERR_IN_PROGRESS = "A request with this Idempotency-Key is still being processed; retry shortly."
ERR_KEY = "An Idempotency-Key is 1 to 255 printable characters."
ERR_TOO_BIG = "The request body is too large; send at most 10,000 events per request."
# Outcomes worth replaying. Rate limits and server errors are not: the retry should run again.
STORED = range(200, 500)
NOT_STORED = {409, 429}


def _claim(
    api_key_id: int, key: str, digest: str, now: dt.datetime
) -> tuple[IdempotencyRecord | None, IdempotencyRecord | None]:
    """Claim ``key`` for this request: ``(new record, None)``, or ``(None, the record that holds it)``."""
    for _attempt in range(3):
        try:
            with transaction.atomic():
                # Expired records, and in-progress ones whose request died with its process, give way.
                IdempotencyRecord.objects.filter(api_key_id=api_key_id, key=key).filter(
                    Q(created_at__lt=now - RETENTION) | Q(status_code__isnull=True, created_at__lt=now - ABANDONED)
                ).delete()
                return IdempotencyRecord.objects.create(
                    api_key_id=api_key_id, key=key, request_hash=digest, created_at=now
                ), None
        except IntegrityError:
            existing = IdempotencyRecord.objects.filter(api_key_id=api_key_id, key=key).first()
            if existing is not None:
                return None, existing
            # The holder finished with an error and gave the key back: try again.
    return None, None


def idempotent(request: Request, handler: Callable[[], Response]) -> Response:
    key = request.headers.get(HEADER)
    if key is None:
        return handler()
    if not 0 < len(key) <= 255 or not key.isprintable():
        return error_response([{"code": "invalid_idempotency_key", "field": HEADER, "message": ERR_KEY}], 400)
    try:
        body = request.body
    except RequestDataTooBig:
        return error_response([{"code": "payload_too_large", "field": None, "message": ERR_TOO_BIG}], 413)
    assert request.method is not None  # a request the server parsed always has one
    digest = hashlib.sha256(request.method.encode() + b" " + request.path.encode() + b"\n" + body).hexdigest()
    # The idempotent endpoints authenticate with ApiKeyAuthentication, which sets ``request.auth`` to the key
    # (an ``accounts.ApiKey`` row; common imports no app, so only its id is used here).
    record, existing = _claim(cast(Model, request.auth).pk, key, digest, clock.now())
    if record is None:
        if existing is not None and existing.request_hash != digest:
            return error_response([{"code": "idempotency_key_reused", "field": HEADER, "message": ERR_REUSED}], 409)
        if existing is None or existing.status_code is None:
            return error_response(
                [{"code": "idempotency_key_in_progress", "field": HEADER, "message": ERR_IN_PROGRESS}],
                409,
                {"Retry-After": "1"},
            )
        return Response(existing.body, status=existing.status_code, headers={"Idempotent-Replayed": "true"})
    # Invariant: once claimed, the key is either given its outcome or given back, whatever fails; never left
    # "in progress" for a retry to wait out.
    try:
        response = handler()
    except BaseException:
        _release(record)
        raise
    if response.status_code in STORED and response.status_code not in NOT_STORED:
        try:
            with transaction.atomic():
                record.status_code, record.body = response.status_code, response.data
                record.save(update_fields=["status_code", "body"])
        except Exception:
            # The request was served; only its replay is lost. A retry with the key runs again.
            logger.exception("Could not store the outcome of Idempotency-Key %r; the key is given back.", key)
            _release(record)
    else:
        _release(record)
    return response


def _release(record: IdempotencyRecord) -> None:
    try:
        IdempotencyRecord.objects.filter(pk=record.pk).delete()
    except Exception:  # e.g. the database went away: the record gives way once abandoned (ABANDONED)
        logger.exception("Could not give back Idempotency-Key %r.", record.key)
