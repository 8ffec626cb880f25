"""OpenAPI documentation of the charges endpoints (``billing.apis``): shapes, descriptions, examples."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, inline_serializer
from rest_framework import serializers

from usage.schema import Error

__all__ = [
    "Error",
    "QUOTA_DESCRIPTION",
    "QUOTA_EXAMPLE",
    "QuotaDocument",
    "USAGE_DESCRIPTION",
    "USAGE_EXAMPLE",
    "UsageDocument",
]

USAGE_DESCRIPTION = """
Usage of the running calendar month (UTC) for the key's account, per metric: `quantity` to date,
`included`, `billable` overage and its `charge`; the fees (base fee, discount, minimum commitment);
`usage_to_date.estimated_charges` — the subtotal the invoice would show if the period closed now — with
tax and total; the breakdown per tenant (with each tenant's share of the charges) and `partner_breakdown`
(per master partner: messages and their share of the message charge). Amounts are decimal strings in
the account currency. Export keys add `?account=acc_…`.

A key pinned to one tenant sees that tenant only: `tenant_id` names it, `tenants` holds its row alone
(its usage and its share of the charges), and the account-wide figures — `metrics`, `fees`,
`usage_to_date` and `partner_breakdown` — are `null`. Other keys get `tenant_id: null` and everything.
"""

QUOTA_DESCRIPTION = """
Every limit of the plan of the tenant's account — storage, users, API requests per hour, messages per
month, tenants, master partners — with the current usage, percentage and what remains. The limits are the
account's plan limits, shared by all its tenants. Tenants and master partners count those live at any
moment of the month so far — the count billed — so a tenant archived during the month counts until the
month ends. Usage beyond a limit is not blocked; it is alerted
(`billing.usage_threshold` at 75/90/100 %, `billing.limit_exceeded`) and billed as overage where the plan
prices it.

`account_status` is the account's billing status: `past_due` (an invoice is unpaid after its due date),
`suspended` (the last payment retry failed, or an invoice is long overdue). Ingestion keeps accepting and
storing a suspended account's events; an application that should block a suspended customer reads it here.

`scope` says whose usage the figures are. `account` (every key not pinned to a tenant): the whole account's
usage, with `remaining` and `exceeded`. `tenant` (a key pinned to the tenant, which reads no other tenant):
only the limits the tenant's own events count towards (not `tenants` or `master_partners`, counted from the
account's records), with `current_usage` the tenant's own usage in the limit's window and `percentage` its
share of the account's limit; `remaining` and `exceeded` depend on the other tenants and are `null`.
"""

UsageDocument = inline_serializer(
    "UsageDocument",
    {
        "account_id": serializers.CharField(),
        "tenant_id": serializers.CharField(
            allow_null=True, help_text="The tenant a tenant-pinned key is limited to; null for other keys."
        ),
        "currency": serializers.CharField(),
        "period": serializers.DictField(),
        "as_of": serializers.DateTimeField(),
        "plan": serializers.CharField(allow_null=True),
        "metrics": serializers.ListField(
            child=serializers.DictField(),
            allow_null=True,
            help_text="Per metric charged: quantity, included, billable, limit and charge. A month with a plan "
            "change or a trial end has one entry per span (`span`), each priced by the plan in force. "
            "Account-wide; null for a tenant-pinned key.",
        ),
        "fees": serializers.ListField(
            child=serializers.DictField(), allow_null=True, help_text="Account-wide; null for a tenant-pinned key."
        ),
        "usage_to_date": serializers.DictField(
            allow_null=True, help_text="Account-wide; null for a tenant-pinned key."
        ),
        "tenants": serializers.ListField(
            child=serializers.DictField(), help_text="For a tenant-pinned key, that tenant's row only."
        ),
        "partner_breakdown": serializers.ListField(
            child=serializers.DictField(), allow_null=True, help_text="Account-wide; null for a tenant-pinned key."
        ),
    },
)
QuotaDocument = inline_serializer(
    "QuotaDocument",
    {
        "tenant_id": serializers.CharField(),
        "account_id": serializers.CharField(),
        "scope": serializers.ChoiceField(
            choices=["account", "tenant"],
            help_text="Whose usage the figures are: the account's, or (for a tenant-pinned key) the tenant's own.",
        ),
        "account_status": serializers.ChoiceField(
            choices=["trialing", "active", "past_due", "suspended", "cancelled"],
            help_text="The account's billing status. A suspended account's events are still accepted and "
            "stored (usage is never lost); applications decide whether to block its users.",
        ),
        "as_of": serializers.DateTimeField(),
        "limits": serializers.ListField(child=serializers.DictField()),
    },
)

USAGE_EXAMPLE = OpenApiExample(
    "Business plan, mid-month",
    response_only=True,
    value={
        "account_id": "acc_000001",
        "tenant_id": None,
        "currency": "USD",
        "period": {"start": "2026-11-01T00:00:00Z", "end": "2026-12-01T00:00:00Z"},
        "as_of": "2026-11-26T10:00:00Z",
        "plan": "Business v1",
        "metrics": [
            {
                "metric": "messages",
                "name": "Messages",
                "description": "Messages",
                "span": {"start": "2026-11-01T00:00:00Z", "end": "2026-12-01T00:00:00Z"},
                "unit": "per 1",
                "quantity": "31000",
                "included": "25000",
                "billable": "6000",
                "limit": "25000",
                "limit_window": "period",
                "charge": "180.00",
            }
        ],
        "fees": [{"kind": "base_fee", "description": "Business base fee", "amount": "299.00"}],
        "usage_to_date": {"estimated_charges": "562.00", "estimated_tax": "0.00", "estimated_total": "562.00"},
        "tenants": [
            {"tenant_id": "ten_acme_eu", "tenant_name": "Acme EU", "usage": {"messages": "31000"}, "cost": "180.00"}
        ],
        "partner_breakdown": [
            {
                "partner_id": "prt_supplier_001",
                "partner_name": "Acme Supplies",
                "department": "Procurement",
                "message_count": "12000",
                "cost": "69.68",
            }
        ],
    },
)

QUOTA_EXAMPLE = OpenApiExample(
    "Basic plan",
    response_only=True,
    value={
        "tenant_id": "ten_acme_eu",
        "account_id": "acc_000001",
        "scope": "account",
        "account_status": "active",
        "as_of": "2026-11-26T10:12:00Z",
        "limits": [
            {
                "metric": "api_requests",
                "name": "API requests",
                "window": "hour",
                "period": "2026-11-26T10:00Z",
                "limit": "5000",
                "current_usage": "4100",
                "percentage": "82",
                "remaining": "900",
                "exceeded": False,
            }
        ],
    },
)
