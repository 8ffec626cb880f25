"""A customer's realistic billing month for the portal's billing pages: four tenants and three master
partners on the Business messaging plan, a day-by-day October (closed: a finalized invoice, partly paid,
with a credit note) and November up to the 20th; a second account with its own invoice; a September draft
still under review. Built through the services, as production would reach it; the test clock is set to
November 20, 15:00 UTC, the moment the portal reads as "now"."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import time_machine

from accounts.services import account_user_create, api_key_create
from billing.models import Invoice
from billing.services.credit_notes import credit_note_issue
from billing.services.payments import invoice_payment_record
from common import clock
from common.periods import month_period
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import close, event, ingest, subscribe
from tests.tenants.factories import MasterPartnerFactory, TenantFactory

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 20, 15, tzinfo=UTC)
SEPTEMBER, OCTOBER = month_period(2026, 9), month_period(2026, 10)
PASSWORD = "portal-pass-123"
REGIONS = [("eu", "Europe"), ("us", "US East"), ("apac", "Asia Pacific"), ("latam", "Latin America")]


def _usage(book: dict, start: dt.datetime, end: dt.datetime) -> list[dict]:
    """One messages event per tenant, partner and day, and a storage reading per tenant and day (each
    tenant's storage level carries on from where it was)."""
    slug, tenants, partners, rng, levels = book["slug"], book["tenants"], book["partners"], book["rng"], book["levels"]
    items, day = [], start
    while day < end:
        for n, tenant in enumerate(tenants):
            at = day + dt.timedelta(hours=9 + n, minutes=rng.randint(0, 59))
            weekend = day.weekday() >= 5
            for partner in partners:
                count = rng.randint(35, 125) // (3 if weekend else 1) * (n + 1) // 2 + 5
                items.append(
                    event(f"{slug}:{tenant}:{day:%Y%m%d}:{partner}", tenant, "messages", count, at.isoformat(),
                          partner_id=partner)
                )  # fmt: skip
            levels[tenant] += Decimal(rng.randint(-2, 6)) / 10
            items.append(event(f"{slug}:{tenant}:{day:%Y%m%d}:gb", tenant, "storage_gb", str(levels[tenant]),
                               at.isoformat()))  # fmt: skip
        day += dt.timedelta(days=1)
    return items


def customer(plan, *, name: str, slug: str, tenants: int = 4, seed: int = 1) -> dict:
    """An account on the Business plan since January with tenants, partners, a read key and an owner."""
    account = AccountFactory(name=name, billing_emails=[f"ap@{slug}.example"])
    subscribe(account, plan("messaging-business"), started_at=dt.datetime(2026, 1, 1, tzinfo=UTC))
    tenant_ids = []
    for code, region in REGIONS[:tenants]:
        tenant = TenantFactory(account=account, public_id=f"ten_{slug}_{code}", name=f"{name.split()[0]} {region}")
        tenant_ids.append(tenant.public_id)
    partner_ids = []
    for n, (kind, department) in enumerate([("supplier", "Procurement"), ("carrier", "Operations"),
                                            ("agency", "Marketing")], start=1):  # fmt: skip
        partner = MasterPartnerFactory(
            account=account,
            public_id=f"prt_{kind}_{n:03d}",
            name=f"{name.split()[0]} {kind.title()} {n}",
            department=department,
        )
        partner_ids.append(partner.public_id)
    rng = random.Random(seed)
    owner = account_user_create(account=account, email=f"owner@{slug}.example", role="owner", password=PASSWORD)
    _, key = api_key_create(name="reporting", scopes=["read"], account=account)
    book = {"account": account, "owner": owner, "key": key, "tenants": tenant_ids, "partners": partner_ids,
            "rng": rng, "slug": slug, "levels": {t: Decimal(rng.randint(30, 90)) / 10 for t in tenant_ids}}  # fmt: skip
    october = _usage(book, OCTOBER.start, OCTOBER.end)
    for offset in range(0, len(october), 1000):
        ingest(account, october[offset : offset + 1000], now=dt.datetime(2026, 10, 31, 23, tzinfo=UTC))
    return book


def billing_book(plan) -> dict:
    """Two customers, October closed for both, November under way for the first; the clock at ``NOW``."""
    northwind = customer(plan, name="Northwind Logistics", slug="northwind", seed=1)
    globex = customer(plan, name="Globex Health", slug="globex", tenants=2, seed=2)
    # September: a draft still in staff review (drafts are not shown to customers).
    close(period=SEPTEMBER, now=dt.datetime(2026, 10, 1, 0, 5, tzinfo=UTC), review_hours=48,
          account_ids=[northwind["account"].pk])  # fmt: skip
    close(period=OCTOBER, now=dt.datetime(2026, 11, 1, 0, 5, tzinfo=UTC))
    november = _usage(northwind, month_period(2026, 11).start, NOW)
    for offset in range(0, len(november), 1000):
        ingest(northwind["account"], november[offset : offset + 1000], now=NOW)
    for book in (northwind, globex):
        invoice = Invoice.objects.get(account=book["account"], period_start=OCTOBER.start)
        book["invoice"] = invoice
    draft = Invoice.objects.get(account=northwind["account"], period_start=SEPTEMBER.start)
    invoice = northwind["invoice"]
    with time_machine.travel(dt.datetime(2026, 11, 5, 10, tzinfo=UTC), tick=False):
        invoice_payment_record(invoice=invoice, amount=Decimal("200.00"))
        note = credit_note_issue(
            invoice=invoice,
            lines=[(invoice.lines.get(kind="usage", metric__code="messages"), "Outage credit", Decimal("25.00"))],
            reason="Goodwill credit for the October 14 delivery outage",
        )
        other_note = credit_note_issue(
            invoice=globex["invoice"], lines=[(None, "Goodwill", Decimal("10.00"))], reason="Goodwill"
        )
    northwind["invoice"].refresh_from_db()
    northwind["credit_note"], globex["credit_note"] = note, other_note
    clock.clock_set(at=NOW, allow_backwards=True)
    return {"northwind": northwind, "globex": globex, "draft": draft}
