"""Writes for versioned plans (the metrics they charge for are written by ``usage.services``).

Invariant: a published plan version is frozen; its charges and tiers are only ever created before
publication. Tiers of a charge are contiguous from 0, never overlap, and only the last is open-ended.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import transaction

from accounts.models import Account
from billing.models import Plan, PlanCharge, PlanVersion, PriceTier
from common import clock
from common.audit import stamp
from common.errors import BillingError
from common.services import model_update
from usage.models import Metric

ERR_VERSION_PUBLISHED = "Plan version {version} is published and frozen; create a new version instead."
ERR_TIERS_EMPTY = "A tiered charge needs at least one tier."
ERR_TIERS_START = "The first tier must start at 0."
ERR_TIERS_GAP = "Tier {index} must start where tier {previous} ends ({expected}), not at {actual}."
ERR_TIERS_OPEN_END = "Only the last tier may be open-ended, and it must be."
ERR_TIERS_ORDER = "Tier {index}: the upper bound must be above the lower bound."
ERR_TIERS_NOT_TIERED = "Only graduated and volume charges take tiers."
ERR_CURRENCY_MISMATCH = "A custom plan's currency ({currency}) must equal the account currency ({account_currency})."


@dataclass(frozen=True)
class TierSpec:
    lower_bound: Decimal
    upper_bound: Decimal | None
    unit_price: Decimal
    flat_fee: Decimal = Decimal("0")


@dataclass(frozen=True)
class ChargeSpec:
    metric_code: str
    pricing_model: str = PlanCharge.PricingModel.PER_UNIT
    included_quantity: Decimal | None = Decimal("0")
    limit: Decimal | None = None
    limit_window: str = PlanCharge.LimitWindow.PERIOD
    unit_price: Decimal | None = None
    package_size: Decimal | None = None
    package_price: Decimal | None = None
    tiers: Sequence[TierSpec] = field(default_factory=tuple)


def validate_tiers(tiers: Sequence[TierSpec]) -> None:
    """Raise ``BillingError`` unless the tiers are contiguous from 0 with only the last open-ended."""
    if not tiers:
        raise BillingError(ERR_TIERS_EMPTY, code="tiers_empty", field="tiers")
    if tiers[0].lower_bound != 0:
        raise BillingError(ERR_TIERS_START, code="tiers_start", field="tiers")
    for index, tier in enumerate(tiers):
        last = index == len(tiers) - 1
        if (tier.upper_bound is None) != last:
            raise BillingError(ERR_TIERS_OPEN_END, code="tiers_open_end", field="tiers")
        if tier.upper_bound is not None and tier.upper_bound <= tier.lower_bound:
            raise BillingError(ERR_TIERS_ORDER.format(index=index), code="tiers_order", field="tiers")
        if index and tier.lower_bound != tiers[index - 1].upper_bound:
            raise BillingError(
                ERR_TIERS_GAP.format(
                    index=index, previous=index - 1, expected=tiers[index - 1].upper_bound, actual=tier.lower_bound
                ),
                code="tiers_gap",
                field="tiers",
            )


def _ensure_draft(plan_version: PlanVersion) -> None:
    if plan_version.is_published:
        raise BillingError(
            ERR_VERSION_PUBLISHED.format(version=plan_version), code="plan_version_published", status=409
        )


@transaction.atomic
def plan_create(
    *,
    code: str,
    name: str,
    product: str,
    description: str = "",
    account: Account | None = None,
    display_order: int = 0,
    actor: Any = None,
) -> Plan:
    plan = Plan(
        code=code,
        name=name,
        product=product,
        description=description,
        kind=Plan.Kind.CUSTOM if account is not None else Plan.Kind.PUBLIC,
        account=account,
        display_order=display_order,
    )
    plan.full_clean()
    stamp(plan, actor=actor, reason="created")
    plan.save()
    return plan


@transaction.atomic
def plan_version_create(
    *,
    plan: Plan,
    currency: str,
    base_fee: Decimal | None,
    charges: Sequence[ChargeSpec] = (),
    price_on_request: bool = False,
    billing_interval: str = PlanVersion.Interval.MONTH,
    trial_days: int = 0,
    minimum_commitment: Decimal | None = None,
    discount_percent: Decimal = Decimal("0"),
    annual_discount_percent: Decimal = Decimal("0"),
    term_months: int | None = None,
    support_level: str = "",
    features: Sequence[str] = (),
    publish: bool = False,
    actor: Any = None,
) -> PlanVersion:
    """Create the next version of ``plan`` with its charges (and tiers), optionally published."""
    if plan.account is not None and currency != plan.account.currency:
        raise BillingError(
            ERR_CURRENCY_MISMATCH.format(currency=currency, account_currency=plan.account.currency),
            code="currency_mismatch",
            field="currency",
        )
    # Lock the plan so two concurrent drafts do not both take the same version number.
    Plan.objects.select_for_update().filter(pk=plan.pk).first()
    last = plan.versions.order_by("-version").values_list("version", flat=True).first() or 0
    version = PlanVersion(
        plan=plan,
        version=last + 1,
        currency=currency,
        base_fee=base_fee,
        price_on_request=price_on_request,
        billing_interval=billing_interval,
        trial_days=trial_days,
        minimum_commitment=minimum_commitment,
        discount_percent=discount_percent,
        annual_discount_percent=annual_discount_percent,
        term_months=term_months,
        support_level=support_level,
        features=list(features or ()),
    )
    version.full_clean()
    stamp(version, actor=actor, reason="created")
    version.save()
    for spec in charges:
        plan_charge_create(plan_version=version, spec=spec, actor=actor)
    if publish:
        plan_version_publish(plan_version=version, actor=actor)
    return version


@transaction.atomic
def plan_charge_create(*, plan_version: PlanVersion, spec: ChargeSpec, actor: Any = None) -> PlanCharge:
    _ensure_draft(plan_version)
    try:
        metric = Metric.objects.get(code=spec.metric_code)
    except Metric.DoesNotExist:
        raise BillingError(f"Unknown metric {spec.metric_code!r}.", code="unknown_metric", field="metric") from None
    charge = PlanCharge(
        plan_version=plan_version,
        metric=metric,
        included_quantity=spec.included_quantity,
        limit=spec.limit,
        limit_window=spec.limit_window,
        pricing_model=spec.pricing_model,
        unit_price=spec.unit_price,
        package_size=spec.package_size,
        package_price=spec.package_price,
    )
    charge.full_clean()
    stamp(charge, actor=actor, reason="created")
    charge.save()
    # A draft tiered charge may get its tiers later (on its own admin page); publishing checks them.
    if spec.tiers:
        plan_charge_set_tiers(charge=charge, tiers=spec.tiers, actor=actor)
    return charge


@transaction.atomic
def plan_charge_set_tiers(*, charge: PlanCharge, tiers: Sequence[TierSpec], actor: Any = None) -> list[PriceTier]:
    """Replace the tiers of a draft tiered charge, after checking they form a valid ladder."""
    _ensure_draft(charge.plan_version)
    if not charge.is_tiered:
        raise BillingError(ERR_TIERS_NOT_TIERED, code="tiers_not_tiered", field="tiers")
    validate_tiers(tiers)
    charge.tiers.all().delete()
    created = []
    for spec in tiers:
        tier = PriceTier(
            charge=charge,
            lower_bound=spec.lower_bound,
            upper_bound=spec.upper_bound,
            unit_price=spec.unit_price,
            flat_fee=spec.flat_fee,
        )
        tier.full_clean()
        stamp(tier, actor=actor, reason="tiers set")
        tier.save()
        created.append(tier)
    return created


@transaction.atomic
def plan_version_publish(*, plan_version: PlanVersion, actor: Any = None) -> PlanVersion:
    """Freeze a version and make it sellable. Tiered charges must have their tiers."""
    _ensure_draft(plan_version)
    for charge in plan_version.charges.select_related("metric").prefetch_related("tiers"):
        if charge.is_tiered:
            tiers = [TierSpec(t.lower_bound, t.upper_bound, t.unit_price, t.flat_fee) for t in charge.tiers.all()]
            try:
                validate_tiers(tiers)
            except BillingError as exc:
                raise BillingError(f"{charge.metric.code}: {exc.message}", code=exc.code, field="tiers") from exc
    plan_version.published_at = clock.now()
    stamp(plan_version, actor=actor, reason="published")
    plan_version.save(update_fields=["published_at"])
    return plan_version


PLAN_EDITABLE_FIELDS = ("name", "description", "display_order", "is_active")
PLAN_VERSION_DRAFT_FIELDS = (
    "currency",
    "base_fee",
    "price_on_request",
    "billing_interval",
    "trial_days",
    "minimum_commitment",
    "discount_percent",
    "annual_discount_percent",
    "term_months",
    "support_level",
    "features",
)
PLAN_CHARGE_DRAFT_FIELDS = (
    "included_quantity",
    "limit",
    "limit_window",
    "pricing_model",
    "unit_price",
    "package_size",
    "package_price",
)


@transaction.atomic
def plan_update(*, plan: Plan, data: dict[str, Any], actor: Any = None) -> Plan:
    stamp(plan, actor=actor, reason="updated")
    plan, _ = model_update(instance=plan, fields=PLAN_EDITABLE_FIELDS, data=data)
    return plan


@transaction.atomic
def plan_version_update(*, plan_version: PlanVersion, data: dict[str, Any], actor: Any = None) -> PlanVersion:
    if not data:
        return plan_version
    _ensure_draft(plan_version)
    if "features" in data and data["features"] is None:
        data = {**data, "features": []}
    account = plan_version.plan.account
    if account is not None and data.get("currency", account.currency) != account.currency:
        raise BillingError(
            ERR_CURRENCY_MISMATCH.format(currency=data["currency"], account_currency=account.currency),
            code="currency_mismatch",
            field="currency",
        )
    stamp(plan_version, actor=actor, reason="draft updated")
    plan_version, _ = model_update(instance=plan_version, fields=PLAN_VERSION_DRAFT_FIELDS, data=data)
    return plan_version


@transaction.atomic
def plan_charge_update(*, charge: PlanCharge, data: dict[str, Any], actor: Any = None) -> PlanCharge:
    if not data:
        return charge
    _ensure_draft(charge.plan_version)
    stamp(charge, actor=actor, reason="draft updated")
    charge, _ = model_update(instance=charge, fields=PLAN_CHARGE_DRAFT_FIELDS, data=data)
    return charge
