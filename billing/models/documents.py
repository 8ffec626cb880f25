"""What leaves the building: the PDF of each invoice and credit note, and every e-mail sent about them.

A ``Document`` is rendered by a Celery task after finalization (or issue); asking again while a render is
pending collapses into that one render. Renders are deterministic: the same invoice gives the same bytes.
An ``EmailDelivery`` records one e-mail (to the account's billing addresses) from queued to sent or
failed (or cancelled, when the invoice changed before it went out and it no longer applies), with the mail
server's reply; scheduled kinds carry a ``dedup_key`` so each is queued once (and sent at least once).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Document(models.Model):
    """The PDF of one invoice or one credit note."""

    class Status(models.TextChoices):
        PENDING = "pending", "Rendering"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    invoice = models.OneToOneField(
        "billing.Invoice", on_delete=models.CASCADE, null=True, blank=True, related_name="document"
    )
    credit_note = models.OneToOneField(
        "billing.CreditNote", on_delete=models.CASCADE, null=True, blank=True, related_name="document"
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    file = models.FileField(upload_to="documents/", blank=True, help_text="The rendered PDF.")
    sha256 = models.CharField(max_length=64, blank=True, help_text="Digest of the PDF's bytes.")
    size = models.PositiveIntegerField(default=0, help_text="Bytes.")
    pages = models.PositiveSmallIntegerField(default=0)
    requested_at = models.DateTimeField(help_text="Last time a render was asked for.")
    rendered_at = models.DateTimeField(null=True, blank=True)
    renders = models.PositiveIntegerField(default=0, help_text="How many times the PDF was rendered.")
    error = models.TextField(blank=True, help_text="Why the last render failed.")

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="document_of_one_thing",
                condition=Q(invoice__isnull=False, credit_note__isnull=True)
                | Q(invoice__isnull=True, credit_note__isnull=False),
                violation_error_message="A document belongs to exactly one invoice or one credit note.",
            )
        ]
        indexes = [models.Index(fields=["status", "requested_at"], name="document_status")]

    def __str__(self) -> str:
        return f"PDF of {self.invoice or self.credit_note}"

    @property
    def filename(self) -> str:
        return f"{self.invoice or self.credit_note}.pdf"


class EmailDelivery(models.Model):
    """One e-mail about an invoice (a credit note, a payment or the account's status because of it), with its
    fate."""

    class Kind(models.TextChoices):
        INVOICE = "invoice", "New invoice"
        REMINDER = "reminder", "Reminder before the due date"
        OVERDUE = "overdue", "Overdue notice"
        CREDIT_NOTE = "credit_note", "Credit note"
        PAYMENT_FAILED = "payment_failed", "Payment failed"
        RECEIPT = "receipt", "Payment receipt"
        PAST_DUE = "past_due", "Account past due"
        SUSPENDED = "suspended", "Account suspended"
        REACTIVATED = "reactivated", "Account reactivated"
        DISPUTE_OPENED = "dispute_opened", "Dispute opened"
        DISPUTE_MESSAGE = "dispute_message", "Dispute: new message"
        DISPUTE_RESOLVED = "dispute_resolved", "Dispute resolved or rejected"
        DISPUTE_STAFF = "dispute_staff", "Dispute: staff notice"
        PLAN_CHANGE = "plan_change", "Plan change"
        TRIAL_ENDING = "trial_ending", "Trial ending soon"
        RENEWAL_NOTICE = "renewal_notice", "Contract renewal notice"
        SUBSCRIPTION = "subscription", "Subscription changed"
        WEBHOOK_DISABLED = "webhook_disabled", "Webhook endpoint disabled"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled: no longer applies"

    invoice = models.ForeignKey(
        "billing.Invoice",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="email_deliveries",
        help_text="The invoice it is about; empty for e-mails about the subscription (plan changes, trials, renewals).",
    )
    account = models.ForeignKey(
        "accounts.Account",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        help_text="E-mails about the subscription: the account they are about.",
    )
    credit_note = models.ForeignKey(
        "billing.CreditNote", on_delete=models.CASCADE, null=True, blank=True, related_name="email_deliveries"
    )
    payment = models.ForeignKey(
        "billing.Payment",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="email_deliveries",
        help_text="The payment a receipt or a failed-payment e-mail is about.",
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    context = models.JSONField(
        default=dict,
        blank=True,
        help_text="What the e-mail says beyond its invoice (a dispute's id, state and the message sent), as queued.",
    )
    recipients = models.JSONField(default=list, help_text="The addresses it went to.")
    subject = models.CharField(max_length=300, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(
        blank=True,
        help_text="The mail server's reply to the last failed attempt, or why a cancelled e-mail no longer applied.",
    )
    dedup_key = models.CharField(
        max_length=120, unique=True, null=True, blank=True, help_text="A scheduled e-mail is queued once per key."
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Staff member who asked for a resend; empty for scheduled e-mails.",
    )
    queued_at = models.DateTimeField()
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    message_id = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-queued_at", "-id"]
        verbose_name = "e-mail delivery"
        verbose_name_plural = "e-mail deliveries"
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="email_delivery_due")]
        constraints = [
            models.CheckConstraint(
                name="email_delivery_about_something",
                condition=Q(invoice__isnull=False) | Q(account__isnull=False),
                violation_error_message="An e-mail is about an invoice or an account.",
            )
        ]

    def __str__(self) -> str:
        about = self.invoice if self.invoice_id else self.account
        return f"{self.get_kind_display()} for {about} ({self.get_status_display().lower()})"
