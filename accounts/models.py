from __future__ import annotations

import zoneinfo
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator, validate_email
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from common.money import (
    AMOUNT_DECIMAL_PLACES,
    AMOUNT_MAX_DIGITS,
    CURRENCY_CHOICES,
    CURRENCY_MINOR_UNITS,
    format_money,
)

ACCOUNT_PUBLIC_ID_RE = r"^acc_[0-9]{6,}$"


def validate_email_list(value: object) -> None:
    if not isinstance(value, list) or not value:
        raise ValidationError("Give at least one billing e-mail address.", code="required")
    for address in value:
        if not isinstance(address, str):
            raise ValidationError("Each billing e-mail address must be text.", code="invalid")
        validate_email(address)


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not a known IANA time zone.", code="invalid")


def default_alert_thresholds() -> list[int]:
    return [50, 75, 90, 100]


def validate_thresholds(value: object) -> None:
    if not isinstance(value, list) or not value:
        raise ValidationError("Give at least one alert threshold (percent).", code="required")
    if any(not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 1000 for v in value):
        raise ValidationError("Alert thresholds are whole percentages between 1 and 1000.", code="invalid")
    if sorted(set(value)) != value:
        raise ValidationError("Alert thresholds must be increasing and distinct.", code="invalid")


class Account(models.Model):
    """The billing entity: owns tenants and master partners, gets one consolidated invoice a month."""

    class Status(models.TextChoices):
        TRIALING = "trialing", "Trialing"
        ACTIVE = "active", "Active"
        PAST_DUE = "past_due", "Past due"
        SUSPENDED = "suspended", "Suspended"
        CANCELLED = "cancelled", "Cancelled"

    public_id = models.CharField(
        max_length=32,
        unique=True,
        editable=False,
        validators=[RegexValidator(ACCOUNT_PUBLIC_ID_RE)],
        help_text="Stable public identifier (acc_000001), used by the API and on invoices. Assigned once.",
    )
    name = models.CharField(max_length=200, help_text="Customer name as printed on invoices.")
    legal_name = models.CharField(max_length=200, blank=True, help_text="Registered legal name, if different.")
    currency = models.CharField(
        max_length=3,
        choices=CURRENCY_CHOICES,
        help_text="ISO 4217 currency of every invoice of this account. Cannot change once billed.",
    )
    billing_emails = models.JSONField(
        default=list,
        validators=[validate_email_list],
        help_text="Addresses that receive invoices and reminders (a list).",
    )
    tax_id = models.CharField(max_length=64, blank=True, help_text="VAT / tax registration number.")
    tax_country = models.CharField(
        max_length=2,
        blank=True,
        validators=[RegexValidator(r"^[A-Z]{2}$", "Use a two-letter ISO 3166 country code.")],
        help_text="Two-letter ISO 3166 country code of the tax residence.",
    )
    tax_rate = models.DecimalField(
        max_digits=6,
        decimal_places=3,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
        help_text="Sales tax / VAT rate in percent applied to invoices (e.g. 20.000).",
    )
    tax_reverse_charge = models.BooleanField(
        default=False,
        help_text="B2B reverse charge: no tax is charged and the invoice carries reverse-charge wording.",
    )
    timezone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_timezone],
        help_text="IANA time zone used for display. Billing periods are in UTC.",
    )
    payment_terms_days = models.PositiveSmallIntegerField(
        default=30, validators=[MaxValueValidator(365)], help_text="Days between invoice issue and due date."
    )
    status = models.CharField(
        max_length=16,
        choices=Status.choices,
        default=Status.TRIALING,
        help_text="Lifecycle state. Changed by the billing cycle and by staff actions, always audited.",
    )
    status_changed_at = models.DateTimeField(null=True, blank=True, editable=False)
    status_reason = models.CharField(
        max_length=200, blank=True, editable=False, help_text="Why the status last changed."
    )
    status_automatic = models.BooleanField(
        default=False,
        editable=False,
        help_text="The status was last set by the billing cycle (collection, overdue invoices), not by staff. "
        "Only such a past-due or suspended status is lifted by a payment that settles what is overdue.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["public_id"]
        constraints = [
            models.CheckConstraint(
                name="account_currency_supported", condition=Q(currency__in=list(CURRENCY_MINOR_UNITS))
            ),
            models.CheckConstraint(name="account_tax_rate_range", condition=Q(tax_rate__gte=0) & Q(tax_rate__lte=100)),
            models.CheckConstraint(
                name="account_reverse_charge_has_tax_id",
                condition=Q(tax_reverse_charge=False) | ~Q(tax_id=""),
                violation_error_message="Reverse charge needs the customer's tax id.",
            ),
        ]
        indexes = [models.Index(fields=["status"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.public_id})"


class AccountUser(models.Model):
    """A portal login. Belongs to exactly one account; sees nothing of any other account."""

    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        BILLING = "billing", "Billing"
        MEMBER = "member", "Member"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="users")
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="account_membership")
    role = models.CharField(
        max_length=16,
        choices=Role.choices,
        default=Role.MEMBER,
        help_text="Owner: everything incl. users and API keys. Admin: keys and budgets. "
        "Billing: invoices and payments. Member: read-only.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["account", "user__email"]
        verbose_name = "portal user"
        indexes = [models.Index(fields=["account", "role"])]

    def __str__(self) -> str:
        return f"{self.user} ({self.get_role_display()} of {self.account.public_id})"


class Budget(models.Model):
    """A spending budget. Alerts fire as the period's estimated charges cross each threshold."""

    class Period(models.TextChoices):
        MONTHLY = "monthly", "Monthly"
        QUARTERLY = "quarterly", "Quarterly"
        YEARLY = "yearly", "Yearly"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="budgets")
    name = models.CharField(max_length=120)
    amount = models.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS,
        decimal_places=AMOUNT_DECIMAL_PLACES,
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text="Budget limit in the account currency, per period.",
    )
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES, help_text="Must equal the account currency.")
    period = models.CharField(max_length=16, choices=Period.choices, default=Period.MONTHLY)
    alert_thresholds = models.JSONField(
        default=default_alert_thresholds,
        validators=[validate_thresholds],
        help_text="Percentages of the amount at which to alert, increasing, e.g. [50, 75, 90, 100].",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["account", "name"]
        constraints = [
            models.UniqueConstraint(fields=["account", "name"], name="budget_name_unique_per_account"),
            models.CheckConstraint(name="budget_amount_positive", condition=Q(amount__gt=0)),
            models.CheckConstraint(
                name="budget_currency_supported", condition=Q(currency__in=list(CURRENCY_MINOR_UNITS))
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name}: {format_money(self.amount, self.currency)} {self.get_period_display().lower()}"


# What an export key may be limited to (``ApiKey.export_datasets``), one per export endpoint.
EXPORT_DATASETS = ("events", "invoices", "credit_notes", "payments", "usage")


def validate_export_datasets(value: object) -> None:
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise ValidationError("Export datasets are a list of dataset names.", code="invalid")
    unknown = sorted(set(value) - set(EXPORT_DATASETS))
    if unknown:
        raise ValidationError(
            f"Unknown export dataset(s) {', '.join(unknown)}; choose from {', '.join(EXPORT_DATASETS)}.",
            code="invalid",
        )


class ApiKey(models.Model):
    """A credential for the REST API, sent as ``Authorization: Bearer <key>``.

    The secret is shown once at creation; only its SHA-256 digest is stored (keys are 192-bit random,
    so a fast hash is safe), next to a public prefix that identifies the key in lists and logs.
    Scopes: ``ingest`` (send events), ``read`` (the account's usage, billing and invoices), ``disputes`` (open
    and follow the account's disputes), ``subscription`` (the plan and plan changes), ``webhooks`` (the account's
    webhook endpoints) and ``export`` (platform-wide read-only, for external billing/ERP systems; such keys belong
    to no account, and may be limited to some accounts, ``export_accounts``, and some datasets,
    ``export_datasets``).
    """

    account = models.ForeignKey(
        Account,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="api_keys",
        help_text="The account the key acts for. Empty only for platform-wide export keys.",
    )
    tenant = models.ForeignKey(
        "tenants.Tenant",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="api_keys",
        help_text="Optional pin: the key may only report and read usage of this tenant.",
    )
    name = models.CharField(max_length=120, help_text="What the key is for, e.g. 'production ingest'.")
    prefix = models.CharField(max_length=16, unique=True, editable=False, help_text="Public part of the key.")
    secret_hash = models.CharField(max_length=64, editable=False)
    scope_ingest = models.BooleanField(default=False, verbose_name="ingest scope")
    scope_read = models.BooleanField(default=False, verbose_name="read scope")
    scope_export = models.BooleanField(default=False, verbose_name="export scope")
    scope_disputes = models.BooleanField(
        default=False,
        verbose_name="disputes scope",
        help_text="Open disputes for the account and follow them (GET and POST /v1/disputes).",
    )
    scope_subscription = models.BooleanField(
        default=False,
        verbose_name="subscription scope",
        help_text="Read the account's subscription and request plan changes (GET /v1/subscription, "
        "POST /v1/subscription/changes).",
    )
    scope_webhooks = models.BooleanField(
        default=False,
        verbose_name="webhooks scope",
        help_text="Manage the account's webhook endpoints: /v1/webhooks/….",
    )
    export_accounts = models.ManyToManyField(
        Account,
        blank=True,
        related_name="export_api_keys",
        help_text="Export keys only: the accounts the key may export. Empty: every account, including accounts "
        "created later.",
    )
    export_datasets = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_export_datasets],
        help_text="Export keys only: the datasets the key may export, from "
        + ", ".join(EXPORT_DATASETS)
        + ". Empty: every dataset, including datasets added later.",
    )
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests per minute; empty uses the platform default."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    expires_at = models.DateTimeField(null=True, blank=True, help_text="The key stops working at this time.")
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    # Each history row also keeps the key's export accounts as they were then (simple-history's m2m_fields).
    history = HistoricalRecords(excluded_fields=["last_used_at"], m2m_fields=[export_accounts])

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"
        permissions = [("create_export_key", "Can create platform-wide export API keys")]
        constraints = [
            models.CheckConstraint(
                name="api_key_has_a_scope",
                condition=Q(scope_ingest=True)
                | Q(scope_read=True)
                | Q(scope_export=True)
                | Q(scope_disputes=True)
                | Q(scope_subscription=True)
                | Q(scope_webhooks=True),
                violation_error_message="Give the key at least one scope.",
            ),
            models.CheckConstraint(
                name="api_key_export_is_platform_wide",
                condition=Q(
                    scope_export=True,
                    account__isnull=True,
                    scope_ingest=False,
                    scope_read=False,
                    scope_disputes=False,
                    scope_subscription=False,
                    scope_webhooks=False,
                    tenant__isnull=True,
                )
                | Q(scope_export=False, account__isnull=False),
                violation_error_message="Export keys belong to no account and carry only the export scope; "
                "every other key belongs to an account.",
            ),
            models.CheckConstraint(
                name="api_key_dataset_limits_only_for_export",
                condition=Q(scope_export=True) | Q(export_datasets=[]),
                violation_error_message="Only export keys are limited to datasets.",
            ),
        ]
        indexes = [models.Index(fields=["account", "revoked_at"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def export_datasets_allowed(self) -> tuple[str, ...]:
        """The datasets an export key may export (all of them when ``export_datasets`` is empty)."""
        if not self.export_datasets:
            return EXPORT_DATASETS
        return tuple(d for d in EXPORT_DATASETS if d in self.export_datasets)

    @property
    def scopes(self) -> list[str]:
        return [
            s
            for s, on in (
                ("ingest", self.scope_ingest),
                ("read", self.scope_read),
                ("disputes", self.scope_disputes),
                ("subscription", self.scope_subscription),
                ("webhooks", self.scope_webhooks),
                ("export", self.scope_export),
            )
            if on
        ]
