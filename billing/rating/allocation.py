"""Cost allocation: each usage line's amount shared among the tenants and master partners whose usage it
prices, by quantity, with ``common.money.allocate`` (largest remainder), so the shares add up to the line
to the cent. Read by the charges API, the invoice lines' breakdowns and the portal."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from decimal import Decimal
from typing import Any

from billing.rating.engine import ChargeLine, Estimate
from common.money import allocate
from tenants.models import MasterPartner, Tenant
from usage.selectors import MetricUsage

ZERO = Decimal(0)


def line_tenant_costs(line: ChargeLine, usage: MetricUsage | None, currency: str) -> dict[Any, Decimal]:
    """A usage line's amount shared among tenants by their quantity (shares add up to the line)."""
    per_tenant = line.by_tenant or (usage.by_tenant if usage else {})
    weights: dict = dict(per_tenant)
    # Usage no tenant accounts for (account-wide counts, e.g. users seen in several tenants) keeps its
    # share, so tenant costs never exceed the line.
    unattributed = (line.quantity or ZERO) - sum(per_tenant.values(), ZERO)
    if unattributed > 0 or not weights:
        weights[None] = unattributed if unattributed > 0 else Decimal(1)
    return allocate(line.amount, weights, currency)


def line_partner_costs(line: ChargeLine, currency: str) -> dict[Any, Decimal]:
    if not line.by_partner:
        return {}
    weights: dict = dict(line.by_partner)
    unattributed = (line.quantity or ZERO) - sum(line.by_partner.values(), ZERO)
    if unattributed > 0:  # usage sent without a partner keeps its share of the charge
        weights[None] = unattributed
    return allocate(line.amount, weights, currency)


def tenant_breakdown(estimate: Estimate, only_tenant_id: int | None = None) -> list[dict]:
    """Per tenant: its quantity of each metric and its share of each usage line (shares add up to lines).
    With ``only_tenant_id``, that tenant's row alone (its share still computed against the whole account)."""
    tenants = {t.id: t for t in Tenant.objects.filter(account=estimate.account)}
    shares: dict[int, dict[str, Decimal]] = {t: {} for t in tenants}
    costs: dict[int, Decimal] = {t: ZERO for t in tenants}
    for line in estimate.lines:
        if line.kind != "usage" or line.metric_code is None:
            continue
        metric_usage = estimate.usage.get(line.metric_code)
        for tenant_id, quantity in (metric_usage.by_tenant if metric_usage else {}).items():
            if tenant_id in shares:
                shares[tenant_id][line.metric_code] = quantity
        for tenant_id, cost in line_tenant_costs(line, metric_usage, estimate.currency).items():
            if tenant_id in costs:
                costs[tenant_id] += cost
    return [
        {"tenant": tenants[t], "quantities": shares[t], "cost": costs[t]}
        for t in sorted(tenants, key=lambda t: tenants[t].public_id)
        if (shares[t] or costs[t]) and only_tenant_id in (None, t)
    ]


def partner_breakdown(estimate: Estimate, metric_code: str = "messages") -> list[dict]:
    """Per master partner: messages and their share of the messages charge (shares add up to it)."""
    usage = estimate.usage.get(metric_code)
    if usage is None or not usage.by_partner:
        return []
    partners = {p.id: p for p in MasterPartner.objects.filter(pk__in=usage.by_partner)}
    costs: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for line in estimate.usage_lines(metric_code):
        if not line.by_partner:  # a line priced without a partner split (a single segment): the month's split
            line = dataclasses.replace(line, by_partner=dict(usage.by_partner))
        for partner_id, cost in line_partner_costs(line, estimate.currency).items():
            if partner_id is not None:
                costs[partner_id] += cost
    return [
        {"partner": partners[p], "message_count": usage.by_partner[p], "cost": costs[p]}
        for p in sorted(usage.by_partner, key=lambda p: partners[p].public_id)
    ]
