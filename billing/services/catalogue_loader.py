"""Idempotent loading of the standard catalogue (``billing.catalogue``)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction

from billing.catalogue import METRICS, PLANS
from billing.models import Plan, PlanVersion
from billing.services.catalogue import plan_create, plan_version_create
from usage.models import Metric
from usage.services import metric_create


@dataclass
class CatalogueLoadResult:
    metrics_created: int = 0
    plans_created: int = 0


@transaction.atomic
def catalogue_load() -> CatalogueLoadResult:
    """Create the catalogue's missing metrics and plans (each plan with a published version 1).

    Existing rows are left exactly as they are: a price change is a new plan version made by staff,
    never an overwrite by a deploy.
    """
    result = CatalogueLoadResult()
    existing_metrics = set(Metric.objects.values_list("code", flat=True))
    for spec in METRICS:
        if spec["code"] not in existing_metrics:
            metric_create(**spec)
            result.metrics_created += 1
    existing_plans = set(Plan.objects.values_list("code", flat=True))
    for spec in PLANS:
        if spec["code"] in existing_plans:
            continue
        plan = plan_create(
            code=spec["code"], name=spec["name"], product=spec["product"], display_order=spec["display_order"]
        )
        plan_version_create(
            plan=plan,
            currency="USD",
            base_fee=spec["base_fee"],
            price_on_request=spec.get("price_on_request", False),
            billing_interval=spec.get("billing_interval", PlanVersion.Interval.MONTH),
            annual_discount_percent=spec.get("annual_discount_percent", Decimal("0")),
            trial_days=spec["trial_days"],
            support_level=spec["support_level"],
            features=spec["features"],
            charges=spec["charges"],
            publish=True,
        )
        result.plans_created += 1
    return result
