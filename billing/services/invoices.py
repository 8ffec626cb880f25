"""Writes of invoices: draft (from the pricing engine's estimate), finalize, hold, release, void, write off.

A finalized invoice never changes its number, period, lines or money (the services refuse, and a
database trigger rejects the update); its balance moves only by payments (``billing.services.payments``)
and credit notes (``billing.services.credit_notes``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction

from accounts.models import Account
from billing.models import Collection, Invoice, InvoiceLine
from billing.rating.allocation import line_partner_costs, line_tenant_costs
from billing.rating.engine import ChargeLine, Estimate, charges_estimate
from billing.services.documents import document_request, documents_request_for_invoices
from billing.services.emails.queueing import emails_queue_for_invoices
from billing.services.numbering import document_numbers
from billing.services.payments import invoice_ready_for_collection, invoices_apply_balance
from common import clock, locks
from common.audit import stamp
from common.bulk import bulk_update_fields
from common.errors import BillingError
from common.formats import iso_utc, money_string
from common.money import QUANTITY_LIMIT, amount_fits, format_money, largest_amount
from common.outbox import OutboxMessage, outbox_emit_many
from common.periods import Period
from tenants.models import MasterPartner, Tenant
from usage.models import ClosedPeriod, UsageEvent

ZERO = Decimal(0)

ERR_LOCKED = "Invoice {number} is {status}: it cannot change. Issue a credit note to correct it."
ERR_NOT_DRAFT = "Only a draft can be {action}; invoice {invoice} is {status}."
ERR_HELD = "The invoice is held ({reason}); release it before finalizing."
ERR_TOTALS = "Totals do not add up: lines {lines}, subtotal {subtotal}, tax {tax}, total {total}."
ERR_AMOUNT_LIMIT = (
    "The charges ({amount}) exceed the largest amount an invoice holds ({limit}): "
    "review the account's usage before billing it."
)
ERR_QUANTITY_LIMIT = (
    "{metric}: a quantity of {quantity:,f} exceeds the largest an invoice line holds (below {limit:,f}): "
    "review the account's usage before billing it."
)
ERR_VOID_ISSUED_DENIED = "Only Finance admins may void an issued invoice; {invoice} is {status}."
ERR_WRITE_OFF_DENIED = "Only Finance admins may write off an invoice; {invoice} was not written off."
PERM_VOID_ISSUED = "billing.void_issued_invoice"
PERM_WRITE_OFF = "billing.write_off_invoice"


def lock_accounts_periods(account_ids: Iterable[int]) -> None:
    """Exclusive period locks on accounts (sorted, so concurrent runs never deadlock): past-month event
    writers of these accounts finish first, and later ones see the month closed (late usage)."""
    locks.lock_many(locks.PERIODS, account_ids)


def estimate_verify(estimate: Estimate) -> None:
    """Before an estimate is written as an invoice: its lines add up to the subtotal and subtotal plus tax to
    the total, and every amount and quantity fits its column. An account whose usage would overflow an
    invoice is refused here (and held for review by the billing run) rather than failing in the database."""
    lines = sum((line.amount for line in estimate.lines), ZERO)
    if lines != estimate.subtotal or estimate.subtotal + estimate.tax != estimate.total:
        raise BillingError(
            ERR_TOTALS.format(lines=lines, subtotal=estimate.subtotal, tax=estimate.tax, total=estimate.total),
            code="totals_mismatch",
        )
    currency = estimate.currency
    amounts = [estimate.total, estimate.subtotal, estimate.tax, *(line.amount for line in estimate.lines)]
    if not all(amount_fits(amount) for amount in amounts):
        biggest = max(amounts, key=abs)
        raise BillingError(
            ERR_AMOUNT_LIMIT.format(
                amount=format_money(biggest, currency),
                limit=format_money(largest_amount(currency), currency),
            ),
            code="amount_out_of_range",
        )
    for line in estimate.lines:
        for quantity in (line.quantity, line.included, line.billable):
            if quantity is not None and abs(quantity) >= QUANTITY_LIMIT:
                raise BillingError(
                    ERR_QUANTITY_LIMIT.format(metric=line.description, quantity=quantity, limit=QUANTITY_LIMIT),
                    code="quantity_out_of_range",
                )


def _breakdown(line: ChargeLine, estimate: Estimate, tenant_ids: dict[int, str], partner_ids: dict[int, str]) -> dict:
    if line.kind != "usage":
        return {}
    usage = estimate.usage.get(line.metric_code or "")
    costs = line_tenant_costs(line, usage, estimate.currency)
    quantities = line.by_tenant or (usage.by_tenant if usage else {})
    result: dict[str, Any] = {
        "tenants": [
            {
                "tenant": tenant_ids.get(t, str(t)),
                "quantity": money_string(quantities.get(t, ZERO)),
                "amount": money_string(c),
            }
            for t, c in sorted(costs.items(), key=lambda kv: tenant_ids.get(kv[0], "~") if kv[0] else "~")
            if t is not None
        ]
    }
    if None in costs and costs[None]:
        result["unattributed"] = money_string(costs[None])
    if line.by_partner:
        partner_costs = line_partner_costs(line, estimate.currency)
        result["partners"] = [
            {
                "partner": partner_ids.get(p, str(p)),
                "quantity": money_string(line.by_partner.get(p, ZERO)),
                "amount": money_string(c),
            }
            for p, c in sorted(partner_costs.items(), key=lambda kv: partner_ids.get(kv[0], "~") if kv[0] else "~")
            if p is not None
        ]
    return result


def _line_rows(
    invoice: Invoice, estimate: Estimate, tenant_ids: dict[int, str], partner_ids: dict[int, str]
) -> list[InvoiceLine]:
    period = estimate.period
    rows = []
    for position, line in enumerate(estimate.lines, start=1):
        rows.append(
            InvoiceLine(
                invoice=invoice,
                position=position,
                kind=line.kind,
                description=line.description[:300],
                metric=line.metric or (line.charge.metric if line.charge is not None else None),
                plan_version=line.plan_version,
                period_start=line.start or period.start,
                period_end=line.end or period.end,
                usage_month=line.usage_month,
                prepaid_credit=line.prepaid_credit,
                quantity=None if line.quantity is None else round(line.quantity, 8),
                included=None if line.included is None else round(line.included, 8),
                billable=None if line.billable is None else round(line.billable, 8),
                unit_price=line.unit_price,
                amount=line.amount,
                breakdown=_breakdown(line, estimate, tenant_ids, partner_ids),
            )
        )
    return rows


def _late_transaction_ids(invoice_rows: list[tuple[Invoice, list[InvoiceLine]]], month: dt.date) -> None:
    """Late lines name the events they bill."""
    late = [(inv, line) for inv, lines in invoice_rows for line in lines if line.kind == InvoiceLine.Kind.LATE_USAGE]
    if not late:
        return
    accounts = {inv.account_id for inv, _ in late}
    ids: dict[tuple[int, int | None], list[str]] = {}
    for account_id, metric_id, txn in (
        UsageEvent.objects.filter(account_id__in=accounts, billing_month=month, is_late=True)
        .order_by("timestamp", "transaction_id")
        .values_list("account_id", "metric_id", "transaction_id")
    ):
        ids.setdefault((account_id, metric_id), []).append(txn)
    for inv, line in late:
        line.transaction_ids = ids.get((inv.account_id, line.metric_id), [])


def _lookup_maps(account_ids: list[int]) -> tuple[dict[int, str], dict[int, str]]:
    tenants = dict(Tenant.objects.filter(account_id__in=account_ids).values_list("id", "public_id"))
    partners = dict(MasterPartner.objects.filter(account_id__in=account_ids).values_list("id", "public_id"))
    return tenants, partners


def invoices_write(
    *,
    estimates: list[Estimate],
    now: dt.datetime,
    run: Any = None,
    finalize: bool,
    anomalies: dict[int, list[str]] | None = None,
) -> list[Invoice]:
    """Write drafts (and, with ``finalize``, finalize them at once) for estimates of one period.

    The caller holds the accounts' period locks (``lock_accounts_periods``) and runs in a transaction.
    """
    if not estimates:
        return []
    period = estimates[0].period
    account_ids = [e.account.pk for e in estimates]
    tenant_ids, partner_ids = _lookup_maps(account_ids)
    review_hours = getattr(settings, "BILLING_REVIEW_HOURS", 24)
    invoices = []
    for estimate in estimates:
        account = estimate.account
        invoices.append(
            Invoice(
                account=account,
                status=Invoice.Status.DRAFT,
                period_start=period.start,
                period_end=period.end,
                currency=estimate.currency,
                subtotal=estimate.subtotal,
                discount_total=estimate.discount,
                tax_rate=ZERO if account.tax_reverse_charge else account.tax_rate,
                tax_reverse_charge=account.tax_reverse_charge,
                tax=estimate.tax,
                total=estimate.total,
                amount_due=estimate.total,
                billing_run=run,
                review_until=now + dt.timedelta(hours=review_hours),
                anomalies=(anomalies or {}).get(account.pk, []),
                created_at=now,
            )
        )
    Invoice.objects.bulk_create(invoices)
    Invoice.history.bulk_history_create(invoices, default_change_reason="drafted by the billing run", default_date=now)
    rows = [(inv, _line_rows(inv, est, tenant_ids, partner_ids)) for inv, est in zip(invoices, estimates, strict=True)]
    _late_transaction_ids(rows, period.start.date())
    # Lines go in while the invoices are drafts (the guard refuses lines of finalized invoices).
    InvoiceLine.objects.bulk_create([line for _, lines in rows for line in lines], batch_size=2000)
    if finalize:
        _finalize_fields(list(zip(invoices, estimates, strict=True)), now)
        _finalize_write(invoices, now)
    return invoices


def _finalize_fields(pairs: list[tuple[Invoice, Estimate]], now: dt.datetime) -> None:
    """Numbers, snapshot, dates: set on the objects (the caller saves)."""
    numbers = document_numbers(prefix=getattr(settings, "BILLING_INVOICE_SERIES", "INV"), at=now, count=len(pairs))
    names = _names_of([invoice.account_id for invoice, _ in pairs])
    for (invoice, estimate), number in zip(pairs, numbers, strict=True):
        account = estimate.account
        invoice.number = number
        invoice.status = Invoice.Status.FINALIZED if invoice.total > 0 else Invoice.Status.PAID
        invoice.finalized_at = now
        invoice.due_at = now + dt.timedelta(days=account.payment_terms_days)
        invoice.paid_at = None if invoice.total > 0 else now
        invoice.snapshot = _snapshot(account, estimate, names.get(account.pk, {}))


def _names_of(account_ids: list[int]) -> dict[int, dict[str, dict[str, str]]]:
    """Tenant and master-partner names by public id, per account (the PDF prints them as they were)."""
    names: dict[int, dict[str, dict[str, str]]] = {pk: {"tenants": {}, "partners": {}} for pk in account_ids}
    for key, model in (("tenants", Tenant), ("partners", MasterPartner)):
        for account_id, public_id, name in model.objects.filter(account_id__in=account_ids).values_list(
            "account_id", "public_id", "name"
        ):
            names[account_id][key][public_id] = name
    return names


def _snapshot(account: Account, estimate: Estimate, names: dict[str, dict[str, str]] | None = None) -> dict:
    plans = []
    for segment in estimate.segments:
        name = str(segment.version)
        if name not in plans:
            plans.append(name)
    metrics = {
        line.metric_code: line.charge.metric.name
        for line in estimate.lines
        if line.charge is not None and line.metric_code
    }
    return {
        "account": {
            "id": account.public_id,
            "name": account.name,
            "legal_name": account.legal_name,
            "billing_emails": list(account.billing_emails or []),
            "tax_id": account.tax_id,
            "tax_country": account.tax_country,
            "timezone": account.timezone,
        },
        "plans": plans,
        "metrics": metrics,
        "tenants": (names or {}).get("tenants", {}),
        "partners": (names or {}).get("partners", {}),
        "seller": _seller(),
        "account_manager": _account_manager(estimate),
    }


def _account_manager(estimate: Estimate) -> dict[str, str] | None:
    """The contract's account manager as the invoice names them (the PDF and the portal print this)."""
    manager = estimate.contract.contract.account_manager if estimate.contract is not None else None
    if manager is None:
        return None
    return {"name": manager.get_full_name() or manager.get_username(), "email": manager.email}


def _seller() -> dict:
    seller = dict(getattr(settings, "BILLING_SELLER", {}))
    return {
        "name": str(seller.get("name", "")),
        "address": [str(line) for line in seller.get("address", [])],
        "tax_id": str(seller.get("tax_id", "")),
        "email": str(seller.get("email", "")),
        "payment_instructions": [str(line) for line in seller.get("payment_instructions", [])],
    }


def _finalize_write(invoices: list[Invoice], now: dt.datetime, actor: Any = None) -> None:
    """Persist finalization of drafts whose fields ``_finalize_fields`` set; close their months; outbox."""
    bulk_update_fields(invoices, ["number", "status", "finalized_at", "due_at", "paid_at", "snapshot"])
    Invoice.history.bulk_history_create(
        invoices,
        update=True,
        default_change_reason="finalized",
        default_user=actor if getattr(actor, "is_authenticated", False) else None,
        default_date=now,
    )
    # The account's credit balance (overpayments, released credits) pays what it can of the new invoice.
    invoices_apply_balance(invoices=invoices, now=now)
    month = invoices[0].period_start.date()
    ClosedPeriod.objects.bulk_create(
        [ClosedPeriod(account_id=i.account_id, month=month, closed_at=now) for i in invoices], ignore_conflicts=True
    )
    outbox_emit_many(
        (
            OutboxMessage(
                type="billing.invoice_generated",
                account_id=invoice.account_id,
                dedup_key=f"invoice_generated:{invoice.pk}",
                data={
                    "invoice_id": invoice.number,
                    "invoice_number": invoice.number,
                    "account_id": invoice.snapshot["account"]["id"],
                    "status": invoice.status,
                    "currency": invoice.currency,
                    "subtotal": money_string(invoice.subtotal),
                    "tax": money_string(invoice.tax),
                    "total": money_string(invoice.total),
                    "amount_due": money_string(invoice.amount_due),
                    "due_at": iso_utc(invoice.due_at) if invoice.due_at else None,
                    "period": {"start": iso_utc(invoice.period_start), "end": iso_utc(invoice.period_end)},
                },
            )
            for invoice in invoices
        ),
        now=now,
    )
    documents_request_for_invoices(invoice_ids=[i.pk for i in invoices], now=now)
    emails_queue_for_invoices(invoices=invoices, now=now)
    to_collect = [i.pk for i in invoices if i.amount_due > 0]
    if to_collect:
        transaction.on_commit(lambda: invoice_ready_for_collection.send(sender=Invoice, invoice_ids=to_collect))


def _require_permission(actor: Any, permission: str, message: str) -> None:
    """Refuse (403) unless ``actor`` holds ``permission``. ``actor=None`` is the system itself (a task, a
    management command): it acts on rules already decided and is not checked. Any other actor (a staff
    user, an anonymous user, an API key) must be an authenticated user with the permission."""
    if actor is None:
        return
    has_perm = getattr(actor, "has_perm", None)
    if not (getattr(actor, "is_authenticated", False) and has_perm is not None and has_perm(permission)):
        raise BillingError(message, code="permission_denied", status=403)


def _refuse_if_locked(invoice: Invoice) -> None:
    if invoice.is_locked:
        raise BillingError(
            ERR_LOCKED.format(number=invoice.number or invoice.pk, status=invoice.get_status_display().lower()),
            code="invoice_locked",
            status=409,
        )


@transaction.atomic
def invoice_finalize(*, invoice: Invoice, actor: Any = None, now: dt.datetime | None = None) -> Invoice:
    """Finalize a draft: re-rate it first (late events for the month may have arrived during review),
    then number it, snapshot the names, close the month and record ``billing.invoice_generated``."""
    now = now or clock.now()
    lock_accounts_periods([invoice.account_id])
    invoice = Invoice.objects.select_for_update().select_related("account").get(pk=invoice.pk)
    if invoice.status != Invoice.Status.DRAFT:
        raise BillingError(
            ERR_NOT_DRAFT.format(action="finalized", invoice=invoice, status=invoice.get_status_display().lower()),
            code="invoice_not_draft",
            status=409,
        )
    if invoice.held:
        raise BillingError(ERR_HELD.format(reason=invoice.hold_reason or "no reason given"), code="invoice_held")
    period = Period(invoice.period_start, invoice.period_end)
    estimate = charges_estimate(account=invoice.account, period=period, now=max(now, period.end))
    estimate_verify(estimate)
    tenant_ids, partner_ids = _lookup_maps([invoice.account_id])
    invoice.lines.all().delete()
    lines = _line_rows(invoice, estimate, tenant_ids, partner_ids)
    _late_transaction_ids([(invoice, lines)], period.start.date())
    InvoiceLine.objects.bulk_create(lines)
    account = invoice.account
    invoice.subtotal, invoice.discount_total = estimate.subtotal, estimate.discount
    invoice.tax, invoice.total, invoice.amount_due = estimate.tax, estimate.total, estimate.total
    # Tax as rated now: staff may have corrected the tax rate or reverse charge during review.
    invoice.tax_rate = ZERO if account.tax_reverse_charge else account.tax_rate
    invoice.tax_reverse_charge = account.tax_reverse_charge
    # No history row of its own: the re-rated money is recorded with the finalization below, in one row.
    invoice.save_without_historical_record(  # type: ignore[attr-defined]  # added by simple_history
        update_fields=[
            "subtotal",
            "discount_total",
            "tax",
            "total",
            "amount_due",
            "tax_rate",
            "tax_reverse_charge",
            "updated_at",
        ]
    )
    _finalize_fields([(invoice, estimate)], now)
    _finalize_write([invoice], now, actor=actor)
    invoice.refresh_from_db()
    return invoice


@transaction.atomic
def invoice_hold(*, invoice: Invoice, reason: str, actor: Any = None) -> Invoice:
    """Keep a draft from being finalized automatically."""
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.status != Invoice.Status.DRAFT:
        raise BillingError(
            ERR_NOT_DRAFT.format(action="held", invoice=invoice, status=invoice.get_status_display().lower()),
            code="invoice_not_draft",
            status=409,
        )
    invoice.held, invoice.hold_reason = True, reason[:500]
    stamp(invoice, actor=actor, reason=f"held: {reason}")
    invoice.save(update_fields=["held", "hold_reason", "updated_at"])
    return invoice


@transaction.atomic
def invoice_release(*, invoice: Invoice, actor: Any = None) -> Invoice:
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    invoice.held, invoice.hold_reason = False, ""
    stamp(invoice, actor=actor, reason="released")
    invoice.save(update_fields=["held", "hold_reason", "updated_at"])
    return invoice


@transaction.atomic
def invoice_mark_uncollectible(*, invoice: Invoice, reason: str, actor: Any = None) -> Invoice:
    """Write off what is still due on a finalized invoice (collection given up). The invoice keeps its
    number and lines; what was paid stays paid.

    A finance decision: a user ``actor`` needs ``billing.write_off_invoice`` (Finance admin), else
    ``BillingError(code="permission_denied", status=403)`` and nothing changes. ``actor=None`` is the
    system (a task or a management command) and is not checked."""
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    _require_permission(actor, PERM_WRITE_OFF, ERR_WRITE_OFF_DENIED.format(invoice=invoice))
    if invoice.status != Invoice.Status.FINALIZED:
        raise BillingError(
            f"Only a finalized invoice with an amount due can be written off; {invoice} is "
            f"{invoice.get_status_display().lower()}.",
            code="invoice_not_collectible",
            status=409,
        )
    invoice.status, invoice.amount_due = Invoice.Status.UNCOLLECTIBLE, ZERO
    stamp(invoice, actor=actor, reason=f"uncollectible: {reason}")
    invoice.save(update_fields=["status", "amount_due", "updated_at"])
    # Written off however staff got here (the invoice's admin action, or the collection's): no retry follows.
    Collection.objects.filter(invoice=invoice).exclude(state=Collection.State.SUCCEEDED).update(
        state=Collection.State.WRITTEN_OFF, next_attempt_at=None
    )
    document_request(invoice=invoice)  # the PDF shows the balance as it stands: nothing is asked for any more
    return invoice


@transaction.atomic
def invoice_void(*, invoice: Invoice, reason: str, actor: Any = None, now: dt.datetime | None = None) -> Invoice:
    """Void a draft or an unpaid finalized invoice. Its number stays used (gap-free series); the account can be
    billed for the period again by re-running the period for it.

    Voiding a draft in review is billing staff's work (the invoice's change permission, checked by the
    caller). Voiding an issued invoice takes back a document the customer has: a user ``actor`` needs
    ``billing.void_issued_invoice`` (Finance admin), else ``BillingError(code="permission_denied",
    status=403)`` and nothing changes. ``actor=None`` is the system (a task or a management command) and
    is not checked."""
    now = now or clock.now()
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.status != Invoice.Status.DRAFT:
        _require_permission(
            actor,
            PERM_VOID_ISSUED,
            ERR_VOID_ISSUED_DENIED.format(invoice=invoice, status=invoice.get_status_display().lower()),
        )
    if (
        invoice.status not in (Invoice.Status.DRAFT, Invoice.Status.FINALIZED)
        or invoice.amount_paid > 0
        or invoice.amount_credited > 0
    ):
        raise BillingError(
            f"Invoice {invoice} is {invoice.get_status_display().lower()}"
            + (" and partly paid" if invoice.amount_paid else "")
            + (" and credited" if invoice.amount_credited else "")
            + ": it cannot be voided; issue a credit note instead.",
            code="invoice_not_voidable",
            status=409,
        )
    was_issued = invoice.status != Invoice.Status.DRAFT
    invoice.status, invoice.voided_at, invoice.amount_due = Invoice.Status.VOID, now, ZERO
    stamp(invoice, actor=actor, reason=f"voided: {reason}", at=now)
    invoice.save(update_fields=["status", "voided_at", "amount_due", "updated_at"])
    if was_issued:  # its PDF, which may already have gone out, is rendered again marked VOID
        document_request(invoice=invoice, now=now)
    return invoice
