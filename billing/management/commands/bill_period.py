import gc
import sys
import time

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Account
from billing.models import BillingRunItem
from billing.services.runs import bill_period
from common import clock
from common.errors import BillingError
from common.periods import parse_month


class Command(BaseCommand):
    help = (
        "Close a month: rate every account's usage, write its invoice (finalized at once, or drafts for review "
        "when BILLING_REVIEW_HOURS > 0), update account status. Safe to re-run: it resumes and never bills an "
        "account twice."
    )

    def add_arguments(self, parser):
        parser.add_argument("month", help="The month to bill, YYYY-MM (e.g. 2026-10).")
        parser.add_argument(
            "--account", action="append", default=[], metavar="ACC", help="Only this account (acc_…); repeatable."
        )
        parser.add_argument("--dry-run", action="store_true", help="Compute and report; write no invoice.")

    def handle(self, *args, month, account, dry_run, **options):
        # What is loaded now lives as long as the command: out of the garbage collector's full passes
        # (see config.celery.freeze_startup_objects).
        gc.collect()
        gc.freeze()
        try:
            period = parse_month(month)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        account_ids = None
        if account:
            found = dict(Account.objects.filter(public_id__in=account).values_list("public_id", "pk"))
            missing = sorted(set(account) - set(found))
            if missing:
                raise CommandError(f"No account {', '.join(missing)}.")
            account_ids = list(found.values())
        started = time.monotonic()
        tty = sys.stdout.isatty()

        def progress(done: int, total: int) -> None:
            width = 30
            filled = width * done // max(total, 1)
            rate = done / max(time.monotonic() - started, 1e-9)
            bar = f"[{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} accounts  {rate:,.0f}/s"
            self.stdout.write(("\r" + bar) if tty else bar, ending="" if tty else "\n")

        try:
            run = bill_period(
                period=period, now=clock.now(), account_ids=account_ids, dry_run=dry_run, progress=progress
            )
        except BillingError as exc:
            raise CommandError(exc.message) from None
        if tty:
            self.stdout.write("")
        seconds = time.monotonic() - started
        totals = ", ".join(f"{amount} {currency}" for currency, amount in sorted(run.amount_total.items())) or "nothing"
        what = "would be invoiced (dry run)" if dry_run else "invoiced"
        self.stdout.write(
            self.style.SUCCESS(
                f"{period.label}: {run.accounts_done:,} of {run.accounts_total:,} accounts done, "
                f"{run.accounts_failed:,} failed, {run.invoices_created:,} invoices; {totals} {what}; {seconds:.1f} s."
            )
        )
        for group in run.not_in_run:
            ids = ", ".join(group["accounts"]) + (" …" if group["count"] > len(group["accounts"]) else "")
            self.stdout.write(f"  not billed, {group['count']}: {group['reason']} ({ids})")
        for item in BillingRunItem.objects.filter(run=run).exclude(anomalies=[]).select_related("account")[:20]:
            for note in item.anomalies:
                self.stdout.write(f"  review {item.account.public_id}: {note}")
        failed = BillingRunItem.objects.filter(run=run, status=BillingRunItem.Status.FAILED).select_related("account")
        for item in failed[:50]:
            self.stderr.write(f"  failed {item.account.public_id}: {item.error}")
        if run.accounts_failed:
            raise CommandError(f"{run.accounts_failed} account(s) failed; fix them and run the month again.")
