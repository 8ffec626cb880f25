from django.core.management.base import BaseCommand

from billing.tasks import invoices_finalize_due_task


class Command(BaseCommand):
    help = "Finalize the draft invoices whose review window has passed (held drafts wait)."

    def handle(self, *args, **options):
        done = invoices_finalize_due_task()
        self.stdout.write(self.style.SUCCESS(f"{done} invoice(s) finalized."))
