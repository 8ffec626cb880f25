from django.core.management.base import BaseCommand

from billing.services.catalogue_loader import catalogue_load


class Command(BaseCommand):
    help = "Create the standard metrics and plans that are missing. Safe to run repeatedly."

    def handle(self, *args, **options):
        result = catalogue_load()
        self.stdout.write(
            self.style.SUCCESS(
                f"Catalogue loaded: {result.metrics_created} metrics and {result.plans_created} plans created."
            )
        )
