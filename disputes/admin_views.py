"""The dispute admin's own pages: opening a case for a customer, the case page, its actions, the credit
proposal with its preview, the evidence export and attachment downloads.

Each action is a POST to its own URL that calls ONE service of ``disputes.services`` and reports the outcome
with a message on the case page. The services decide who may act and what a step needs; these views check
the permission first (a user without it gets 403, as from the rest of the admin) and turn a ``BillingError``
into an error message, never a server error. The page offers only the actions the case's state allows
(django-fsm-2's available transitions, and the services' rules about pending credits and credited cases).
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django_fsm import TransitionNotAllowed

from billing.admin.invoices import InvoiceLineInline
from billing.evidence import LineEvidence, Share, evidence_csv, line_evidence
from billing.forms_credit import CreditForm
from billing.models import Invoice, InvoiceLine
from common import clock
from common.admin_utils import format_datetime
from common.errors import BillingError
from common.money import format_money, format_quantity
from disputes.forms import (
    DISPUTABLE_STATUSES,
    AccountPickForm,
    AssignForm,
    DecisionForm,
    MessageForm,
    NoteForm,
    QuestionForm,
    ReasonForm,
    StaffOpenForm,
)
from disputes.models import CreditProposal, Dispute, DisputeAttachment
from disputes.selectors import dispute_timeline, pending_credit, sla
from disputes.services import (
    PERM_ADD,
    PERM_APPROVE_CREDIT,
    PERM_CHANGE,
    PERM_ISSUE_CREDIT,
    PERM_REFUND,
    actor_label,
    approval_threshold,
    credit_proposal_approve,
    credit_proposal_cancel,
    credit_proposal_decline,
    dispute_ask_customer,
    dispute_assign,
    dispute_credit_propose,
    dispute_investigate,
    dispute_open,
    dispute_reject,
    dispute_reopen,
    dispute_reply,
    dispute_resolve,
)

ERR_NOT_AVAILABLE = "“{action}” is not available for {case} while it is {state}: nothing was changed."
ERR_NO_PENDING_CREDIT = "{case} has no credit awaiting approval: nothing was changed."
ERR_INVOICE_NOT_OF_ACCOUNT = "Choose one of the account's issued invoices."
ERR_PREVIEW_CHANGED = "The figures changed since the preview: check them below, then propose the credit."


# --- How a case's age and SLA read ---------------------------------------------------------------------------


def duration_text(delta: dt.timedelta) -> str:
    """``3 d 4 h``, ``5 h 10 min``, ``12 min``: a case's age or the time left, to the minute."""
    minutes = max(int(delta.total_seconds() // 60), 0)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


def _breached(text: str, title: str = "") -> str:
    return format_html('<strong class="sla-breached" title="{}" style="color: #ba2121">{}</strong>', title, text)


def sla_cell(dispute: Dispute, now: dt.datetime) -> str:
    """The queue's SLA column: the next target and the time left, or "breached" in red."""
    target = sla(dispute, now)
    breaches = [
        name
        for name, hit in (("response", target.response_breached), ("resolution", target.resolution_breached))
        if hit
    ]
    if breaches:
        return _breached("breached", title=" and ".join(breaches).capitalize() + " target missed")
    if not dispute.is_open:
        return "met"
    if dispute.first_response_at is None:
        label, due = "Response", target.response_due_at
    else:
        label, due = "Resolution", target.resolution_due_at
    if dispute.state == Dispute.State.WAITING_ON_CUSTOMER and dispute.first_response_at is not None:
        return format_html('<span title="Resolution clock paused while the customer answers">paused</span>')
    return format_html(
        '<span title="{} due {}">{} in {}</span>', label, format_datetime(due), label, duration_text(due - now)
    )


def sla_rows(dispute: Dispute, now: dt.datetime) -> list[tuple[str, str]]:
    """The case page's SLA lines: each target, when it is due, and whether it was met or missed."""
    target = sla(dispute, now)
    rows = []
    answered = dispute.first_response_at
    if target.response_breached:
        when = f"answered {format_datetime(answered)}" if answered else "not answered yet"
        rows.append(("Response", _breached(f"breached: due {format_datetime(target.response_due_at)}, {when}")))
    elif answered:
        rows.append(
            ("Response", f"met: due {format_datetime(target.response_due_at)}, answered {format_datetime(answered)}")
        )
    else:
        left = duration_text(target.response_due_at - now)
        rows.append(("Response", f"due {format_datetime(target.response_due_at)} (in {left})"))
    due = format_datetime(target.resolution_due_at)
    if target.resolution_breached:
        closed = f", closed {format_datetime(dispute.closed_at)}" if dispute.closed_at else ""
        rows.append(("Resolution", _breached(f"breached: due {due}{closed}")))
    elif dispute.closed_at:
        rows.append(("Resolution", f"met: due {due}, closed {format_datetime(dispute.closed_at)}"))
    elif dispute.state == Dispute.State.WAITING_ON_CUSTOMER:
        since = format_datetime(dispute.waiting_since)
        rows.append(("Resolution", f"paused since {since} (waiting on the customer); due {due} before the pause"))
    else:
        rows.append(("Resolution", f"due {due} (in {duration_text(target.resolution_due_at - now)})"))
    return rows


def actor_name(user: Any) -> str:
    if user is None:
        return "system"
    return user.get_full_name() or user.get_username()


# --- The actions of the case page ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseAction:
    """One action of the case page: the permission it needs, the form it posts and the one service it calls."""

    label: str
    permission: str
    form: type
    run: Callable[[Dispute, dict, Any, HttpRequest], Any]
    done: str  # the success message, formatted with the case
    multipart: bool = False


def _upload(request: HttpRequest) -> list:
    upload = request.FILES.get("attachment")
    return [upload] if upload else []


def _pending(dispute: Dispute, request: HttpRequest) -> CreditProposal:
    proposal = dispute.credit_proposals.filter(status=CreditProposal.Status.PENDING).first()
    if proposal is None or str(proposal.pk) != request.POST.get("proposal", str(proposal.pk)):
        raise BillingError(ERR_NO_PENDING_CREDIT.format(case=dispute.public_id), code="no_pending_credit", status=409)
    return proposal


ACTIONS: dict[str, CaseAction] = {
    "investigate": CaseAction(
        "Investigate",
        PERM_CHANGE,
        NoteForm,
        lambda d, data, actor, request: dispute_investigate(dispute=d, actor=actor, note=data["note"]),
        "Investigating {case}.",
    ),
    "ask": CaseAction(
        "Ask the customer",
        PERM_CHANGE,
        QuestionForm,
        lambda d, data, actor, request: dispute_ask_customer(dispute=d, actor=actor, question=data["question"]),
        "Question sent: {case} now waits on the customer.",
    ),
    "reply": CaseAction(
        "Reply to the customer",
        PERM_CHANGE,
        MessageForm,
        lambda d, data, actor, request: dispute_reply(
            dispute=d, body=data["body"], actor=actor, internal=False, attachments=_upload(request)
        ),
        "Reply sent to the customer on {case}.",
        multipart=True,
    ),
    "note": CaseAction(
        "Add internal note",
        PERM_CHANGE,
        MessageForm,
        lambda d, data, actor, request: dispute_reply(
            dispute=d, body=data["body"], actor=actor, internal=True, attachments=_upload(request)
        ),
        "Internal note added to {case} (not shown to the customer).",
        multipart=True,
    ),
    "resolve": CaseAction(
        "Resolve: explained and closed",
        PERM_CHANGE,
        ReasonForm,
        lambda d, data, actor, request: dispute_resolve(dispute=d, actor=actor, reason=data["reason"]),
        "Resolved {case}: explained and closed.",
    ),
    "reject": CaseAction(
        "Reject",
        PERM_CHANGE,
        ReasonForm,
        lambda d, data, actor, request: dispute_reject(dispute=d, actor=actor, reason=data["reason"]),
        "Rejected {case}: the customer is told why.",
    ),
    "reopen": CaseAction(
        "Reopen",
        PERM_CHANGE,
        ReasonForm,
        lambda d, data, actor, request: dispute_reopen(dispute=d, actor=actor, reason=data["reason"]),
        "Reopened {case}: investigating again.",
    ),
    "assign": CaseAction(
        "Assign",
        PERM_CHANGE,
        AssignForm,
        lambda d, data, actor, request: dispute_assign(dispute=d, assignee=data["assignee"], actor=actor),
        "Assignee of {case} saved.",
    ),
    "approve": CaseAction(
        "Approve credit",
        PERM_APPROVE_CREDIT,
        DecisionForm,
        lambda d, data, actor, request: credit_proposal_approve(
            proposal=_pending(d, request), actor=actor, note=data["note"]
        ),
        "Credit approved: the credit note is issued and {case} is resolved (credited).",
    ),
    "decline": CaseAction(
        "Decline credit",
        PERM_APPROVE_CREDIT,
        DecisionForm,
        lambda d, data, actor, request: credit_proposal_decline(
            proposal=_pending(d, request), actor=actor, note=data["note"]
        ),
        "Credit declined on {case}.",
    ),
    "cancel_credit": CaseAction(
        "Cancel the proposal",
        PERM_ISSUE_CREDIT,
        DecisionForm,
        lambda d, data, actor, request: credit_proposal_cancel(proposal=_pending(d, request), actor=actor),
        "Credit proposal cancelled on {case}.",
    ),
}


def invoice_creditable(invoice: Invoice | None) -> bool:
    return (
        invoice is not None
        and invoice.status in (Invoice.Status.FINALIZED, Invoice.Status.PAID)
        and invoice.amount_credited < invoice.total
    )


def available_actions(dispute: Dispute, user: Any) -> list[str]:
    """The actions the page offers this user on this case: what the state machine allows from its state,
    less what the services refuse (a credited case is not reopened; with a credit pending, it is decided or
    withdrawn before anything else settles the case), less what the user may not do."""
    transitions = {t.name for t in dispute.get_available_state_transitions()}
    pending = pending_credit(dispute)
    offered = []
    if "investigate" in transitions:
        offered.append("investigate")
    if "wait_on_customer" in transitions:
        offered.append("ask")
    if dispute.is_open:
        offered += ["reply", "note", "assign"]
    else:
        offered.append("note")  # internal notes stay possible on a closed case (never sent to the customer)
    if pending is None and "resolve" in transitions:
        offered.append("resolve")
    if pending is None and "reject" in transitions:
        offered.append("reject")
    if "reopen" in transitions and dispute.resolution != Dispute.Resolution.CREDITED:
        offered.append("reopen")
    if pending is not None:
        if pending.requested_by_id != user.pk:
            offered += ["approve", "decline"]
        offered.append("cancel_credit")
    allowed = [name for name in offered if user.has_perm(ACTIONS[name].permission)]
    if (
        pending is None
        and "resolve" in transitions
        and user.has_perm(PERM_ISSUE_CREDIT)
        and invoice_creditable(dispute.invoice)
    ):
        allowed.append("propose_credit")
    return allowed


def _require(request: HttpRequest, permission: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied


def _case_url(dispute: Dispute) -> str:
    return reverse("admin:disputes_dispute_change", args=[dispute.pk])


def _report(model_admin: admin.ModelAdmin, request: HttpRequest, exc: BillingError) -> None:
    """A service's refusal: 403 for who may not act (as the admin answers elsewhere), 404 for what is not
    there, a message on the page for everything else."""
    if exc.status == 403:
        raise PermissionDenied(exc.message)
    if exc.status == 404:
        raise Http404(exc.message)
    model_admin.message_user(request, exc.message, messages.ERROR)


def act_view(model_admin: admin.ModelAdmin, request: HttpRequest, object_id: int, action: str) -> HttpResponse:
    """POST one action of the case page; back to the case page with its outcome as a message."""
    spec = ACTIONS.get(action)
    if spec is None:
        raise Http404
    if request.method != "POST":
        return HttpResponseRedirect(reverse("admin:disputes_dispute_change", args=[object_id]))
    _require(request, spec.permission)
    dispute = get_object_or_404(Dispute, pk=object_id)
    form = spec.form(request.POST, request.FILES)
    if not form.is_valid():
        errors = " ".join(message for field_errors in form.errors.values() for message in field_errors)
        model_admin.message_user(request, f"{spec.label}: {errors} Nothing was changed.", messages.ERROR)
        return HttpResponseRedirect(_case_url(dispute))
    try:
        spec.run(dispute, form.cleaned_data, request.user, request)
    except BillingError as exc:
        _report(model_admin, request, exc)
    except TransitionNotAllowed:
        model_admin.message_user(
            request,
            ERR_NOT_AVAILABLE.format(
                action=spec.label, case=dispute.public_id, state=dispute.get_state_display().lower()
            ),
            messages.ERROR,
        )
    else:
        model_admin.message_user(request, spec.done.format(case=dispute.public_id), messages.SUCCESS)
    return HttpResponseRedirect(_case_url(dispute))


# --- Pages ------------------------------------------------------------------------------------------------


def _page(model_admin: admin.ModelAdmin, request: HttpRequest, template: str, **context: Any) -> TemplateResponse:
    return TemplateResponse(
        request,
        f"admin/disputes/dispute/{template}",
        {
            **model_admin.admin_site.each_context(request),
            "opts": model_admin.model._meta,
            "app_label": model_admin.model._meta.app_label,
            **context,
        },
    )


def _money(amount: Decimal | None, currency: str) -> str:
    return "–" if amount is None else format_money(amount, currency)


def _invoice_summary(invoice: Invoice) -> dict:
    currency = invoice.currency
    return {
        "invoice": invoice,
        "url": reverse("admin:billing_invoice_change", args=[invoice.pk]),
        "month": f"{invoice.period_start:%Y-%m}",
        "status": invoice.get_status_display(),
        "total": format_money(invoice.total, currency),
        "paid": format_money(invoice.amount_paid, currency),
        "credited": format_money(invoice.amount_credited, currency),
        "due": format_money(invoice.amount_due, currency),
    }


def open_view(model_admin: admin.ModelAdmin, request: HttpRequest) -> HttpResponse:
    """Open a case for a customer who phoned or wrote: the account, then one of its issued invoices, then
    what is disputed (``dispute_open`` with source staff)."""
    _require(request, PERM_ADD)
    account = invoice = None
    if request.GET.get("account"):
        picked = AccountPickForm(request.GET)
        if picked.is_valid():
            account = picked.cleaned_data["account"]
    else:
        picked = AccountPickForm()
    if account is None:
        return _page(model_admin, request, "open_account.html", title="Open a dispute for a customer", form=picked)

    invoices = Invoice.objects.filter(account=account, status__in=DISPUTABLE_STATUSES).order_by("-period_start", "-pk")
    if request.GET.get("invoice"):
        invoice = invoices.filter(pk=request.GET["invoice"]).first() if request.GET["invoice"].isdigit() else None
        if invoice is None:
            model_admin.message_user(request, ERR_INVOICE_NOT_OF_ACCOUNT, messages.ERROR)
    if invoice is None:
        open_cases = dict(
            Dispute.objects.filter(invoice__in=invoices, state__in=Dispute.OPEN_STATES).values_list(
                "invoice_id", "public_id"
            )
        )
        rows = [
            {
                **_invoice_summary(i),
                "open_case": open_cases.get(i.pk),
                "choose_url": "?" + urlencode({"account": account.pk, "invoice": i.pk}),
            }
            for i in invoices
        ]
        return _page(
            model_admin,
            request,
            "open_invoice.html",
            title=f"Open a dispute for {account.name}: which invoice?",
            account=account,
            rows=rows,
        )

    form = StaffOpenForm(request.POST or None, request.FILES or None, invoice=invoice)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            dispute = dispute_open(
                account=account,
                invoice=invoice,
                subject=data["subject"],
                description=data["description"],
                category=data["category"],
                lines=form.claims(),
                amount=data["amount"],
                source=Dispute.Source.STAFF,
                channel=data["channel"],
                actor=request.user,
                attachments=[data["attachment"]] if data.get("attachment") else [],
            )
        except BillingError as exc:
            if exc.status == 403:
                raise PermissionDenied(exc.message) from exc
            form.add_service_error(exc)
        else:
            model_admin.log_addition(request, dispute, [{"added": {}}])
            model_admin.message_user(
                request, f"Opened {dispute.public_id} for {account.name} about {invoice.number}.", messages.SUCCESS
            )
            return HttpResponseRedirect(_case_url(dispute))
    return _page(
        model_admin,
        request,
        "open_case.html",
        title=f"Open a dispute for {account.name} about {invoice.number}",
        account=account,
        summary=_invoice_summary(invoice),
        form=form,
        line_rows=form.line_rows(),
        back_url="?" + urlencode({"account": account.pk}),
    )


def _q(value: Decimal | int) -> str:
    return format_quantity(value)


def _shares(shares: list[Share]) -> list[dict]:
    return [
        {
            "key": share.key,
            "name": share.name,
            "events": _q(share.events),
            "quantity": _q(share.quantity),
            "billed": _q(share.billed),
        }
        for share in shares
    ]


def evidence_shown(evidence: LineEvidence) -> dict:
    """A line's evidence as the case page shows it: quantities without trailing zeros, each table with its
    total, and whether the events' total is the line's quantity."""
    rollups, refused, late = evidence.rollups, evidence.refused, evidence.late
    return {
        "evidence": evidence,
        "tables": [
            ("tenants", "Tenant", "By tenant", _shares(evidence.by_tenant)),
            ("partners", "Master partner", "By master partner", _shares(evidence.by_partner)),
            ("days", "Day (UTC)", "By day (UTC)", _shares(evidence.by_day)),
        ],
        "events": _q(evidence.event_count),
        "quantity": _q(evidence.quantity),
        "billed": _q(evidence.billed),
        "line_quantity": _q(evidence.line_quantity),
        "difference": _q(evidence.difference),
        "rollups": {
            "buckets": _q(rollups.buckets),
            "events": _q(rollups.events),
            "quantity_sum": _q(rollups.quantity_sum),
            "billed": _q(rollups.billed),
            "reconciles": rollups.reconciles,
            "by_tenant": _shares(rollups.by_tenant),
        },
        "refused": {
            "count": _q(refused.count),
            "quantity": _q(refused.quantity),
            "first": format_datetime(refused.first_refused_at),
            "last": format_datetime(refused.last_refused_at),
            "by_tenant": _shares(refused.by_tenant),
        },
        "late": {
            "events": _q(late.events),
            "quantity": _q(late.quantity),
            "months": [
                {
                    "month": f"{month.billing_month:%Y-%m}",
                    "invoice": month.invoice_number or "not invoiced yet",
                    "events": _q(month.events),
                    "quantity": _q(month.quantity),
                }
                for month in late.months
            ],
        },
    }


def _line_rows(dispute: Dispute) -> list[dict]:
    """Each disputed line: what it billed, what of it is disputed, and its evidence."""
    currency = dispute.currency
    events_link = InvoiceLineInline(InvoiceLine, admin.site).events
    rows = []
    for disputed in dispute.lines.select_related("invoice_line__invoice", "invoice_line__metric"):
        line = disputed.invoice_line
        rows.append(
            {
                "disputed": disputed,
                "line": line,
                "quantity": "–" if line.quantity is None else format_quantity(line.quantity),
                "billable": "–" if line.billable is None else format_quantity(line.billable),
                "amount": format_money(line.amount, currency),
                "disputed_quantity": "–"
                if disputed.disputed_quantity is None
                else format_quantity(disputed.disputed_quantity),
                "disputed_amount": _money(disputed.disputed_amount, currency),
                "events_link": events_link(line),
                "evidence": evidence_shown(line_evidence(line)) if line.metric_id else None,
            }
        )
    return rows


def _timeline_rows(dispute: Dispute) -> list[dict]:
    rows = []
    for event in dispute_timeline(dispute, for_customer=False):
        attachment = event.attachment
        rows.append(
            {
                "event": event,
                "at": format_datetime(event.created_at),
                "internal": not event.public,
                "message": event.message,
                "attachment": attachment,
                "attachment_url": _attachment_url(dispute, attachment) if attachment else None,
                "state_change": (
                    f"{Dispute.State(event.from_state).label} → {Dispute.State(event.to_state).label}"
                    if event.from_state and event.to_state
                    else ""
                ),
            }
        )
    return rows


def _attachment_url(dispute: Dispute, attachment: DisputeAttachment) -> str:
    return reverse("admin:disputes_dispute_attachment", args=[dispute.pk, attachment.token])


def _proposal_rows(dispute: Dispute) -> list[dict]:
    rows = []
    for proposal in dispute.credit_proposals.select_related("requested_by", "decided_by", "credit_note"):
        rows.append(
            {
                "proposal": proposal,
                "total": format_money(proposal.total, proposal.currency),
                "subtotal": format_money(proposal.subtotal, proposal.currency),
                "tax": format_money(proposal.tax, proposal.currency),
                "requested_by": actor_label(proposal.requested_by),
                "requested_at": format_datetime(proposal.requested_at),
                "decided_by": actor_label(proposal.decided_by) if proposal.decided_by_id else "",
                "decided_at": format_datetime(proposal.decided_at),
                "credit_note_url": reverse("admin:billing_creditnote_change", args=[proposal.credit_note_id])
                if proposal.credit_note_id
                else None,
            }
        )
    return rows


def case_view(model_admin: admin.ModelAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    """The case page: read-only, with the actions its state allows."""
    dispute = (
        Dispute.objects.select_related("account", "invoice", "assigned_to", "opened_by", "opened_by_key", "payment")
        .filter(pk=object_id if str(object_id).isdigit() else None)
        .first()
    )
    if dispute is None:
        raise Http404
    if not model_admin.has_view_or_change_permission(request, dispute):
        raise PermissionDenied
    now = clock.now()
    offered = available_actions(dispute, request.user)
    pending = pending_credit(dispute)
    forms = {
        "investigate": NoteForm(auto_id="id_investigate_%s"),
        "ask": QuestionForm(auto_id="id_ask_%s"),
        "reply": MessageForm(auto_id="id_reply_%s"),
        "note": MessageForm(auto_id="id_note_%s"),
        "resolve": ReasonForm(auto_id="id_resolve_%s"),
        "reject": ReasonForm(auto_id="id_reject_%s"),
        "reopen": ReasonForm(auto_id="id_reopen_%s"),
        "assign": AssignForm(auto_id="id_assign_%s", initial={"assignee": dispute.assigned_to_id}),
        "approve": DecisionForm(auto_id="id_approve_%s"),
        "decline": DecisionForm(auto_id="id_decline_%s"),
        "cancel_credit": DecisionForm(auto_id="id_cancel_credit_%s"),
    }
    actions = [
        {
            "name": name,
            "label": ACTIONS[name].label,
            "url": reverse("admin:disputes_dispute_act", args=[dispute.pk, name]),
            "form": forms[name],
            "multipart": ACTIONS[name].multipart,
        }
        for name in offered
        if name in ACTIONS and name not in ("approve", "decline", "cancel_credit")
    ]
    pending_actions = [
        {
            "name": name,
            "label": ACTIONS[name].label,
            "url": reverse("admin:disputes_dispute_act", args=[dispute.pk, name]),
            "form": forms[name],
        }
        for name in offered
        if name in ("approve", "decline", "cancel_credit")
    ]
    invoice = dispute.invoice
    lines = _line_rows(dispute)
    return _page(
        model_admin,
        request,
        "case.html",
        title=f"{dispute.public_id}: {dispute.subject}",
        original=dispute,
        dispute=dispute,
        has_view_permission=True,
        now=format_datetime(now),
        age=duration_text((dispute.closed_at or now) - dispute.opened_at),
        sla_rows=sla_rows(dispute, now),
        amount=_money(dispute.amount, dispute.currency),
        account_url=reverse("admin:accounts_account_change", args=[dispute.account_id]),
        account_cases_url=reverse("admin:disputes_dispute_changelist")
        + "?"
        + urlencode({"account__id__exact": dispute.account_id}),
        invoice=_invoice_summary(invoice) if invoice else None,
        assignee=actor_name(dispute.assigned_to) if dispute.assigned_to_id else "nobody",
        opened_by=_opened_by(dispute),
        lines=lines,
        evidence_csv_url=reverse("admin:disputes_dispute_evidence_csv", args=[dispute.pk])
        if any(row["evidence"] for row in lines)
        else None,
        timeline=_timeline_rows(dispute),
        attachments=[
            {"attachment": a, "url": _attachment_url(dispute, a), "at": format_datetime(a.created_at)}
            for a in dispute.attachments.all()
        ],
        proposals=_proposal_rows(dispute),
        pending=pending,
        pending_total=format_money(pending.total, pending.currency) if pending else "",
        pending_by=actor_label(pending.requested_by) if pending else "",
        pending_actions=pending_actions,
        actions=actions,
        credit_url=reverse("admin:disputes_dispute_credit", args=[dispute.pk]) if "propose_credit" in offered else None,
        history_url=reverse("admin:disputes_dispute_history", args=[dispute.pk]),
    )


def _opened_by(dispute: Dispute) -> str:
    if dispute.opened_by_id:
        who = actor_name(dispute.opened_by)
    elif dispute.opened_by_key_id:
        who = f"API key {dispute.opened_by_key.prefix}"
    else:
        who = "Stripe" if dispute.source == Dispute.Source.STRIPE else "system"
    return f"{who}, {dispute.get_source_display()} ({dispute.get_channel_display()})"


def approval_needed(*, total: Decimal, excess_to: str, user: Any) -> bool:
    """As ``dispute_credit_propose`` decides: above ``DISPUTES_CREDIT_APPROVAL_ABOVE`` (tax included), or a
    refund proposed by someone who may not refund, waits for a Finance admin."""
    return total > approval_threshold() or (
        excess_to == CreditProposal.ExcessTo.REFUND and not user.has_perm(PERM_REFUND)
    )


def credit_view(model_admin: admin.ModelAdmin, request: HttpRequest, object_id: int) -> HttpResponse:
    """Propose a credit from the case: the shared credit form, a preview of its figures (subtotal, tax, total
    and whether a Finance admin must approve it), then the proposal (``dispute_credit_propose``)."""
    _require(request, PERM_ISSUE_CREDIT)
    dispute = get_object_or_404(Dispute.objects.select_related("invoice", "account"), pk=object_id)
    invoice = dispute.invoice
    if "propose_credit" not in available_actions(dispute, request.user):
        model_admin.message_user(
            request,
            ERR_NOT_AVAILABLE.format(
                action="Propose credit", case=dispute.public_id, state=dispute.get_state_display().lower()
            ),
            messages.ERROR,
        )
        return HttpResponseRedirect(_case_url(dispute))
    form = CreditForm(invoice=invoice, data=request.POST if request.method == "POST" else None)
    preview = needs_approval = None
    if request.method == "POST" and form.is_valid():
        excess_to = form.cleaned_data.get("excess_to") or CreditProposal.ExcessTo.BALANCE
        preview = form.preview()  # the figures, or None with the service's error on the form
        if preview is not None:
            needs_approval = approval_needed(total=preview.total, excess_to=excess_to, user=request.user)
        # Proposed only as previewed: changed figures are shown again before anything is proposed.
        confirmed = preview is not None and request.POST.get("previewed_total") == str(preview.total)
        if "_propose" in request.POST and confirmed:
            try:
                proposal = dispute_credit_propose(
                    dispute=dispute,
                    actor=request.user,
                    lines=form.credit_lines(),
                    reason=form.cleaned_data["reason"],
                    excess_to=excess_to,
                )
            except BillingError as exc:
                if exc.status == 403:
                    raise PermissionDenied(exc.message) from exc
                form.add_service_error(exc)
                preview = None
            else:
                total = format_money(proposal.total, proposal.currency)
                if proposal.status == CreditProposal.Status.ISSUED:
                    number = proposal.credit_note.number if proposal.credit_note_id else ""
                    text = f"Credit of {total} issued ({number}); {dispute.public_id} is resolved (credited)."
                else:
                    text = f"Credit of {total} proposed on {dispute.public_id}: it awaits a Finance admin's approval."
                model_admin.message_user(request, text, messages.SUCCESS)
                return HttpResponseRedirect(_case_url(dispute))
        elif "_propose" in request.POST and preview is not None:
            model_admin.message_user(request, ERR_PREVIEW_CHANGED, messages.WARNING)
    currency = invoice.currency
    return _page(
        model_admin,
        request,
        "credit.html",
        title=f"Propose a credit on {dispute.public_id}",
        dispute=dispute,
        original=dispute,
        invoice=_invoice_summary(invoice),
        form=form,
        preview={
            "subtotal": format_money(preview.subtotal, currency),
            "tax": format_money(preview.tax, currency),
            "total": format_money(preview.total, currency),
            "left_to_credit": format_money(preview.left_to_credit, currency),
            "released": format_money(preview.released, currency) if preview.released else "",
            "total_raw": str(preview.total),
            "needs_approval": needs_approval,
        }
        if preview is not None
        else None,
        threshold=format_money(approval_threshold(), currency),
        back_url=_case_url(dispute),
    )


class _Echo:
    """csv.writer's file: hands each formatted row back instead of storing it."""

    def write(self, value: str) -> str:
        return value


def evidence_csv_view(model_admin: admin.ModelAdmin, request: HttpRequest, object_id: int) -> HttpResponse:
    """The disputed lines' evidence as CSV, streamed (``billing.evidence.evidence_csv``)."""
    dispute = get_object_or_404(Dispute, pk=object_id)
    if not model_admin.has_view_or_change_permission(request, dispute):
        raise PermissionDenied
    lines = [d.invoice_line for d in dispute.lines.select_related("invoice_line__invoice", "invoice_line__metric")]
    writer = csv.writer(_Echo())

    def rows() -> Iterator[str]:
        for row in evidence_csv(lines):
            yield writer.writerow(row)

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{dispute.public_id}-evidence.csv"'
    return response


def attachment_view(model_admin: admin.ModelAdmin, request: HttpRequest, object_id: int, token: str) -> HttpResponse:
    """A case's attachment, internal or public, for staff who may see the case; always as a download."""
    dispute = get_object_or_404(Dispute, pk=object_id)
    if not model_admin.has_view_or_change_permission(request, dispute):
        raise PermissionDenied
    attachment = get_object_or_404(DisputeAttachment, dispute=dispute, token=token)
    response = FileResponse(
        attachment.file.open("rb"),
        as_attachment=True,
        filename=attachment.filename,
        content_type=attachment.content_type,
    )
    response["X-Content-Type-Options"] = "nosniff"
    return response
