"""The reminder schedule: reminders before the due date and overdue notices after it, each step once per
invoice (queued daily by ``billing.invoice_reminders``)."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.conf import settings

from billing.models import EmailDelivery, Invoice
from billing.selectors import invoices_awaiting_payment
from billing.services.emails.queueing import deliveries_create, delivery_build
from common import clock

logger = logging.getLogger(__name__)

Kind = EmailDelivery.Kind


@dataclass(frozen=True)
class Step:
    kind: str
    days: int
    on: dt.date  # the day it is due to go out

    def key(self, invoice_id: int) -> str:
        return f"{self.kind}:{invoice_id}:{self.days}d"


def reminder_step(
    *, due: dt.date, finalized: dt.date, today: dt.date, before: list[int], after: list[int]
) -> Step | None:
    """The most recent reminder or overdue step due by ``today`` (a late schedule sends only that one).

    Reminders go out before the due date only, and not on or before the day the invoice itself went out.
    """
    steps = [Step(Kind.REMINDER, d, due - dt.timedelta(days=d)) for d in before if d > 0]
    steps = [s for s in steps if finalized < s.on <= today < due]
    steps += [
        Step(Kind.OVERDUE, d, due + dt.timedelta(days=d))
        for d in after
        if d > 0 and due + dt.timedelta(days=d) <= today
    ]
    return max(steps, key=lambda s: s.on, default=None)


def reminders_queue(*, now: dt.datetime | None = None) -> list[int]:
    """Queue today's reminders and overdue notices: each step once per invoice (its key), and for an invoice
    whose steps were missed (the schedule did not run) only the most recent one."""
    now = now or clock.now()
    today = now.date()
    before = list(settings.BILLING_REMINDER_DAYS_BEFORE_DUE)
    after = list(settings.BILLING_OVERDUE_DAYS)
    horizon = now + dt.timedelta(days=max(before, default=0) + 1)
    invoices = list(invoices_awaiting_payment(due_before=horizon))
    chosen: list[tuple[Invoice, Step]] = []
    for invoice in invoices:
        # Awaiting payment means finalized: both dates are set.
        assert invoice.due_at is not None and invoice.finalized_at is not None
        step = reminder_step(
            due=invoice.due_at.date(), finalized=invoice.finalized_at.date(), today=today, before=before, after=after
        )
        if step is not None:
            chosen.append((invoice, step))
    if not chosen:
        return []
    sent_keys = set(
        EmailDelivery.objects.filter(dedup_key__in=[s.key(i.pk) for i, s in chosen]).values_list("dedup_key", flat=True)
    )
    rows = [
        delivery_build(
            invoice=invoice,
            kind=step.kind,
            recipients=invoice.account.billing_emails,
            now=now,
            dedup_key=step.key(invoice.pk),
        )
        for invoice, step in chosen
        if step.key(invoice.pk) not in sent_keys
    ]
    return deliveries_create(rows) if rows else []
