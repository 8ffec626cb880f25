"""Every step of a dispute case: opening it (portal, API, staff on a customer's behalf, a Stripe chargeback), the
thread, attachments, assignment, the transitions of its state machine, and its settlement by a credit note.

Each service checks who may take the step (``_customer`` / ``_staff``), what the step needs (a reason, a question,
an amount), takes the transition declared on ``Dispute`` (django-fsm-2), writes the case's timeline entry
(``DisputeEvent``: who, when, what note) and the audit history, records the outbox event and queues the e-mails —
all in one transaction. Who may:

- customers: portal owners, admins and the billing role of the case's account open, reply and withdraw; members
  only read; API keys of the account with the ``disputes`` scope (not pinned to a tenant) open and reply. A user or
  key of another account is told the case does not exist (404).
- staff: ``disputes.add_dispute`` opens a case for a customer; ``disputes.change_dispute`` works it (transitions,
  replies, internal notes, assignment); ``disputes.issue_credit`` proposes credits, issued at once up to
  ``DISPUTES_CREDIT_APPROVAL_ABOVE``; ``disputes.approve_credit`` approves larger ones — never one's own.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django_fsm import can_proceed

from accounts.models import Account, AccountUser, ApiKey
from accounts.permissions import BILLING_STAFF, FINANCE_ADMIN
from billing.models import CreditNote, EmailDelivery, Invoice, InvoiceLine, Payment
from billing.services import stripe_gateway
from billing.services.credit_notes import CreditLine, credit_note_issue, credit_preview
from billing.services.emails.queueing import email_queue_notice
from common import clock
from common.audit import stamp
from common.errors import BillingError
from common.formats import iso_utc, money_string
from common.money import format_money, round_money
from common.outbox import outbox_emit
from common.services import public_id_next
from disputes.models import (
    CreditProposal,
    Dispute,
    DisputeAttachment,
    DisputeEvent,
    DisputeLine,
    DisputeMessage,
)

logger = logging.getLogger(__name__)

State = Dispute.State
Kind = DisputeEvent.Kind
Author = DisputeMessage.Author
ZERO = Decimal(0)

PERM_ADD = "disputes.add_dispute"
PERM_CHANGE = "disputes.change_dispute"
PERM_ISSUE_CREDIT = "disputes.issue_credit"
PERM_APPROVE_CREDIT = "disputes.approve_credit"
PERM_REFUND = "billing.refund_payment"
# Who opened a chargeback, as the timeline and the thread name it.
STRIPE = "Stripe"
CUSTOMER_WRITERS = (AccountUser.Role.OWNER, AccountUser.Role.ADMIN, AccountUser.Role.BILLING)
DISPUTABLE = (Invoice.Status.FINALIZED, Invoice.Status.PAID, Invoice.Status.UNCOLLECTIBLE)

ERR_NOT_FOUND = "No such dispute."
ERR_INVOICE_NOT_FOUND = "No invoice '{number}'."
ERR_DENIED = "You may not {what}."
ERR_MEMBER = "Members of the account read its disputes; an owner, admin or billing user opens and answers them."
ERR_KEY_SCOPE = "This API key lacks the disputes scope: it cannot open or answer disputes."
ERR_KEY_PINNED = "This API key is pinned to a tenant; disputes are the account's."
ERR_INVOICE_STATUS = "Only an issued invoice can be disputed; {number} is {status}."
ERR_ALREADY_OPEN = "{number} already has an open dispute, {case}: add to it instead."
ERR_SUBJECT = "Say in a few words what the dispute is about."
ERR_DESCRIPTION = "Describe what is wrong."
ERR_LINE_FOREIGN = "Line {line} is not a line of {number}."
ERR_LINE_TWICE = "Each line is disputed once."
ERR_LINE_QUANTITY = "The disputed quantity of line {line} must be more than 0 and at most its {quantity}."
ERR_LINE_AMOUNT = "The disputed amount of line {line} must be more than 0 and at most its {amount}."
ERR_AMOUNT = "The disputed amount must be more than 0 and at most the invoice's total ({total})."
ERR_CATEGORY = "Unknown category '{value}'."
ERR_CHANNEL = "Unknown channel '{value}'."
ERR_BODY = "Write a message."
ERR_REASON = "Give a reason: the customer reads it."
ERR_QUESTION = "Write the question for the customer."
ERR_CLOSED = "{case} is {state}: it takes no more messages. Open a new dispute if something else is wrong."
ERR_INTERNAL_CUSTOMER = "Only staff write internal notes."
ERR_TRANSITION = "{case} is {state}: it cannot {what} now."
ERR_REOPEN_CREDITED = "{case} was settled by a credit note; open a new case for anything further."
ERR_CREDIT_PENDING = "{case} already has a credit awaiting approval: approve, decline or cancel it first."
ERR_CREDIT_CLOSED = "{case} is {state}: reopen it before crediting."
ERR_CREDIT_NO_INVOICE = "{case} names no invoice to credit."
ERR_PROPOSAL_STATUS = "This credit is {status}: it can no longer be {what}."
ERR_APPROVER_IS_REQUESTER = "A credit above the approval threshold needs a second person: {user} proposed it."
ERR_DECLINE_NOTE = "Say why the credit is declined."
ERR_ASSIGNEE = "Cases are assigned to active staff who may work disputes."
ERR_ATTACHMENT_SIZE = "{name} is {size:,} bytes; attachments may be up to {limit:,} bytes."
ERR_ATTACHMENT_TYPE = "{name} is not a CSV, PDF, PNG or JPEG file."
ERR_ATTACHMENT_EMPTY = "{name} is empty."


@dataclass(frozen=True)
class LineClaim:
    """What the customer disputes on one invoice line: all of it, a quantity or an amount of it."""

    invoice_line: InvoiceLine
    quantity: Decimal | None = None
    amount: Decimal | None = None
    note: str = ""


# --- Who is acting --------------------------------------------------------------------------------------


def _membership(actor: Any) -> AccountUser | None:
    if not isinstance(actor, AbstractBaseUser) or not actor.is_active:
        return None
    try:
        return actor.account_membership  # type: ignore[attr-defined]
    except AccountUser.DoesNotExist:
        return None


def _is_staff(actor: Any) -> bool:
    return isinstance(actor, AbstractBaseUser) and actor.is_active and bool(getattr(actor, "is_staff", False))


def actor_label(actor: Any) -> str:
    """Who, as the timeline and e-mails show it."""
    if actor is None:
        return "Ledgerline"
    if isinstance(actor, ApiKey):
        return f"API key {actor.prefix}… ({actor.name})"[:200]
    if isinstance(actor, str):
        return actor[:200]
    name = (actor.get_full_name() or actor.get_username()).strip()
    membership = _membership(actor)
    if membership is not None:
        return f"{actor.email or name} ({membership.get_role_display().lower()})"[:200]
    if getattr(actor, "is_superuser", False):
        role = "superuser"
    else:
        groups = set(actor.groups.values_list("name", flat=True))
        role = "finance admin" if FINANCE_ADMIN in groups else "billing staff" if BILLING_STAFF in groups else "staff"
    return f"{name} ({role})"[:200]


def _not_found() -> BillingError:
    return BillingError(ERR_NOT_FOUND, code="not_found", status=404)


def _denied(what: str) -> BillingError:
    return BillingError(ERR_DENIED.format(what=what), code="permission_denied", status=403)


def _customer(actor: Any, account_id: int, *, write: bool) -> str:
    """Check a customer (portal user or API key) may act on the account's disputes; returns the author kind.
    Another account's user or key gets a 404: it learns nothing about cases it may not see."""
    if isinstance(actor, ApiKey):
        if actor.account_id != account_id:
            raise _not_found()
        if actor.tenant_id is not None:
            raise BillingError(ERR_KEY_PINNED, code="permission_denied", status=403)
        if write and not actor.scope_disputes:
            raise BillingError(ERR_KEY_SCOPE, code="permission_denied", status=403)
        return Author.CUSTOMER
    membership = _membership(actor)
    if membership is None or membership.account_id != account_id:
        raise _not_found()
    if write and membership.role not in CUSTOMER_WRITERS:
        raise BillingError(ERR_MEMBER, code="permission_denied", status=403)
    return Author.CUSTOMER


def _staff(actor: Any, permission: str, what: str) -> None:
    if not _is_staff(actor) or not actor.has_perm(permission):
        raise _denied(what)


def _user(actor: Any) -> Any:
    return actor if isinstance(actor, AbstractBaseUser) else None


def is_customer_actor(actor: Any) -> bool:
    return isinstance(actor, ApiKey) or _membership(actor) is not None


# --- Timeline, outbox, e-mail ---------------------------------------------------------------------------


def _event(
    dispute: Dispute,
    *,
    kind: str,
    actor: Any,
    now: dt.datetime,
    note: str = "",
    public: bool = True,
    from_state: str = "",
    to_state: str = "",
    message: DisputeMessage | None = None,
    attachment: DisputeAttachment | None = None,
    proposal: CreditProposal | None = None,
) -> DisputeEvent:
    return DisputeEvent.objects.create(
        dispute=dispute,
        kind=kind,
        actor=_user(actor),
        actor_label=actor_label(actor),
        note=note,
        public=public,
        from_state=from_state,
        to_state=to_state,
        message=message,
        attachment=attachment,
        proposal=proposal,
        created_at=now,
    )


def _payload(dispute: Dispute) -> dict[str, Any]:
    note = (
        CreditNote.objects.filter(proposal__dispute=dispute, proposal__status=CreditProposal.Status.ISSUED)
        .order_by("-issued_at")
        .first()
    )
    return {
        "dispute_id": dispute.public_id,
        "account_id": dispute.account.public_id,
        "invoice_id": dispute.invoice.number if dispute.invoice else None,
        "state": dispute.state,
        "resolution": dispute.resolution or None,
        "category": dispute.category,
        "amount": money_string(dispute.amount, dispute.currency) if dispute.amount is not None else None,
        "currency": dispute.currency,
        "opened_at": iso_utc(dispute.opened_at),
        "updated_at": iso_utc(dispute.updated_at),
        "credit_note_id": note.number if note else None,
    }


def _emit(dispute: Dispute, type_: str, key: str, now: dt.datetime) -> None:
    outbox_emit(
        type=type_, account_id=dispute.account_id, data=_payload(dispute), now=now, dedup_key=f"{type_}:{key}"[:200]
    )


def _base_url() -> str:
    return str(settings.LEDGERLINE_BASE_URL).rstrip("/")


def _context(dispute: Dispute, **extra: Any) -> dict[str, Any]:
    return {
        "dispute_id": dispute.public_id,
        "dispute_subject": dispute.subject,
        "dispute_state": dispute.get_state_display(),
        "dispute_resolution": dispute.get_resolution_display() if dispute.resolution else "",
        "dispute_url": f"{_base_url()}/portal/disputes/{dispute.public_id}/",
        "admin_url": f"{_base_url()}/admin/disputes/dispute/{dispute.pk}/change/",
        "response_due": f"{dispute.response_due_at:%-d %B %Y, %H:%M} UTC",
        "account_name": dispute.account.name,
        **extra,
    }


def _mail_customer(dispute: Dispute, kind: str, now: dt.datetime, key: str, **extra: Any) -> None:
    if dispute.invoice is None or not dispute.account.billing_emails:
        return
    email_queue_notice(
        invoice=dispute.invoice,
        kind=kind,
        recipients=list(dispute.account.billing_emails),
        context=_context(dispute, **extra),
        now=now,
        dedup_key=f"{kind}:{dispute.pk}:{key}"[:120],
    )


def _mail_staff(dispute: Dispute, now: dt.datetime, key: str, **extra: Any) -> None:
    recipients = [address for address in settings.DISPUTES_STAFF_EMAILS if address]
    if dispute.assigned_to is not None and dispute.assigned_to.email:
        recipients.append(dispute.assigned_to.email)
    recipients = list(dict.fromkeys(recipients))
    if dispute.invoice is None or not recipients:
        return
    email_queue_notice(
        invoice=dispute.invoice,
        kind=EmailDelivery.Kind.DISPUTE_STAFF,
        recipients=recipients,
        context=_context(dispute, **extra),
        now=now,
        dedup_key=f"dispute_staff:{dispute.pk}:{key}"[:120],
    )


def _save(dispute: Dispute, *, actor: Any, reason: str, now: dt.datetime) -> None:
    dispute.updated_at = now
    stamp(dispute, actor=_user(actor), reason=reason[:100], at=now)
    dispute.save()


def _locked(dispute: Dispute) -> Dispute:
    return (
        Dispute.objects.select_for_update(of=("self",))
        .select_related("account", "invoice", "assigned_to")
        .get(pk=dispute.pk)
    )


def _move(
    dispute: Dispute,
    transition: Callable[[], None],
    *,
    actor: Any,
    what: str,
    note: str,
    now: dt.datetime,
    public: bool = True,
    resolution: str = "",
) -> DisputeEvent:
    """Take one declared transition; a step the state does not allow is a 409 that says so."""
    if not can_proceed(transition):
        raise BillingError(
            ERR_TRANSITION.format(case=dispute.public_id, state=dispute.get_state_display().lower(), what=what),
            code="transition_not_allowed",
            status=409,
        )
    before = dispute.state
    if before == State.WAITING_ON_CUSTOMER and dispute.waiting_since is not None:
        # The resolution clock paused while the case waited on the customer.
        dispute.resolution_due_at += now - dispute.waiting_since
        dispute.waiting_since = None
    transition()
    dispute.resolution = resolution if dispute.state == State.RESOLVED else ""
    if dispute.state == State.WAITING_ON_CUSTOMER:
        dispute.waiting_since = now
    dispute.closed_at = now if dispute.state in Dispute.CLOSED_STATES else None
    if _is_staff(actor) and dispute.first_response_at is None:
        dispute.first_response_at = now
    _save(dispute, actor=actor, reason=f"{before} → {dispute.state}", now=now)
    event = _event(
        dispute,
        kind=Kind.STATE,
        actor=actor,
        now=now,
        note=note,
        public=public,
        from_state=before,
        to_state=dispute.state,
    )
    if dispute.state in Dispute.CLOSED_STATES:
        _emit(dispute, "billing.dispute_resolved", f"{dispute.pk}:{event.pk}", now)
    else:
        _emit(dispute, "billing.dispute_updated", f"{dispute.pk}:{event.pk}", now)
    return event


# --- Attachments ----------------------------------------------------------------------------------------

SIGNATURES = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
)


def attachment_type(name: str, head: bytes) -> str | None:
    """The attachment's type by its content (never the name or the browser's claim alone): PDF, PNG, JPEG, or a
    CSV file (named .csv, UTF-8 text without NUL bytes)."""
    for magic, content_type in SIGNATURES:
        if head.startswith(magic):
            return content_type
    if name.lower().endswith(".csv") and b"\x00" not in head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as error:
            # A multi-byte character cut at the end of the sample is still UTF-8 text.
            if error.start < len(head) - 3:
                return None
        return "text/csv"
    return None


def _attachment_store(
    dispute: Dispute,
    upload: UploadedFile,
    *,
    author_kind: str,
    actor: Any,
    message: DisputeMessage | None,
    internal: bool,
    now: dt.datetime,
) -> DisputeAttachment:
    name = (upload.name or "attachment").replace("\\", "/").rsplit("/", 1)[-1][:200] or "attachment"
    limit = int(settings.DISPUTES_ATTACHMENT_MAX_BYTES)
    size = upload.size or 0
    if size > limit:
        raise BillingError(
            ERR_ATTACHMENT_SIZE.format(name=name, size=size, limit=limit),
            code="attachment_too_large",
            field="attachment",
        )
    if size == 0:
        raise BillingError(ERR_ATTACHMENT_EMPTY.format(name=name), code="attachment_type", field="attachment")
    upload.seek(0)
    head = upload.read(8192)
    content_type = attachment_type(name, head)
    if content_type is None:
        raise BillingError(ERR_ATTACHMENT_TYPE.format(name=name), code="attachment_type", field="attachment")
    digest = hashlib.sha256()
    upload.seek(0)
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    attachment = DisputeAttachment(
        dispute=dispute,
        message=message,
        token=secrets.token_urlsafe(16)[:22],
        filename=name,
        content_type=content_type,
        size=size,
        sha256=digest.hexdigest(),
        internal=internal,
        uploaded_by=_user(actor),
        uploaded_by_kind=author_kind,
        created_at=now,
    )
    # Stored under a random name (the model's upload_to); if the transaction then rolls back, the file stays
    # behind unreferenced and unreachable, which is harmless.
    attachment.file.save(name, upload, save=False)
    attachment.save()
    _event(
        dispute,
        kind=Kind.ATTACHMENT,
        actor=actor,
        now=now,
        note=f"{name} ({content_type}, {size:,} bytes)",
        public=not internal,
        attachment=attachment,
    )
    return attachment


@transaction.atomic
def attachment_add(
    *,
    dispute: Dispute,
    upload: UploadedFile,
    actor: Any,
    message: DisputeMessage | None = None,
    internal: bool = False,
    now: dt.datetime | None = None,
) -> DisputeAttachment:
    """Attach a file to the case (customers: public only; staff may keep one internal)."""
    now = now or clock.now()
    dispute = _locked(dispute)
    if _is_staff(actor):
        _staff(actor, PERM_CHANGE, "attach files to disputes")
        kind = Author.STAFF
    else:
        kind = _customer(actor, dispute.account_id, write=True)
        if internal:
            raise BillingError(ERR_INTERNAL_CUSTOMER, code="permission_denied", status=403)
    if not dispute.is_open and not _is_staff(actor):
        raise BillingError(
            ERR_CLOSED.format(case=dispute.public_id, state=dispute.get_state_display().lower()),
            code="dispute_closed",
            status=409,
        )
    attachment = _attachment_store(
        dispute, upload, author_kind=kind, actor=actor, message=message, internal=internal, now=now
    )
    _save(dispute, actor=actor, reason=f"attached {attachment.filename}", now=now)
    return attachment


# --- Opening --------------------------------------------------------------------------------------------


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal("NaN")


def _check_lines(invoice: Invoice, lines: Sequence[LineClaim]) -> None:
    seen: set[int] = set()
    for index, claim in enumerate(lines):
        line = claim.invoice_line
        field = f"lines[{index}]"
        if line.invoice_id != invoice.pk:
            raise BillingError(
                ERR_LINE_FOREIGN.format(line=line.position, number=invoice.number), code="invalid_line", field=field
            )
        if line.pk in seen:
            raise BillingError(ERR_LINE_TWICE, code="invalid_line", field=field)
        seen.add(line.pk)
        quantity, amount = _decimal(claim.quantity), _decimal(claim.amount)
        if quantity is not None and (
            not quantity.is_finite() or quantity <= 0 or line.quantity is None or quantity > line.quantity
        ):
            raise BillingError(
                ERR_LINE_QUANTITY.format(
                    line=line.position, quantity=f"{line.quantity or 0:,f}".rstrip("0").rstrip(".")
                ),
                code="invalid_quantity",
                field=f"{field}.quantity",
            )
        if amount is not None and (not amount.is_finite() or amount <= 0 or amount > abs(line.amount)):
            raise BillingError(
                ERR_LINE_AMOUNT.format(line=line.position, amount=format_money(line.amount, invoice.currency)),
                code="invalid_amount",
                field=f"{field}.amount",
            )


@transaction.atomic
def dispute_open(
    *,
    account: Account,
    invoice: Invoice,
    subject: str,
    description: str,
    category: str = Dispute.Category.OTHER,
    lines: Sequence[LineClaim] = (),
    amount: Decimal | None = None,
    source: str,
    channel: str,
    actor: Any = None,
    attachments: Sequence[UploadedFile] = (),
    now: dt.datetime | None = None,
    payment: Payment | None = None,
    stripe_dispute_id: str | None = None,
) -> Dispute:
    """Open a case about one issued invoice of the account (and, optionally, some of its lines)."""
    now = now or clock.now()
    if source == Dispute.Source.STAFF:
        _staff(actor, PERM_ADD, "open disputes for customers")
        author = Author.STAFF
    elif source == Dispute.Source.STRIPE:
        author = Author.SYSTEM
    else:
        author = _customer(actor, account.pk, write=True)
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.account_id != account.pk:
        raise BillingError(ERR_INVOICE_NOT_FOUND.format(number=invoice.number), code="not_found", status=404)
    if invoice.status not in DISPUTABLE or not invoice.number:
        raise BillingError(
            ERR_INVOICE_STATUS.format(
                number=invoice.number or "this draft", status=invoice.get_status_display().lower()
            ),
            code="invoice_not_disputable",
            status=409,
        )
    subject, description = (subject or "").strip(), (description or "").strip()
    if not subject:
        raise BillingError(ERR_SUBJECT, code="required", field="subject")
    if not description:
        raise BillingError(ERR_DESCRIPTION, code="required", field="description")
    if category not in Dispute.Category.values:
        raise BillingError(ERR_CATEGORY.format(value=category), code="invalid_choice", field="category")
    if channel not in Dispute.Channel.values:
        raise BillingError(ERR_CHANNEL.format(value=channel), code="invalid_choice", field="channel")
    claimed = _decimal(amount)
    if claimed is not None:
        claimed = round_money(claimed, invoice.currency) if claimed.is_finite() else claimed
        if not claimed.is_finite() or claimed <= 0 or claimed > invoice.total:
            raise BillingError(
                ERR_AMOUNT.format(total=format_money(invoice.total, invoice.currency)),
                code="invalid_amount",
                field="amount",
            )
    _check_lines(invoice, lines)
    if source != Dispute.Source.STRIPE:
        open_case = invoice.disputes.filter(state__in=Dispute.OPEN_STATES, stripe_dispute_id__isnull=True).first()
        if open_case is not None:
            raise BillingError(
                ERR_ALREADY_OPEN.format(number=invoice.number, case=open_case.public_id),
                code="dispute_already_open",
                status=409,
            )
    if claimed is None and lines:
        stated = [_decimal(c.amount) for c in lines]
        if all(a is not None for a in stated):
            claimed = round_money(sum((a for a in stated if a is not None), ZERO), invoice.currency)
    dispute = Dispute(
        public_id=public_id_next(prefix="dsp"),
        account=account,
        invoice=invoice,
        subject=subject[:200],
        description=description,
        category=category,
        amount=claimed,
        currency=invoice.currency,
        source=source,
        channel=channel,
        opened_by=_user(actor),
        opened_by_key=actor if isinstance(actor, ApiKey) else None,
        payment=payment,
        stripe_dispute_id=stripe_dispute_id,
        opened_at=now,
        response_due_at=now + dt.timedelta(hours=int(settings.DISPUTES_RESPONSE_HOURS)),
        resolution_due_at=now + dt.timedelta(days=int(settings.DISPUTES_RESOLUTION_DAYS)),
        updated_at=now,
    )
    stamp(dispute, actor=_user(actor), reason=f"opened ({source})", at=now)
    dispute.save()
    DisputeLine.objects.bulk_create(
        [
            DisputeLine(
                dispute=dispute,
                invoice_line=claim.invoice_line,
                disputed_quantity=_decimal(claim.quantity),
                disputed_amount=round_money(a, invoice.currency) if (a := _decimal(claim.amount)) is not None else None,
                note=claim.note[:500],
            )
            for claim in lines
        ]
    )
    on_behalf = f" on the customer's behalf ({dispute.get_channel_display().lower()})" if author == Author.STAFF else ""
    _event(
        dispute, kind=Kind.OPENED, actor=actor, now=now, note=f"Opened{on_behalf}: {subject}", to_state=dispute.state
    )
    message = DisputeMessage.objects.create(
        dispute=dispute,
        author_kind=author,
        author=_user(actor),
        author_name=actor_label(actor),
        body=description,
        created_at=now,
    )
    _event(dispute, kind=Kind.MESSAGE, actor=actor, now=now, message=message)
    for upload in attachments:
        _attachment_store(dispute, upload, author_kind=author, actor=actor, message=message, internal=False, now=now)
    _emit(dispute, "billing.dispute_opened", str(dispute.pk), now)
    if source != Dispute.Source.STRIPE:
        # A chargeback was raised with the bank, not with us: nothing to acknowledge to the customer.
        _mail_customer(dispute, EmailDelivery.Kind.DISPUTE_OPENED, now, "opened", message=description)
    _mail_staff(dispute, now, "opened", notice="opened", message=description, author=actor_label(actor))
    return dispute


def dispute_from_chargeback(
    *, payment: Payment, stripe_dispute: dict[str, Any], invoice: Invoice | None, now: dt.datetime
) -> Dispute | None:
    """The customer's bank disputes a payment (Stripe's ``charge.dispute.created``): a case of its own about the
    invoice it paid — even while another case about it is open — opened once per Stripe dispute, for the amount
    disputed. Runs inside the webhook's transaction: a payment that paid no disputable invoice opens no case
    (the chargeback stays recorded on the payment) rather than failing the webhook for ever."""
    dispute_id = str(stripe_dispute.get("id") or "")
    if not dispute_id:
        return None
    existing = Dispute.objects.filter(stripe_dispute_id=dispute_id).first()
    if existing is not None:
        return existing
    if invoice is None or invoice.status not in DISPUTABLE or not invoice.number:
        logger.warning("Chargeback %s of %s names no disputable invoice: no case opened", dispute_id, payment.public_id)
        return None
    if stripe_dispute.get("amount") is not None:
        disputed = stripe_gateway.from_minor(int(stripe_dispute["amount"]), payment.currency)
    else:
        disputed = payment.disputed_amount or payment.amount
    amount = min(disputed, invoice.total)
    reason = str(stripe_dispute.get("reason") or "unknown").replace("_", " ")
    return dispute_open(
        account=payment.account,
        invoice=invoice,
        subject=f"Chargeback: {reason}"[:200],
        description=(
            f"The customer's bank disputes {payment.public_id} ({format_money(disputed, payment.currency)}), reason "
            f"“{reason}”, Stripe dispute {dispute_id} ({stripe_dispute.get('status') or 'open'}). "
            "Answer it with evidence in Stripe's dashboard before its deadline."
        ),
        category=Dispute.Category.CHARGEBACK,
        amount=amount if amount > 0 else None,
        source=Dispute.Source.STRIPE,
        channel=Dispute.Channel.BANK,
        actor=STRIPE,
        now=now,
        payment=payment,
        stripe_dispute_id=dispute_id,
    )


def chargeback_received(
    sender: Any, *, payment: Payment, dispute: dict[str, Any], invoice: Any, now: Any, **_: Any
) -> None:
    """Receiver of ``billing.services.payments.payment_disputed`` (connected in ``DisputesConfig.ready``)."""
    dispute_from_chargeback(payment=payment, stripe_dispute=dispute, invoice=invoice, now=now)


# --- The thread -----------------------------------------------------------------------------------------


@transaction.atomic
def dispute_reply(
    *,
    dispute: Dispute,
    body: str,
    actor: Any,
    internal: bool = False,
    attachments: Sequence[UploadedFile] = (),
    now: dt.datetime | None = None,
) -> DisputeMessage:
    """A message on the case. A customer's reply to a case waiting on them moves it back to investigating; a
    staff member's public reply is e-mailed to the customer; an internal note stays with staff."""
    now = now or clock.now()
    dispute = _locked(dispute)
    staff = _is_staff(actor)
    if staff:
        _staff(actor, PERM_CHANGE, "answer disputes")
        author = Author.STAFF
    else:
        author = _customer(actor, dispute.account_id, write=True)
        if internal:
            raise BillingError(ERR_INTERNAL_CUSTOMER, code="permission_denied", status=403)
    body = (body or "").strip()
    if not body:
        raise BillingError(ERR_BODY, code="required", field="body")
    if not dispute.is_open and not internal:
        raise BillingError(
            ERR_CLOSED.format(case=dispute.public_id, state=dispute.get_state_display().lower()),
            code="dispute_closed",
            status=409,
        )
    message = DisputeMessage.objects.create(
        dispute=dispute,
        author_kind=author,
        author=_user(actor),
        author_name=actor_label(actor),
        body=body,
        internal=internal,
        created_at=now,
    )
    event = _event(
        dispute,
        kind=Kind.NOTE if internal else Kind.MESSAGE,
        actor=actor,
        now=now,
        public=not internal,
        message=message,
    )
    for upload in attachments:
        _attachment_store(dispute, upload, author_kind=author, actor=actor, message=message, internal=internal, now=now)
    if internal:
        _save(dispute, actor=actor, reason="internal note", now=now)
        return message
    if staff:
        if dispute.first_response_at is None:
            dispute.first_response_at = now
        _save(dispute, actor=actor, reason="staff replied", now=now)
        _emit(dispute, "billing.dispute_updated", f"{dispute.pk}:{event.pk}", now)
        _mail_customer(dispute, EmailDelivery.Kind.DISPUTE_MESSAGE, now, f"message:{message.pk}", message=body)
        return message
    if dispute.state == State.WAITING_ON_CUSTOMER:
        _move(
            dispute,
            dispute.investigate,
            actor=actor,
            what="take the customer's answer",
            note="The customer answered.",
            now=now,
        )
    else:
        _save(dispute, actor=actor, reason="customer replied", now=now)
        _emit(dispute, "billing.dispute_updated", f"{dispute.pk}:{event.pk}", now)
    _mail_staff(dispute, now, f"message:{message.pk}", notice="replied", message=body, author=actor_label(actor))
    return message


# --- Transitions ----------------------------------------------------------------------------------------


@transaction.atomic
def dispute_investigate(*, dispute: Dispute, actor: Any, note: str = "", now: dt.datetime | None = None) -> Dispute:
    """Staff take the case up; it is assigned to them if nobody has it."""
    now = now or clock.now()
    dispute = _locked(dispute)
    _staff(actor, PERM_CHANGE, "work disputes")
    if dispute.assigned_to_id is None:
        dispute.assigned_to = actor
    _move(
        dispute,
        dispute.investigate,
        actor=actor,
        what="be investigated",
        note=note.strip() or "Investigating.",
        now=now,
    )
    return dispute


@transaction.atomic
def dispute_ask_customer(*, dispute: Dispute, actor: Any, question: str, now: dt.datetime | None = None) -> Dispute:
    """Staff ask the customer something: the question goes to them, and the case waits on their answer."""
    now = now or clock.now()
    dispute = _locked(dispute)
    _staff(actor, PERM_CHANGE, "work disputes")
    question = (question or "").strip()
    if not question:
        raise BillingError(ERR_QUESTION, code="required", field="question")
    _move(
        dispute,
        dispute.wait_on_customer,
        actor=actor,
        what="wait on the customer",
        note="Waiting on the customer.",
        now=now,
    )
    message = DisputeMessage.objects.create(
        dispute=dispute,
        author_kind=Author.STAFF,
        author=_user(actor),
        author_name=actor_label(actor),
        body=question,
        created_at=now,
    )
    _event(dispute, kind=Kind.MESSAGE, actor=actor, now=now, message=message)
    _mail_customer(
        dispute, EmailDelivery.Kind.DISPUTE_MESSAGE, now, f"message:{message.pk}", message=question, question=True
    )
    return dispute


def _close(
    dispute: Dispute,
    transition: Callable[[], None],
    *,
    resolution: str,
    reason: str,
    actor: Any,
    what: str,
    now: dt.datetime,
    credit_note: CreditNote | None = None,
) -> Dispute:
    dispute.resolution_note = reason
    event = _move(dispute, transition, actor=actor, what=what, note=reason, now=now, resolution=resolution)
    extra: dict[str, Any] = {"resolution_note": reason}
    if credit_note is not None:
        extra.update(
            credit_note_number=credit_note.number,
            credit_total=format_money(credit_note.total, credit_note.currency),
            amount_due_now=format_money(credit_note.invoice.amount_due, credit_note.currency),
        )
    _mail_customer(dispute, EmailDelivery.Kind.DISPUTE_RESOLVED, now, f"closed:{event.pk}", **extra)
    return dispute


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise BillingError(ERR_REASON, code="required", field="reason")
    return reason


@transaction.atomic
def dispute_resolve(*, dispute: Dispute, actor: Any, reason: str, now: dt.datetime | None = None) -> Dispute:
    """Explained and closed: the charges stand as invoiced, and the customer is told why."""
    now = now or clock.now()
    dispute = _locked(dispute)
    _staff(actor, PERM_CHANGE, "resolve disputes")
    reason = _reason(reason)
    return _close(
        dispute,
        dispute.resolve,
        resolution=Dispute.Resolution.EXPLAINED,
        reason=reason,
        actor=actor,
        what="be resolved",
        now=now,
    )


@transaction.atomic
def dispute_reject(*, dispute: Dispute, actor: Any, reason: str, now: dt.datetime | None = None) -> Dispute:
    now = now or clock.now()
    dispute = _locked(dispute)
    _staff(actor, PERM_CHANGE, "reject disputes")
    reason = _reason(reason)
    return _close(dispute, dispute.reject, resolution="", reason=reason, actor=actor, what="be rejected", now=now)


@transaction.atomic
def dispute_withdraw(*, dispute: Dispute, actor: Any, reason: str = "", now: dt.datetime | None = None) -> Dispute:
    """The customer withdraws the case."""
    now = now or clock.now()
    dispute = _locked(dispute)
    _customer(actor, dispute.account_id, write=True)
    reason = (reason or "").strip() or "Withdrawn by the customer."
    return _close(
        dispute,
        dispute.resolve,
        resolution=Dispute.Resolution.WITHDRAWN,
        reason=reason,
        actor=actor,
        what="be withdrawn",
        now=now,
    )


@transaction.atomic
def dispute_reopen(*, dispute: Dispute, actor: Any, reason: str, now: dt.datetime | None = None) -> Dispute:
    now = now or clock.now()
    dispute = _locked(dispute)
    _staff(actor, PERM_CHANGE, "reopen disputes")
    reason = _reason(reason)
    if dispute.resolution == Dispute.Resolution.CREDITED:
        raise BillingError(
            ERR_REOPEN_CREDITED.format(case=dispute.public_id), code="transition_not_allowed", status=409
        )
    dispute.resolution_note = ""
    _move(dispute, dispute.reopen, actor=actor, what="be reopened", note=reason, now=now)
    return dispute


@transaction.atomic
def dispute_assign(*, dispute: Dispute, assignee: Any, actor: Any, now: dt.datetime | None = None) -> Dispute:
    now = now or clock.now()
    dispute = _locked(dispute)
    _staff(actor, PERM_CHANGE, "assign disputes")
    if assignee is not None and not (_is_staff(assignee) and assignee.has_perm(PERM_CHANGE)):
        raise BillingError(ERR_ASSIGNEE, code="invalid_assignee", field="assignee")
    if dispute.assigned_to_id == (assignee.pk if assignee else None):
        return dispute
    dispute.assigned_to = assignee
    _save(dispute, actor=actor, reason="assigned", now=now)
    note = f"Assigned to {actor_label(assignee)}." if assignee else "Unassigned."
    _event(dispute, kind=Kind.ASSIGNED, actor=actor, now=now, note=note, public=False)
    return dispute


# --- Credits --------------------------------------------------------------------------------------------


def approval_threshold() -> Decimal:
    return Decimal(str(settings.DISPUTES_CREDIT_APPROVAL_ABOVE))


def _proposal_lines(lines: Sequence[CreditLine]) -> list[dict[str, Any]]:
    return [
        {
            "invoice_line": line.invoice_line.pk if line.invoice_line is not None else None,
            "description": line.description,
            "amount": str(line.amount),
            "quantity": None if line.quantity is None else str(line.quantity),
        }
        for line in lines
    ]


def proposal_credit_lines(proposal: CreditProposal) -> list[CreditLine]:
    by_id = {line.pk: line for line in proposal.invoice.lines.all()}
    return [
        CreditLine(
            invoice_line=by_id.get(row["invoice_line"]) if row.get("invoice_line") else None,
            description=row["description"],
            amount=Decimal(row["amount"]),
            quantity=Decimal(row["quantity"]) if row.get("quantity") else None,
        )
        for row in proposal.lines
    ]


def _issue(proposal: CreditProposal, dispute: Dispute, *, actor: Any, now: dt.datetime) -> CreditNote:
    assert dispute.invoice is not None
    note = credit_note_issue(
        invoice=dispute.invoice,
        lines=proposal_credit_lines(proposal),
        reason=f"Dispute {dispute.public_id}: {proposal.reason}"[:500],
        excess_to=proposal.excess_to,
        actor=_user(actor) or _user(proposal.requested_by),
        now=now,
    )
    proposal.status, proposal.credit_note = CreditProposal.Status.ISSUED, note
    stamp(proposal, actor=_user(actor), reason=f"issued {note.number}", at=now)
    proposal.save()
    _event(
        dispute,
        kind=Kind.CREDIT_ISSUED,
        actor=actor,
        now=now,
        note=f"{note.number}: {format_money(note.total, note.currency)} credited on {dispute.invoice.number}.",
        proposal=proposal,
    )
    if dispute.is_open:
        _close(
            dispute,
            dispute.resolve,
            resolution=Dispute.Resolution.CREDITED,
            reason=proposal.reason,
            actor=actor,
            what="be credited",
            now=now,
            credit_note=note,
        )
    return note


@transaction.atomic
def dispute_credit_propose(
    *,
    dispute: Dispute,
    actor: Any,
    lines: Sequence[CreditLine],
    reason: str,
    excess_to: str = CreditProposal.ExcessTo.BALANCE,
    now: dt.datetime | None = None,
) -> CreditProposal:
    """Propose a credit to settle the case. Up to the approval threshold (and for a refund, by someone who may
    refund) the credit note is issued at once and the case is resolved as credited; above it the proposal waits
    for a Finance admin's approval."""
    now = now or clock.now()
    dispute = _locked(dispute)
    _staff(actor, PERM_ISSUE_CREDIT, "credit customers")
    reason = _reason(reason)
    if dispute.invoice is None:
        raise BillingError(ERR_CREDIT_NO_INVOICE.format(case=dispute.public_id), code="invoice_required", status=409)
    if not dispute.is_open:
        raise BillingError(
            ERR_CREDIT_CLOSED.format(case=dispute.public_id, state=dispute.get_state_display().lower()),
            code="dispute_closed",
            status=409,
        )
    if dispute.credit_proposals.filter(status=CreditProposal.Status.PENDING).exists():
        raise BillingError(ERR_CREDIT_PENDING.format(case=dispute.public_id), code="credit_pending", status=409)
    if excess_to not in CreditProposal.ExcessTo.values:
        raise BillingError(f"Unknown destination '{excess_to}'.", code="invalid_choice", field="excess_to")
    preview = credit_preview(invoice=dispute.invoice, lines=lines)
    proposal = CreditProposal(
        dispute=dispute,
        invoice=dispute.invoice,
        lines=_proposal_lines(lines),
        currency=dispute.invoice.currency,
        subtotal=preview.subtotal,
        tax=preview.tax,
        total=preview.total,
        excess_to=excess_to,
        reason=reason[:500],
        requested_by=actor,
        requested_at=now,
    )
    stamp(proposal, actor=actor, reason="proposed", at=now)
    proposal.save()
    money = format_money(preview.total, proposal.currency)
    at_once = preview.total <= approval_threshold() and (
        excess_to == CreditProposal.ExcessTo.BALANCE or actor.has_perm(PERM_REFUND)
    )
    _event(
        dispute,
        kind=Kind.CREDIT_PROPOSED,
        actor=actor,
        now=now,
        note=f"Credit of {money} proposed: {reason}" + ("" if at_once else " Awaiting Finance approval."),
        public=False,
        proposal=proposal,
    )
    if dispute.first_response_at is None:
        dispute.first_response_at = now
        _save(dispute, actor=actor, reason="credit proposed", now=now)
    if at_once:
        _issue(proposal, dispute, actor=actor, now=now)
    return proposal


def _pending(proposal: CreditProposal, what: str) -> tuple[CreditProposal, Dispute]:
    proposal = CreditProposal.objects.select_for_update(of=("self",)).select_related("requested_by").get(pk=proposal.pk)
    dispute = _locked(proposal.dispute)
    if proposal.status != CreditProposal.Status.PENDING:
        raise BillingError(
            ERR_PROPOSAL_STATUS.format(status=proposal.get_status_display().lower(), what=what),
            code="credit_not_pending",
            status=409,
        )
    return proposal, dispute


@transaction.atomic
def credit_proposal_approve(
    *, proposal: CreditProposal, actor: Any, note: str = "", now: dt.datetime | None = None
) -> CreditNote:
    """A Finance admin — not the one who proposed it — approves a credit above the threshold: it is issued."""
    now = now or clock.now()
    _staff(actor, PERM_APPROVE_CREDIT, "approve credits")
    proposal, dispute = _pending(proposal, "approved")
    if proposal.requested_by_id == actor.pk:
        raise BillingError(
            ERR_APPROVER_IS_REQUESTER.format(user=actor_label(proposal.requested_by)),
            code="approval_by_requester",
            status=403,
        )
    proposal.decided_by, proposal.decided_at, proposal.decision_note = actor, now, note.strip()[:500]
    _event(
        dispute,
        kind=Kind.CREDIT_APPROVED,
        actor=actor,
        now=now,
        note=f"Approved: {format_money(proposal.total, proposal.currency)}"
        + (f". {note.strip()}" if note.strip() else ""),
        public=False,
        proposal=proposal,
    )
    return _issue(proposal, dispute, actor=actor, now=now)


@transaction.atomic
def credit_proposal_decline(
    *, proposal: CreditProposal, actor: Any, note: str, now: dt.datetime | None = None
) -> CreditProposal:
    now = now or clock.now()
    _staff(actor, PERM_APPROVE_CREDIT, "decline credits")
    note = (note or "").strip()
    if not note:
        raise BillingError(ERR_DECLINE_NOTE, code="required", field="note")
    proposal, dispute = _pending(proposal, "declined")
    if proposal.requested_by_id == actor.pk:
        raise BillingError(
            ERR_APPROVER_IS_REQUESTER.format(user=actor_label(proposal.requested_by)),
            code="approval_by_requester",
            status=403,
        )
    proposal.status = CreditProposal.Status.DECLINED
    proposal.decided_by, proposal.decided_at, proposal.decision_note = actor, now, note[:500]
    stamp(proposal, actor=actor, reason="declined", at=now)
    proposal.save()
    _event(
        dispute,
        kind=Kind.CREDIT_DECLINED,
        actor=actor,
        now=now,
        note=f"Declined: {note}",
        public=False,
        proposal=proposal,
    )
    _save(dispute, actor=actor, reason="credit declined", now=now)
    return proposal


@transaction.atomic
def credit_proposal_cancel(*, proposal: CreditProposal, actor: Any, now: dt.datetime | None = None) -> CreditProposal:
    now = now or clock.now()
    _staff(actor, PERM_ISSUE_CREDIT, "cancel credits")
    proposal, dispute = _pending(proposal, "cancelled")
    proposal.status = CreditProposal.Status.CANCELLED
    proposal.decided_by, proposal.decided_at = actor, now
    stamp(proposal, actor=actor, reason="cancelled", at=now)
    proposal.save()
    _event(
        dispute,
        kind=Kind.CREDIT_DECLINED,
        actor=actor,
        now=now,
        note="Proposed credit cancelled.",
        public=False,
        proposal=proposal,
    )
    _save(dispute, actor=actor, reason="credit cancelled", now=now)
    return proposal
