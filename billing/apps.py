from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        # Imported here: receivers, checks and tasks need the app registry, which is ready only now.
        from accounts.signals import account_status_changed
        from billing import (
            checks,  # noqa: F401 - registers the deployment checks
            stripe_webhooks,
            tasks,  # noqa: F401 - registers the tasks services queue by name
        )
        from billing.quotas import quotas_after_write
        from billing.services.account_status import account_status_after_payment, account_status_event
        from billing.services.collection import collections_after_finalization
        from billing.services.payments import invoice_ready_for_collection, payment_received
        from usage.signals import usage_written

        usage_written.connect(quotas_after_write, dispatch_uid="billing-quotas")
        # Finalized with money due: collection starts (automatic charge, or awaiting a manual payment).
        invoice_ready_for_collection.connect(collections_after_finalization, dispatch_uid="billing-collection-start")
        # Money came in: a past-due or suspended account may be active again at once.
        payment_received.connect(
            lambda sender, *, account_id, now=None, **kwargs: account_status_after_payment(
                account_id=account_id, now=now
            ),
            dispatch_uid="billing-status-after-payment",
            weak=False,
        )
        # Every account status change, by the billing cycle or by staff, goes to the outbox.
        account_status_changed.connect(account_status_event, dispatch_uid="billing-account-status-event")
        stripe_webhooks.connect()
