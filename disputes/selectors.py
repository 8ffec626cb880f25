"""Reads of dispute cases: a customer's cases (only ever through their account), the case's timeline as the
customer or staff see it, the staff queue, and where a case stands against its SLA."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Case, F, IntegerField, Prefetch, Q, QuerySet, Value, When

from accounts.models import Account
from common import clock
from common.errors import BillingError
from disputes.models import CreditProposal, Dispute, DisputeAttachment, DisputeEvent, DisputeMessage

ERR_NOT_FOUND = "No dispute '{public_id}'."


def customer_disputes(*, account: Account) -> QuerySet[Dispute]:
    """The account's cases, newest first."""
    return Dispute.objects.filter(account=account).select_related("invoice").order_by("-opened_at", "-id")


def dispute_for_customer(*, account: Account, public_id: str) -> Dispute:
    """One of the account's cases; another account's (or no) case is the same 404."""
    dispute = customer_disputes(account=account).filter(public_id=public_id).first()
    if dispute is None:
        raise BillingError(ERR_NOT_FOUND.format(public_id=public_id[:40]), code="not_found", status=404)
    return dispute


def dispute_timeline(dispute: Dispute, *, for_customer: bool) -> list[DisputeEvent]:
    """Every opening, transition, message, attachment, assignment and credit, in order; a customer sees only the
    public entries (no internal notes, internal attachments, assignments or pending credits)."""
    events = (
        DisputeEvent.objects.filter(dispute=dispute)
        .select_related("message", "attachment", "proposal", "proposal__credit_note", "actor")
        .order_by("created_at", "id")
    )
    if for_customer:
        events = events.filter(public=True)
    return list(events)


def dispute_messages(dispute: Dispute, *, for_customer: bool) -> list[DisputeMessage]:
    """The thread in order; a customer's has no internal notes, nor internal files on a public message."""
    files = DisputeAttachment.objects.order_by("created_at", "id")
    messages = DisputeMessage.objects.filter(dispute=dispute).order_by("created_at", "id")
    if for_customer:
        messages = messages.filter(internal=False)
        files = files.filter(internal=False)
    return list(messages.prefetch_related(Prefetch("attachments", queryset=files)))


def dispute_attachments(dispute: Dispute, *, for_customer: bool) -> QuerySet[DisputeAttachment]:
    attachments = DisputeAttachment.objects.filter(dispute=dispute).order_by("created_at", "id")
    if for_customer:
        attachments = attachments.filter(internal=False)
    return attachments


def dispute_attachment_for_customer(*, account: Account, public_id: str, token: str) -> DisputeAttachment:
    """A public attachment of one of the account's cases; anything else is a 404."""
    attachment = (
        DisputeAttachment.objects.filter(
            dispute__account=account, dispute__public_id=public_id, token=token, internal=False
        )
        .select_related("dispute")
        .first()
    )
    if attachment is None:
        raise BillingError("No such attachment.", code="not_found", status=404)
    return attachment


def pending_credit(dispute: Dispute) -> CreditProposal | None:
    return (
        dispute.credit_proposals.filter(status=CreditProposal.Status.PENDING)
        .select_related("requested_by")
        .order_by("-requested_at")
        .first()
    )


def issued_credits(dispute: Dispute) -> list[CreditProposal]:
    return list(
        dispute.credit_proposals.filter(status=CreditProposal.Status.ISSUED)
        .select_related("credit_note")
        .order_by("requested_at")
    )


@dataclass(frozen=True)
class Sla:
    """Where a case stands against its targets at ``now``."""

    age: dt.timedelta
    response_due_at: dt.datetime
    resolution_due_at: dt.datetime
    responded_at: dt.datetime | None
    response_breached: bool
    resolution_breached: bool

    @property
    def breached(self) -> bool:
        return self.response_breached or self.resolution_breached


def sla(dispute: Dispute, now: dt.datetime) -> Sla:
    """Response: breached when staff answered after the target, or have not answered and it has passed.
    Resolution: breached when closed after the target, or open past it (its target moved later by the time the
    case waited on the customer, and does not run on while it waits)."""
    end = dispute.closed_at or now
    resolution_due = dispute.resolution_due_at
    if dispute.waiting_since is not None and dispute.closed_at is None:
        resolution_due += now - dispute.waiting_since
    responded = dispute.first_response_at
    response_breached = (responded or end) > dispute.response_due_at
    return Sla(
        age=end - dispute.opened_at,
        response_due_at=dispute.response_due_at,
        resolution_due_at=resolution_due,
        responded_at=responded,
        response_breached=response_breached,
        resolution_breached=end > resolution_due,
    )


def dispute_queue(*, now: dt.datetime | None = None) -> QuerySet[Dispute]:
    """The staff queue: every case with what the list shows, open ones that breach their SLA first, then the
    oldest. ``breach`` is 1 for a case past a target it has not met."""
    now = now or clock.now()
    open_states = list(Dispute.OPEN_STATES)
    breached = Q(state__in=open_states) & (
        Q(first_response_at__isnull=True, response_due_at__lt=now)
        | Q(waiting_since__isnull=True, resolution_due_at__lt=now)
    )
    return (
        Dispute.objects.select_related("account", "invoice", "assigned_to")
        .annotate(
            breach=Case(When(breached, then=Value(1)), default=Value(0), output_field=IntegerField()),
            is_closed=Case(When(state__in=open_states, then=Value(0)), default=Value(1), output_field=IntegerField()),
        )
        .order_by("is_closed", "-breach", F("opened_at").asc(), "id")
    )
