from __future__ import annotations

from decimal import Decimal

import factory

from billing.models import Plan, PlanVersion
from billing.services.catalogue import plan_create, plan_version_create


class PlanFactory(factory.Factory):
    class Meta:
        model = Plan

    code = factory.Sequence(lambda n: f"test-plan-{n}")
    name = factory.Sequence(lambda n: f"Test plan {n}")
    product = Plan.Product.MESSAGING

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return plan_create(**kwargs)


class PlanVersionFactory(factory.Factory):
    class Meta:
        model = PlanVersion

    plan = factory.SubFactory(PlanFactory)
    currency = "USD"
    base_fee = Decimal("10.00")
    publish = True

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return plan_version_create(**kwargs)
