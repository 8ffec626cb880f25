#!/usr/bin/env python
"""Payments benchmark: record a month of payments and reconcile it, with the real code path.

    .venv/bin/python bench/payments.py [--accounts 2000]

Runs against its own PostgreSQL database ``ledgerline_paybench`` (dropped and recreated on every run; migrated
with the schema cache of ``bench/ingest.py``). Nothing else is touched; tasks the services queue go to Redis
db 14 and are not run.

1. Data (not timed): ``--accounts`` USD accounts, each with two finalized invoices of January 2026 (one of
   USD 120.00 due, one of USD 80.00), written in bulk.
2. Floor: the same number of one-row transactions, each inserting a payment-sized row into a scratch table
   (what a payment costs at the least: every payment is its own transaction).
3. Payments: ``billing.services.payments.payment_record`` once per account for USD 150.00 with no invoices
   named (oldest first: USD 120.00 to the first invoice, USD 30.00 to the second), one transaction each, as the
   admin form, the statement import and the webhooks call it: payments/s, and the ratio to the floor.
4. Balances: ``credit_balances`` over every account (the grouped queries the month's close runs).
5. Reconciliation: ``reconciliation_run`` for January against a ``GROUP BY`` floor over the same rows.
Checks: every first invoice paid, every second one USD 50.00 due, no credit balance, no reconciliation issue.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import ingest  # noqa: E402  (the ingest benchmark's database, migration and schema-cache helpers)

DB_NAME = "ledgerline_paybench"
MONTH_START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
MONTH_END = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
FINALIZED_AT = dt.datetime(2026, 2, 2, tzinfo=dt.UTC)
PAID_AT = dt.datetime(2026, 2, 10, 9, tzinfo=dt.UTC)
FIRST, SECOND, PAID = Decimal("120.00"), Decimal("80.00"), Decimal("150.00")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def django_setup(env: dict[str, str]) -> None:
    for key in [k for k in os.environ if k.startswith(("DJANGO_", "DATABASE_", "REDIS_", "BILLING_"))]:
        del os.environ[key]
    os.environ.update(env)
    import django

    django.setup()


def create_fixtures(n_accounts: int) -> list[int]:
    """Accounts and two finalized invoices each, in bulk (bench rows: no audit history)."""
    from accounts.models import Account
    from billing.models import Invoice
    from common.models import Counter

    accounts = [
        Account(
            public_id=f"acc_{i + 1:06d}",
            name=f"Bench customer {i + 1}",
            currency="USD",
            billing_emails=[f"billing{i + 1}@example.com"],
            status=Account.Status.ACTIVE,
        )
        for i in range(n_accounts)
    ]
    Account.objects.bulk_create(accounts, batch_size=2000)
    Counter.objects.update_or_create(name="public_id:acc", defaults={"value": n_accounts})
    invoices = []
    for n, (account, total, month) in enumerate(
        (a, t, m) for a in accounts for t, m in ((FIRST, MONTH_START), (SECOND, MONTH_END))
    ):
        invoices.append(
            Invoice(
                account=account,
                number=f"INV-2026-{n + 1:06d}",
                status=Invoice.Status.FINALIZED,
                period_start=month,
                period_end=month + dt.timedelta(days=28),
                currency="USD",
                subtotal=total,
                total=total,
                amount_due=total,
                created_at=FINALIZED_AT,
                finalized_at=FINALIZED_AT + dt.timedelta(seconds=n % 2),
                due_at=FINALIZED_AT + dt.timedelta(days=30 + n % 2),
                snapshot={"account": {"id": account.public_id, "name": account.name}},
            )
        )
    Invoice.objects.bulk_create(invoices, batch_size=2000)
    return [a.pk for a in accounts]


def floor_transactions(n: int) -> float:
    """``n`` one-row transactions into a scratch table: the least a payment can cost."""
    from django.db import connection, transaction

    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS bench_payment_floor (id bigserial PRIMARY KEY, account_id bigint, "
            "amount numeric(18,4), reference varchar(255), at timestamptz)"
        )
    start = time.perf_counter()
    for i in range(n):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO bench_payment_floor (account_id, amount, reference, at) VALUES (%s, %s, %s, %s)",
                [i, PAID, f"wire {i}", PAID_AT],
            )
    return time.perf_counter() - start


def record_payments(account_ids: list[int]) -> float:
    from accounts.models import Account
    from billing.services.payments import payment_record

    accounts = list(Account.objects.filter(pk__in=account_ids).order_by("pk"))
    start = time.perf_counter()
    for account in accounts:
        payment_record(
            account=account,
            amount=PAID,
            provider="bank_transfer",
            reference=f"wire {account.public_id}",
            received_at=PAID_AT,
            now=PAID_AT,
        )
    return time.perf_counter() - start


def floor_group_by() -> float:
    from django.db import connection

    start = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT currency, provider, count(*), sum(amount) FROM billing_payment "
            "WHERE received_at >= %s AND received_at < %s GROUP BY currency, provider",
            [MONTH_START, MONTH_END + dt.timedelta(days=28)],
        )
        cursor.fetchall()
        cursor.execute(
            "SELECT invoice_id, sum(amount) FROM billing_paymentallocation GROUP BY invoice_id HAVING sum(amount) > 0"
        )
        cursor.fetchall()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--no-schema-cache", action="store_true")
    args = parser.parse_args()

    env = ingest.app_env(db_name=DB_NAME)
    log(f"Database {DB_NAME}: recreating and migrating")
    ingest.recreate_database(DB_NAME)
    log(f"  {ingest.migrate(env, use_cache=not args.no_schema_cache, db_name=DB_NAME)}")
    django_setup(env)

    from django.db.models import Sum

    from billing.models import Invoice, Payment, PaymentAllocation, ReconciliationIssue
    from billing.selectors import credit_balances
    from billing.services.reconciliation import reconciliation_run
    from common.periods import Period

    account_ids = create_fixtures(args.accounts)
    n = len(account_ids)
    log(f"Data: {n:,} accounts, {2 * n:,} finalized invoices")

    floor = floor_transactions(n)
    log(f"Floor: {n:,} one-row transactions in {floor:.2f} s ({n / floor:,.0f}/s)")
    took = record_payments(account_ids)
    log(f"Payments: {n:,} payment_record calls in {took:.2f} s ({n / took:,.0f} payments/s, ×{took / floor:.1f} floor)")

    start = time.perf_counter()
    balances = credit_balances(account_ids)
    balances_took = time.perf_counter() - start
    log(f"Credit balances of {n:,} accounts: {balances_took * 1000:.0f} ms ({len(balances)} with a balance)")

    group_floor = floor_group_by()
    start = time.perf_counter()
    summary = reconciliation_run(period=Period(MONTH_START, MONTH_END + dt.timedelta(days=28)), now=PAID_AT)
    recon_took = time.perf_counter() - start
    log(
        f"Reconciliation of the month: {recon_took:.2f} s (GROUP BY floor {group_floor * 1000:.0f} ms, "
        f"×{recon_took / max(group_floor, 1e-6):.0f}); {summary.found} mismatches found"
    )

    paid = Invoice.objects.filter(total=FIRST, status=Invoice.Status.PAID).count()
    half = Invoice.objects.filter(total=SECOND, status=Invoice.Status.FINALIZED, amount_due=Decimal("50.00")).count()
    allocated = PaymentAllocation.objects.aggregate(total=Sum("amount"))["total"]
    checks = {
        "first invoices paid": paid == n,
        "second invoices USD 50.00 due": half == n,
        "allocations = payments": allocated == Payment.objects.aggregate(total=Sum("amount"))["total"],
        "no credit balance": not balances,
        "no reconciliation issue": not ReconciliationIssue.objects.exists(),
    }
    for name, ok in checks.items():
        log(f"  check {name}: {'ok' if ok else 'FAILED'}")
    print()
    print("| figure | value |")
    print("| --- | --- |")
    print(f"| payments recorded | {n:,} in {took:.2f} s = {n / took:,.0f}/s (×{took / floor:.1f} the one-row floor) |")
    print(f"| credit balances of every account | {balances_took * 1000:.0f} ms |")
    ratio = recon_took / max(group_floor, 1e-6)
    print(f"| reconciliation of the month | {recon_took:.2f} s (×{ratio:.0f} a GROUP BY) |")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
