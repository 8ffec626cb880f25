"""The monthly billing cycle: close a month for every account, exactly once.

Steps, per chunk of accounts (``BILLING_RUN_CHUNK``, one transaction each, so memory stays flat):
1. collect and validate usage: flag anomalies (a metric more than ``BILLING_ANOMALY_FACTOR`` times last
   month's, a tenant that reported last month and not this one);
2. calculate and verify: rate with ``billing.rating.engine.charges_many`` (the same figures ``usage/current``
   shows), check lines add up to the totals;
3. generate invoices: drafts, finalized at once when ``BILLING_REVIEW_HOURS`` is 0, else by
   ``invoices_finalize_due`` once the review window has passed (held invoices wait);
4. collect payment: finalization applies the account's credit balance, then signals the invoices still owing
   money (``invoice_ready_for_collection``, after commit), where ``billing.services.collection`` charges the
   payment method on file or awaits a manual payment, with retries (dunning);
5. update subscriptions and account status (``billing.services.lifecycle``, ``billing.services.account_status``).

Exactly once: one run per month (re-running resumes it); within a chunk the accounts' period locks are
taken first, and accounts that already have a (non-void) invoice for the month are skipped, so two runs
at the same time, or a run resumed after a crash, never invoice an account twice. The unique constraint
on (account, period) is the last guard.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q, Sum

from accounts.models import Account
from billing.models import BillingRun, BillingRunItem, Invoice, InvoiceLine, Subscription
from billing.rating.engine import Estimate, charges_many
from billing.services.invoices import estimate_verify, invoices_write, lock_accounts_periods
from billing.services.lifecycle import lifecycle_update
from common import clock
from common.bulk import bulk_update_fields
from common.errors import BillingError
from common.money import round_money
from common.periods import Period, month_period, previous_month
from usage.models import UsageRollup, UsageUniqueValue

logger = logging.getLogger(__name__)
ZERO = Decimal(0)
ERR_PERIOD_OPEN = "{month} has not ended yet (it ends {end}); a month is billed once it is over."


def _month_date(period: Period) -> dt.date:
    return period.start.date()


def billable_account_ids(*, period: Period, account_ids: list[int] | None = None) -> list[int]:
    """Accounts with a subscription during the period and no (non-void) invoice for it yet."""
    subs = Subscription.objects.filter(started_at__lt=period.end).exclude(ended_at__lte=period.start)
    if account_ids is not None:
        subs = subs.filter(account_id__in=account_ids)
    # Late usage accepted into this month is billed even when the account no longer has a subscription.
    late = UsageRollup.objects.filter(billing_month=period.start.date(), hour__lt=period.start)
    late_values = UsageUniqueValue.objects.filter(billing_month=period.start.date()).exclude(
        usage_month=period.start.date()
    )
    if account_ids is not None:
        late, late_values = late.filter(account_id__in=account_ids), late_values.filter(account_id__in=account_ids)
    invoiced = Invoice.objects.filter(period_start=period.start).exclude(status=Invoice.Status.VOID)
    candidates = (
        set(subs.values_list("account_id", flat=True))
        | set(late.values_list("account_id", flat=True).distinct())
        | set(late_values.values_list("account_id", flat=True).distinct())
    )
    ids = candidates - set(invoiced.values_list("account_id", flat=True))
    return sorted(ids)


NOT_IN_RUN_EXAMPLES = 20


def _not_in_run(period: Period, billed: set[int]) -> tuple[int, list[dict]]:
    """The accounts on the books, and those a run of ``period`` does not bill, grouped by why."""
    month = f"{period.start:%B %Y}"
    reasons = {
        "later": f"subscribed after {month} (a trial or a new customer): billed from their first month",
        "ended": f"subscription ended before {month}",
        "none": "no subscription",
        "invoiced": f"already invoiced for {month}",
    }
    invoiced = set(
        Invoice.objects.filter(period_start=period.start)
        .exclude(status=Invoice.Status.VOID)
        .values_list("account_id", flat=True)
    )
    subscribed = defaultdict(list)
    for account_id, started_at, ended_at in Subscription.objects.values_list("account_id", "started_at", "ended_at"):
        subscribed[account_id].append((started_at, ended_at))
    groups: dict[str, list[str]] = defaultdict(list)
    accounts = Account.objects.order_by("public_id").values_list("pk", "public_id")
    book = 0
    for pk, public_id in accounts:
        book += 1
        if pk in billed:
            continue
        spans = subscribed.get(pk, [])
        if pk in invoiced:
            key = "invoiced"
        elif spans and all(start >= period.end for start, _ in spans):
            key = "later"
        elif spans:
            key = "ended"
        else:
            key = "none"
        groups[key].append(public_id)
    return book, [
        {"reason": reasons[key], "count": len(ids), "accounts": ids[:NOT_IN_RUN_EXAMPLES]}
        for key, ids in groups.items()
    ]


def billing_run_start(
    *,
    period: Period,
    now: dt.datetime | None = None,
    account_ids: list[int] | None = None,
    dry_run: bool = False,
    trigger: str = "command",
) -> BillingRun:
    """Open (or resume) the run of ``period`` and list the accounts still to bill as its pending items."""
    now = now or clock.now()
    if now < period.end:
        raise BillingError(
            ERR_PERIOD_OPEN.format(month=period.label, end=period.end.isoformat()), code="period_open", field="period"
        )
    month = _month_date(period)
    if dry_run:
        run = BillingRun.objects.create(month=month, dry_run=True, trigger=trigger, started_at=now)
    else:
        try:
            with transaction.atomic():
                run, _ = BillingRun.objects.get_or_create(
                    month=month, dry_run=False, defaults={"trigger": trigger, "started_at": now}
                )
        except IntegrityError:  # a concurrent start created it
            run = BillingRun.objects.get(month=month, dry_run=False)
    pending = billable_account_ids(period=period, account_ids=account_ids)
    BillingRunItem.objects.bulk_create(
        [BillingRunItem(run=run, account_id=a) for a in pending], ignore_conflicts=True, batch_size=5000
    )
    # Resuming: items of accounts still without an invoice go back to pending (a crash or a failure).
    BillingRunItem.objects.filter(run=run, account_id__in=pending).exclude(status=BillingRunItem.Status.PENDING).update(
        status=BillingRunItem.Status.PENDING, error=""
    )
    book_fields: dict[str, Any] = {}
    if account_ids is None:  # the whole book: say which accounts the run leaves out, and why
        in_run = set(BillingRunItem.objects.filter(run=run).values_list("account_id", flat=True))
        book_fields["accounts_in_book"], book_fields["not_in_run"] = _not_in_run(period, in_run)
    BillingRun.objects.filter(pk=run.pk).update(status=BillingRun.Status.RUNNING, finished_at=None, **book_fields)
    billing_run_refresh(run=run)
    run.refresh_from_db()
    return run


def pending_chunks(
    *, run: BillingRun, account_ids: list[int] | None = None, size: int | None = None
) -> Iterator[list[int]]:
    size = size or int(getattr(settings, "BILLING_RUN_CHUNK", 200))
    items = BillingRunItem.objects.filter(run=run, status=BillingRunItem.Status.PENDING)
    if account_ids is not None:
        items = items.filter(account_id__in=account_ids)
    ids = list(items.order_by("account_id").values_list("account_id", flat=True))
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


def _anomalies(account_ids: list[int], period: Period, estimates: dict[int, Estimate]) -> dict[int, list[str]]:
    """Step 1: usage that jumped more than tenfold against last month's invoice, tenants gone silent."""
    factor = Decimal(getattr(settings, "BILLING_ANOMALY_FACTOR", 10))
    before = previous_month(period)
    previous: dict[tuple[int, str], Decimal] = defaultdict(lambda: ZERO)
    for account_id, code, quantity in (
        InvoiceLine.objects.filter(
            invoice__account_id__in=account_ids,
            invoice__period_start=before.start,
            kind=InvoiceLine.Kind.USAGE,
            metric__source="events",
        )
        .exclude(invoice__status=Invoice.Status.VOID)
        .values_list("invoice__account_id", "metric__code", "quantity")
    ):
        previous[(account_id, code)] += quantity or ZERO
    found: dict[int, list[str]] = defaultdict(list)
    for account_id, estimate in estimates.items():
        for code, usage in estimate.usage.items():
            if usage.metric.source != "events":
                continue
            last = previous.get((account_id, code), ZERO)
            now_quantity = usage.quantity - usage.late_quantity
            if last > 0 and now_quantity > last * factor:
                found[account_id].append(
                    f"{usage.metric.name} is {now_quantity / last:.1f}× last month ({now_quantity:f} vs {last:f})."
                )
    reported = defaultdict(set)
    for account_id, tenant_id, month in (
        UsageRollup.objects.filter(
            account_id__in=account_ids, billing_month__in=[before.start.date(), period.start.date()]
        )
        .values_list("account_id", "tenant_id", "billing_month")
        .distinct()
    ):
        reported[(account_id, month)].add(tenant_id)
    for account_id in account_ids:
        silent = reported[(account_id, before.start.date())] - reported[(account_id, period.start.date())]
        if silent:
            found[account_id].append(f"{len(silent)} tenant(s) reported usage last month but none this month.")
    return found


def billing_run_chunk(*, run: BillingRun, account_ids: list[int], now: dt.datetime | None = None) -> int:
    """Bill one chunk of accounts in one transaction; an account that fails is recorded and skipped.
    Returns the number of invoices written."""
    now = now or clock.now()
    period = month_period(run.month.year, run.month.month)
    finalize_now = getattr(settings, "BILLING_REVIEW_HOURS", 24) == 0
    with transaction.atomic():
        if not run.dry_run:
            lock_accounts_periods(account_ids)  # before reading usage: see every committed event
        invoiced = set(
            Invoice.objects.filter(account_id__in=account_ids, period_start=period.start)
            .exclude(status=Invoice.Status.VOID)
            .values_list("account_id", flat=True)
        )
        accounts = list(Account.objects.filter(pk__in=account_ids).exclude(pk__in=invoiced))
        failures: dict[int, str] = {}
        estimates: dict[int, Estimate] = {}
        try:
            with transaction.atomic():  # a savepoint: a database error here leaves the chunk usable
                estimates = charges_many(accounts=accounts, period=period, now=max(now, period.end))
        except Exception:  # one bad account must not stop the chunk: rate them one by one
            logger.exception("Rating the chunk failed; rating its accounts one by one")
            for account in accounts:
                try:
                    with transaction.atomic():
                        estimates.update(charges_many(accounts=[account], period=period, now=max(now, period.end)))
                except Exception as exc:
                    failures[account.pk] = f"rating failed: {exc}"
        for account_id, estimate in list(estimates.items()):
            try:
                estimate_verify(estimate)
            except BillingError as exc:
                failures[account_id] = exc.message
                del estimates[account_id]
        anomalies = _anomalies(list(estimates), period, estimates)
        written: list[Invoice] = []
        if not run.dry_run and estimates:
            written = _write_isolated(estimates, failures, now=now, run=run, finalize=finalize_now, anomalies=anomalies)
        by_account = {i.account_id: i for i in written}
        items = list(BillingRunItem.objects.filter(run=run, account_id__in=account_ids))
        for item in items:
            item.attempts += 1
            if item.account_id in invoiced:
                item.status, item.error = BillingRunItem.Status.DONE, ""
                item.invoice = (
                    Invoice.objects.filter(account_id=item.account_id, period_start=period.start)
                    .exclude(status=Invoice.Status.VOID)
                    .first()
                )
            elif item.account_id in failures:
                item.status, item.error = BillingRunItem.Status.FAILED, failures[item.account_id][:2000]
            elif item.account_id in estimates:
                item.status, item.error = BillingRunItem.Status.DONE, ""
                item.total = estimates[item.account_id].total
                item.anomalies = anomalies.get(item.account_id, [])
                item.invoice = by_account.get(item.account_id)
        bulk_update_fields(items, ["status", "error", "total", "anomalies", "invoice", "attempts"])
        billing_run_refresh(run=run)
    return len(written)


def _write_isolated(
    estimates: dict[int, Estimate],
    failures: dict[int, str],
    *,
    now: dt.datetime,
    run: BillingRun,
    finalize: bool,
    anomalies: dict[int, list[str]],
) -> list[Invoice]:
    """Write the chunk's invoices in one go; should that fail, write them account by account, each in its own
    savepoint, so one account's failure is recorded against it (and removed from ``estimates``) while the
    others are invoiced. Numbers taken in a rolled-back savepoint are given back: the series stays gap-free."""
    try:
        with transaction.atomic():
            return invoices_write(
                estimates=list(estimates.values()), now=now, run=run, finalize=finalize, anomalies=anomalies
            )
    except Exception:
        logger.exception("Writing the chunk's invoices failed; writing its accounts one by one")
    written: list[Invoice] = []
    for account_id, estimate in list(estimates.items()):
        try:
            with transaction.atomic():
                written += invoices_write(
                    estimates=[estimate], now=now, run=run, finalize=finalize, anomalies=anomalies
                )
        except Exception as exc:
            logger.exception("Writing the invoice of account %s failed", account_id)
            failures[account_id] = f"writing the invoice failed: {exc}"
            del estimates[account_id]
    return written


def billing_run_chunk_failed(*, run: BillingRun, account_ids: list[int], error: str) -> None:
    """A chunk that could not be billed at all: its accounts are recorded as failed with the reason, so the
    run finishes and shows them (running the month again retries them)."""
    BillingRunItem.objects.filter(run=run, account_id__in=account_ids, status=BillingRunItem.Status.PENDING).update(
        status=BillingRunItem.Status.FAILED, error=error[:2000]
    )
    billing_run_refresh(run=run)


def billing_run_refresh(*, run: BillingRun) -> None:
    """Recount the run's progress from its items."""
    counts = BillingRunItem.objects.filter(run=run).aggregate(
        total=Count("id"),
        done=Count("id", filter=Q(status=BillingRunItem.Status.DONE)),
        failed=Count("id", filter=Q(status=BillingRunItem.Status.FAILED)),
        invoices=Count("id", filter=Q(invoice__isnull=False)),
    )
    BillingRun.objects.filter(pk=run.pk).update(
        accounts_total=counts["total"],
        accounts_done=counts["done"],
        accounts_failed=counts["failed"],
        invoices_created=counts["invoices"],
    )


def billing_run_finish(*, run: BillingRun, now: dt.datetime | None = None) -> BillingRun:
    now = now or clock.now()
    billing_run_refresh(run=run)
    run.refresh_from_db()
    totals = (
        BillingRunItem.objects.filter(run=run, status=BillingRunItem.Status.DONE, total__isnull=False)
        .values(currency=F("account__currency"))
        .annotate(amount=Sum("total"))
    )
    run.amount_total = {row["currency"]: format(round_money(row["amount"], row["currency"]), "f") for row in totals}
    pending = run.accounts_total - run.accounts_done - run.accounts_failed
    run.status = (
        BillingRun.Status.COMPLETED
        if run.accounts_failed == 0 and pending == 0
        else BillingRun.Status.COMPLETED_WITH_FAILURES
        if pending == 0
        else BillingRun.Status.RUNNING
    )
    run.finished_at = now if pending == 0 else None
    run.save(update_fields=["amount_total", "status", "finished_at"])
    return run


def bill_period(
    *,
    period: Period,
    now: dt.datetime | None = None,
    account_ids: list[int] | None = None,
    dry_run: bool = False,
    trigger: str = "command",
    progress: Callable[[int, int], None] | None = None,
) -> BillingRun:
    """Run the whole cycle for ``period`` in this process (the command; tasks fan the chunks out instead)."""
    now = now or clock.now()
    run = billing_run_start(period=period, now=now, account_ids=account_ids, dry_run=dry_run, trigger=trigger)
    total = BillingRunItem.objects.filter(run=run, status=BillingRunItem.Status.PENDING).count()
    done = 0
    for chunk in pending_chunks(run=run, account_ids=account_ids):
        try:
            billing_run_chunk(run=run, account_ids=chunk, now=now)
        except Exception as exc:
            logger.exception("Billing chunk of run %s failed", run.pk)
            billing_run_chunk_failed(run=run, account_ids=chunk, error=f"chunk failed: {exc}")
        done += len(chunk)
        if progress:
            progress(done, total)
    run = billing_run_finish(run=run, now=now)
    if not dry_run:
        lifecycle_update(period=period, now=now)
    return run
