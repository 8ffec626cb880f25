"""Contracts: terms, renewals and their notices, cancellation inside a term.

Rules (docs/billing.md, "Contracts: terms, renewal, cancellation"); how a contract prices the months is
``billing.rating.contracts``' (it reads ``term_start``, ``term_end``, ``terminated_at``, ``termination_fee``):
- A term is ``[term_start, term_end)`` with ``term_end = term_start + term_months`` calendar months (the day kept,
  or the month's last day). Terms of one account never overlap (a term ended early ends at ``terminated_at``).
  The account manager is a staff user; an early-termination rule has its percentage.
- Renewal notice: ``renewal_notice_days`` before ``term_end`` the billing contacts are e-mailed once per term end
  (``renewal_notified_for``) what happens at the end: a new term, or the end of the subscription.
- An auto-renewing term is renewed once it is over (``now ≥ term_end``), by moving ``term_end`` on by
  ``term_months``: ``term_start`` stays, so contract years keep counting from it, and the rating engine still
  finds the finished term's last month on the contract when it bills it.
- A term that does not renew ends the account's subscription at ``term_end``: once the term is over the live
  subscription is set to end then (``cancel_at = term_end``) and the lifecycle step, which runs this first, ends
  it at that moment in the same run. Until then Finance may still make the contract renew.
- Cancelling inside a term follows the contract: ``term_end`` runs to the term's end; ``early_termination`` ends
  the subscription now and charges ``early_termination_percent`` of what the rest of the term commits (see
  ``cancellation_preview``). Without a contract a subscription runs to the end of what was paid: the month, or
  for a yearly plan the subscription year.
Every change is audited (history rows with actor and reason); a cancellation records one
``billing.subscription_updated``.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q

from accounts.models import Account
from billing.models import (
    Contract,
    ContractDiscountTier,
    ContractDocument,
    InvoiceLine,
    PlanVersion,
    PrepaidCredit,
    Subscription,
)
from billing.rating.contracts import add_months
from billing.services.emails.queueing import email_queue_account_notice
from billing.services.plan_changes import (
    actor_label,
    monthly_base_fee,
    paid_period_end,
    plan_changes_withdraw_open,
    plan_json,
)
from billing.services.subscriptions import subscription_cancel
from common import clock
from common.audit import stamp
from common.errors import BillingError, from_validation_error
from common.formats import iso_utc, money_string
from common.money import format_money, round_money
from common.outbox import outbox_emit
from common.periods import Period
from common.services import public_id_next

ZERO = Decimal(0)
LIVE = [Subscription.Status.TRIALING, Subscription.Status.ACTIVE, Subscription.Status.PAST_DUE]
# The longest notice a contract may ask for (the model's validator): no renewal notice or ending is due for a
# term that ends later than this from now.
LONGEST_NOTICE = dt.timedelta(days=365)
PDF_MAGIC = b"%PDF-"

RULE_PERIOD_END = "period_end"
RULE_PAID_YEAR_END = "paid_year_end"
RULE_TERM_END = "term_end"
RULE_EARLY_TERMINATION = "early_termination"
RULE_LABELS = {
    RULE_PERIOD_END: "At the end of the billing period",
    RULE_PAID_YEAR_END: "At the end of the paid year",
    RULE_TERM_END: "At the end of the contract's term",
    RULE_EARLY_TERMINATION: "Now, with an early-termination charge",
}

ERR_OVERLAP = "{account} has contract {other} for {start} – {end}, which overlaps this term: terms may not overlap."
ERR_MANAGER_NOT_STAFF = "{user} is not a staff user: the account manager must be one."
ERR_EARLY_PERCENT = (
    "An early-termination rule needs its percentage: the share of what the rest of the term commits that is charged."
)
ERR_ACCOUNT_FIXED = "A contract stays with its account: end this one and record a new contract for {account}."
ERR_TERMINATED = "Contract {contract} ended early on {date}: its term and rules can no longer change."
ERR_DOCUMENT_EMPTY = "{name} is empty: attach the signed PDF."
ERR_DOCUMENT_SIZE = "{name} is {size:,} bytes; a contract document may be at most {limit:,} bytes."
ERR_DOCUMENT_TYPE = "{name} is not a PDF: only PDF documents can be attached (the file's content is checked)."
ERR_CREDIT_CURRENCY = "The account is billed in {account_currency}: a prepaid credit must be in {account_currency}."
ERR_CREDIT_DRAWN = "The prepaid credit of {amount} was drawn on by invoices already: it cannot be removed or changed."
ERR_CANCEL_REASON = "Say why the subscription is cancelled: the reason is kept with the change."
ERR_ALREADY_CANCELLED = "Subscription {subscription} is cancelled already."
REASON_CONTRACT_ENDED = "contract ended"

# Fields whose change after an early termination would rewrite what was billed.
TERM_FIELDS = (
    "term_start",
    "term_months",
    "commitment_amount",
    "commitment_period",
    "cancellation",
    "early_termination_percent",
)


def _user(actor: Any) -> Any:
    return actor if getattr(actor, "is_authenticated", False) else None


def _day(moment: dt.date) -> str:
    """``31 December 2029``, as customers read dates in e-mails."""
    return f"{moment.day} {moment:%B %Y}"


def term_last_day(contract: Contract) -> dt.date:
    """The last day the current term covers (``term_end`` is exclusive)."""
    return Period(contract.term_start, contract.term_end).last_day


def _months_between(start: dt.datetime, end: dt.datetime) -> int:
    """Whole calendar months from ``start`` to ``end`` (``add_months(start, n) <= end``)."""
    months = (end.year - start.year) * 12 + end.month - start.month
    while months > 0 and add_months(start, months) > end:
        months -= 1
    return months


def terms_served(contract: Contract) -> int:
    """How many terms ``[term_start, term_end)`` holds: 1, plus one per renewal."""
    return max(1, _months_between(contract.term_start, contract.term_end) // max(contract.term_months, 1))


def term_end_after(start: dt.datetime, months: int, terms: int = 1) -> dt.datetime:
    """The end of the ``terms``-th term of ``months`` months from ``start`` (anchored at ``start``, so a term from
    January 31 keeps ending on the month's last day rather than drifting to the 28th)."""
    return add_months(start, months * terms)


# Saving (the admin's save_model and inlines) ---------------------------------------------------------------


def _check_overlap(contract: Contract) -> None:
    others = (
        Contract.objects.filter(
            account_id=contract.account_id, term_start__lt=contract.term_end, term_end__gt=contract.term_start
        )
        .filter(Q(terminated_at__isnull=True) | Q(terminated_at__gt=contract.term_start))
        .exclude(pk=contract.pk)
        .order_by("term_start")
        .first()
    )
    if others is not None:
        raise BillingError(
            ERR_OVERLAP.format(
                account=contract.account.name,
                other=others.public_id,
                start=f"{others.term_start:%Y-%m-%d}",
                end=f"{term_last_day(others):%Y-%m-%d}",
            ),
            code="contract_overlap",
            field="term_start",
        )


def _contract_check(contract: Contract, old: Contract | None) -> None:
    terms = 1
    if old is not None:
        if old.account_id != contract.account_id:
            raise BillingError(
                ERR_ACCOUNT_FIXED.format(account=old.account.name), code="account_fixed", field="account"
            )
        changed = [name for name in TERM_FIELDS if getattr(old, name) != getattr(contract, name)]
        if old.terminated_at is not None and changed:
            raise BillingError(
                ERR_TERMINATED.format(contract=old.public_id, date=f"{old.terminated_at:%Y-%m-%d}"),
                code="contract_terminated",
                field=changed[0],
            )
        terms = terms_served(old)
        # What only the services set stays as they left it.
        contract.renewal_notified_for = old.renewal_notified_for
        contract.terminated_at, contract.termination_fee = old.terminated_at, old.termination_fee
    if contract.term_start is not None and contract.term_months:
        contract.term_end = term_end_after(contract.term_start, contract.term_months, terms)
    if contract.cancellation == Contract.Cancellation.EARLY_TERMINATION and contract.early_termination_percent is None:
        raise BillingError(ERR_EARLY_PERCENT, code="early_termination_percent", field="early_termination_percent")
    manager = contract.account_manager
    if manager is not None and not manager.is_staff:
        raise BillingError(
            ERR_MANAGER_NOT_STAFF.format(user=manager.get_username()), code="manager_not_staff", field="account_manager"
        )
    try:
        contract.full_clean(exclude=["public_id"])
    except ValidationError as exc:
        raise from_validation_error(exc) from exc
    _check_overlap(contract)


def contract_validate(*, contract: Contract) -> None:
    """The checks of ``contract_save`` without saving (the admin's form shows their messages on the fields);
    sets the computed ``term_end`` on ``contract``."""
    old = Contract.objects.filter(pk=contract.pk).first() if contract.pk else None
    _contract_check(contract, old)


@transaction.atomic
def contract_save(*, contract: Contract, actor: Any) -> Contract:
    """Create or change ``contract`` as Finance admins edit it. ``term_end`` follows from ``term_start`` and
    ``term_months`` (keeping the renewals a running contract has had); a new contract gets its ``ct_…`` id.
    Raises ``BillingError`` naming the field for overlapping terms, an account manager who is not staff, an
    early-termination rule without its percentage, or a change of the account or of an ended contract's terms."""
    Account.objects.select_for_update().filter(pk=contract.account_id).first()  # one term check at a time
    old = Contract.objects.select_for_update().filter(pk=contract.pk).first() if contract.pk else None
    _contract_check(contract, old)
    if old is None:
        contract.public_id = public_id_next(prefix="ct")
        reason = f"created: {contract.term_months} months from {contract.term_start:%Y-%m-%d}"
    else:
        fields = [
            f.name
            for f in Contract._meta.concrete_fields
            if f.name not in ("updated_at", "created_at") and getattr(old, f.attname) != getattr(contract, f.attname)
        ]
        reason = "changed: " + (", ".join(fields) if fields else "nothing")
    stamp(contract, actor=_user(actor), reason=reason)
    contract.save()
    return contract


def _contract_touched(contract: Contract, *, actor: Any, reason: str, now: dt.datetime | None = None) -> None:
    """A history row on the contract for a change of its parts (documents, tiers, credits)."""
    row = Contract.objects.select_for_update().get(pk=contract.pk)
    stamp(row, actor=_user(actor), reason=reason[:500], at=now)
    row.save(update_fields=["updated_at"])


@transaction.atomic
def contract_part_save(
    *, part: ContractDiscountTier | PrepaidCredit, actor: Any
) -> ContractDiscountTier | PrepaidCredit:
    """Save a volume-discount tier or a prepaid credit of a contract (validated, audited on both rows). A
    prepaid credit is in the account's currency and, once invoices drew on it, no longer changes."""
    contract = Contract.objects.select_related("account").get(pk=part.contract_id)
    if isinstance(part, PrepaidCredit):
        currency = contract.account.currency
        if part.currency != currency:
            raise BillingError(
                ERR_CREDIT_CURRENCY.format(account_currency=currency), code="currency_mismatch", field="currency"
            )
        if part.pk and _credit_drawn(part):
            raise BillingError(
                ERR_CREDIT_DRAWN.format(amount=format_money(part.amount, part.currency)), code="credit_drawn"
            )
    try:
        part.full_clean()
    except ValidationError as exc:
        raise from_validation_error(exc) from exc
    what = "prepaid credit" if isinstance(part, PrepaidCredit) else "volume-discount tier"
    stamp(part, actor=_user(actor), reason=("changed" if part.pk else "added") + f" {what}")
    part.save()
    _contract_touched(contract, actor=actor, reason=f"{what} saved: {part}")
    return part


def _credit_drawn(credit: PrepaidCredit) -> bool:
    return InvoiceLine.objects.filter(prepaid_credit_id=credit.pk).exists()


@transaction.atomic
def contract_part_delete(*, part: ContractDiscountTier | PrepaidCredit, actor: Any) -> None:
    """Remove a tier, or a prepaid credit no invoice has drawn on (audited on the contract)."""
    if isinstance(part, PrepaidCredit) and _credit_drawn(part):
        raise BillingError(
            ERR_CREDIT_DRAWN.format(amount=format_money(part.amount, part.currency)), code="credit_drawn"
        )
    contract = Contract.objects.get(pk=part.contract_id)
    label = f"{'prepaid credit' if isinstance(part, PrepaidCredit) else 'volume-discount tier'} removed: {part}"
    stamp(part, actor=_user(actor), reason="removed")
    part.delete()
    _contract_touched(contract, actor=actor, reason=label)


def _upload_name(upload: UploadedFile) -> str:
    return (upload.name or "document.pdf").replace("\\", "/").rsplit("/", 1)[-1][:200] or "document.pdf"


def contract_document_check(*, upload: UploadedFile) -> None:
    """Raise ``BillingError`` unless ``upload`` is a PDF (by its content) no larger than
    ``DISPUTES_ATTACHMENT_MAX_BYTES``. The admin's form calls it to show the message on the field."""
    name = _upload_name(upload)
    size = upload.size or 0
    limit = int(settings.DISPUTES_ATTACHMENT_MAX_BYTES)
    if size == 0:
        raise BillingError(ERR_DOCUMENT_EMPTY.format(name=name), code="document_type", field="document")
    if size > limit:
        raise BillingError(
            ERR_DOCUMENT_SIZE.format(name=name, size=size, limit=limit), code="document_too_large", field="document"
        )
    upload.seek(0)
    head = upload.read(len(PDF_MAGIC))
    upload.seek(0)
    if head != PDF_MAGIC:
        raise BillingError(ERR_DOCUMENT_TYPE.format(name=name), code="document_type", field="document")


@transaction.atomic
def contract_document_add(
    *, contract: Contract, upload: UploadedFile, actor: Any, now: dt.datetime | None = None
) -> ContractDocument:
    """Attach a signed document (PDF, checked by its content) to ``contract``, stored under a random name."""
    now = now or clock.now()
    contract_document_check(upload=upload)
    name = _upload_name(upload)
    document = ContractDocument(
        contract=contract,
        token=secrets.token_urlsafe(16)[:22],
        name=name,
        size=upload.size or 0,
        uploaded_by=_user(actor),
        uploaded_at=now,
    )
    # If the transaction rolls back, the stored file stays behind unreferenced and unreachable: harmless.
    document.file.save(name, upload, save=False)
    document.save()
    _contract_touched(contract, actor=actor, reason=f"document attached: {name}", now=now)
    return document


# Reading ------------------------------------------------------------------------------------------------


def contract_in_force(*, account: Account, at: dt.datetime) -> Contract | None:
    """The account's contract whose term holds ``at`` (not ended early before it); the latest term if several."""
    return (
        Contract.objects.filter(account=account, term_start__lte=at, term_end__gt=at)
        .filter(Q(terminated_at__isnull=True) | Q(terminated_at__gt=at))
        .select_related("account", "account_manager")
        .order_by("-term_start", "-pk")
        .first()
    )


# Renewals -----------------------------------------------------------------------------------------------


def _manager(contract: Contract) -> tuple[str, str]:
    manager = contract.account_manager
    if manager is None:
        return "", ""
    return (manager.get_full_name() or manager.get_username()).strip(), manager.email or ""


def renewal_notice_context(contract: Contract) -> dict[str, Any]:
    """What the renewal notice says (JSON values, kept on the delivery)."""
    name, email = _manager(contract)
    next_end = term_end_after(contract.term_start, contract.term_months, terms_served(contract) + 1)
    return {
        "contract_id": contract.public_id,
        "reference": contract.reference,
        "term_months": contract.term_months,
        "term_end": iso_utc(contract.term_end),
        "term_last_day": _day(term_last_day(contract)),
        "auto_renew": contract.auto_renew,
        "next_term_last_day": _day(Period(contract.term_end, next_end).last_day),
        "renews_on": _day(contract.term_end.date()),
        "account_manager_name": name,
        "account_manager_email": email,
    }


def _notices_due(now: dt.datetime) -> int:
    sent = 0
    for contract in (
        Contract.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(terminated_at__isnull=True, term_end__gt=now, term_end__lte=now + LONGEST_NOTICE)
        .filter(renewal_notice_days__gt=0)
        .exclude(renewal_notified_for=F("term_end"))
        .select_related("account", "account_manager")
        .order_by("term_end", "pk")
    ):
        if contract.term_end - dt.timedelta(days=contract.renewal_notice_days) > now:
            continue
        if not contract.auto_renew and _successor(contract) is not None:
            continue  # the customer signed the contract that follows: nothing to announce
        email_queue_account_notice(
            account=contract.account,
            kind="renewal_notice",
            context=renewal_notice_context(contract),
            now=now,
            dedup_key=f"renewal_notice:{contract.pk}:{iso_utc(contract.term_end)}",
        )
        contract.renewal_notified_for = contract.term_end
        stamp(contract, reason=f"renewal notice sent for the term ending {term_last_day(contract):%Y-%m-%d}", at=now)
        contract.save(update_fields=["renewal_notified_for", "updated_at"])
        sent += 1
    return sent


def _renew_ended(now: dt.datetime) -> int:
    renewed = 0
    for contract in (
        Contract.objects.select_for_update(skip_locked=True)
        .filter(auto_renew=True, terminated_at__isnull=True, term_end__lte=now)
        .order_by("term_end", "pk")
    ):
        terms = terms_served(contract)
        while contract.term_end <= now:  # a lifecycle run missed for a whole term renews it as often as it ended
            terms += 1
            contract.term_end = term_end_after(contract.term_start, contract.term_months, terms)
        stamp(
            contract,
            reason=f"renewed for {contract.term_months} months: the term runs to {term_last_day(contract):%Y-%m-%d}",
            at=now,
        )
        contract.save(update_fields=["term_end", "updated_at"])
        renewed += 1
    return renewed


def _successor(contract: Contract) -> Contract | None:
    """Another contract of the account in force when this one's term ends."""
    return contract_in_force(account=contract.account, at=contract.term_end)


def _not_ending_by(account: Any, end: Any) -> Any:
    """The live subscriptions of ``account`` that began before ``end`` and are not set to end by then."""
    return Subscription.objects.filter(account_id=account, status__in=LIVE, started_at__lt=end).filter(
        Q(cancel_at__isnull=True) | Q(cancel_at__gt=end)
    )


def _recorded_before_its_end() -> Exists:
    """The contract was recorded (its first history row, dated by the billing clock) before its term ended: a
    contract entered after the fact, for the record, ends nothing retroactively."""
    return Exists(Contract.history.filter(id=OuterRef("pk"), history_type="+", history_date__lt=OuterRef("term_end")))


def _end_without_renewal(now: dt.datetime) -> int:
    """Terms that are over and do not renew: the account's live subscription is set to end at ``term_end``, so the
    lifecycle step (which runs this first) ends it there in the same run."""
    ended = 0
    for contract in (
        Contract.objects.filter(auto_renew=False, terminated_at__isnull=True, term_end__lte=now)
        .filter(Exists(_not_ending_by(OuterRef("account_id"), OuterRef("term_end"))))
        .filter(_recorded_before_its_end())
        .select_related("account")
        .order_by("term_end", "pk")
    ):
        end = contract.term_end
        subscriptions = (
            _not_ending_by(contract.account_id, end)
            .select_for_update(of=("self",))
            .select_related("account", "plan_version__plan")
        )
        for subscription in subscriptions:
            subscription.cancel_at, subscription.cancel_at_period_end = end, True
            subscription.cancelled_at = now
            stamp(
                subscription, reason=f"{REASON_CONTRACT_ENDED}: contract {contract.public_id}, {iso_utc(end)}", at=now
            )
            subscription.save(update_fields=["cancel_at", "cancel_at_period_end", "cancelled_at", "updated_at"])
            outbox_emit(
                type="billing.subscription_updated",
                account_id=contract.account_id,
                dedup_key=f"contract_ended:{contract.pk}:{iso_utc(end)}",
                data={
                    "account_id": contract.account.public_id,
                    "subscription_id": subscription.public_id,
                    "plan": plan_json(subscription.plan_version),
                    "contract_id": contract.public_id,
                    "status": subscription.status,
                    "cancel_at_period_end": True,
                    "cancel_at": iso_utc(end),
                    "effective_date": iso_utc(end),
                    "reason": REASON_CONTRACT_ENDED,
                },
                now=now,
            )
        ended += 1
    return ended


@transaction.atomic
def contracts_renew_due(*, now: dt.datetime) -> dict[str, int]:
    """Renewal notices due and terms that ended (renewed or ending the subscription). Returns counts.

    Called by the lifecycle step before cancellations take effect, so a term that does not renew and is over
    ends its subscription in the same run (``ended_at = term_end``)."""
    return {
        "renewal_notices": _notices_due(now),
        "contracts_renewed": _renew_ended(now),
        "contracts_ended": _end_without_renewal(now),
    }


# Cancellation inside a term ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CancellationPreview:
    """When a subscription would end if cancelled now, and what that costs. ``fee`` is the early-termination
    charge (None when none applies); ``remaining`` what the rest of the term commits (its basis)."""

    rule: str
    ends_at: dt.datetime
    fee: Decimal | None
    currency: str
    explanation: str
    contract: Contract | None
    remaining: Decimal | None = None

    @property
    def rule_label(self) -> str:
        return RULE_LABELS[self.rule]


def _spans(contract: Contract, months: int | None) -> list[tuple[dt.datetime, dt.datetime, dt.datetime]]:
    """``(start, end, full_end)`` of the contract's commitment spans: contract months (``months=1``) or years
    (12) counted from ``term_start``, cut at ``term_end``; ``None``: the current term as one span."""
    if months is None:
        start = term_end_after(contract.term_start, contract.term_months, terms_served(contract) - 1)
        return [(start, contract.term_end, contract.term_end)]
    spans = []
    number = 0
    start = contract.term_start
    while start < contract.term_end:
        number += 1
        full_end = add_months(contract.term_start, months * number)
        spans.append((start, min(full_end, contract.term_end), full_end))
        start = full_end
    return spans


def remaining_share(contract: Contract, months: int | None, at: dt.datetime) -> Fraction:
    """How many commitment spans are still ahead of ``at``, by days: a span not begun counts 1, the running one
    (and one the term's end cuts short) its days still ahead ÷ the days of the full span. The day of ``at``
    counts as ahead, so the figure holds all day long (the preview shown is the charge confirmed)."""
    share = Fraction(0)
    for start, end, full_end in _spans(contract, months):
        if end <= at:
            continue
        ahead = (end.date() - max(start, at).date()).days
        share += Fraction(ahead, max((full_end.date() - start.date()).days, 1))
    return share


def _times(value: Decimal, share: Fraction) -> Decimal:
    return value * Decimal(share.numerator) / Decimal(share.denominator)


def _share_text(share: Fraction) -> str:
    if share.denominator == 1:
        return f"{share.numerator}"
    return f"{Decimal(share.numerator) / Decimal(share.denominator):.4f}"


PERIOD_MONTHS = {
    Contract.CommitmentPeriod.MONTH: (1, "contract month", "contract months"),
    Contract.CommitmentPeriod.YEAR: (12, "contract year", "contract years"),
    Contract.CommitmentPeriod.TERM: (None, "term", "terms"),
}


def _early_termination(
    contract: Contract, subscription: Subscription, at: dt.datetime, currency: str
) -> tuple[Decimal, Decimal, str]:
    """The early-termination fee, its basis and the explanation with the formula and its figures."""
    percent = contract.early_termination_percent or ZERO
    ahead = f"{at:%Y-%m-%d} – {term_last_day(contract):%Y-%m-%d}"
    if contract.commitment_amount:
        months, one, many = PERIOD_MONTHS[Contract.CommitmentPeriod(contract.commitment_period or "year")]
        share = remaining_share(contract, months, at)
        remaining = _times(contract.commitment_amount, share)
        basis = (
            f"remaining commitment = {format_money(contract.commitment_amount, currency)} per {one} × "
            f"{_share_text(share)} {one if share == 1 else many} still ahead ({ahead}, by days) = "
            f"{format_money(remaining, currency)}"
        )
    else:
        monthly = monthly_base_fee(subscription.plan_version)
        share = remaining_share(contract, 1, at)
        remaining = _times(monthly, share)
        yearly = subscription.plan_version.billing_interval == PlanVersion.Interval.YEAR
        basis = (
            f"no committed minimum, so the base fees: {format_money(monthly, currency, unit_price=True)} a month"
            + (" (the yearly fee after its annual discount, ÷ 12)" if yearly else "")
            + f" × {_share_text(share)} months still ahead ({ahead}, by days) = {format_money(remaining, currency)}"
        )
    fee = round_money(percent / 100 * remaining, currency)
    explanation = (
        f"Contract {contract.public_id} ends early with an early-termination charge: fee = "
        f"{percent.normalize():f}% × remaining commitment; {basis}; fee = {percent.normalize():f}% × "
        f"{format_money(remaining, currency)} = {format_money(fee, currency)}, billed on the invoice of this month. "
        f"The subscription ends now."
    )
    return fee, remaining, explanation


def cancellation_preview(*, subscription: Subscription, now: dt.datetime | None = None) -> CancellationPreview:
    """When ``subscription`` would end if cancelled at ``now``, and any early-termination charge."""
    now = now or clock.now()
    account = subscription.account
    currency = account.currency
    contract = contract_in_force(account=account, at=now)
    if contract is not None and contract.cancellation == Contract.Cancellation.EARLY_TERMINATION:
        fee, remaining, explanation = _early_termination(contract, subscription, now, currency)
        return CancellationPreview(RULE_EARLY_TERMINATION, now, fee, currency, explanation, contract, remaining)
    if contract is not None:
        explanation = (
            f"Contract {contract.public_id} runs to the end of its term: the subscription ends on "
            f"{term_last_day(contract):%Y-%m-%d} (at {iso_utc(contract.term_end)}); the term is billed to its end."
        )
        return CancellationPreview(RULE_TERM_END, contract.term_end, None, currency, explanation, contract)
    ends_at = paid_period_end(subscription, now)
    last_day = Period(now, ends_at).last_day if ends_at > now else ends_at.date()
    if subscription.plan_version.billing_interval == PlanVersion.Interval.YEAR:
        explanation = (
            f"A yearly plan without a contract runs to the end of the paid year: the subscription ends on "
            f"{last_day:%Y-%m-%d} (at {iso_utc(ends_at)}); the year's base fee was billed in advance."
        )
        return CancellationPreview(RULE_PAID_YEAR_END, ends_at, None, currency, explanation, None)
    explanation = (
        f"No contract: the subscription runs to the end of the billing period, {last_day:%Y-%m-%d} "
        f"(at {iso_utc(ends_at)}); that period is billed in full."
    )
    return CancellationPreview(RULE_PERIOD_END, ends_at, None, currency, explanation, None)


def _customer_message(preview: CancellationPreview) -> str:
    """What the cancellation e-mail adds about the rule that sets the end."""
    if preview.rule == RULE_TERM_END and preview.contract is not None:
        contract = preview.contract
        reference = f" ({contract.reference})" if contract.reference else ""
        return (
            f"Under contract {contract.public_id}{reference} the subscription runs to the end of the contract's term "
            f"and is billed to its last day, {_day(term_last_day(contract))}."
        )
    if preview.rule == RULE_PAID_YEAR_END:
        return "The plan's base fee is paid for the year in advance, so the subscription runs to the end of that year."
    return ""


@transaction.atomic
def subscription_cancel_per_contract(
    *, subscription: Subscription, actor: Any, reason: str, now: dt.datetime | None = None
) -> Subscription:
    """Cancel ``subscription`` as ``cancellation_preview`` says: set to end at the period's, paid year's or term's
    end, or (early termination) ended now, with the contract terminated and its fee recorded for the rating
    engine to bill. ``reason`` is required. Audited; one ``billing.subscription_updated``."""
    now = now or clock.now()
    reason = (reason or "").strip()
    if not reason:
        raise BillingError(ERR_CANCEL_REASON, code="reason_required", field="reason")
    Account.objects.select_for_update().filter(pk=subscription.account_id).first()
    subscription = (
        Subscription.objects.select_for_update(of=("self",))
        .select_related("account", "plan_version__plan")
        .get(pk=subscription.pk)
    )
    if subscription.status == Subscription.Status.CANCELLED:
        raise BillingError(
            ERR_ALREADY_CANCELLED.format(subscription=subscription.public_id), code="already_cancelled", status=409
        )
    preview = cancellation_preview(subscription=subscription, now=now)
    who = actor_label(actor)
    if preview.rule == RULE_EARLY_TERMINATION:
        assert preview.contract is not None and preview.fee is not None
        contract = Contract.objects.select_for_update().get(pk=preview.contract.pk)
        contract.terminated_at, contract.termination_fee = now, preview.fee
        stamp(
            contract,
            actor=_user(actor),
            reason=f"terminated early by {who}, fee {money_string(preview.fee)}: {reason}"[:500],
            at=now,
        )
        contract.save(update_fields=["terminated_at", "termination_fee", "updated_at"])
        subscription = subscription_cancel(subscription=subscription, at_period_end=False, at=now, actor=_user(actor))
    else:
        subscription.cancel_at, subscription.cancel_at_period_end = preview.ends_at, True
        subscription.cancelled_at = now
        stamp(
            subscription,
            actor=_user(actor),
            reason=f"cancelled ({preview.rule.replace('_', ' ')}, ends {iso_utc(preview.ends_at)}): {reason}"[:500],
            at=now,
        )
        subscription.save(update_fields=["cancel_at", "cancel_at_period_end", "cancelled_at", "updated_at"])
        # As ``subscription_cancel`` does: a waiting plan change is withdrawn, the billing contacts are told.
        plan_changes_withdraw_open(
            account=subscription.account, reason="The subscription is cancelled.", actor=actor, now=now
        )
        email_queue_account_notice(
            account=subscription.account,
            kind="subscription",
            context={
                "event": "cancellation_scheduled",
                "subscription_id": subscription.public_id,
                "plan": subscription.plan_version.plan.name,
                "ends_at": iso_utc(preview.ends_at),
                "end_date": preview.ends_at.date().isoformat(),
                "message": _customer_message(preview),
            },
            now=now,
            dedup_key=f"subscription:{subscription.pk}:cancellation_scheduled:{iso_utc(now)}",
            requested_by=_user(actor),
        )
    outbox_emit(
        type="billing.subscription_updated",
        account_id=subscription.account_id,
        dedup_key=f"subscription_cancel:{subscription.pk}:{iso_utc(now)}",
        data={
            "account_id": subscription.account.public_id,
            "subscription_id": subscription.public_id,
            "plan": plan_json(subscription.plan_version),
            "status": subscription.status,
            "cancel_at_period_end": preview.rule != RULE_EARLY_TERMINATION,
            "effective_date": iso_utc(preview.ends_at),
            "rule": preview.rule,
            "contract_id": preview.contract.public_id if preview.contract else None,
            "termination_fee": money_string(preview.fee, preview.currency) if preview.fee is not None else None,
            "reason": reason[:500],
        },
        now=now,
    )
    return subscription
