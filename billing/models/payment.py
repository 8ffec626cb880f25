"""The payments ledger: money received (``Payment``), where it went (``PaymentAllocation``), money given back
(``Refund``), how an account pays (``PaymentProfile``) and where collection of each open invoice stands
(``Collection``, the dunning state).

Invariants (kept by ``billing.services.payments``; the allocation and refund tables are append-only):
- an invoice's ``amount_paid`` is the sum of its allocations, and ``amount_due`` = total − paid − credited;
- a payment's allocations plus its succeeded refunds never exceed its amount; what is left is *unapplied*,
  and the sum of an account's unapplied money is its **credit balance**, applied to the next invoice it gets;
- a correction never edits a row: a wrongly recorded payment is *reversed* (negative allocations release
  the invoices it paid), with the actor and the reason on the payment's history.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from billing.models.catalogue import _amount
from common.money import CURRENCY_CHOICES, format_money


class Payment(models.Model):
    """Money received from (or, while pending or failed, asked of) an account."""

    class Provider(models.TextChoices):
        STRIPE = "stripe", "Stripe"
        BANK_TRANSFER = "bank_transfer", "Bank transfer"
        CHECK = "check", "Check"
        OTHER = "other", "Other"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        REFUNDED = "refunded", "Refunded"
        REVERSED = "reversed", "Reversed"

    public_id = models.CharField(max_length=32, unique=True, editable=False, help_text="pay_000001: the API's id.")
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="payments")
    provider = models.CharField(max_length=16, choices=Provider.choices)
    reference = models.CharField(
        max_length=255,
        blank=True,
        help_text="The provider's reference: the bank transfer's reference, the check number, or Stripe's "
        "PaymentIntent id (pi_…).",
    )
    external_id = models.CharField(
        max_length=255,
        unique=True,
        null=True,
        blank=True,
        help_text="Makes a payment exactly-once: Stripe's PaymentIntent id, or a bank statement line's key.",
    )
    amount = _amount(help_text="The amount received (or asked for while pending), in the payment's currency.")
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    received_at = models.DateTimeField(help_text="When the money arrived (UTC); for a pending payment, when asked.")
    invoice = models.ForeignKey(
        "billing.Invoice",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="collection_payments",
        help_text="The invoice an automatic collection attempt was for (its allocations say what it paid).",
    )
    attempt = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Automatic collection: the attempt number for the invoice (1, 2, …)."
    )
    payment_method = models.CharField(
        max_length=64, blank=True, help_text="How it was paid, as customers read it: card_ending_4242, sepa_debit_3000."
    )
    failure_code = models.CharField(max_length=64, blank=True)
    failure_message = models.CharField(max_length=500, blank=True)
    stripe_charge_id = models.CharField(max_length=255, blank=True, db_index=True)
    disputed_amount = _amount(default=0, help_text="Amount the customer's bank disputes (Stripe chargeback).")
    dispute_reference = models.CharField(max_length=255, blank=True)
    note = models.CharField(max_length=500, blank=True, help_text="Staff's note when recording it.")
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reversal_reason = models.CharField(max_length=500, blank=True)
    reversed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        ordering = ["-received_at", "-id"]
        permissions = [("refund_payment", "Can refund or reverse a payment")]
        constraints = [
            models.CheckConstraint(name="payment_amount_positive", condition=Q(amount__gt=0)),
            models.CheckConstraint(name="payment_disputed_not_negative", condition=Q(disputed_amount__gte=0)),
        ]
        indexes = [
            models.Index(fields=["account", "-received_at"], name="payment_account_received"),
            models.Index(fields=["status", "received_at"], name="payment_status_received"),
        ]

    def __str__(self) -> str:
        return self.public_id


class PaymentAllocation(models.Model):
    """Part of a payment applied to an invoice (positive), or released from it again (negative). Append-only."""

    class Kind(models.TextChoices):
        PAYMENT = "payment", "Payment"
        BALANCE = "balance", "Applied from the credit balance"
        RELEASE = "release", "Released by a credit note"
        REVERSAL = "reversal", "Payment reversed"
        REFUND = "refund", "Payment refunded"

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="allocations")
    invoice = models.ForeignKey("billing.Invoice", on_delete=models.PROTECT, related_name="allocations")
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    amount = _amount(help_text="Positive: applied to the invoice; negative: taken back off it.")
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.CheckConstraint(name="payment_allocation_nonzero", condition=~Q(amount=0))]
        indexes = [
            models.Index(fields=["account", "created_at"], name="allocation_account_created"),
            models.Index(fields=["invoice", "created_at"], name="allocation_invoice_created"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {format_money(self.amount, self.currency)}"


class Refund(models.Model):
    """Money given back out of a payment."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    public_id = models.CharField(max_length=32, unique=True, editable=False, help_text="ref_000001.")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="refunds")
    amount = _amount()
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SUCCEEDED)
    reason = models.CharField(max_length=500)
    external_id = models.CharField(
        max_length=255, unique=True, null=True, blank=True, help_text="Stripe's refund id (re_…), exactly once."
    )
    refunded_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-refunded_at", "-id"]
        constraints = [models.CheckConstraint(name="refund_amount_positive", condition=Q(amount__gt=0))]
        indexes = [models.Index(fields=["account", "-refunded_at"], name="refund_account_refunded")]

    def __str__(self) -> str:
        return self.public_id


class PaymentProfile(models.Model):
    """How an account pays: its Stripe customer, the default payment method and automatic collection."""

    class MethodType(models.TextChoices):
        CARD = "card", "Card"
        SEPA_DEBIT = "sepa_debit", "SEPA Direct Debit"
        US_BANK_ACCOUNT = "us_bank_account", "ACH Direct Debit"

    account = models.OneToOneField("accounts.Account", on_delete=models.CASCADE, related_name="payment_profile")
    stripe_customer_id = models.CharField(max_length=255, blank=True, db_index=True, help_text="cus_… at Stripe.")
    auto_collection = models.BooleanField(
        default=False,
        help_text="Charge the default payment method when an invoice is finalized, and retry on failure.",
    )
    payment_method_id = models.CharField(max_length=255, blank=True, help_text="pm_… at Stripe.")
    payment_method_type = models.CharField(max_length=32, choices=MethodType.choices, blank=True)
    payment_method_brand = models.CharField(max_length=32, blank=True, help_text="visa, mastercard, … (cards).")
    payment_method_last4 = models.CharField(max_length=4, blank=True)
    payment_method_exp_month = models.PositiveSmallIntegerField(null=True, blank=True)
    payment_method_exp_year = models.PositiveSmallIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        verbose_name = "payment profile"

    def __str__(self) -> str:
        return f"Payment profile of account #{self.account_id}"

    @property
    def has_payment_method(self) -> bool:
        return bool(self.payment_method_id)

    @property
    def payment_method_label(self) -> str:
        """``card_ending_4242``: the form the payment events carry."""
        if not self.payment_method_id:
            return ""
        kind = "card" if self.payment_method_type == self.MethodType.CARD else self.payment_method_type
        return f"{kind}_ending_{self.payment_method_last4}" if self.payment_method_last4 else kind


class Collection(models.Model):
    """Where collecting one invoice stands (dunning): automatic attempts, the next retry, staff's pause."""

    class State(models.TextChoices):
        SCHEDULED = "scheduled", "Attempt scheduled"
        RETRYING = "retrying", "Failed, retry scheduled"
        PAUSED = "paused", "Paused by staff"
        EXHAUSTED = "exhausted", "All retries failed"
        MANUAL = "manual", "Awaiting a manual payment"
        SUCCEEDED = "succeeded", "Paid"
        WRITTEN_OFF = "written_off", "Written off"

    invoice = models.OneToOneField("billing.Invoice", on_delete=models.CASCADE, related_name="collection")
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=16, choices=State.choices)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Automatic attempts made so far.")
    next_attempt_at = models.DateTimeField(null=True, blank=True, help_text="When the next automatic attempt runs.")
    first_failed_at = models.DateTimeField(null=True, blank=True, help_text="The retry schedule counts from here.")
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_failure = models.CharField(max_length=500, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="collection_next_attempt_when_scheduled",
                condition=~Q(state__in=["scheduled", "retrying"]) | Q(next_attempt_at__isnull=False),
                violation_error_message="A scheduled attempt needs its time.",
            )
        ]
        indexes = [
            models.Index(fields=["account", "state"], name="collection_account_state"),
            models.Index(fields=["state", "next_attempt_at"], name="collection_due"),
        ]

    def __str__(self) -> str:
        return f"Collection of invoice #{self.invoice_id}: {self.get_state_display()}"
