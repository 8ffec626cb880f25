from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        # Imported here: receivers, checks and tasks need the app registry, which is ready only now.
        from billing import (
            checks,  # noqa: F401 - registers the deployment checks
            tasks,  # noqa: F401 - registers the tasks services queue by name
        )
        from billing.quotas import quotas_after_write
        from usage.signals import usage_written

        usage_written.connect(quotas_after_write, dispatch_uid="billing-quotas")
