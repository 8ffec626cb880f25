"""Plans and versions built through the catalogue services; invoices through the real billing cycle."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import factory

from accounts.models import Account
from billing.models import Invoice, Plan, PlanVersion
from billing.services.catalogue import plan_create, plan_version_create
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import JAN_1, NOVEMBER, close, ingest, subscribe
from tests.tenants.factories import TenantFactory
from tests.usage.factories import usage_event


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


def _november_invoice(
    version: PlanVersion,
    *,
    account: Account | None,
    tenant: str | None,
    tenant_name: str | None,
    usage: Sequence[dict],
    review_hours: int,
) -> Invoice:
    account = account or AccountFactory()
    subscribe(account, version)
    if tenant:
        names = {"name": tenant_name} if tenant_name else {}
        TenantFactory(account=account, public_id=tenant, activated_at=JAN_1, **names)
    if usage:
        ingest(account, usage)
    close(review_hours=review_hours)
    return Invoice.objects.get(account=account, period_start=NOVEMBER.start)


def finalized_invoice(
    version: PlanVersion,
    *,
    account: Account | None = None,
    tenant: str | None = "ten_nw",
    tenant_name: str | None = None,
    usage: Sequence[dict] = (),
) -> Invoice:
    """``account``'s finalized invoice for November 2026, reached as production reaches it: subscribed to
    ``version`` since January 1, one tenant (public id ``tenant``; none when ``None``), ``usage`` (items of
    ``tests.usage.factories.usage_event``) reported on November 30, and November closed on December 1 at
    00:05 UTC with no review window, so the draft is finalized in the same run."""
    return _november_invoice(
        version, account=account, tenant=tenant, tenant_name=tenant_name, usage=usage, review_hours=0
    )


def draft_invoice(
    version: PlanVersion,
    *,
    account: Account | None = None,
    tenant: str | None = "ten_nw",
    tenant_name: str | None = None,
    usage: Sequence[dict] = (),
    review_hours: int = 24,
) -> Invoice:
    """As ``finalized_invoice``, but November is closed with a review window: the invoice is a draft in
    staff review until ``review_hours`` after December 1, 00:05 UTC."""
    return _november_invoice(
        version, account=account, tenant=tenant, tenant_name=tenant_name, usage=usage, review_hours=review_hours
    )


def business_invoice(plan, *, name="Northwind", tax_rate="0", tenant_name=None) -> Invoice:
    """Northwind on Business with 31,000 messages in November, closed and finalized:
    $299 + (31,000 − 25,000) × $0.03 = $479.00 before tax ($574.80 at 20 %)."""
    return finalized_invoice(
        plan("messaging-business"),
        account=AccountFactory(name=name, tax_rate=Decimal(tax_rate)),
        tenant="ten_nw",
        tenant_name=tenant_name,
        usage=[usage_event(transaction_id="m1", tenant="ten_nw", quantity=31_000, at="2026-11-10T10:00:00Z")],
    )
