"""Automatic collection and dunning: charge the account's payment method when an invoice is finalized, retry on
the days ``BILLING_DUNNING_RETRY_DAYS`` gives (counted from the first failure), suspend the account once the
last retry failed; staff pause, resume, retry now or write the invoice off.

Invariants:
- one ``Collection`` per invoice with money due at finalization: *scheduled* when the account collects
  automatically and has a payment method, else *manual* (awaiting a bank transfer or "Pay now");
- one ``Payment`` per attempt (invoice, attempt n), created — under the lock of the collection row — before
  Stripe is called, and charged with the idempotency key ``invoice-<pk>-attempt-<n>``: a task that runs an
  attempt twice finds the row and never makes a second charge;
- Stripe's answer (at once, or by webhook later, in any order) settles an attempt once: a success wins over
  a failure of the same PaymentIntent, and a failure arriving after the success changes nothing;
- a payment that settles the invoice by any means sets the collection *succeeded* (``payments._apply``),
  and no further attempt is made.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import transaction

from accounts.models import Account
from billing.models import Collection, Invoice, Payment, PaymentProfile, Refund
from billing.services import stripe_gateway
from billing.services.account_status import account_status_change
from billing.services.emails.queueing import email_queue_payment
from billing.services.invoices import invoice_mark_uncollectible
from billing.services.payments import payment_disputed, payment_refund, payment_succeeded, require_permission
from common import clock
from common.audit import stamp
from common.enqueue import enqueue, enqueue_on_commit
from common.errors import BillingError
from common.formats import iso_utc, money_string
from common.money import format_money
from common.outbox import outbox_emit
from common.services import public_id_next

logger = logging.getLogger(__name__)

ATTEMPT_TASK = "billing.collection_attempt"
PERM_CHANGE = "billing.change_collection"
ERR_CHANGE_DENIED = "Only billing staff and Finance admins may pause, resume or retry collection."
ERR_NOT_PAUSABLE = "Only a scheduled collection can be paused; {number} is {state}."
ERR_NOT_PAUSED = "Only a paused collection can be resumed; {number} is {state}."
ERR_NOT_RETRYABLE = "Collection of {number} cannot be retried: it is {state}."
ERR_NOT_OPEN = "{number} has nothing due any more (it is {status})."
ERR_NO_METHOD = "The account has no payment method to charge."
ERR_WRITTEN_OFF = "Collection of {number} is {state}; only an open invoice can be written off."
ERR_REASON = "Give a reason."
ERR_NOT_SENT_CODE = "not_sent"
ERR_NOT_SENT = "Not sent to Stripe again: the invoice was settled before Stripe answered the first request."
# Retries go on while the invoice is open and the collection waits for an attempt.
ACTIVE = (Collection.State.SCHEDULED, Collection.State.RETRYING)
SUSPENDABLE = (Account.Status.ACTIVE, Account.Status.PAST_DUE, Account.Status.TRIALING)
# PaymentIntent statuses that end an attempt without money (off-session: nobody is there to authenticate).
FAILED_INTENT = {"requires_payment_method", "requires_action", "canceled"}


def retry_days() -> list[int]:
    return [int(day) for day in settings.BILLING_DUNNING_RETRY_DAYS]


def next_retry_at(collection: Collection) -> dt.datetime | None:
    """When the attempt after ``collection.attempts`` is due: attempt 1 at finalization, attempt n + 1 on day
    ``BILLING_DUNNING_RETRY_DAYS[n - 1]`` after the first failure; None after the last."""
    days = retry_days()
    if collection.first_failed_at is None:
        return None
    index = collection.attempts - 1
    if index < 0 or index >= len(days):
        return None
    return collection.first_failed_at + dt.timedelta(days=days[index])


def _invoice_open(invoice: Invoice) -> bool:
    return invoice.status == Invoice.Status.FINALIZED and invoice.amount_due > 0


# --- Start: finalization ----------------------------------------------------------------------------------


@transaction.atomic
def collections_start(*, invoice_ids: Iterable[int], now: dt.datetime | None = None) -> list[Collection]:
    """A collection for each newly finalized invoice with money due (once: an invoice that has one is left
    alone). Automatic ones get their first attempt queued after commit."""
    now = now or clock.now()
    ids = list(invoice_ids)
    started = set(Collection.objects.filter(invoice_id__in=ids).values_list("invoice_id", flat=True))
    invoices = [i for i in Invoice.objects.select_for_update().filter(pk__in=ids).order_by("pk") if i.pk not in started]
    profiles = {p.account_id: p for p in PaymentProfile.objects.filter(account_id__in={i.account_id for i in invoices})}
    created = []
    for invoice in invoices:
        if not _invoice_open(invoice):
            continue
        profile = profiles.get(invoice.account_id)
        automatic = bool(profile and profile.auto_collection and profile.has_payment_method)
        collection = Collection(
            invoice=invoice,
            account_id=invoice.account_id,
            state=Collection.State.SCHEDULED if automatic else Collection.State.MANUAL,
            next_attempt_at=now if automatic else None,
        )
        stamp(collection, reason="automatic collection scheduled" if automatic else "awaiting a manual payment", at=now)
        collection.save()
        if automatic:
            enqueue_on_commit(ATTEMPT_TASK, collection.pk)
        created.append(collection)
    return created


def collections_after_finalization(sender: Any, *, invoice_ids: list[int], **kwargs: Any) -> None:
    """``invoice_ready_for_collection`` receiver (connected in ``billing.apps``)."""
    collections_start(invoice_ids=invoice_ids)


# --- Attempts ---------------------------------------------------------------------------------------------


def collection_attempt_open(*, collection_id: int, now: dt.datetime) -> tuple[Payment | None, bool]:
    """Under the collection's lock: the attempt's Payment row (new, or the one a previous run of the same
    attempt left pending) and whether Stripe must still be asked. ``(None, False)``: nothing to do."""
    with transaction.atomic():
        collection = Collection.objects.select_for_update().select_related("invoice").get(pk=collection_id)
        invoice = collection.invoice
        in_flight = (
            Payment.objects.select_for_update()
            .filter(invoice=invoice, attempt=collection.attempts, status=Payment.Status.PENDING)
            .first()
            if collection.attempts
            else None
        )
        if in_flight is not None and not in_flight.external_id and not _invoice_open(invoice):
            # Stripe never answered this attempt, and the invoice was settled meanwhile: it is not asked again
            # (a charge now would only add to the credit balance). Had Stripe charged after all, its webhook
            # still finds this payment by its metadata and applies the money.
            in_flight.status, in_flight.failure_code = Payment.Status.FAILED, ERR_NOT_SENT_CODE
            in_flight.failure_message = ERR_NOT_SENT
            stamp(in_flight, reason="not sent: the invoice was settled meanwhile", at=now)
            in_flight.save()
            return None, False
        if in_flight is not None:
            # The same attempt again (a retried or duplicated task): Stripe answered already, or is asked
            # again with the same idempotency key, which returns the same PaymentIntent.
            return in_flight, not in_flight.external_id
        if collection.state not in ACTIVE or collection.next_attempt_at is None or collection.next_attempt_at > now:
            return None, False
        if not _invoice_open(invoice):
            return None, False
        profile = PaymentProfile.objects.filter(account_id=invoice.account_id).first()
        if profile is None or not profile.has_payment_method or not profile.stripe_customer_id:
            collection.state, collection.next_attempt_at = Collection.State.MANUAL, None
            collection.last_failure = ERR_NO_METHOD
            stamp(collection, reason="no payment method: awaiting a manual payment", at=now)
            collection.save()
            return None, False
        attempt = collection.attempts + 1
        payment = Payment(
            public_id=public_id_next(prefix="pay"),
            account_id=invoice.account_id,
            provider=Payment.Provider.STRIPE,
            amount=invoice.amount_due,
            currency=invoice.currency,
            status=Payment.Status.PENDING,
            received_at=now,
            invoice=invoice,
            attempt=attempt,
            payment_method=profile.payment_method_label,
            created_at=now,
        )
        stamp(payment, reason=f"collection attempt {attempt} for {invoice.number}", at=now)
        payment.save()
        collection.attempts, collection.last_attempt_at = attempt, now
        stamp(collection, reason=f"attempt {attempt}", at=now)
        collection.save()
        return payment, True


def collection_attempt(*, collection_id: int, now: dt.datetime | None = None) -> Payment | None:
    """Run the collection's due attempt: charge the default payment method for what the invoice owes and
    apply Stripe's answer at once. Safe to run twice (see the module's invariants)."""
    now = now or clock.now()
    if not stripe_gateway.stripe_enabled():
        # No Stripe keys (e.g. the demo): the collection keeps waiting and the 15-minute sweep asks again.
        logger.debug("Stripe is not configured: collection %s waits for its attempt.", collection_id)
        return None
    payment, ask_stripe = collection_attempt_open(collection_id=collection_id, now=now)
    if payment is None or not ask_stripe:
        return payment
    invoice = Invoice.objects.select_related("account").get(collection_payments=payment)
    profile = PaymentProfile.objects.get(account_id=payment.account_id)
    answer = stripe_gateway.payment_intent_create(
        amount=payment.amount,
        currency=payment.currency,
        customer_id=profile.stripe_customer_id,
        payment_method_id=profile.payment_method_id,
        metadata={
            "invoice_number": invoice.number or "",
            "attempt": str(payment.attempt),
            "payment_id": payment.public_id,
            "account_id": str(invoice.account.public_id),
        },
        description=f"Invoice {invoice.number}",
        idempotency_key=f"invoice-{invoice.pk}-attempt-{payment.attempt}",
    )
    if answer.intent is None:
        return collection_payment_failed(
            payment=payment, failure_code=answer.error_code, failure_message=answer.error_message, now=now
        )
    return intent_apply(intent=answer.intent, payment=payment, now=now)


def collections_run_due(*, now: dt.datetime | None = None) -> int:
    """Queue an attempt task for every collection whose next attempt is due (the 15-minute schedule)."""
    now = now or clock.now()
    ids = list(
        Collection.objects.filter(state__in=ACTIVE, next_attempt_at__lte=now, invoice__status=Invoice.Status.FINALIZED)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)
    )
    for pk in ids:
        enqueue(ATTEMPT_TASK, pk)
    return len(ids)


# --- Stripe's answers -------------------------------------------------------------------------------------


def _intent_failure(intent: dict[str, Any]) -> tuple[str, str]:
    error = intent.get("last_payment_error") or {}
    code = error.get("decline_code") or error.get("code") or intent.get("status", "")
    return str(code)[:64], str(error.get("message") or "")[:500]


def intent_is_accounts(intent: dict[str, Any], account_id: int) -> bool:
    """Whether a PaymentIntent's money comes from the account's own Stripe customer. Its metadata alone
    proves nothing: any PaymentIntent of the Stripe account (made on the dashboard, by another integration,
    or with copied metadata) may name one of our invoices or payments."""
    customer = _id(intent.get("customer"))
    known = PaymentProfile.objects.filter(account_id=account_id).values_list("stripe_customer_id", flat=True).first()
    return bool(customer) and customer == known


def _intent_matches(intent: dict[str, Any], payment: Payment) -> bool:
    """Whether a succeeded PaymentIntent received exactly ``payment``'s amount, in its currency."""
    received = intent.get("amount_received") or intent.get("amount")
    currency = str(intent.get("currency") or "").upper()
    return currency == payment.currency and received == stripe_gateway.to_minor(payment.amount, payment.currency)


def _payment_for_intent(intent: dict[str, Any], now: dt.datetime) -> Payment | None:
    """Our payment of a PaymentIntent: the attempt's row, or for a "Pay now" checkout (no row until Stripe
    reports it) a new pending one for the invoice its metadata names. None: not ours — a PaymentIntent of
    another customer than the one of the account named, or in another currency than the invoice's, pays
    nothing here (the daily reconciliation shows its charge to staff)."""
    payment = Payment.objects.filter(external_id=intent["id"]).first()
    if payment is not None:
        return payment
    metadata = intent.get("metadata") or {}
    if metadata.get("payment_id"):
        payment = Payment.objects.filter(public_id=metadata["payment_id"], provider=Payment.Provider.STRIPE).first()
        if payment is not None:
            if payment.external_id or not intent_is_accounts(intent, payment.account_id):
                logger.warning("PaymentIntent %s names payment %s of another customer.", intent["id"], payment)
                return None
            return payment
    number = metadata.get("invoice_number")
    if not number:
        return None
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().select_related("account").filter(number=number).first()
        if invoice is None:
            return None
        named_account = metadata.get("account_id")
        if (
            not intent_is_accounts(intent, invoice.account_id)
            or (named_account and named_account != invoice.account.public_id)
            or str(intent.get("currency") or "").upper() != invoice.currency
        ):
            logger.warning("PaymentIntent %s does not pay %s: another customer or currency.", intent["id"], number)
            return None
        existing = Payment.objects.filter(external_id=intent["id"]).first()
        if existing is not None:
            return existing
        currency = str(intent.get("currency", invoice.currency)).upper()
        payment = Payment(
            public_id=public_id_next(prefix="pay"),
            account_id=invoice.account_id,
            provider=Payment.Provider.STRIPE,
            reference=intent["id"],
            external_id=intent["id"],
            amount=stripe_gateway.from_minor(intent.get("amount_received") or intent["amount"], currency),
            currency=currency,
            status=Payment.Status.PENDING,
            received_at=now,
            invoice=invoice,
            created_at=now,
        )
        stamp(payment, reason=f"paid through Stripe Checkout for {invoice.number}", at=now)
        payment.save()
    return payment


def intent_apply(
    *, intent: dict[str, Any], payment: Payment | None = None, now: dt.datetime | None = None
) -> Payment | None:
    """Apply what a PaymentIntent says (the charge's immediate answer or a webhook's copy), once."""
    now = now or clock.now()
    payment = payment or _payment_for_intent(intent, now)
    if payment is None:
        return None
    status = intent.get("status")
    if status == "succeeded" and not _intent_matches(intent, payment):
        # Not the charge we asked for: the payment stays as it is (nor is it tied to this PaymentIntent), and
        # the charge is left to reconciliation.
        logger.warning("PaymentIntent %s does not match the amount or currency of %s.", intent["id"], payment)
        return payment
    if not payment.external_id:
        Payment.objects.filter(pk=payment.pk, external_id__isnull=True).update(
            external_id=intent["id"], reference=intent["id"]
        )
        payment.refresh_from_db()
    if status == "succeeded":
        method = intent.get("payment_method")
        if isinstance(method, str) and method and not payment.payment_method:
            method = stripe_gateway.payment_method_retrieve(payment_method_id=method)
        label = stripe_gateway.payment_method_label(method) if isinstance(method, dict) else ""
        charge = intent.get("latest_charge")
        charge_id = charge.get("id", "") if isinstance(charge, dict) else (charge or "")
        return payment_succeeded(payment=payment, received_at=now, payment_method=label, charge_id=charge_id, now=now)
    if status in FAILED_INTENT:
        code, message = _intent_failure(intent)
        return collection_payment_failed(payment=payment, failure_code=code, failure_message=message, now=now)
    return payment  # processing (e.g. a bank debit): its webhook settles it


@transaction.atomic
def collection_payment_failed(
    *, payment: Payment, failure_code: str, failure_message: str, now: dt.datetime | None = None
) -> Payment:
    """Record a failed attempt: the failure on the payment, the next retry (or exhaustion and the account's
    suspension after the last), ``billing.payment_failed`` and the customer's e-mail. A payment that is not
    pending any more (succeeded, or this failure recorded already) is left as it is."""
    now = now or clock.now()
    payment = Payment.objects.select_for_update().get(pk=payment.pk)
    if payment.status != Payment.Status.PENDING:
        return payment
    payment.status = Payment.Status.FAILED
    payment.failure_code, payment.failure_message = failure_code[:64], failure_message[:500]
    stamp(payment, reason=f"failed: {failure_code}"[:100], at=now)
    payment.save()
    if payment.invoice_id is None:
        return payment
    invoice = Invoice.objects.select_related("account").get(pk=payment.invoice_id)
    collection = Collection.objects.select_for_update().filter(invoice=invoice).first()
    retry_at = None
    exhausted = False
    if collection is not None and payment.attempt and payment.attempt == collection.attempts:
        collection.first_failed_at = collection.first_failed_at or now
        collection.last_failure = (failure_message or failure_code)[:500]
        if collection.state in ACTIVE:
            retry_at = next_retry_at(collection)
            if retry_at is not None and _invoice_open(invoice):
                collection.state, collection.next_attempt_at = Collection.State.RETRYING, retry_at
            elif _invoice_open(invoice):
                collection.state, collection.next_attempt_at = Collection.State.EXHAUSTED, None
                exhausted = True
        elif collection.state == Collection.State.PAUSED:
            retry_at = None
        stamp(collection, reason=f"attempt {payment.attempt} failed: {failure_code}"[:100], at=now)
        collection.save()
    outbox_emit(
        type="billing.payment_failed",
        account_id=payment.account_id,
        dedup_key=f"payment_failed:{payment.pk}",
        data={
            "invoice_id": invoice.number,
            "amount": money_string(payment.amount, payment.currency),
            "currency": payment.currency,
            "payment_id": payment.public_id,
            "attempt": payment.attempt,
            "failure_reason": payment.failure_message or payment.failure_code,
            "retry_date": retry_at.date().isoformat() if retry_at else None,
            "failed_at": iso_utc(now),
        },
        now=now,
    )
    if _invoice_open(invoice):
        # Paid meanwhile by other means (a bank transfer, a credit note) or written off: no "please pay" e-mail.
        email_queue_payment(payment=payment, invoice=invoice, kind="payment_failed", now=now)
    if exhausted and invoice.account.status in SUSPENDABLE:
        account_status_change(
            account=invoice.account,
            status=Account.Status.SUSPENDED,
            reason=f"all payment retries for {invoice.number} failed",
            invoice=invoice,
            now=now,
        )
    return payment


def _payment_of_charge(charge_id: str, intent_id: str | None) -> Payment | None:
    if intent_id:
        payment = Payment.objects.filter(external_id=intent_id).first()
        if payment is not None:
            return payment
    return Payment.objects.filter(stripe_charge_id=charge_id).first() if charge_id else None


def stripe_refunds_record(*, charge: dict[str, Any], now: dt.datetime | None = None) -> list[Refund]:
    """Record each succeeded refund of a Stripe charge that is not in the ledger yet (exactly once by its
    ``re_…`` id). Money that paid an invoice is taken back off it, so the invoice owes it again."""
    now = now or clock.now()
    payment = _payment_of_charge(charge.get("id", ""), _id(charge.get("payment_intent")))
    if payment is None:
        return []
    known = set(Refund.objects.filter(payment=payment).values_list("external_id", flat=True))
    recorded = []
    for refund in sorted(stripe_gateway.charge_refunds(charge_id=charge["id"]), key=lambda r: r.get("created", 0)):
        if refund.get("status") != "succeeded" or refund["id"] in known:
            continue
        why = refund.get("reason") or "refunded at Stripe"
        recorded.append(
            payment_refund(
                payment=payment,
                amount=stripe_gateway.from_minor(refund["amount"], refund.get("currency", payment.currency)),
                reason=f"Stripe refund {refund['id']}: {why}",
                external_id=refund["id"],
                release_invoices=True,
                refunded_at=stripe_gateway.timestamp(refund.get("created")) or now,
                now=now,
            )
        )
    return recorded


@transaction.atomic
def stripe_dispute_record(*, dispute: dict[str, Any], now: dt.datetime | None = None) -> Payment | None:
    """The customer's bank disputes a charge: the disputed amount and the dispute's id go on the payment,
    ``billing.payment_disputed`` is emitted and the invoice's collection names it for staff."""
    now = now or clock.now()
    payment = _payment_of_charge(_id(dispute.get("charge")) or "", _id(dispute.get("payment_intent")))
    if payment is None:
        return None
    payment = Payment.objects.select_for_update().get(pk=payment.pk)
    amount = stripe_gateway.from_minor(dispute["amount"], dispute.get("currency", payment.currency))
    if payment.dispute_reference == dispute["id"] and payment.disputed_amount == amount:
        return payment
    payment.disputed_amount, payment.dispute_reference = min(amount, payment.amount), dispute["id"]
    reason = dispute.get("reason") or "unknown"
    stamp(payment, reason=f"disputed ({reason}): {money_string(amount, payment.currency)}"[:100], at=now)
    payment.save()
    invoice = payment.invoice or next((a.invoice for a in payment.allocations.select_related("invoice")), None)
    if invoice is not None:
        collection = Collection.objects.select_for_update().filter(invoice=invoice).first()
        if collection is not None:
            collection.last_failure = (
                f"{payment.public_id} disputed at the bank ({reason}): "
                f"{format_money(payment.disputed_amount, payment.currency)}, dispute {dispute['id']}"
            )[:500]
            stamp(collection, reason="payment disputed", at=now)
            collection.save()
    payment_disputed.send(sender=Payment, payment=payment, dispute=dispute, invoice=invoice, now=now)
    outbox_emit(
        type="billing.payment_disputed",
        account_id=payment.account_id,
        dedup_key=f"payment_disputed:{dispute['id']}",
        data={
            "payment_id": payment.public_id,
            "invoice_id": invoice.number if invoice else None,
            "amount": money_string(payment.disputed_amount, payment.currency),
            "currency": payment.currency,
            "reason": reason,
            "dispute_id": dispute["id"],
            "status": dispute.get("status"),
            "disputed_at": iso_utc(stripe_gateway.timestamp(dispute.get("created")) or now),
        },
        now=now,
    )
    return payment


def _id(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("id")
    return value or None


# --- Staff ------------------------------------------------------------------------------------------------


def _locked(collection: Collection) -> Collection:
    return Collection.objects.select_for_update().select_related("invoice").get(pk=collection.pk)


def _label(collection: Collection) -> dict[str, str]:
    return {"number": collection.invoice.number or "", "state": collection.get_state_display().lower()}


@transaction.atomic
def collection_pause(*, collection: Collection, actor: Any = None, now: dt.datetime | None = None) -> Collection:
    """Stop automatic attempts until staff resume (e.g. the customer promised a bank transfer)."""
    now = now or clock.now()
    require_permission(actor, PERM_CHANGE, ERR_CHANGE_DENIED)
    collection = _locked(collection)
    if collection.state not in ACTIVE:
        raise BillingError(ERR_NOT_PAUSABLE.format(**_label(collection)), code="collection_not_pausable", status=409)
    collection.state, collection.next_attempt_at = Collection.State.PAUSED, None
    stamp(collection, actor=actor, reason="paused", at=now)
    collection.save()
    return collection


@transaction.atomic
def collection_resume(*, collection: Collection, actor: Any = None, now: dt.datetime | None = None) -> Collection:
    """Go on with the schedule where it stood: the next retry on its day (at once if that has passed)."""
    now = now or clock.now()
    require_permission(actor, PERM_CHANGE, ERR_CHANGE_DENIED)
    collection = _locked(collection)
    if collection.state != Collection.State.PAUSED:
        raise BillingError(ERR_NOT_PAUSED.format(**_label(collection)), code="collection_not_paused", status=409)
    if not _invoice_open(collection.invoice):
        raise BillingError(
            ERR_NOT_OPEN.format(
                number=collection.invoice.number, status=collection.invoice.get_status_display().lower()
            ),
            code="invoice_not_open",
            status=409,
        )
    if collection.attempts == 0:
        collection.state, collection.next_attempt_at = Collection.State.SCHEDULED, now
    else:
        due = next_retry_at(collection)
        if due is None:
            collection.state, collection.next_attempt_at = Collection.State.EXHAUSTED, None
        else:
            collection.state, collection.next_attempt_at = Collection.State.RETRYING, max(due, now)
    stamp(collection, actor=actor, reason="resumed", at=now)
    collection.save()
    if collection.next_attempt_at is not None and collection.next_attempt_at <= now:
        enqueue_on_commit(ATTEMPT_TASK, collection.pk)
    return collection


@transaction.atomic
def collection_retry_now(*, collection: Collection, actor: Any = None, now: dt.datetime | None = None) -> Collection:
    """Charge the payment method now, outside the schedule (e.g. the customer updated the card). Also for an
    exhausted or manual collection; a failure then counts like any other."""
    now = now or clock.now()
    require_permission(actor, PERM_CHANGE, ERR_CHANGE_DENIED)
    collection = _locked(collection)
    if collection.state in (Collection.State.SUCCEEDED, Collection.State.WRITTEN_OFF):
        raise BillingError(ERR_NOT_RETRYABLE.format(**_label(collection)), code="collection_not_retryable", status=409)
    if not _invoice_open(collection.invoice):
        raise BillingError(
            ERR_NOT_OPEN.format(
                number=collection.invoice.number, status=collection.invoice.get_status_display().lower()
            ),
            code="invoice_not_open",
            status=409,
        )
    profile = PaymentProfile.objects.filter(account_id=collection.account_id).first()
    if profile is None or not profile.has_payment_method or not profile.stripe_customer_id:
        raise BillingError(ERR_NO_METHOD, code="no_payment_method", status=409)
    collection.state = Collection.State.RETRYING if collection.attempts else Collection.State.SCHEDULED
    collection.next_attempt_at = now
    stamp(collection, actor=actor, reason="retry now", at=now)
    collection.save()
    enqueue_on_commit(ATTEMPT_TASK, collection.pk)
    return collection


@transaction.atomic
def collection_write_off(
    *, collection: Collection, reason: str, actor: Any = None, now: dt.datetime | None = None
) -> Collection:
    """Give up collecting: the invoice is written off as uncollectible (Finance admin only, checked by
    ``invoice_mark_uncollectible``) and no attempt is made any more."""
    now = now or clock.now()
    if not reason.strip():
        raise BillingError(ERR_REASON, code="required", field="reason")
    collection = _locked(collection)
    if collection.state in (Collection.State.SUCCEEDED, Collection.State.WRITTEN_OFF):
        raise BillingError(ERR_WRITTEN_OFF.format(**_label(collection)), code="collection_closed", status=409)
    invoice_mark_uncollectible(invoice=collection.invoice, reason=reason, actor=actor)
    collection.state, collection.next_attempt_at = Collection.State.WRITTEN_OFF, None
    stamp(collection, actor=actor, reason=f"written off: {reason}"[:100], at=now)
    collection.save()
    return collection
