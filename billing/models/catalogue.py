"""The catalogue's prices: ``Plan`` → ``PlanVersion`` → ``PlanCharge`` → ``PriceTier``, each charge for one
``usage.Metric`` (what can be metered, owned by metering).

Quantities: every included quantity, limit and tier bound is in the metric's *billed quantity*:
requests for API requests, GB-months for storage (GB-hours ÷ hours in the period), users for active
users, and so on. Prices are per *price unit*: 1 billed unit, or 1,000 for ``per_thousand`` metrics.
Included quantities are deducted first; the pricing model applies to what remains (the overage).
"""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from simple_history.models import HistoricalRecords

from common.money import (
    AMOUNT_DECIMAL_PLACES,
    AMOUNT_MAX_DIGITS,
    CURRENCY_CHOICES,
    CURRENCY_MINOR_UNITS,
    QUANTITY_DECIMAL_PLACES,
    QUANTITY_MAX_DIGITS,
    UNIT_PRICE_DECIMAL_PLACES,
    UNIT_PRICE_MAX_DIGITS,
)

plan_code_validator = RegexValidator(r"^[a-z][a-z0-9_-]{0,62}$", "Use lower-case letters, digits, - and _.")


def _quantity(**kwargs):
    return models.DecimalField(max_digits=QUANTITY_MAX_DIGITS, decimal_places=QUANTITY_DECIMAL_PLACES, **kwargs)


def _amount(**kwargs):
    return models.DecimalField(max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES, **kwargs)


def _unit_price(**kwargs):
    return models.DecimalField(max_digits=UNIT_PRICE_MAX_DIGITS, decimal_places=UNIT_PRICE_DECIMAL_PLACES, **kwargs)


class Plan(models.Model):
    """A plan's identity. Prices live on its versions; a subscription points at one version, so
    changing prices never rewrites what existing customers agreed to."""

    class Product(models.TextChoices):
        TENANT_PLATFORM = "tenant_platform", "Tenant platform"
        MESSAGING = "messaging", "Account messaging"

    class Kind(models.TextChoices):
        PUBLIC = "public", "Public catalogue"
        CUSTOM = "custom", "Custom (one account)"

    code = models.CharField(max_length=63, unique=True, validators=[plan_code_validator])
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    product = models.CharField(max_length=32, choices=Product.choices)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PUBLIC)
    account = models.ForeignKey(
        "accounts.Account",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="custom_plans",
        help_text="Custom plans only: the one account they were negotiated for.",
    )
    display_order = models.PositiveSmallIntegerField(default=0)
    is_active = models.BooleanField(default=True, help_text="Inactive plans take no new subscriptions.")
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["product", "display_order", "code"]
        constraints = [
            models.CheckConstraint(
                name="plan_custom_iff_account",
                condition=Q(kind="custom", account__isnull=False) | Q(kind="public", account__isnull=True),
                violation_error_message="Custom plans belong to exactly one account; public plans to none.",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class PlanVersion(models.Model):
    """The pricing of a plan from a point in time. Published versions are frozen: to change a
    price, publish a new version."""

    class Interval(models.TextChoices):
        MONTH = "month", "Monthly"
        YEAR = "year", "Yearly"

    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    base_fee = _amount(
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Fixed fee per billing interval. Empty only for price-on-request catalogue entries.",
    )
    price_on_request = models.BooleanField(
        default=False, help_text="Catalogue entry priced per contract; accounts subscribe to a custom plan instead."
    )
    billing_interval = models.CharField(max_length=8, choices=Interval.choices, default=Interval.MONTH)
    trial_days = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(365)])
    minimum_commitment = _amount(
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Minimum charge per interval; a shortfall is invoiced as its own line.",
    )
    discount_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
        help_text="Negotiated volume discount on usage charges, in percent.",
    )
    annual_discount_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
        help_text="Yearly versions: discount on the yearly base fee (paying a year in advance), in percent.",
    )
    term_months = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Committed contract term in months (e.g. 36 for three years)."
    )
    support_level = models.CharField(max_length=120, blank=True)
    features = models.JSONField(default=list, blank=True, help_text="Feature names shown to customers.")
    published_at = models.DateTimeField(
        null=True, blank=True, help_text="When the version became sellable. Published versions are frozen."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["plan", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "version"], name="plan_version_unique"),
            models.CheckConstraint(
                name="plan_version_priced",
                condition=Q(price_on_request=True) | Q(base_fee__isnull=False),
                violation_error_message="A plan version needs a base fee unless it is price-on-request.",
            ),
            models.CheckConstraint(name="plan_version_base_fee_non_negative", condition=Q(base_fee__gte=0)),
            models.CheckConstraint(
                name="plan_version_currency_supported", condition=Q(currency__in=list(CURRENCY_MINOR_UNITS))
            ),
            models.CheckConstraint(
                name="plan_version_discount_range", condition=Q(discount_percent__gte=0, discount_percent__lte=100)
            ),
            models.CheckConstraint(name="plan_version_commitment_non_negative", condition=Q(minimum_commitment__gte=0)),
            models.CheckConstraint(name="plan_version_term_positive", condition=Q(term_months__gt=0)),
            models.CheckConstraint(
                name="plan_version_annual_discount_range",
                condition=Q(annual_discount_percent__gte=0, annual_discount_percent__lte=100),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.plan.name} v{self.version}"

    @property
    def is_published(self) -> bool:
        return self.published_at is not None


class PlanCharge(models.Model):
    """What a plan version includes, limits and charges for one metric."""

    class PricingModel(models.TextChoices):
        INCLUDED_ONLY = "included_only", "Included only (no overage charge)"
        PER_UNIT = "per_unit", "Per unit"
        PACKAGE = "package", "Package (per started block)"
        GRADUATED = "graduated", "Graduated tiers (each tier its own price)"
        VOLUME = "volume", "Volume tiers (one price for all units, set by the total)"

    class LimitWindow(models.TextChoices):
        PERIOD = "period", "Per billing period"
        HOUR = "hour", "Per hour"

    plan_version = models.ForeignKey(PlanVersion, on_delete=models.CASCADE, related_name="charges")
    metric = models.ForeignKey("usage.Metric", on_delete=models.PROTECT, related_name="charges")
    included_quantity = _quantity(
        null=True,
        blank=True,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Billed quantity included per period at no charge. Empty means unlimited.",
    )
    limit = _quantity(
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Plan limit that quota alerts (75/90/100 %) measure against. Empty means unlimited.",
    )
    limit_window = models.CharField(max_length=8, choices=LimitWindow.choices, default=LimitWindow.PERIOD)
    pricing_model = models.CharField(max_length=16, choices=PricingModel.choices, default=PricingModel.PER_UNIT)
    unit_price = _unit_price(
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Per-unit model: price per price unit (1, or 1,000 for per-thousand metrics).",
    )
    package_size = _quantity(
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.00000001"))],
        help_text="Package model: billed units per package; a started package is charged in full.",
    )
    package_price = _amount(null=True, blank=True, validators=[MinValueValidator(Decimal("0"))])

    history = HistoricalRecords()

    class Meta:
        ordering = ["plan_version", "metric__code"]
        verbose_name = "plan charge"
        constraints = [
            models.UniqueConstraint(fields=["plan_version", "metric"], name="plan_charge_unique_metric"),
            models.CheckConstraint(name="plan_charge_included_non_negative", condition=Q(included_quantity__gte=0)),
            models.CheckConstraint(name="plan_charge_limit_non_negative", condition=Q(limit__gte=0)),
            models.CheckConstraint(
                name="plan_charge_per_unit_has_price",
                condition=~Q(pricing_model="per_unit") | Q(unit_price__isnull=False, unit_price__gte=0),
                violation_error_message="Per-unit pricing needs a unit price.",
            ),
            models.CheckConstraint(
                name="plan_charge_package_has_size_and_price",
                condition=~Q(pricing_model="package")
                | Q(package_size__gt=0, package_price__isnull=False, package_price__gte=0),
                violation_error_message="Package pricing needs a package size and a package price.",
            ),
            models.CheckConstraint(
                name="plan_charge_price_fields_match_model",
                condition=(Q(pricing_model="per_unit") | Q(unit_price__isnull=True))
                & (Q(pricing_model="package") | Q(package_size__isnull=True, package_price__isnull=True)),
                violation_error_message="Only the fields of the chosen pricing model may be set.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.plan_version} · {self.metric.code}"

    @property
    def is_tiered(self) -> bool:
        return self.pricing_model in (self.PricingModel.GRADUATED, self.PricingModel.VOLUME)


class PriceTier(models.Model):
    """One tier of a graduated or volume charge, covering overage quantities ``[lower_bound, upper_bound)``.

    Invariants: bounds are ordered; tiers of one charge never overlap (a PostgreSQL exclusion
    constraint over ``numrange(lower_bound, upper_bound, '[)')``); services also require them to be
    contiguous from 0 with only the last open-ended.
    """

    charge = models.ForeignKey(PlanCharge, on_delete=models.CASCADE, related_name="tiers")
    lower_bound = _quantity(validators=[MinValueValidator(Decimal("0"))], help_text="First quantity of the tier.")
    upper_bound = _quantity(
        null=True, blank=True, help_text="Quantity where the next tier starts (exclusive). Empty: no upper end."
    )
    unit_price = _unit_price(validators=[MinValueValidator(Decimal("0"))], help_text="Price per price unit.")
    flat_fee = _amount(
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Charged once when the tier is reached.",
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["charge", "lower_bound"]
        constraints = [
            models.CheckConstraint(name="price_tier_lower_non_negative", condition=Q(lower_bound__gte=0)),
            models.CheckConstraint(
                name="price_tier_bounds_ordered",
                condition=Q(upper_bound__isnull=True) | Q(upper_bound__gt=F("lower_bound")),
                violation_error_message="A tier's upper bound must be above its lower bound.",
            ),
            models.CheckConstraint(name="price_tier_price_non_negative", condition=Q(unit_price__gte=0)),
            models.CheckConstraint(name="price_tier_flat_fee_non_negative", condition=Q(flat_fee__gte=0)),
            models.UniqueConstraint(fields=["charge", "lower_bound"], name="price_tier_unique_start"),
        ]

    def __str__(self) -> str:
        upper = "∞" if self.upper_bound is None else f"{self.upper_bound.normalize():f}"
        return f"[{self.lower_bound.normalize():f}, {upper}) @ {self.unit_price.normalize():f}"
