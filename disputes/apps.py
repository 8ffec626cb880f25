from django.apps import AppConfig


class DisputesConfig(AppConfig):
    name = "disputes"
    verbose_name = "Disputes"

    def ready(self) -> None:
        # Imported here: the receiver needs the app registry, which is ready only now.
        from billing.services.payments import payment_disputed
        from disputes.services import chargeback_received

        # A Stripe chargeback (charge.dispute.created) opens a case about the invoice the payment paid.
        payment_disputed.connect(chargeback_received, dispatch_uid="disputes-chargeback")
