from django.core.management.base import BaseCommand
from django.utils import timezone

from common.demo import demo_load


class Command(BaseCommand):
    help = "Load the catalogue and the deterministic demo book of business (once; later runs change nothing)."

    def handle(self, *args, **options):
        result = demo_load(today=timezone.now().date())
        if not result.created:
            self.stdout.write("Demo data already present; nothing changed.")
            return
        self.stdout.write(self.style.SUCCESS(
            f"Demo loaded: {result.accounts} accounts, {result.tenants} tenants, {result.partners} master partners."
        ))
        for role, login, password in result.logins:
            self.stdout.write(f"  {role:<32} {login} / {password}")
