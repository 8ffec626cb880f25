"""A dispute case: its state machine, the lines it disputes, its thread of messages and attachments, the credits
proposed to settle it and its timeline.

The case's state moves only through the transitions declared on ``Dispute`` (django-fsm-2): each names the
states it leaves from and the one it reaches. The services in ``disputes.services`` call them, check who may
(roles, permissions) and what the step needs (a reason, an amount), and write the timeline entry. Nothing
assigns ``state`` directly, and a database constraint keeps the state and its resolution consistent.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django_fsm import FSMField, transition
from simple_history.models import HistoricalRecords

from common.money import (
    AMOUNT_DECIMAL_PLACES,
    AMOUNT_MAX_DIGITS,
    CURRENCY_CHOICES,
    CURRENCY_MINOR_UNITS,
    QUANTITY_DECIMAL_PLACES,
)

QUANTITY_MAX_DIGITS = 20


def _amount(**kwargs):
    return models.DecimalField(max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES, **kwargs)


class Dispute(models.Model):
    """A customer's challenge of an invoice (or of some of its lines). Worked by billing staff in the admin;
    settled by a credit note, by an explanation, or rejected."""

    class State(models.TextChoices):
        OPEN = "open", "Open"
        INVESTIGATING = "investigating", "Investigating"
        WAITING_ON_CUSTOMER = "waiting_on_customer", "Waiting on customer"
        RESOLVED = "resolved", "Resolved"
        REJECTED = "rejected", "Rejected"

    class Resolution(models.TextChoices):
        CREDITED = "credited", "Credited"
        EXPLAINED = "explained", "Explained and closed"
        WITHDRAWN = "withdrawn", "Withdrawn by the customer"

    class Category(models.TextChoices):
        USAGE = "usage", "Usage over-counted"
        PRICE = "price", "Wrong price or plan"
        DUPLICATE = "duplicate", "Charged twice"
        SERVICE = "service", "Service problem"
        CHARGEBACK = "chargeback", "Chargeback at the bank"
        OTHER = "other", "Other"

    class Source(models.TextChoices):
        PORTAL = "portal", "Customer portal"
        STAFF = "staff", "Billing staff"
        API = "api", "API"
        STRIPE = "stripe", "Stripe chargeback"

    class Channel(models.TextChoices):
        PORTAL = "portal", "Portal"
        EMAIL = "email", "E-mail"
        PHONE = "phone", "Phone"
        API = "api", "API"
        BANK = "bank", "Bank (chargeback)"
        OTHER = "other", "Other"

    OPEN_STATES = (State.OPEN, State.INVESTIGATING, State.WAITING_ON_CUSTOMER)
    CLOSED_STATES = (State.RESOLVED, State.REJECTED)

    public_id = models.CharField(max_length=32, unique=True, editable=False, help_text="e.g. dsp_000012.")
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="disputes")
    invoice = models.ForeignKey(
        "billing.Invoice",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="disputes",
        help_text="The invoice disputed. Every case opened today names one; empty only on cases recorded before "
        "cases were linked to invoices.",
    )
    subject = models.CharField(max_length=200)
    description = models.TextField(help_text="What the customer says is wrong, in their words.")
    category = models.CharField(max_length=16, choices=Category.choices, default=Category.OTHER)
    amount = _amount(
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text="Amount the customer disputes, in the invoice's currency (before tax); empty when not stated.",
    )
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    state = FSMField(
        max_length=24, choices=State.choices, default=State.OPEN, help_text="Moved only by the case's actions."
    )
    resolution = models.CharField(max_length=16, choices=Resolution.choices, blank=True)
    resolution_note = models.TextField(blank=True, help_text="Why it was resolved or rejected; the customer reads it.")
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.STAFF)
    channel = models.CharField(
        max_length=8, choices=Channel.choices, default=Channel.PORTAL, help_text="How the customer raised it."
    )
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The portal user or staff member who opened it; empty when opened by an API key or by Stripe.",
    )
    opened_by_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    payment = models.ForeignKey(
        "billing.Payment",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="disputes",
        help_text="A chargeback: the payment the customer's bank disputed.",
    )
    stripe_dispute_id = models.CharField(
        max_length=64, unique=True, null=True, blank=True, help_text="Stripe's dispute (dp_…) for a chargeback."
    )
    opened_at = models.DateTimeField()
    first_response_at = models.DateTimeField(
        null=True, blank=True, help_text="When staff first answered the customer or moved the case on."
    )
    response_due_at = models.DateTimeField(help_text="Response target (SLA), set when the case is opened.")
    resolution_due_at = models.DateTimeField(
        help_text="Resolution target (SLA); moved later by the time the case waits on the customer."
    )
    waiting_since = models.DateTimeField(null=True, blank=True, help_text="Since when it waits on the customer.")
    closed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField()

    history = HistoricalRecords()

    class Meta:
        ordering = ["-opened_at", "-id"]
        permissions = [
            ("issue_credit", "Can issue credit notes from a dispute up to the approval threshold"),
            ("approve_credit", "Can approve credits above the approval threshold"),
        ]
        constraints = [
            models.CheckConstraint(name="dispute_amount_positive", condition=Q(amount__isnull=True) | Q(amount__gt=0)),
            models.CheckConstraint(
                name="dispute_currency_supported", condition=Q(currency__in=list(CURRENCY_MINOR_UNITS))
            ),
            models.CheckConstraint(
                name="dispute_state_known",
                condition=Q(state__in=["open", "investigating", "waiting_on_customer", "resolved", "rejected"]),
            ),
            models.CheckConstraint(
                name="dispute_closed_has_time",
                condition=Q(state__in=["open", "investigating", "waiting_on_customer"], closed_at__isnull=True)
                | Q(state__in=["resolved", "rejected"], closed_at__isnull=False),
                violation_error_message="Resolved and rejected disputes (only) have a closing time.",
            ),
            models.CheckConstraint(
                name="dispute_resolution_when_resolved",
                condition=Q(state="resolved", resolution__in=["credited", "explained", "withdrawn"])
                | (~Q(state="resolved") & Q(resolution="")),
                violation_error_message="A resolved dispute says how (credited, explained, withdrawn); others don't.",
            ),
        ]
        indexes = [
            models.Index(fields=["account", "state"], name="dispute_account_state"),
            models.Index(fields=["state", "opened_at"], name="dispute_queue"),
        ]

    def __str__(self) -> str:
        return f"{self.public_id}: {self.subject}"

    @property
    def is_open(self) -> bool:
        return self.state in self.OPEN_STATES

    # --- Transitions: the only way the state moves (called by disputes.services) -------------------------

    @transition(field=state, source=[State.OPEN, State.WAITING_ON_CUSTOMER], target=State.INVESTIGATING)
    def investigate(self) -> None:
        """Staff take the case up (or the customer answered while it waited on them)."""

    @transition(field=state, source=[State.OPEN, State.INVESTIGATING], target=State.WAITING_ON_CUSTOMER)
    def wait_on_customer(self) -> None:
        """Staff asked the customer something; the resolution clock pauses until they answer."""

    @transition(field=state, source=[State.OPEN, State.INVESTIGATING, State.WAITING_ON_CUSTOMER], target=State.RESOLVED)
    def resolve(self) -> None:
        """Credited, explained and closed, or withdrawn by the customer."""

    @transition(field=state, source=[State.OPEN, State.INVESTIGATING, State.WAITING_ON_CUSTOMER], target=State.REJECTED)
    def reject(self) -> None:
        """The charges stand; the reason is told to the customer."""

    @transition(field=state, source=[State.RESOLVED, State.REJECTED], target=State.INVESTIGATING)
    def reopen(self) -> None:
        """Staff reopen a closed case (not one settled by a credit note: issue another case for more)."""


class DisputeLine(models.Model):
    """An invoice line the case disputes, with what of it the customer disputes (a quantity or an amount)."""

    dispute = models.ForeignKey(Dispute, on_delete=models.CASCADE, related_name="lines")
    invoice_line = models.ForeignKey("billing.InvoiceLine", on_delete=models.PROTECT, related_name="dispute_lines")
    disputed_quantity = models.DecimalField(
        max_digits=QUANTITY_MAX_DIGITS,
        decimal_places=QUANTITY_DECIMAL_PLACES,
        null=True,
        blank=True,
        help_text="The quantity the customer says was billed wrongly (in the line's billing unit); empty: not stated.",
    )
    disputed_amount = _amount(
        null=True, blank=True, help_text="The amount of the line disputed (before tax); empty: not stated."
    )
    note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["dispute", "invoice_line__position"]
        constraints = [
            models.UniqueConstraint(fields=["dispute", "invoice_line"], name="dispute_line_once"),
            models.CheckConstraint(
                name="dispute_line_positive",
                condition=(Q(disputed_quantity__isnull=True) | Q(disputed_quantity__gt=0))
                & (Q(disputed_amount__isnull=True) | Q(disputed_amount__gt=0)),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.dispute.public_id}: line {self.invoice_line_id}"


class DisputeMessage(models.Model):
    """One message of the case's thread. Internal notes are for staff only: the customer never sees them, in
    the portal, the API or an e-mail."""

    class Author(models.TextChoices):
        CUSTOMER = "customer", "Customer"
        STAFF = "staff", "Billing staff"
        SYSTEM = "system", "Ledgerline"

    dispute = models.ForeignKey(Dispute, on_delete=models.CASCADE, related_name="messages")
    author_kind = models.CharField(max_length=8, choices=Author.choices)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    author_name = models.CharField(max_length=200, blank=True, help_text="As shown in the thread.")
    body = models.TextField()
    internal = models.BooleanField(default=False, help_text="Internal note: never shown or sent to the customer.")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["dispute", "created_at", "id"]
        indexes = [models.Index(fields=["dispute", "created_at"], name="dispute_message_thread")]

    def __str__(self) -> str:
        return f"{self.get_author_kind_display()} on {self.dispute_id} at {self.created_at:%Y-%m-%d %H:%M}"


def attachment_path(instance: DisputeAttachment, filename: str) -> str:
    # Stored under a random name: the customer's file name is kept on the row, never used as a path.
    return f"disputes/{instance.dispute.public_id}/{instance.sha256[:16]}-{instance.token}"


class DisputeAttachment(models.Model):
    """A file attached to the case (a CSV export, a PDF, a screenshot), type-checked by its content and
    size-limited when uploaded. Internal ones (evidence staff attach for themselves) are not shown to the
    customer."""

    dispute = models.ForeignKey(Dispute, on_delete=models.CASCADE, related_name="attachments")
    message = models.ForeignKey(
        DisputeMessage, null=True, blank=True, on_delete=models.SET_NULL, related_name="attachments"
    )
    token = models.CharField(max_length=32, unique=True, editable=False, help_text="Random id used in its URL.")
    file = models.FileField(upload_to=attachment_path)
    filename = models.CharField(max_length=200, help_text="The name it was uploaded with.")
    content_type = models.CharField(max_length=64)
    size = models.PositiveIntegerField(help_text="Bytes.")
    sha256 = models.CharField(max_length=64)
    internal = models.BooleanField(default=False)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    uploaded_by_kind = models.CharField(max_length=8, choices=DisputeMessage.Author.choices)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["dispute", "created_at", "id"]

    def __str__(self) -> str:
        return self.filename


class CreditProposal(models.Model):
    """A credit proposed from a case: what to credit (lines, quantities, amounts, goodwill), its figures as
    previewed, and — above the approval threshold — a Finance admin's decision. The credit note exists only
    once the proposal is issued (at once below the threshold, on approval above it)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Awaiting Finance approval"
        ISSUED = "issued", "Issued"
        DECLINED = "declined", "Declined"
        CANCELLED = "cancelled", "Cancelled"

    class ExcessTo(models.TextChoices):
        BALANCE = "balance", "Credit balance (applied to the next invoice)"
        REFUND = "refund", "Refund"

    dispute = models.ForeignKey(Dispute, on_delete=models.CASCADE, related_name="credit_proposals")
    invoice = models.ForeignKey("billing.Invoice", on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    lines = models.JSONField(
        default=list,
        help_text='What to credit: [{"invoice_line": id or null, "description", "quantity" or null, "amount"}].',
    )
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    subtotal = _amount()
    tax = _amount()
    total = _amount()
    excess_to = models.CharField(
        max_length=8,
        choices=ExcessTo.choices,
        default=ExcessTo.BALANCE,
        help_text="Where money already paid beyond what the invoice still owes goes.",
    )
    reason = models.CharField(max_length=500)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField()
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.CharField(max_length=500, blank=True)
    credit_note = models.OneToOneField(
        "billing.CreditNote", null=True, blank=True, on_delete=models.PROTECT, related_name="proposal"
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["dispute", "-requested_at"]
        constraints = [
            models.CheckConstraint(name="credit_proposal_positive", condition=Q(subtotal__gt=0) & Q(tax__gte=0)),
            models.CheckConstraint(
                name="credit_proposal_issued_has_note",
                condition=Q(status="issued", credit_note__isnull=False) | (~Q(status="issued") & Q(credit_note=None)),
            ),
        ]

    def __str__(self) -> str:
        return f"Credit for {self.dispute.public_id} ({self.get_status_display().lower()})"


class DisputeEvent(models.Model):
    """The case's timeline: every opening, transition, message, attachment, assignment and credit, in order,
    with who did it. ``public`` entries are shown to the customer."""

    class Kind(models.TextChoices):
        OPENED = "opened", "Opened"
        STATE = "state", "State changed"
        MESSAGE = "message", "Message"
        NOTE = "note", "Internal note"
        ATTACHMENT = "attachment", "Attachment"
        ASSIGNED = "assigned", "Assigned"
        CREDIT_PROPOSED = "credit_proposed", "Credit proposed"
        CREDIT_APPROVED = "credit_approved", "Credit approved"
        CREDIT_DECLINED = "credit_declined", "Credit declined"
        CREDIT_ISSUED = "credit_issued", "Credit note issued"

    dispute = models.ForeignKey(Dispute, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    from_state = models.CharField(max_length=24, blank=True)
    to_state = models.CharField(max_length=24, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(
        max_length=200, help_text="Who: the user's name and role, the API key, or the system task."
    )
    note = models.TextField(blank=True)
    public = models.BooleanField(default=True, help_text="Shown to the customer.")
    message = models.ForeignKey(DisputeMessage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    attachment = models.ForeignKey(
        DisputeAttachment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    proposal = models.ForeignKey(CreditProposal, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["dispute", "created_at", "id"]
        indexes = [models.Index(fields=["dispute", "created_at"], name="dispute_event_timeline")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.dispute_id}) at {self.created_at:%Y-%m-%d %H:%M}"
