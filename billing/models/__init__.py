from billing.models.catalogue import Metric, Plan, PlanCharge, PlanVersion, PriceTier
from billing.models.subscription import Subscription

__all__ = ["Metric", "Plan", "PlanCharge", "PlanVersion", "PriceTier", "Subscription"]
