"""Step 5 of the cycle, for money: an account whose invoices go unpaid falls past due, then suspended; a payment
that settles everything overdue restores it at once.

Rules (settings, ``docs/billing.md``):
- past due: a finalized invoice is unpaid after its due date (``lifecycle_update``, daily);
- suspended: the last automatic retry of an invoice failed (``Collection`` exhausted), or an invoice is
  ``BILLING_SUSPEND_AFTER_DAYS_OVERDUE`` days past its due date;
- active again: nothing is overdue any more and the status was set by the billing cycle, not by staff
  (``Account.status_automatic``); a suspension by staff is lifted by staff.

What suspension means: ingestion keeps accepting and storing events (usage is never lost) and the quota API
answers ``account_status: suspended`` so the vendor's own applications can block the account's users.
Every change is a history row with its reason, a ``billing.subscription_updated`` outbox event and an e-mail
to the account's billing addresses.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db import transaction

from accounts.models import Account
from accounts.services import account_set_status
from billing.models import Collection, EmailDelivery, Invoice, Subscription
from billing.services.emails.queueing import email_queue_account_status
from common import clock
from common.formats import iso_utc
from common.outbox import outbox_emit

COLLECTION_STATUSES = (Account.Status.PAST_DUE, Account.Status.SUSPENDED)
KIND_FOR_STATUS = {
    Account.Status.PAST_DUE: EmailDelivery.Kind.PAST_DUE,
    Account.Status.SUSPENDED: EmailDelivery.Kind.SUSPENDED,
    Account.Status.ACTIVE: EmailDelivery.Kind.REACTIVATED,
    Account.Status.TRIALING: EmailDelivery.Kind.REACTIVATED,
}


def overdue_invoices(account_ids: list[int] | None, now: dt.datetime) -> dict[int, list[Invoice]]:
    """Finalized invoices unpaid after their due date, oldest first, per account."""
    qs = Invoice.objects.filter(status=Invoice.Status.FINALIZED, due_at__lt=now, amount_due__gt=0)
    if account_ids is not None:
        qs = qs.filter(account_id__in=account_ids)
    result: dict[int, list[Invoice]] = {}
    for invoice in qs.order_by("due_at", "pk"):
        result.setdefault(invoice.account_id, []).append(invoice)
    return result


def suspension_due(account: Account, overdue: list[Invoice], now: dt.datetime) -> Invoice | None:
    """The invoice that makes ``account`` due for suspension, if any."""
    days = int(getattr(settings, "BILLING_SUSPEND_AFTER_DAYS_OVERDUE", 30))
    for invoice in overdue:
        assert invoice.due_at is not None
        if invoice.due_at + dt.timedelta(days=days) <= now:
            return invoice
    exhausted = (
        Collection.objects.filter(account=account, state=Collection.State.EXHAUSTED, invoice__amount_due__gt=0)
        .select_related("invoice")
        .order_by("invoice__due_at")
        .first()
    )
    if exhausted is not None and exhausted.invoice.status == Invoice.Status.FINALIZED:
        return exhausted.invoice
    return None


@transaction.atomic
def account_status_change(
    *,
    account: Account,
    status: str,
    reason: str,
    invoice: Invoice | None = None,
    actor: Any = None,
    now: dt.datetime | None = None,
) -> Account:
    """Move an account to ``status`` as the billing cycle (or staff) decided: the audited transition (whose
    ``billing.subscription_updated`` event ``account_status_event`` records) and the e-mail to its billing
    addresses about ``invoice``. No-op when unchanged."""
    now = now or clock.now()
    account = Account.objects.select_for_update().get(pk=account.pk)
    previous = account.status
    if previous == status:
        return account
    account_set_status(account=account, status=status, reason=reason, actor=actor, cause={"invoice": invoice})
    kind = KIND_FOR_STATUS.get(Account.Status(status))
    if kind is not None and invoice is not None:
        email_queue_account_status(account=account, invoice=invoice, kind=kind, now=now)
    return account


def account_status_event(
    sender: Any, *, account: Account, previous: str, reason: str, cause: dict[str, Any], **kwargs: Any
) -> None:
    """``accounts.signals.account_status_changed`` receiver (connected in ``billing.apps``): every status change,
    by the billing cycle or by staff, is recorded as ``billing.subscription_updated``."""
    now = clock.now()
    # The history row just written (the account row is locked): its id, not its date, names this change. On a
    # frozen test clock two changes share a date, and ``latest()`` could return the earlier row, whose key
    # would swallow this change's event.
    change = account.history.order_by("-history_id").values_list("history_id", flat=True).first()
    subscription = account.subscriptions.exclude(status=Subscription.Status.CANCELLED).order_by("-started_at").first()
    invoice = cause.get("invoice")
    outbox_emit(
        type="billing.subscription_updated",
        account_id=account.pk,
        dedup_key=f"account_status:{account.pk}:{change}",
        data={
            "account_id": account.public_id,
            "subscription_id": subscription.public_id if subscription else None,
            "account_status": account.status,
            "previous_status": previous,
            "reason": reason,
            "invoice_id": invoice.number if invoice is not None else None,
            "changed_at": iso_utc(account.status_changed_at or now),
        },
        now=now,
    )


def account_status_after_payment(*, account_id: int, now: dt.datetime | None = None) -> Account | None:
    """Money came in: a past-due or suspended account that the billing cycle put there, with nothing overdue
    any more, is active again at once."""
    now = now or clock.now()
    # Most payments come from accounts in good standing: one plain read answers them, no transaction.
    if not Account.objects.filter(pk=account_id, status__in=COLLECTION_STATUSES, status_automatic=True).exists():
        return None
    with transaction.atomic():
        account = Account.objects.select_for_update().get(pk=account_id)
        if account.status not in COLLECTION_STATUSES or not account.status_automatic:
            return None
        if overdue_invoices([account.pk], now).get(account.pk):
            return None
        if Collection.objects.filter(
            account=account, state=Collection.State.EXHAUSTED, invoice__status=Invoice.Status.FINALIZED
        ).exists():
            return None
        settled = (
            Invoice.objects.filter(account=account, status=Invoice.Status.PAID).order_by("-paid_at", "-pk").first()
        )
        return account_status_change(
            account=account,
            status=Account.Status.ACTIVE,
            reason="overdue invoices settled",
            invoice=settled,
            now=now,
        )


def account_statuses_update(*, now: dt.datetime | None = None) -> dict[str, int]:
    """The daily pass: past due, suspended, and back to active, as the rules above say."""
    now = now or clock.now()
    changes = {"past_due": 0, "suspended": 0, "recovered": 0}
    overdue = overdue_invoices(None, now)
    for account in Account.objects.filter(pk__in=list(overdue), status__in=[Account.Status.ACTIVE]):
        account_status_change(
            account=account,
            status=Account.Status.PAST_DUE,
            reason="invoice unpaid past its due date",
            invoice=overdue[account.pk][0],
            now=now,
        )
        changes["past_due"] += 1
    exhausted_accounts = set(
        Collection.objects.filter(
            state=Collection.State.EXHAUSTED, invoice__status=Invoice.Status.FINALIZED
        ).values_list("account_id", flat=True)
    )
    candidates = Account.objects.filter(
        pk__in=set(overdue) | exhausted_accounts,
        status__in=[Account.Status.ACTIVE, Account.Status.PAST_DUE, Account.Status.TRIALING],
    )
    for account in candidates:
        invoice = suspension_due(account, overdue.get(account.pk, []), now)
        if invoice is None:
            continue
        days = int(getattr(settings, "BILLING_SUSPEND_AFTER_DAYS_OVERDUE", 30))
        collection = getattr(invoice, "collection", None)
        reason = (
            f"all payment retries for {invoice.number} failed"
            if collection is not None and collection.state == Collection.State.EXHAUSTED
            else f"{invoice.number} unpaid {days} days past its due date"
        )
        account_status_change(account=account, status=Account.Status.SUSPENDED, reason=reason, invoice=invoice, now=now)
        changes["suspended"] += 1
    for account in Account.objects.filter(status__in=COLLECTION_STATUSES, status_automatic=True).exclude(
        pk__in=set(overdue) | exhausted_accounts
    ):
        if account_status_after_payment(account_id=account.pk, now=now) is not None:
            changes["recovered"] += 1
    return changes
