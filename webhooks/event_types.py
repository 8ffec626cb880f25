"""The event types Ledgerline sends to webhook endpoints: each with what it means and an example of its
``data``, with the keys the emitting code writes (``outbox_emit`` in billing, disputes and the hourly usage
report). A plain list of dataclasses, read by the endpoint validation, the admin and the API documentation.

An endpoint receives the types it lists, or every type but the opt-in ones (``OPT_IN``: the hourly usage
report) when it lists none. Every request's body is ``{"id": "evt_…", "type": ..., "created_at": ...,
"data": {...}}``; ``id`` is also the ``webhook-id`` header, the same on every retry and resend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EventType:
    name: str
    description: str
    example: dict[str, Any] = field(default_factory=dict)


_PLAN = {"code": "messaging-business", "name": "Business", "version": 3, "interval": "month"}

EVENT_TYPES: list[EventType] = [
    EventType(
        "billing.usage_threshold",
        "A metric's usage this period reached 50, 75, 90 or 100 % of the plan's limit (once per threshold).",
        {
            "account_id": "acc_000042",
            "threshold_type": "messages",
            "threshold_percentage": 90,
            "current_usage": "90012",
            "plan_limit": "100000",
            "period": "2026-12",
        },
    ),
    EventType(
        "billing.limit_exceeded",
        "A metric's usage this period went over the plan's limit (once per metric and period).",
        {
            "account_id": "acc_000042",
            "threshold_type": "messages",
            "threshold_percentage": 104,
            "current_usage": "104210",
            "plan_limit": "100000",
            "period": "2026-12",
        },
    ),
    EventType(
        "billing.budget_alert",
        "The estimated spend of a budget's period reached one of its alert thresholds.",
        {
            "account_id": "acc_000042",
            "budget_name": "Messaging",
            "threshold_percentage": 75,
            "current_usage": "1512.40",
            "budget_limit": "2000.00",
            "currency": "USD",
            "period_remaining_days": 12,
            "period": {"start": "2026-12-01T00:00:00Z", "end": "2027-01-01T00:00:00Z"},
        },
    ),
    EventType(
        "billing.invoice_generated",
        "An invoice was finalized and issued (numbered, due date set).",
        {
            "invoice_id": "INV-2026-000123",
            "invoice_number": "INV-2026-000123",
            "account_id": "acc_000042",
            "status": "finalized",
            "currency": "USD",
            "subtotal": "1240.00",
            "tax": "248.00",
            "total": "1488.00",
            "amount_due": "1488.00",
            "due_at": "2026-12-31T00:05:00Z",
            "period": {"start": "2026-11-01T00:00:00Z", "end": "2026-12-01T00:00:00Z"},
        },
    ),
    EventType(
        "billing.payment_succeeded",
        "Money was received and applied to an invoice (one event per invoice it went to).",
        {
            "invoice_id": "INV-2026-000123",
            "amount_paid": "1488.00",
            "currency": "USD",
            "payment_id": "pay_000311",
            "payment_method": "card",
            "paid_at": "2026-12-02T09:14:03Z",
            "invoice_status": "paid",
            "amount_due": "0.00",
        },
    ),
    EventType(
        "billing.payment_failed",
        "An automatic collection attempt failed; says when it is tried again.",
        {
            "invoice_id": "INV-2026-000123",
            "amount": "1488.00",
            "currency": "USD",
            "payment_id": "pay_000312",
            "attempt": 1,
            "failure_reason": "Your card was declined.",
            "retry_date": "2026-12-05",
            "failed_at": "2026-12-02T00:20:11Z",
        },
    ),
    EventType(
        "billing.payment_refunded",
        "A payment was refunded, in whole or in part.",
        {
            "payment_id": "pay_000311",
            "refund_id": "ref_000017",
            "amount": "200.00",
            "currency": "USD",
            "reason": "Overcharged for November messages.",
            "refunded_at": "2026-12-04T15:02:00Z",
        },
    ),
    EventType(
        "billing.payment_disputed",
        "The customer's bank disputed a card payment (a chargeback).",
        {
            "payment_id": "pay_000311",
            "invoice_id": "INV-2026-000123",
            "amount": "1488.00",
            "currency": "USD",
            "reason": "fraudulent",
            "dispute_id": "dp_1QxYz2Lk3",
            "status": "needs_response",
            "disputed_at": "2026-12-08T10:00:00Z",
        },
    ),
    EventType(
        "billing.subscription_updated",
        "The subscription or the account's status changed: a plan change applied, a cancellation scheduled, a "
        "trial extended or ended, a contract ended, the account past due, suspended or active again.",
        {
            "account_id": "acc_000042",
            "subscription_id": "sub_000058",
            "previous_subscription_id": "sub_000041",
            "change_id": "chg_000007",
            "old_plan": {**_PLAN, "code": "messaging-startup", "name": "Startup", "version": 2},
            "new_plan": _PLAN,
            "status": "active",
            "account_status": "active",
            "effective_date": "2026-12-15T00:00:00Z",
            "cancel_at_period_end": False,
        },
    ),
    EventType(
        "billing.dispute_opened",
        "A dispute case was opened on an invoice (by the customer, staff, the API or a chargeback).",
        {
            "dispute_id": "dsp_000012",
            "account_id": "acc_000042",
            "invoice_id": "INV-2026-000123",
            "state": "open",
            "resolution": None,
            "category": "usage",
            "amount": "120.00",
            "currency": "USD",
            "opened_at": "2026-12-10T09:00:00Z",
            "updated_at": "2026-12-10T09:00:00Z",
            "credit_note_id": None,
        },
    ),
    EventType(
        "billing.dispute_updated",
        "A dispute case moved on: investigated, waiting on the customer, reopened, or answered.",
        {
            "dispute_id": "dsp_000012",
            "account_id": "acc_000042",
            "invoice_id": "INV-2026-000123",
            "state": "investigating",
            "resolution": None,
            "category": "usage",
            "amount": "120.00",
            "currency": "USD",
            "opened_at": "2026-12-10T09:00:00Z",
            "updated_at": "2026-12-10T14:30:00Z",
            "credit_note_id": None,
        },
    ),
    EventType(
        "billing.dispute_resolved",
        "A dispute case was resolved (credited, explained, withdrawn) or rejected.",
        {
            "dispute_id": "dsp_000012",
            "account_id": "acc_000042",
            "invoice_id": "INV-2026-000123",
            "state": "resolved",
            "resolution": "credited",
            "category": "usage",
            "amount": "120.00",
            "currency": "USD",
            "opened_at": "2026-12-10T09:00:00Z",
            "updated_at": "2026-12-11T11:00:00Z",
            "credit_note_id": "CN-2026-000004",
        },
    ),
    EventType(
        "billing.credit_note_issued",
        "A credit note was issued against an invoice.",
        {
            "credit_note_id": "CN-2026-000004",
            "invoice_id": "INV-2026-000123",
            "subtotal": "100.00",
            "tax": "20.00",
            "total": "120.00",
            "currency": "USD",
            "reason": "Messages counted twice on 14 November.",
            "excess_to": "balance",
            "released": "0.00",
            "issued_at": "2026-12-11T11:00:00Z",
        },
    ),
    EventType(
        "billing.credit_note_voided",
        "A credit note not yet applied was voided; the invoice's amount due goes back up.",
        {
            "credit_note_id": "CN-2026-000004",
            "invoice_id": "INV-2026-000123",
            "total": "120.00",
            "currency": "USD",
            "reason": "Issued on the wrong invoice.",
            "voided_at": "2026-12-11T12:00:00Z",
            "amount_due": "1488.00",
        },
    ),
    EventType(
        "billing.usage_reported",
        "The hourly usage report (only to endpoints that name it): the last full hour's usage per metric and the "
        "month's charges so far.",
        {
            "account_id": "acc_000042",
            "hour": {"start": "2026-12-07T15:00:00Z", "end": "2026-12-07T16:00:00Z"},
            "usage": [
                {
                    "metric": "messages",
                    "name": "Messages",
                    "unit": "message",
                    "quantity": "18250",
                    "event_count": 18250,
                }
            ],
            "month": {
                "start": "2026-12-01T00:00:00Z",
                "end": "2027-01-01T00:00:00Z",
                "currency": "USD",
                "charges_to_date": "412.50",
                "tax_to_date": "0.00",
                "total_to_date": "412.50",
            },
        },
    ),
    EventType(
        "webhook.test",
        "A test event, sent on request to one endpoint only (the admin's or the API's 'send test event').",
        {"account_id": "acc_000042", "endpoint_id": "we_000003", "message": "This is a test event from Ledgerline."},
    ),
]

EVENT_TYPE_NAMES: frozenset[str] = frozenset(event.name for event in EVENT_TYPES)
# Sent only to endpoints that name them: an endpoint that takes "every type" does not get an hourly report.
OPT_IN: frozenset[str] = frozenset({"billing.usage_reported"})


def receives(event_types: list[str], event_type: str) -> bool:
    """Whether an endpoint subscribed to ``event_types`` (empty: every type but the opt-in ones) gets it."""
    return event_type in event_types if (event_types or event_type in OPT_IN) else True


TEST_EVENT = "webhook.test"


def event_type(name: str) -> EventType | None:
    return next((event for event in EVENT_TYPES if event.name == name), None)
