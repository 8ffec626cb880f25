"""Re-rating is exact: an account's months re-rated on its own terms equal its invoices to the cent, and the figure
re-rated on any other plan equals the invoice of a twin account billed on that plan for the same usage (the plan
a recommendation names included).

Each example reports random usage for September to November 2026, closes the three months with the real billing
run (``tests/billing/cycle.py``) and re-rates them; it runs in its own savepoint, rolled back after it."""

import datetime as dt
import itertools
from decimal import Decimal as D

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import event as note_event
from hypothesis import strategies as st

from billing.models import Invoice, PlanVersion
from common.periods import month_period
from insights.recommendations import Kind, advice_for, advice_inputs_many
from insights.rerate import RATED_WITH, rerate_many
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import JAN_1, close, event, ingest, subscribe
from tests.tenants.factories import MasterPartnerFactory, TenantFactory

pytestmark = pytest.mark.django_db
UTC = dt.UTC
MONTHS = [month_period(2026, 9), month_period(2026, 10), month_period(2026, 11)]
NOW = dt.datetime(2026, 12, 7, 9, tzinfo=UTC)
PRODUCTS = {
    "messaging": ["messaging-startup", "messaging-business", "messaging-enterprise"],
    "platform": ["platform-basic", "platform-professional"],
}
EXAMPLES = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# Each example's tenants get new public ids: the ingest path caches tenants by id across the rolled-back examples.
EXAMPLE_NUMBERS = itertools.count(1)


class RolledBack(Exception):
    """Raised at the end of an example to undo its rows."""


month_usage = st.fixed_dictionaries(
    {
        "messages": st.integers(0, 40_000),
        "storage": st.integers(0, 30),
        "api": st.integers(0, 3_000_000),
        "users": st.integers(0, 70),
        "features": st.integers(0, 5),
    }
)


def report(account, slug, product, tenants, partners, usage):
    """The month's usage as the API receives it: on the first instant a storage reading, mid-month the rest."""
    for period, used in zip(MONTHS, usage, strict=True):
        start, mid = period.start, period.start + dt.timedelta(days=14, hours=10)
        items = [event(f"s-{start:%m}", f"ten_{slug}_0", "storage_gb", used["storage"], start)]
        if product == "messaging":
            if used["messages"]:
                extra = {"partner_id": f"prt_{slug}_0"} if partners else {}
                items.append(
                    event(f"m-{start:%m}", f"ten_{slug}_{tenants - 1}", "messages", used["messages"], mid, **extra)
                )
        else:
            if used["api"]:
                items.append(event(f"a-{start:%m}", f"ten_{slug}_0", "api_requests", used["api"], mid))
            items += [
                event(f"u-{start:%m}-{u}", f"ten_{slug}_{u % tenants}", "active_users", 1, mid, user_id=f"u{u}")
                for u in range(used["users"])
            ]
            items += [
                event(f"f-{start:%m}-{f}", f"ten_{slug}_0", "premium_features", 1, mid, feature=f"f{f}")
                for f in range(used["features"])
            ]
        ingest(account, items, now=mid + dt.timedelta(hours=1))


def customer(plan, code, slug, product, tenants, partners, usage, tax_rate):
    account = AccountFactory(name=slug.title(), tax_rate=tax_rate)
    subscribe(account, plan(code))
    for i in range(tenants):
        TenantFactory(account=account, public_id=f"ten_{slug}_{i}", activated_at=JAN_1)
    if product == "messaging":
        for i in range(partners):
            MasterPartnerFactory(account=account, public_id=f"prt_{slug}_{i}", activated_at=JAN_1)
    report(account, slug, product, tenants, partners, usage)
    return account


def subtotals(account):
    """The subtotals of the account's invoices for the three months (no late usage in these examples)."""
    invoices = {i.period_start: i for i in Invoice.objects.filter(account=account).prefetch_related("lines")}
    assert all(line.kind != "late_usage" for i in invoices.values() for line in i.lines.all())
    return [invoices[m.start].subtotal for m in MONTHS]


@EXAMPLES
@given(
    data=st.data(),
    product=st.sampled_from(sorted(PRODUCTS)),
    tenants=st.integers(1, 12),
    partners=st.integers(0, 3),
    usage=st.lists(month_usage, min_size=3, max_size=3),
    tax_rate=st.sampled_from([D("0"), D("19.000")]),
)
def test_rerated_months_equal_the_invoices_on_the_plan_and_on_every_other_plan(
    plan, data, product, tenants, partners, usage, tax_rate
):
    codes = PRODUCTS[product]
    current = data.draw(st.sampled_from(codes))
    n = next(EXAMPLE_NUMBERS)
    try:
        with transaction.atomic():
            account = customer(plan, current, f"acme{n}", product, tenants, partners, usage, tax_rate)
            # A twin on every plan of the product, with the same usage.
            twins = {
                code: customer(plan, code, f"twin{n}x{i}", product, tenants, partners, usage, tax_rate)
                for i, code in enumerate(codes)
            }
            for period in MONTHS:
                close(period=period, now=period.end + dt.timedelta(minutes=5))
            versions = list(
                PlanVersion.objects.filter(pk__in=[plan(c).pk for c in codes])
                .select_related("plan")
                .prefetch_related(*RATED_WITH)
            )

            rerated = rerate_many(accounts=[account], periods=MONTHS, versions={account.pk: versions}, now=NOW)[
                account.pk
            ]

            assert [f.billed for f in rerated.current] == subtotals(account)
            for version in versions:
                assert [f.billed for f in rerated.plans[version.pk]] == subtotals(twins[version.plan.code])
            inputs = advice_inputs_many(accounts=[account], now=NOW)[account.pk]
            advice = [a for a in advice_for(rerate=rerated, inputs=inputs, now=NOW) if a.kind == Kind.PLAN]
            note_event(f"a plan advised: {bool(advice)}")
            for a in advice:
                twin = twins[a.plan_version.plan.code]
                assert a.details["proposed_billed"] == [f"{s:.2f}" for s in subtotals(twin)]
                assert a.saving_monthly == a.current_monthly - a.proposed_monthly > 0
            raise RolledBack
    except RolledBack:
        pass
