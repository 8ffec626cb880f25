from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from demo.book import (
    DEMO_PASSWORD,
    STAFF,
    demo_api_key,
    demo_billing,
    demo_budgets,
    demo_load,
    demo_payments_summary,
    demo_portal_logins,
    demo_usage,
)
from demo.data_out import demo_data_out, demo_data_out_summary
from demo.disputes import demo_disputes, demo_disputes_summary
from demo.insights import demo_insights, demo_insights_summary
from demo.subscriptions import demo_contracts, demo_contracts_summary, demo_plan_changes, demo_plan_changes_summary
from demo.webhooks import demo_webhooks, demo_webhooks_summary


class Command(BaseCommand):
    help = "Load the catalogue and the deterministic demo book of business (once; later runs change nothing)."

    def handle(self, *args, **options):
        result = demo_load(today=timezone.now().date())
        if result.created:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Demo loaded: {result.accounts} accounts, {result.tenants} tenants, "
                    f"{result.partners} master partners."
                )
            )
        else:
            self.stdout.write("Demo data already present; nothing changed.")
        events = demo_usage(now=timezone.now())
        if events:
            self.stdout.write(f"Usage loaded: {events:,} events from the start of last month until now.")
        invoices = demo_billing(now=timezone.now())
        if invoices:
            self.stdout.write(
                f"Last month closed on the test clock: {invoices} invoices finalized (admin: Billing › Invoices),"
                " each with its PDF and its e-mail."
            )
            for line in demo_payments_summary():
                self.stdout.write(line)
        if demo_disputes(now=timezone.now()):
            for line in demo_disputes_summary():
                self.stdout.write(line)
        if demo_plan_changes(now=timezone.now()):
            for line in demo_plan_changes_summary():
                self.stdout.write(line)
        if demo_contracts(now=timezone.now()):
            for line in demo_contracts_summary():
                self.stdout.write(line)
        alerts = demo_budgets(now=timezone.now())
        self.stdout.write(f"Budgets evaluated as the hourly schedule does: {alerts} alerts recorded (webhook outbox).")
        if demo_webhooks(now=timezone.now()):
            for line in demo_webhooks_summary():
                self.stdout.write(line)
        if demo_data_out(now=timezone.now()):
            for line in demo_data_out_summary():
                self.stdout.write(line)
        if demo_insights(now=timezone.now()):
            for line in demo_insights_summary():
                self.stdout.write(line)
        if settings.EMAIL_BACKEND.endswith("filebased.EmailBackend"):
            folder = settings.EMAIL_FILE_PATH
            self.stdout.write(f"E-mails (invoices with their PDFs, password resets) are written to {folder}/.")
        self.stdout.write("Logins (admin console at /admin/):")
        for username, _email, group, _name in STAFF:
            self.stdout.write(f"  {username:<10} / {DEMO_PASSWORD:<18} {group or 'superuser'}")
        portal_account, people = demo_portal_logins()
        self.stdout.write(f"Customer portal logins ({portal_account.name}, {portal_account.public_id}), at /portal/:")
        for email, role in people:
            self.stdout.write(f"  {email:<36} / {DEMO_PASSWORD:<18} {role}")
        account, key = demo_api_key()
        self.stdout.write(f"API key for {account.public_id} ({account.name}), scopes ingest+read:")
        self.stdout.write(f"  {key}")
