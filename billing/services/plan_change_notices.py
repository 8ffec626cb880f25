"""Plan change requests' trail: each step saved with its audit stamp and e-mailed to the account's billing
contacts, and withdrawing open requests (a cancellation supersedes them). Below both
``billing.services.subscriptions`` (which withdraws on cancelling) and ``billing.services.plan_changes``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from accounts.models import Account, ApiKey
from billing.models import PlanChangeRequest
from billing.services.emails.queueing import email_queue_account_notice
from common.audit import stamp

State = PlanChangeRequest.State


def acting_user(actor: Any) -> Any:
    return actor if getattr(actor, "is_authenticated", False) and not isinstance(actor, ApiKey) else None


def event_context(change: PlanChangeRequest, event: str, withdrawn_because: str = "") -> dict[str, Any]:
    preview = change.preview or {}
    return {
        "event": event,
        "change_id": change.public_id,
        "from_plan": change.from_version.plan.name,
        "to_plan": change.to_version.plan.name,
        "timing": change.get_timing_display(),
        "effective_date": change.effective_at.date().isoformat() if change.effective_at else "",
        "requested_by": change.requested_by_label,
        "decision_note": change.decision_note,
        "withdrawn_because": withdrawn_because,
        "needs_approval": change.needs_approval,
        "new_subtotal": preview.get("new_subtotal", ""),
        "current_subtotal": preview.get("current_subtotal", ""),
        "currency": preview.get("currency", change.account.currency),
        "period_label": preview.get("period", {}).get("start", "")[:7],
    }


def change_notify(
    change: PlanChangeRequest, event: str, now: dt.datetime, actor: Any = None, withdrawn_because: str = ""
) -> None:
    email_queue_account_notice(
        account=change.account,
        kind="plan_change",
        context=event_context(change, event, withdrawn_because),
        now=now,
        dedup_key=f"plan_change:{change.pk}:{event}",
        requested_by=acting_user(actor),
    )


def change_save(change: PlanChangeRequest, *, actor: Any, reason: str, now: dt.datetime) -> None:
    stamp(change, actor=acting_user(actor), reason=reason, at=now)
    change.save()


def change_withdraw(change: PlanChangeRequest, *, reason: str, actor: Any, now: dt.datetime) -> None:
    change.cancel()
    change_save(change, actor=actor, reason=f"withdrawn: {reason}", now=now)
    change_notify(change, "cancelled", now, actor, withdrawn_because=reason)


def plan_changes_withdraw_open(*, account: Account, reason: str, actor: Any = None, now: dt.datetime) -> int:
    """Withdraw the account's waiting or scheduled change (a cancellation supersedes it). Returns how many."""
    withdrawn = 0
    for change in PlanChangeRequest.objects.select_for_update().filter(
        account=account, state__in=[State.PENDING, State.SCHEDULED]
    ):
        change_withdraw(change, reason=reason, actor=actor, now=now)
        withdrawn += 1
    return withdrawn
