"""The payments ledger's writes: record a payment and apply it to invoices, apply an account's credit balance,
release money from an invoice (credit notes), reverse a wrongly recorded payment, refund.

Invariants (``billing.models.payment``): an invoice's ``amount_paid`` is the sum of its allocations and moves
only here; allocation and refund rows are never updated or deleted; a payment's allocations plus its
refunds never exceed its amount. Every write locks the rows it changes (the invoices, then the payment)
in a fixed order and leaves a history row with the actor and the reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Sum
from django.dispatch import Signal

from accounts.models import Account
from billing.models import Collection, Invoice, Payment, PaymentAllocation, Refund
from billing.selectors import credit_balance, credit_balances, open_invoices, payment_unapplied
from billing.services.documents import document_request
from billing.services.emails.queueing import email_queue_payment
from common import clock
from common.audit import stamp
from common.errors import BillingError
from common.formats import iso_utc, money_string
from common.money import format_money, round_money
from common.outbox import outbox_emit
from common.services import public_id_next

ZERO = Decimal(0)

ERR_AMOUNT = "A payment's amount must be positive."
ERR_CURRENCY = "The account is billed in {account}; a payment in {currency} cannot be applied to it."
ERR_FUTURE = "A payment cannot be received in the future ({received_at})."
ERR_ALLOCATION_ACCOUNT = "Invoice {number} belongs to another account."
ERR_NOT_PAYABLE = "Payments apply to finalized invoices with an amount due; {number} is {status}."
ERR_ALLOCATION_TOO_MUCH = "{amount} exceeds what is due on {number} ({due})."
ERR_ALLOCATIONS_EXCEED = "The amounts applied ({applied}) exceed the payment ({amount})."
ERR_ALLOCATION_AMOUNT = "Each amount applied to an invoice must be positive."
ERR_DUPLICATE = "This payment was recorded already ({payment})."
ERR_NOT_REVERSIBLE = "Only a succeeded payment without refunds can be reversed; {payment} is {status}."
ERR_REFUND_STATUS = "Only a succeeded payment can be refunded; {payment} is {status}."
ERR_REFUND_TOO_MUCH = "A refund of {amount} exceeds what is unapplied on {payment} ({left})."
ERR_BALANCE_TOO_LOW = "A refund of {amount} exceeds the account's credit balance ({balance})."
ERR_REASON = "Give a reason."
ERR_REFUND_STRIPE = (
    "{payment} was paid through Stripe: refund it in Stripe's dashboard; the refund is recorded here when "
    "Stripe reports it."
)
ERR_BALANCE_IN_STRIPE = (
    "Only {refundable} of the credit balance came by bank transfer, check or other means; the rest was paid "
    "through Stripe: refund that in Stripe's dashboard, and it is recorded here when Stripe reports it."
)
ERR_REFUND_DENIED = "Only Finance admins may refund or reverse payments."
PERM_REFUND = "billing.refund_payment"
PERM_RECORD = "billing.add_payment"
ERR_RECORD_DENIED = "Only Finance admins may record payments."

# Sent after commit with ``invoice_ids`` when invoices are finalized with money due: where automatic
# collection starts (``billing.services.collection`` connects to it).
invoice_ready_for_collection = Signal()
# Sent after commit with ``account_id`` and ``now`` (the time the payment was recorded at) when money came in,
# or when a credit note settled an invoice: the account's status may recover.
payment_received = Signal()
# Sent inside the transaction, with ``payment``, ``dispute`` (Stripe's dispute object), ``invoice`` (the one it paid,
# or None) and ``now``, when the customer's bank disputes a payment: the disputes app opens a case.
payment_disputed = Signal()


@dataclass(frozen=True)
class Applied:
    invoice: Invoice
    amount: Decimal


def require_permission(actor: Any, permission: str, message: str) -> None:
    """Refuse (403) unless ``actor`` holds ``permission``; ``actor=None`` is the system itself (a task, a
    webhook, a command) and is not checked."""
    if actor is None:
        return
    has_perm = getattr(actor, "has_perm", None)
    if not (getattr(actor, "is_authenticated", False) and has_perm is not None and has_perm(permission)):
        raise BillingError(message, code="permission_denied", status=403)


def _user(actor: Any) -> Any:
    return actor if getattr(actor, "is_authenticated", False) else None


def _positive_nets(rows: Iterable[tuple[int, Decimal]], currency: str) -> list[tuple[int, Decimal]]:
    """``(id, net)`` rows of summed allocations, rounded (see ``payment_unapplied``), the positive ones."""
    rounded = [(pk, round_money(net, currency)) for pk, net in rows]
    return [(pk, net) for pk, net in rounded if net > 0]


def _locked_invoices(ids: Sequence[int]) -> dict[int, Invoice]:
    return {i.pk: i for i in Invoice.objects.select_for_update().filter(pk__in=ids).order_by("pk")}


def _apply(
    *,
    payment: Payment,
    invoice: Invoice,
    amount: Decimal,
    kind: str,
    actor: Any,
    reason: str,
    now: dt.datetime,
) -> PaymentAllocation:
    """Move ``amount`` of ``payment`` onto (positive) or off (negative) ``invoice``, which the caller locked."""
    # Amounts read back from the database carry the columns' four places: the invoice's amounts in memory
    # (which the caller may put into events and e-mails) stay in the currency's minor unit.
    amount = round_money(amount, invoice.currency)
    allocation = PaymentAllocation.objects.create(
        payment=payment,
        invoice=invoice,
        account_id=invoice.account_id,
        kind=kind,
        amount=amount,
        currency=invoice.currency,
        created_at=now,
        created_by=_user(actor),
        reason=reason[:500],
    )
    reopened = False
    invoice.amount_paid = round_money(invoice.amount_paid + amount, invoice.currency)
    # A written-off invoice owes nothing whatever is taken back off it (its amount due was set to zero):
    # the money reversed or refunded adds to what was written off.
    if invoice.status != Invoice.Status.UNCOLLECTIBLE:
        invoice.amount_due = round_money(invoice.amount_due - amount, invoice.currency)
    fields = ["amount_paid", "amount_due", "updated_at"]
    if invoice.status == Invoice.Status.FINALIZED and invoice.amount_due == 0:
        invoice.status, invoice.paid_at = Invoice.Status.PAID, now
        fields += ["status", "paid_at"]
    elif invoice.status == Invoice.Status.PAID and invoice.amount_due > 0:
        invoice.status, invoice.paid_at, reopened = Invoice.Status.FINALIZED, None, True
        fields += ["status", "paid_at"]
    verb = "applied" if amount > 0 else "taken back"
    stamp(
        invoice,
        actor=actor,
        reason=f"{payment.public_id} {verb}: {money_string(abs(amount), invoice.currency)} ({reason})"[:100],
        at=now,
    )
    invoice.save(update_fields=fields)
    if invoice.status == Invoice.Status.PAID:
        Collection.objects.filter(invoice=invoice).update(state=Collection.State.SUCCEEDED, next_attempt_at=None)
    elif reopened:
        # It owes again: its collection is open again (staff may retry or write it off), not "paid"; an invoice
        # paid in full by the credit balance at finalization had none, and gets one now.
        Collection.objects.filter(invoice=invoice, state=Collection.State.SUCCEEDED).update(
            state=Collection.State.MANUAL, next_attempt_at=None
        )
        Collection.objects.get_or_create(
            invoice=invoice, defaults={"account_id": invoice.account_id, "state": Collection.State.MANUAL}
        )
    document_request(invoice=invoice, now=now)  # the PDF shows the balance as it stands
    return allocation


def _check_payable(invoice: Invoice, account: Account) -> None:
    if invoice.account_id != account.pk:
        raise BillingError(
            ERR_ALLOCATION_ACCOUNT.format(number=invoice.number), code="invalid_invoice", field="invoices"
        )
    if invoice.status != Invoice.Status.FINALIZED or invoice.amount_due <= 0:
        raise BillingError(
            ERR_NOT_PAYABLE.format(number=invoice.number or invoice.pk, status=invoice.get_status_display().lower()),
            code="invoice_not_payable",
            field="invoices",
            status=409,
        )


def _plan_default(amount: Decimal, invoices: list[Invoice]) -> list[Applied]:
    plan = []
    left = amount
    for invoice in invoices:
        if left <= 0:
            break
        share = min(left, invoice.amount_due)
        if share > 0:
            plan.append(Applied(invoice, share))
            left -= share
    return plan


def _emit_succeeded(payment: Payment, applied: list[Applied], now: dt.datetime) -> None:
    """``billing.payment_succeeded``: one event per invoice the payment went to (or one with no invoice)."""
    targets: list[Applied | None] = list(applied) or [None]
    for target in targets:
        invoice = target.invoice if target else None
        outbox_emit(
            type="billing.payment_succeeded",
            account_id=payment.account_id,
            dedup_key=f"payment_succeeded:{payment.pk}:{invoice.pk if invoice else '-'}",
            data={
                "invoice_id": invoice.number if invoice else None,
                "amount_paid": money_string(target.amount if target else payment.amount, payment.currency),
                "currency": payment.currency,
                "payment_id": payment.public_id,
                "payment_method": payment.payment_method or payment.provider,
                "paid_at": iso_utc(payment.received_at),
                "invoice_status": invoice.status if invoice else None,
                "amount_due": money_string(invoice.amount_due, payment.currency) if invoice else None,
            },
            now=now,
        )


def _after_money_in(payment: Payment, applied: list[Applied], now: dt.datetime) -> None:
    _emit_succeeded(payment, applied, now)
    if applied:
        email_queue_payment(payment=payment, invoice=applied[0].invoice, kind="receipt", now=now)
    account_id = payment.account_id
    transaction.on_commit(lambda: payment_received.send(sender=Payment, account_id=account_id, now=now))


@transaction.atomic
def payment_record(
    *,
    account: Account,
    amount: Decimal,
    provider: str,
    received_at: dt.datetime | None = None,
    currency: str | None = None,
    reference: str = "",
    payment_method: str = "",
    allocations: Sequence[tuple[Invoice, Decimal]] | None = None,
    external_id: str | None = None,
    note: str = "",
    actor: Any = None,
    now: dt.datetime | None = None,
) -> Payment:
    """Record money received (a bank transfer, a check, a confirmed card payment) and apply it.

    ``allocations`` names the invoices it settles and how much of it goes to each; without them it goes to
    the account's open invoices, oldest first. What is left over is the account's credit balance, applied
    to its next invoice. ``external_id`` makes the record exactly-once (409 when it exists already)."""
    now = now or clock.now()
    require_permission(actor, PERM_RECORD, ERR_RECORD_DENIED)
    received_at = received_at or now
    currency = currency or account.currency
    if currency != account.currency:
        raise BillingError(
            ERR_CURRENCY.format(account=account.currency, currency=currency), code="currency_mismatch", field="currency"
        )
    amount = round_money(amount, currency)
    if amount <= 0:
        raise BillingError(ERR_AMOUNT, code="invalid_amount", field="amount")
    if received_at > now + dt.timedelta(days=1):
        raise BillingError(
            ERR_FUTURE.format(received_at=iso_utc(received_at)), code="invalid_date", field="received_at"
        )
    if provider not in Payment.Provider.values:
        raise BillingError(f"Unknown payment method {provider!r}.", code="invalid_provider", field="provider")
    if external_id:
        existing = Payment.objects.filter(external_id=external_id).first()
        if existing is not None:
            raise BillingError(ERR_DUPLICATE.format(payment=existing.public_id), code="duplicate_payment", status=409)
    if allocations is None:
        locked = _locked_invoices([i.pk for i in open_invoices(account)])
        plan = _plan_default(amount, sorted(locked.values(), key=lambda i: (i.due_at, i.finalized_at, i.pk)))
    else:
        locked = _locked_invoices([invoice.pk for invoice, _ in allocations])
        plan = []
        # Per invoice: two allocations to one invoice together may not exceed what it owes.
        planned: dict[int, Decimal] = {}
        for invoice, share in allocations:
            invoice = locked[invoice.pk]
            share = round_money(share, currency)
            if share <= 0:
                raise BillingError(ERR_ALLOCATION_AMOUNT, code="invalid_amount", field="invoices")
            _check_payable(invoice, account)
            planned[invoice.pk] = planned.get(invoice.pk, ZERO) + share
            if planned[invoice.pk] > invoice.amount_due:
                raise BillingError(
                    ERR_ALLOCATION_TOO_MUCH.format(
                        amount=money_string(planned[invoice.pk], currency),
                        number=invoice.number,
                        due=money_string(invoice.amount_due, currency),
                    ),
                    code="allocation_exceeds_due",
                    field="invoices",
                )
            plan.append(Applied(invoice, share))
        applied_total = sum((a.amount for a in plan), ZERO)
        if applied_total > amount:
            raise BillingError(
                ERR_ALLOCATIONS_EXCEED.format(
                    applied=money_string(applied_total, currency), amount=money_string(amount, currency)
                ),
                code="allocation_exceeds_payment",
                field="invoices",
            )
    for invoice in locked.values():
        if invoice.account_id == account.pk:
            invoice.account = account  # read by the receipt e-mail and the events: no query for it again
    payment = Payment(
        public_id=public_id_next(prefix="pay"),
        account=account,
        provider=provider,
        reference=reference[:255],
        external_id=external_id or None,
        amount=amount,
        currency=currency,
        status=Payment.Status.SUCCEEDED,
        received_at=received_at,
        payment_method=payment_method[:64],
        note=note[:500],
        recorded_by=_user(actor),
        created_at=now,
    )
    stamp(payment, actor=actor, reason=f"recorded: {payment.get_provider_display()} {reference}".strip()[:100], at=now)
    payment.save()
    for target in plan:
        _apply(
            payment=payment,
            invoice=target.invoice,
            amount=target.amount,
            kind=PaymentAllocation.Kind.PAYMENT,
            actor=actor,
            reason=reference or payment.get_provider_display(),
            now=now,
        )
    _after_money_in(payment, plan, now)
    return payment


@transaction.atomic
def payment_succeeded(
    *,
    payment: Payment,
    received_at: dt.datetime,
    payment_method: str = "",
    charge_id: str = "",
    now: dt.datetime | None = None,
) -> Payment:
    """A pending (provider) payment has gone through: apply it to its invoice, the rest to the balance.
    Idempotent: a payment that already succeeded is returned unchanged."""
    now = now or clock.now()
    # Invoice first, then the payment: the order every other write of the ledger locks them in.
    invoice_id = Payment.objects.values_list("invoice_id", flat=True).get(pk=payment.pk)
    invoices = _locked_invoices([invoice_id] if invoice_id else [])
    payment = Payment.objects.select_for_update().get(pk=payment.pk)
    if payment.status != Payment.Status.PENDING and payment.status != Payment.Status.FAILED:
        return payment
    payment.status, payment.received_at = Payment.Status.SUCCEEDED, received_at
    payment.failure_code = payment.failure_message = ""
    payment.payment_method = payment_method[:64] or payment.payment_method
    payment.stripe_charge_id = charge_id or payment.stripe_charge_id
    stamp(payment, reason="succeeded", at=now)
    payment.save()
    plan: list[Applied] = []
    invoice = invoices.get(payment.invoice_id) if payment.invoice_id else None
    if invoice is not None and invoice.status == Invoice.Status.FINALIZED and invoice.amount_due > 0:
        plan = [Applied(invoice, min(payment.amount, invoice.amount_due))]
    for target in plan:
        _apply(
            payment=payment,
            invoice=target.invoice,
            amount=target.amount,
            kind=PaymentAllocation.Kind.PAYMENT,
            actor=None,
            reason=payment.payment_method or payment.get_provider_display(),
            now=now,
        )
    _after_money_in(payment, plan, now)
    return payment


def invoices_apply_balance(*, invoices: Sequence[Invoice], now: dt.datetime) -> list[PaymentAllocation]:
    """Apply each account's credit balance to its newly finalized invoice (the caller's transaction, the
    invoices saved and locked by it): unapplied money of the oldest payments first. A few grouped queries find
    the accounts with a balance, so a month's close of thousands of invoices costs the same few queries when
    none has."""
    payable = [i for i in invoices if i.status == Invoice.Status.FINALIZED and i.amount_due > 0]
    balances = credit_balances(i.account_id for i in payable)
    allocations: list[PaymentAllocation] = []
    for invoice in payable:
        if invoice.account_id not in balances:
            continue
        for payment in (
            Payment.objects.select_for_update()
            .filter(account_id=invoice.account_id, status=Payment.Status.SUCCEEDED)
            .order_by("received_at", "pk")
        ):
            if invoice.amount_due <= 0:
                break
            share = min(payment_unapplied(payment), invoice.amount_due)
            if share > 0:
                allocations.append(
                    _apply(
                        payment=payment,
                        invoice=invoice,
                        amount=share,
                        kind=PaymentAllocation.Kind.BALANCE,
                        actor=None,
                        reason="credit balance applied",
                        now=now,
                    )
                )
    return allocations


def invoice_release_payments(*, invoice: Invoice, amount: Decimal, reason: str, actor: Any, now: dt.datetime) -> None:
    """Take ``amount`` of the money that paid ``invoice`` (locked by the caller) off it again, newest allocation
    first: it goes back to those payments' unapplied part, that is, to the credit balance. Used when a credit
    note credits more than is still due; only ``invoice.amount_paid`` changes in memory, the caller saves
    the invoice with its other changes."""
    left = amount
    for payment_id, net in _net_by_payment(invoice, newest_first=True):
        if left <= 0:
            break
        share = min(net, left)
        PaymentAllocation.objects.create(
            payment_id=payment_id,
            invoice=invoice,
            account_id=invoice.account_id,
            kind=PaymentAllocation.Kind.RELEASE,
            amount=-share,
            currency=invoice.currency,
            created_at=now,
            created_by=_user(actor),
            reason=reason[:500],
        )
        invoice.amount_paid = round_money(invoice.amount_paid - share, invoice.currency)
        left -= share


def _net_by_payment(invoice: Invoice, *, newest_first: bool) -> list[tuple[int, Decimal]]:
    rows = _positive_nets(
        PaymentAllocation.objects.filter(invoice=invoice)
        .values("payment_id")
        .annotate(net=Sum("amount"))
        .values_list("payment_id", "net"),
        invoice.currency,
    )
    order: dict[int, int] = {}
    for position, payment_id in enumerate(
        PaymentAllocation.objects.filter(invoice=invoice)
        .order_by("created_at", "pk")
        .values_list("payment_id", flat=True)
    ):
        order[payment_id] = position  # the payment's latest allocation to the invoice
    return sorted(rows, key=lambda row: order.get(row[0], 0), reverse=newest_first)


@transaction.atomic
def payment_reverse(*, payment: Payment, reason: str, actor: Any = None, now: dt.datetime | None = None) -> Payment:
    """Undo a wrongly recorded payment: every invoice it paid owes that money again (a paid invoice opens
    again) and its unapplied part leaves the credit balance. The payment stays, marked reversed, with
    the actor and the reason."""
    now = now or clock.now()
    require_permission(actor, PERM_REFUND, ERR_REFUND_DENIED)
    if not reason.strip():
        raise BillingError(ERR_REASON, code="required", field="reason")
    invoice_ids = list(PaymentAllocation.objects.filter(payment=payment).values_list("invoice_id", flat=True))
    invoices = _locked_invoices(sorted(set(invoice_ids)))
    payment = Payment.objects.select_for_update().get(pk=payment.pk)
    if payment.status != Payment.Status.SUCCEEDED or payment.refunds.exists():
        raise BillingError(
            ERR_NOT_REVERSIBLE.format(payment=payment.public_id, status=payment.get_status_display().lower()),
            code="payment_not_reversible",
            status=409,
        )
    nets = _positive_nets(
        PaymentAllocation.objects.filter(payment=payment)
        .values("invoice_id")
        .annotate(net=Sum("amount"))
        .values_list("invoice_id", "net"),
        payment.currency,
    )
    for invoice_id, net in nets:
        _apply(
            payment=payment,
            invoice=invoices[invoice_id],
            amount=-net,
            kind=PaymentAllocation.Kind.REVERSAL,
            actor=actor,
            reason=f"reversed: {reason}",
            now=now,
        )
    payment.status, payment.reversed_at, payment.reversal_reason = Payment.Status.REVERSED, now, reason[:500]
    stamp(payment, actor=actor, reason=f"reversed: {reason}"[:100], at=now)
    payment.save()
    return payment


@transaction.atomic
def payment_refund(
    *,
    payment: Payment,
    amount: Decimal,
    reason: str,
    actor: Any = None,
    external_id: str | None = None,
    release_invoices: bool = False,
    refunded_at: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> Refund:
    """Give back ``amount`` of a payment. Staff refund what is unapplied (the credit balance); a refund the
    provider reports (``release_invoices``) may also take back money that paid invoices, newest first, so
    those invoices owe it again. ``external_id`` (Stripe's re_…) makes it exactly-once."""
    now = now or clock.now()
    require_permission(actor, PERM_REFUND, ERR_REFUND_DENIED)
    if not reason.strip():
        raise BillingError(ERR_REASON, code="required", field="reason")
    if external_id:
        existing = Refund.objects.filter(external_id=external_id).first()
        if existing is not None:
            return existing
    invoice_ids = list(PaymentAllocation.objects.filter(payment=payment).values_list("invoice_id", flat=True))
    invoices = _locked_invoices(sorted(set(invoice_ids)))
    payment = Payment.objects.select_for_update().get(pk=payment.pk)
    if payment.status != Payment.Status.SUCCEEDED:
        raise BillingError(
            ERR_REFUND_STATUS.format(payment=payment.public_id, status=payment.get_status_display().lower()),
            code="payment_not_refundable",
            status=409,
        )
    if payment.provider == Payment.Provider.STRIPE and not external_id:
        # Card money goes back through Stripe, whose refund (charge.refunded) is recorded here by its webhook;
        # recording one by hand would say the customer was refunded when nobody sent the money.
        raise BillingError(
            ERR_REFUND_STRIPE.format(payment=payment.public_id), code="refund_through_stripe", status=409
        )
    amount = round_money(amount, payment.currency)
    if amount <= 0:
        raise BillingError(ERR_AMOUNT, code="invalid_amount", field="amount")
    unapplied = payment_unapplied(payment)
    if amount > unapplied:
        if not release_invoices:
            raise BillingError(
                ERR_REFUND_TOO_MUCH.format(
                    amount=money_string(amount, payment.currency),
                    payment=payment.public_id,
                    left=money_string(unapplied, payment.currency),
                ),
                code="refund_exceeds_unapplied",
                field="amount",
            )
        left = amount - unapplied
        nets = _positive_nets(
            PaymentAllocation.objects.filter(payment=payment)
            .values("invoice_id")
            .annotate(net=Sum("amount"))
            .order_by("-invoice_id")
            .values_list("invoice_id", "net"),
            payment.currency,
        )
        for invoice_id, net in nets:
            if left <= 0:
                break
            share = min(net, left)
            _apply(
                payment=payment,
                invoice=invoices[invoice_id],
                amount=-share,
                kind=PaymentAllocation.Kind.REFUND,
                actor=actor,
                reason=f"refunded: {reason}",
                now=now,
            )
            left -= share
        if left > 0:
            raise BillingError(
                ERR_REFUND_TOO_MUCH.format(
                    amount=money_string(amount, payment.currency),
                    payment=payment.public_id,
                    left=money_string(amount - left, payment.currency),
                ),
                code="refund_exceeds_payment",
                field="amount",
            )
    refund = Refund.objects.create(
        public_id=public_id_next(prefix="ref"),
        payment=payment,
        account_id=payment.account_id,
        amount=amount,
        currency=payment.currency,
        status=Refund.Status.SUCCEEDED,
        reason=reason[:500],
        external_id=external_id or None,
        refunded_at=refunded_at or now,
        created_by=_user(actor),
        created_at=now,
    )
    refunded = payment.refunds.filter(status=Refund.Status.SUCCEEDED).aggregate(t=Sum("amount", default=ZERO))["t"]
    if round_money(refunded, payment.currency) >= payment.amount:
        payment.status = Payment.Status.REFUNDED
    stamp(payment, actor=actor, reason=f"refunded {money_string(amount, payment.currency)}: {reason}"[:100], at=now)
    payment.save()
    outbox_emit(
        type="billing.payment_refunded",
        account_id=payment.account_id,
        dedup_key=f"payment_refunded:{refund.pk}",
        data={
            "payment_id": payment.public_id,
            "refund_id": refund.public_id,
            "amount": money_string(amount, payment.currency),
            "currency": payment.currency,
            "reason": refund.reason,
            "refunded_at": iso_utc(refund.refunded_at),
        },
        now=now,
    )
    return refund


@transaction.atomic
def account_balance_refund(
    *, account: Account, amount: Decimal, reason: str, actor: Any = None, now: dt.datetime | None = None
) -> list[Refund]:
    """Refund ``amount`` of an account's credit balance, taken from its newest payments with money unapplied
    (bank transfers and checks are sent back by the finance team; this records that they were). Money that
    came through Stripe is refunded there, and recorded when Stripe reports it (409 here)."""
    now = now or clock.now()
    require_permission(actor, PERM_REFUND, ERR_REFUND_DENIED)
    amount = round_money(amount, account.currency)
    if amount <= 0:
        raise BillingError(ERR_AMOUNT, code="invalid_amount", field="amount")
    balance = credit_balance(account)
    if amount > balance:
        raise BillingError(
            ERR_BALANCE_TOO_LOW.format(
                amount=money_string(amount, account.currency), balance=money_string(balance, account.currency)
            ),
            code="refund_exceeds_balance",
            field="amount",
        )
    offline = [
        payment
        for payment in Payment.objects.filter(account=account, status=Payment.Status.SUCCEEDED)
        .exclude(provider=Payment.Provider.STRIPE)
        .order_by("-received_at", "-pk")
    ]
    refundable = sum((payment_unapplied(payment) for payment in offline), ZERO)
    if amount > refundable:
        raise BillingError(
            ERR_BALANCE_IN_STRIPE.format(refundable=format_money(refundable, account.currency)),
            code="refund_through_stripe",
            field="amount",
        )
    refunds = []
    left = amount
    for payment in offline:
        if left <= 0:
            break
        share = min(payment_unapplied(payment), left)
        if share > 0:
            refunds.append(payment_refund(payment=payment, amount=share, reason=reason, actor=actor, now=now))
            left -= share
    return refunds


@transaction.atomic
def invoice_payment_record(
    *, invoice: Invoice, amount: Decimal, reference: str = "", actor: Any = None, now: dt.datetime | None = None
) -> Invoice:
    """A bank transfer for one invoice: applied to it up to what is due, any excess to the credit balance."""
    invoice = Invoice.objects.select_related("account").get(pk=invoice.pk)
    _check_payable(invoice, invoice.account)
    amount = round_money(amount, invoice.currency)
    if amount <= 0:
        raise BillingError(ERR_AMOUNT, code="invalid_amount", field="amount")
    payment_record(
        account=invoice.account,
        amount=amount,
        provider=Payment.Provider.BANK_TRANSFER,
        reference=reference,
        allocations=[(invoice, min(amount, invoice.amount_due))],
        actor=actor,
        now=now,
        received_at=now,
    )
    invoice.refresh_from_db()
    return invoice
