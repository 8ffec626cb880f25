"""The customer's side of disputes: the account's cases, opening one on an invoice, the case page (thread,
files, timeline, outcome), replying, withdrawing, and downloading the case's files.

Every case, invoice and file is looked up through ``request.account``: another account's case is a 404, and so
is an internal file of the account's own case. Members read; owners, admins and billing users also open, reply
and withdraw (``roles=``). Views parse with a form, call one service with ``actor=request.user`` and render; a
service's refusal comes back on the form (400, or 409 when the case or invoice is not in a state for it), never
as a server error.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import messages
from django.db.models import Prefetch
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import AccountUser
from billing.models import Invoice
from billing.selectors import customer_credit_notes, customer_invoices, invoice_lines
from common import clock
from common.errors import BillingError
from disputes.models import Dispute, DisputeAttachment, DisputeEvent, DisputeMessage
from disputes.selectors import (
    customer_disputes,
    dispute_attachment_for_customer,
    dispute_attachments,
    dispute_for_customer,
    dispute_timeline,
    sla,
)
from disputes.services import dispute_open, dispute_reply, dispute_withdraw
from portal.access import portal_view
from portal.forms_disputes import DisputeOpenForm, ReplyForm, WithdrawForm

Role = AccountUser.Role
# Who may open a case, reply on it and withdraw it (members only read).
ACT_ON_DISPUTES = (Role.OWNER, Role.ADMIN, Role.BILLING)
# Invoices a case can be about (the service says the same, with its reason, if asked about another).
DISPUTABLE_STATUSES = (Invoice.Status.FINALIZED, Invoice.Status.PAID, Invoice.Status.UNCOLLECTIBLE)


def _can_act(request: HttpRequest) -> bool:
    return request.membership.role in ACT_ON_DISPUTES


def _case(request: HttpRequest, public_id: str) -> Dispute:
    """The account's case; another account's (or no) case is a 404."""
    try:
        return dispute_for_customer(account=request.account, public_id=public_id)
    except BillingError as exc:
        raise Http404 from exc


def _refusal_status(exc: BillingError) -> int:
    """A refusal the customer can fix is a 400; a case or invoice not in a state for it is the service's 409."""
    return 409 if exc.status == 409 else 400


def _form_status(form) -> int:
    return 400 if form.is_bound and form.errors else 200


def _when(at: dt.datetime | None) -> str:
    return f"{at:%b} {at.day}, {at:%Y} at {at:%H:%M} UTC" if at else ""


def sla_words(dispute: Dispute, now: dt.datetime) -> list[str]:
    """What the customer may expect, and when, in sentences."""
    figures = sla(dispute, now)
    if not dispute.is_open:
        return [f"Closed on {_when(dispute.closed_at)}."]
    words = []
    if dispute.first_response_at:
        words.append(f"We first answered on {_when(dispute.first_response_at)}.")
    elif figures.response_breached:
        words.append(
            f"We aimed to answer by {_when(figures.response_due_at)} and are late: billing staff have been told."
        )
    else:
        words.append(f"We will answer by {_when(figures.response_due_at)}.")
    if dispute.state == Dispute.State.WAITING_ON_CUSTOMER:
        words.append(
            "We are waiting for your answer: reply below. The time we take to resolve the case does not run "
            "while we wait for you."
        )
    elif figures.resolution_breached:
        words.append(f"We aimed to resolve it by {_when(figures.resolution_due_at)}; it is taking longer.")
    else:
        words.append(f"We aim to resolve it by {_when(figures.resolution_due_at)}.")
    return words


def _state_label(state: str) -> str:
    return Dispute.State(state).label if state in Dispute.State.values else state


def _state_change(event: DisputeEvent) -> str:
    if not (event.from_state and event.to_state):
        return ""
    return f"{_state_label(event.from_state)} → {_state_label(event.to_state)}"


def _case_page(
    request: HttpRequest,
    dispute: Dispute,
    *,
    reply_form: ReplyForm | None = None,
    withdraw_form: WithdrawForm | None = None,
    status: int = 200,
) -> HttpResponse:
    public_files = dispute_attachments(dispute, for_customer=True)
    # Each message with its public files only (a staff member may keep a file of a message internal).
    thread = (
        DisputeMessage.objects.filter(dispute=dispute, internal=False)
        .prefetch_related(Prefetch("attachments", queryset=DisputeAttachment.objects.filter(internal=False)))
        .order_by("created_at", "id")
    )
    invoice = dispute.invoice
    if invoice is not None:
        invoice.refresh_from_db(fields=["amount_paid", "amount_credited", "amount_due", "status"])
    can_act = _can_act(request) and dispute.is_open
    # A refusal of a form the page no longer shows (the case closed meanwhile) is said at the top.
    submitted = [form for form in (reply_form, withdraw_form) if form is not None and not can_act]
    refused = [error for form in submitted for errors in form.errors.values() for error in errors]
    context: dict[str, Any] = {
        "dispute": dispute,
        "invoice": invoice,
        "lines": dispute.lines.select_related("invoice_line__metric").order_by("invoice_line__position"),
        "thread": thread,
        "attachments": public_files,
        "timeline": [
            {"event": event, "state_change": _state_change(event)}
            for event in dispute_timeline(dispute, for_customer=True)
        ],
        "sla_words": sla_words(dispute, clock.now()),
        "credit_notes": customer_credit_notes(account=request.account).filter(proposal__dispute=dispute),
        "can_act": can_act,
        "reply_form": (reply_form or ReplyForm()) if can_act else None,
        "withdraw_form": (withdraw_form or WithdrawForm()) if can_act else None,
        "refused": refused,
    }
    return render(request, "portal/dispute.html", context, status=status)


@portal_view
@require_GET
def dispute_list(request):
    cases = customer_disputes(account=request.account)
    return render(request, "portal/disputes.html", {"cases": cases, "can_act": _can_act(request)})


@portal_view(roles=ACT_ON_DISPUTES)
@require_http_methods(["GET", "POST"])
def dispute_new(request, number):
    invoice = get_object_or_404(customer_invoices(account=request.account), number=number)
    open_case = (
        # A chargeback's case runs on its own: the customer may still open theirs (as the service allows).
        customer_disputes(account=request.account)
        .filter(invoice=invoice, state__in=Dispute.OPEN_STATES, stripe_dispute_id__isnull=True)
        .first()
    )
    context: dict[str, Any] = {"invoice": invoice, "open_case": open_case}
    if open_case is not None or invoice.status not in DISPUTABLE_STATUSES:
        # One open case per invoice: the customer adds to it instead (and a void invoice owes nothing).
        return render(request, "portal/dispute_new.html", context, status=409 if request.method == "POST" else 200)
    form = DisputeOpenForm(request.POST or None, request.FILES or None, invoice=invoice, lines=invoice_lines(invoice))
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                dispute = dispute_open(
                    account=request.account,
                    invoice=invoice,
                    subject=form.cleaned_data["subject"],
                    description=form.cleaned_data["description"],
                    category=form.cleaned_data["category"],
                    lines=form.claims(),
                    source=Dispute.Source.PORTAL,
                    channel=Dispute.Channel.PORTAL,
                    actor=request.user,
                    attachments=form.cleaned_data["attachment"],
                )
            except BillingError as exc:
                form.add_service_error(exc)
                status = _refusal_status(exc)
            else:
                messages.success(request, f"Dispute {dispute.public_id} opened. We will answer by e-mail and here.")
                return redirect("portal:dispute", public_id=dispute.public_id)
        else:
            status = _form_status(form)
    context["form"] = form
    return render(request, "portal/dispute_new.html", context, status=status)


@portal_view
@require_GET
def dispute_detail(request, public_id):
    return _case_page(request, _case(request, public_id))


@portal_view(roles=ACT_ON_DISPUTES)
@require_POST
def dispute_reply_view(request, public_id):
    dispute = _case(request, public_id)
    form = ReplyForm(request.POST, request.FILES)
    if not form.is_valid():
        return _case_page(request, dispute, reply_form=form, status=400)
    try:
        dispute_reply(
            dispute=dispute,
            body=form.cleaned_data["body"],
            actor=request.user,
            attachments=form.cleaned_data["attachment"],
        )
    except BillingError as exc:
        form.add_service_error(exc)
        return _case_page(request, _case(request, public_id), reply_form=form, status=_refusal_status(exc))
    messages.success(request, "Reply sent.")
    return redirect("portal:dispute", public_id=dispute.public_id)


@portal_view(roles=ACT_ON_DISPUTES)
@require_POST
def dispute_withdraw_view(request, public_id):
    dispute = _case(request, public_id)
    form = WithdrawForm(request.POST)
    if not form.is_valid():
        return _case_page(request, dispute, withdraw_form=form, status=400)
    try:
        dispute_withdraw(dispute=dispute, actor=request.user, reason=form.cleaned_data["reason"])
    except BillingError as exc:
        form.add_service_error(exc)
        return _case_page(request, _case(request, public_id), withdraw_form=form, status=_refusal_status(exc))
    messages.success(request, f"Dispute {dispute.public_id} withdrawn.")
    return redirect("portal:dispute", public_id=dispute.public_id)


@portal_view
@require_GET
def dispute_attachment(request, public_id, token):
    try:
        attachment = dispute_attachment_for_customer(account=request.account, public_id=public_id, token=token)
    except BillingError as exc:
        raise Http404 from exc
    # Always a download, under the name it was uploaded with (Django encodes it for the header), with the
    # type the service found in its content; never sniffed, never cached.
    response = FileResponse(
        attachment.file.open("rb"),
        as_attachment=True,
        filename=attachment.filename,
        content_type=attachment.content_type,
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response
