"""The audit trail of the export API: one row per export request, written when its response has finished."""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q

from accounts.models import EXPORT_DATASETS


class ExportRequest(models.Model):
    """Who exported what, when, how much, and whether the client got all of it. Written by
    ``exports.services.export_request_record`` when the response finishes (for a stream, when its last byte was
    sent or the client went away). Append-only."""

    class Format(models.TextChoices):
        JSON = "json", "JSON page"
        NDJSON = "ndjson", "NDJSON stream"
        CSV = "csv", "CSV stream"

    class Status(models.TextChoices):
        COMPLETED = "completed", "Completed"
        INTERRUPTED = "interrupted", "Interrupted"
        REFUSED = "refused", "Refused"

    api_key = models.ForeignKey(
        "accounts.ApiKey", on_delete=models.PROTECT, related_name="export_requests", help_text="The key that asked."
    )
    dataset = models.CharField(max_length=16, choices=[(d, d) for d in EXPORT_DATASETS])
    format = models.CharField(max_length=8, choices=Format.choices)
    filters = models.JSONField(default=dict, blank=True, help_text="The query as the client sent it.")
    row_count = models.PositiveBigIntegerField(
        default=0,
        help_text="Rows sent to the client (for an interrupted stream: those of the chunks the server finished "
        "writing).",
    )
    last_cursor = models.CharField(
        max_length=64, blank=True, help_text="The cursor of the last row sent: where the client resumes."
    )
    status = models.CharField(
        max_length=12,
        choices=Status.choices,
        help_text="Completed: every row was sent. Interrupted: the client went away or the server failed "
        "mid-stream. Refused: the request was answered with an error.",
    )
    http_status = models.PositiveSmallIntegerField(default=200)
    error = models.CharField(max_length=500, blank=True, help_text="Why it was refused or interrupted.")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = "export request"
        constraints = [
            models.CheckConstraint(
                name="export_request_finished_after_start", condition=Q(finished_at__gte=F("started_at"))
            )
        ]
        indexes = [models.Index(fields=["api_key", "-started_at"], name="export_request_key_started")]

    def __str__(self) -> str:
        return f"{self.dataset} {self.format} {self.started_at:%Y-%m-%d %H:%M:%S} ({self.status})"
