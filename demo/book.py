"""A deterministic book of business for the demo: 20 accounts across both catalogues, 67 tenants,
master partners, portal users, and staff users in both staff groups. Built only through services,
so the demo exercises the same rules as production."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from decimal import Decimal as D

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.db import transaction

from accounts.models import Account, AccountUser
from accounts.permissions import BILLING_STAFF, FINANCE_ADMIN
from accounts.services import account_create, account_user_create, api_key_create, api_key_revoke, budget_create
from billing.models import Collection, Invoice, Payment, PaymentProfile, Plan, PlanCharge, PlanVersion
from billing.services.bank_statements import bank_statement_import
from billing.services.budgets import budgets_evaluate
from billing.services.catalogue import ChargeSpec, TierSpec, plan_create, plan_version_create
from billing.services.catalogue_loader import catalogue_load
from billing.services.collection import collection_attempt_open, collections_start, intent_apply
from billing.services.invoices import invoice_finalize, invoice_hold, invoice_release
from billing.services.payment_profiles import payment_profile_set_auto_collection
from billing.services.payments import payment_record
from billing.services.reconciliation import reconciliation_daily
from billing.services.runs import bill_period
from billing.services.stripe_gateway import to_minor
from billing.services.subscriptions import subscription_create
from billing.tasks import invoices_finalize_due_task
from common import clock
from common.formats import money_string
from common.money import round_money
from common.periods import Period, month_containing, month_period, previous_month
from tenants.services import partner_create, tenant_archive, tenant_create
from usage.models import UsageEvent
from usage.services import events_ingest

UTC = dt.UTC
SEED = 20261001
DEMO_PASSWORD = "ledgerline-demo"
STAFF = [
    # username, e-mail, group (None: superuser), name
    ("admin", "admin@ledgerline.localhost", None, "Ada Admin"),
    ("finance", "finance@ledgerline.localhost", FINANCE_ADMIN, "Fiona Finance"),
    ("billing", "billing@ledgerline.localhost", BILLING_STAFF, "Bill Staff"),
]

# name, plan code, country, tenants, partners
BOOK = [
    ("Northwind Logistics", "messaging-business", "US", 12, 14),
    ("Acme Retail Group", "platform-professional", "US", 5, 0),
    ("Globex Health", "messaging-enterprise", "US", 8, 40),
    ("Initech Software", "platform-basic", "US", 1, 0),
    ("Umbrella Pharma", "custom:enterprise-eu", "DE", 6, 60),
    ("Stark Freight", "messaging-startup", "US", 3, 6),
    ("Wayne Hospitality", "platform-professional", "US", 4, 0),
    ("Hooli Cloud", "custom:platform-hooli", "US", 6, 0),
    ("Vandelay Imports", "messaging-business", "US", 4, 22),
    ("Soylent Foods", "platform-basic", "US", 2, 0),
    ("Tyrell Robotics", "platform-professional", "US", 3, 0),
    ("Cyberdyne Systems", "messaging-startup", "US", 2, 9),
    ("Oceanic Airlines", "messaging-enterprise", "US", 2, 35),
    ("Pied Piper", "platform-basic", "US", 1, 0),
    ("Gringotts Exchange", "messaging-business", "GB", 2, 18),
    ("Monarch Media", "platform-basic", "US", 1, 0),
    ("Massive Dynamic", "platform-professional", "US", 1, 0),
    ("Aperture Labs", "platform-professional", "US", 2, 0),
    ("Blue Sun Mining", "messaging-startup", "US", 1, 4),
    ("Dunder Mifflin Paper", "messaging-startup", "US", 1, 3),
]
DEPARTMENTS = ["Procurement", "Operations", "Marketing", "Finance", "Customer Care"]
PARTNER_KINDS = ["supplier", "carrier", "agency", "reseller"]


@dataclass
class DemoResult:
    created: bool
    accounts: int = 0
    tenants: int = 0
    partners: int = 0
    logins: list[tuple[str, str, str]] = field(default_factory=list)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")


def _custom_plan(code: str, account: Account) -> PlanVersion:
    """Negotiated plans: one EUR messaging contract with a commitment, one USD platform contract."""
    if code == "enterprise-eu":
        plan = plan_create(
            code=f"custom-{account.public_id}",
            name=f"Custom Enterprise – {account.name}",
            product=Plan.Product.MESSAGING,
            account=account,
        )
        return plan_version_create(
            plan=plan,
            currency=account.currency,
            base_fee=D("2500.00"),
            minimum_commitment=D("3000.00"),
            discount_percent=D("10"),
            term_months=36,
            support_level="24/7 phone support, named TAM",
            features=["Negotiated pricing", "Volume discounts", "Minimum commitment", "36-month term"],
            charges=[
                ChargeSpec("tenants", included_quantity=None, pricing_model=PlanCharge.PricingModel.INCLUDED_ONLY),
                ChargeSpec(
                    "master_partners", included_quantity=None, pricing_model=PlanCharge.PricingModel.INCLUDED_ONLY
                ),
                ChargeSpec(
                    "messages",
                    included_quantity=D("250000"),
                    limit=D("250000"),
                    pricing_model=PlanCharge.PricingModel.GRADUATED,
                    tiers=[
                        TierSpec(D("0"), D("100000"), D("0.008")),
                        TierSpec(D("100000"), D("1000000"), D("0.006")),
                        TierSpec(D("1000000"), None, D("0.004")),
                    ],
                ),
                ChargeSpec("storage_gb", included_quantity=D("250"), unit_price=D("0.80")),
            ],
            publish=True,
        )
    plan = plan_create(
        code=f"custom-{account.public_id}",
        name=f"Enterprise – {account.name}",
        product=Plan.Product.TENANT_PLATFORM,
        account=account,
    )
    return plan_version_create(
        plan=plan,
        currency=account.currency,
        base_fee=D("1500.00"),
        term_months=24,
        support_level="Dedicated support",
        features=["All features", "Dedicated support", "24-month term"],
        charges=[
            ChargeSpec("storage_gb", included_quantity=D("100"), limit=D("100"), unit_price=D("1.00")),
            ChargeSpec("active_users", included_quantity=D("1000"), limit=D("1000"), unit_price=D("1.00")),
            ChargeSpec(
                "api_requests",
                included_quantity=D("25000000"),
                limit=D("100000"),
                limit_window=PlanCharge.LimitWindow.HOUR,
                pricing_model=PlanCharge.PricingModel.VOLUME,
                tiers=[TierSpec(D("0"), D("10000000"), D("0.03")), TierSpec(D("10000000"), None, D("0.02"))],
            ),
            ChargeSpec("premium_features", included_quantity=None, pricing_model=PlanCharge.PricingModel.INCLUDED_ONLY),
        ],
        publish=True,
    )


def _staff_users(result: DemoResult) -> None:
    User = get_user_model()
    password_hash = make_password(DEMO_PASSWORD)
    for username, email, group, full_name in STAFF:
        first, last = full_name.split(" ", 1)
        user = User(
            username=username, email=email, first_name=first, last_name=last, is_staff=True, is_superuser=group is None
        )
        user.password = password_hash
        user.save()
        if group:
            user.groups.add(Group.objects.get(name=group))
        result.logins.append((f"staff ({group or 'superuser'})", username, DEMO_PASSWORD))


@transaction.atomic
def demo_load(*, today: dt.date) -> DemoResult:
    """Create the demo book of business once. A second call changes nothing."""
    catalogue_load()
    if get_user_model().objects.filter(username="finance").exists():
        return DemoResult(created=False)
    rng = random.Random(SEED)
    result = DemoResult(created=True)
    _staff_users(result)
    plans = {p.code: p.versions.latest("version") for p in Plan.objects.filter(kind=Plan.Kind.PUBLIC)}
    month_start = month_period(today.year, today.month).start
    today_start = dt.datetime(today.year, today.month, today.day, tzinfo=UTC)
    for index, (name, plan_code, country, n_tenants, n_partners) in enumerate(BOOK):
        eu = country == "DE"
        slug = _slug(name)
        account = account_create(
            name=name,
            legal_name=f"{name} {'GmbH' if eu else 'Ltd' if country == 'GB' else 'Inc.'}",
            currency="EUR" if eu else "USD",
            billing_emails=[f"ap@{slug.replace('_', '')}.example", f"finance@{slug.replace('_', '')}.example"],
            tax_id="DE811569869" if eu else "GB123456789" if country == "GB" else "",
            tax_country=country,
            tax_rate=D("0") if eu else D("20") if country == "GB" else D("0"),
            tax_reverse_charge=eu,
            timezone_name="Europe/Berlin" if eu else "Europe/London" if country == "GB" else "America/New_York",
        )
        result.accounts += 1
        # Most customers joined months ago; the last few are recent, two still in their trial.
        if index >= len(BOOK) - 2:
            started = today_start - dt.timedelta(days=rng.randint(2, 6), hours=rng.randint(8, 17))
        else:
            started = month_start - dt.timedelta(days=rng.randint(60, 300), hours=rng.randint(0, 23))
        version = (
            _custom_plan(plan_code.split(":", 1)[1], account) if plan_code.startswith("custom:") else plans[plan_code]
        )
        subscription_create(account=account, plan_version=version, started_at=started)
        for t in range(n_tenants):
            region = ["us_east", "us_west", "eu_central", "apac", "latam", "uk"][t % 6]
            tenant = tenant_create(
                account=account,
                public_id=f"ten_{slug[:40]}_{region}_{t + 1}",
                name=f"{name} – {region.replace('_', ' ').upper()} {t + 1}",
                activated_at=min(started + dt.timedelta(days=rng.randint(0, 20)), today_start),
            )
            result.tenants += 1
            if n_tenants > 3 and t == n_tenants - 1 and index % 2 == 0:
                archive_at = today_start - dt.timedelta(days=rng.randint(1, 5))
                if archive_at > tenant.activated_at:
                    tenant_archive(tenant=tenant, at=archive_at)
        for p in range(n_partners):
            kind = PARTNER_KINDS[p % len(PARTNER_KINDS)]
            partner_create(
                account=account,
                public_id=f"prt_{kind}_{p + 1:03d}",
                name=f"{name.split()[0]} {kind.title()} {p + 1}",
                department=DEPARTMENTS[rng.randrange(len(DEPARTMENTS))],
                activated_at=min(started + dt.timedelta(days=rng.randint(0, 30)), today_start),
            )
            result.partners += 1
        owner_email = f"owner@{slug.replace('_', '')}.example"
        account_user_create(
            account=account,
            email=owner_email,
            role=AccountUser.Role.OWNER,
            first_name="Olivia",
            last_name=name.split()[0],
        )
        account_user_create(
            account=account, email=f"analyst@{slug.replace('_', '')}.example", role=AccountUser.Role.MEMBER
        )
        budget_create(
            account=account,
            name="Monthly spend",
            amount=round_money((version.base_fee or D("100")) * D("1.5"), account.currency),
            alert_thresholds=[50, 75, 90, 100],
        )
    # Demo only: every portal user gets the demo password. Hashed once (a hash costs ~0.3 s by design).
    get_user_model().objects.filter(account_membership__isnull=False).update(password=make_password(DEMO_PASSWORD))
    return result


DEMO_KEY_NAME = "Demo key (make demo)"


def demo_portal_logins() -> tuple[Account, list[tuple[str, str]]]:
    """The portal users (e-mail, role) of the account that gets the demo API key: an owner and a member.
    Last month is closed for it, so its portal has invoices to open."""
    account = Account.objects.earliest("public_id")
    order = list(AccountUser.Role.values)
    members = sorted(
        AccountUser.objects.filter(account=account).select_related("user"),
        key=lambda m: (order.index(m.role), m.user.email),
    )
    return account, [(m.user.email, m.get_role_display().lower()) for m in members]


@transaction.atomic
def demo_api_key() -> tuple[Account, str]:
    """A fresh ingest+read key for the first demo account; earlier demo keys are revoked, since a
    secret can only be shown when it is made."""
    account = Account.objects.earliest("public_id")
    for old in account.api_keys.filter(name=DEMO_KEY_NAME, revoked_at__isnull=True):
        api_key_revoke(api_key=old)
    _, secret = api_key_create(name=DEMO_KEY_NAME, scopes=["ingest", "read"], account=account)
    return account, secret


def demo_usage(*, now: dt.datetime) -> int:
    """Realistic usage from the start of last month up to ``now`` for every demo tenant, reported
    through the ingest service. Deterministic transaction ids, so running it again adds nothing."""

    if UsageEvent.objects.exists():
        return 0
    rng = random.Random(SEED + 1)
    start = previous_month(month_containing(now)).start
    accepted = 0
    for account in Account.objects.order_by("public_id").prefetch_related("tenants", "partners"):
        plan = account.subscriptions.latest("started_at").plan_version.plan
        partners: list[str | None] = [p.public_id for p in account.partners.all()]
        events: list[dict] = []
        for tenant in account.tenants.all():
            size = rng.uniform(0.4, 2.5)  # how busy this tenant is
            first = max(start, tenant.activated_at)
            last = min(now, tenant.archived_at or now)
            day = first.replace(hour=0, minute=0, second=0, microsecond=0)
            stored = D(str(round(rng.uniform(0.1, 3) * size, 2)))
            users = [f"u{n:04d}" for n in range(int(rng.uniform(10, 90) * size))]
            while day < last:
                moment = max(first, day + dt.timedelta(hours=rng.randint(8, 20), minutes=rng.randint(0, 59)))
                if moment >= last:
                    break
                key = f"{tenant.public_id}:{day:%Y%m%d}"
                stored = max(D("0.10"), stored + D(str(round(rng.uniform(-0.05, 0.15) * float(size), 2))))
                events.append(
                    {
                        "transaction_id": f"{key}:storage",
                        "tenant": tenant.public_id,
                        "metric": "storage_gb",
                        "quantity": str(stored),
                        "timestamp": moment.isoformat(),
                    }
                )
                if plan.product == Plan.Product.MESSAGING:
                    for p in rng.sample(partners, min(len(partners), 3)) or [None]:
                        event = {
                            "transaction_id": f"{key}:messages:{p}",
                            "tenant": tenant.public_id,
                            "metric": "messages",
                            "quantity": int(rng.uniform(5, 40) * size),
                            "timestamp": moment.isoformat(),
                        }
                        if p:
                            event["properties"] = {"partner_id": p}
                        events.append(event)
                else:
                    events.append(
                        {
                            "transaction_id": f"{key}:api",
                            "tenant": tenant.public_id,
                            "metric": "api_requests",
                            "quantity": int(rng.uniform(20_000, 90_000) * size),
                            "timestamp": moment.isoformat(),
                        }
                    )
                    for user in rng.sample(users, max(1, len(users) // 12)):
                        events.append(
                            {
                                "transaction_id": f"{key}:user:{user}",
                                "tenant": tenant.public_id,
                                "metric": "active_users",
                                "properties": {"user_id": user},
                                "timestamp": moment.isoformat(),
                            }
                        )
                    if rng.random() < 0.1:
                        feature = rng.choice(["sso", "audit_log", "advanced_reports", "sandbox"])
                        events.append(
                            {
                                "transaction_id": f"{key}:feature:{feature}",
                                "tenant": tenant.public_id,
                                "metric": "premium_features",
                                "properties": {"feature": feature},
                                "timestamp": moment.isoformat(),
                            }
                        )
                day += dt.timedelta(days=1)
        for offset in range(0, len(events), 5000):
            accepted += events_ingest(account=account, items=events[offset : offset + 5000], now=now).accepted
    return accepted


def demo_budgets(*, now: dt.datetime) -> int:
    """Evaluate every budget once the usage is in, as the hourly schedule does (budgets were created, and
    first evaluated, before the demo's usage was loaded). Returns the number of alerts recorded."""
    return len(budgets_evaluate(now=now))


def demo_billing(*, now: dt.datetime) -> int:
    """Close last month as the schedule would have: the run at 00:05 UTC on the 1st writes drafts, the
    review window passes, the drafts are finalized. Uses the test clock, then gives the real time back.
    Returns the number of invoices finalized (0 when last month is already billed)."""

    last_month = previous_month(month_containing(now))
    if Invoice.objects.filter(period_start=last_month.start).exists():
        return 0
    review = dt.timedelta(hours=getattr(settings, "BILLING_REVIEW_HOURS", 24) + 1)
    try:
        _payment_profiles()
        _unpaid_month_before(before=last_month, review=review)
        close_at = last_month.end + dt.timedelta(minutes=5)
        clock.clock_set(at=close_at, allow_backwards=True)
        bill_period(period=last_month, now=close_at, trigger="schedule")
        # Billing staff held Stark Freight's draft to check a usage spike with the customer, and finalized it
        # two days ago (or with the others, early in the month).
        staff = get_user_model().objects.get(username="billing")
        stark = Invoice.objects.get(account__name="Stark Freight", period_start=last_month.start)
        invoice_hold(invoice=stark, reason="Messages up sharply: confirming with the customer", actor=staff)
        clock.clock_set(at=close_at + review)
        finalized = invoices_finalize_due_task()
        stark_at = max(close_at + review, now - dt.timedelta(days=2))
        clock.clock_set(at=stark_at)
        invoice_release(invoice=stark, actor=staff)
        invoice_finalize(invoice=stark, actor=staff, now=stark_at)
        _payments(month=last_month, finalized_at=close_at + review, now=now, late={"Stark Freight": stark_at})
        return finalized + 1
    finally:
        clock.clock_reset()


def demo_payments_summary() -> list[str]:
    """What the demo's payments look like, for ``load_demo`` to print."""
    payments = Payment.objects.all()
    retrying = Collection.objects.filter(state=Collection.State.RETRYING).select_related("invoice__account")
    lines = [
        f"Payments: {payments.filter(status=Payment.Status.SUCCEEDED).count()} succeeded, "
        f"{payments.filter(status=Payment.Status.FAILED).count()} failed card attempts "
        "(admin: Billing › Payments and Collections; portal: Billing).",
    ]
    for collection in retrying:
        assert collection.next_attempt_at is not None
        lines.append(
            f"  {collection.invoice.account.name}: card declined on {collection.invoice.number}, "
            f"next retry {collection.next_attempt_at:%Y-%m-%d}."
        )
    for account in Account.objects.filter(status=Account.Status.SUSPENDED):
        lines.append(f"  {account.name}: suspended ({account.status_reason}).")
    partly = Invoice.objects.filter(status=Invoice.Status.FINALIZED, amount_paid__gt=0).select_related("account")
    for invoice in partly:
        lines.append(f"  {invoice.account.name}: {invoice.number} partly paid.")
    return lines


# How the demo's customers pay: by card (automatic collection) or SEPA debit, with the outcome Stripe reports;
# everyone else by bank transfer. (account, method type, brand, last4, outcome)
CARD_PAYERS = [
    ("Northwind Logistics", "card", "visa", "4242", "succeeded"),
    ("Umbrella Pharma", "sepa_debit", "", "3000", "succeeded"),
    ("Stark Freight", "card", "mastercard", "0341", "insufficient_funds"),
    ("Cyberdyne Systems", "card", "visa", "0002", "card_declined"),
]
DECLINES = {
    "card_declined": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
}


def _account(name: str) -> Account:
    return Account.objects.get(name=name)


def _payment_profiles() -> None:
    """Cards and debit mandates on file, as Stripe's Checkout would have saved them."""
    for name, kind, brand, last4, _outcome in CARD_PAYERS:
        account = _account(name)
        PaymentProfile.objects.update_or_create(
            account=account,
            defaults={
                "stripe_customer_id": f"cus_demo{account.public_id.removeprefix('acc_')}",
                "auto_collection": True,
                "payment_method_id": f"pm_demo{account.public_id.removeprefix('acc_')}",
                "payment_method_type": kind,
                "payment_method_brand": brand,
                "payment_method_last4": last4,
                "payment_method_exp_month": 8 if kind == "card" else None,
                "payment_method_exp_year": 2028 if kind == "card" else None,
            },
        )


def _stripe_answer(collection: Collection, outcome: str, at: dt.datetime) -> Payment | None:
    """One automatic collection attempt at ``at``, answered as Stripe answers it (the demo reaches no Stripe):
    the same code path as a PaymentIntent's webhook."""
    clock.clock_set(at=at, allow_backwards=True)
    payment, _ = collection_attempt_open(collection_id=collection.pk, now=at)
    if payment is None:
        return None
    intent: dict = {
        "id": f"pi_demo_{collection.invoice_id}_{payment.attempt}",
        "amount": to_minor(payment.amount, payment.currency),
        "currency": payment.currency.lower(),
        "payment_method": f"pm_demo{payment.account.public_id.removeprefix('acc_')}",
        "latest_charge": f"ch_demo_{collection.invoice_id}_{payment.attempt}",
        "status": "succeeded",
    }
    if outcome != "succeeded":
        intent["status"] = "requires_payment_method"
        intent["last_payment_error"] = {"code": "card_declined", "decline_code": outcome, "message": DECLINES[outcome]}
    return intent_apply(intent=intent, payment=payment, now=at)


def _unpaid_month_before(*, before: Period, review: dt.timedelta) -> None:
    """Cyberdyne Systems did not pay the month before last: its card was declined at finalization and on
    every retry, and the account was suspended after the last one."""
    period = previous_month(before)
    account = _account("Cyberdyne Systems")
    if Invoice.objects.filter(account=account, period_start=period.start).exists():
        return
    close_at = period.end + dt.timedelta(minutes=5)
    clock.clock_set(at=close_at, allow_backwards=True)
    bill_period(period=period, now=close_at, account_ids=[account.pk], trigger="schedule")
    clock.clock_set(at=close_at + review)
    invoices_finalize_due_task()
    invoice = Invoice.objects.get(account=account, period_start=period.start)
    # Started by the finalization's signal after commit; here as well, for a caller inside a transaction.
    (collection,) = collections_start(invoice_ids=[invoice.pk], now=close_at + review) or [invoice.collection]
    attempt_at = close_at + review
    for day in [0, *settings.BILLING_DUNNING_RETRY_DAYS]:
        _stripe_answer(collection, "card_declined", attempt_at + dt.timedelta(days=day))
    # The card is dead: automatic collection is off until the customer adds another; the next invoice waits
    # for a bank transfer.
    payment_profile_set_auto_collection(account=account, enabled=False, actor=None)


def _payments(*, month: Period, finalized_at: dt.datetime, now: dt.datetime, late: dict[str, dt.datetime]) -> None:
    """Last month's invoices as they are paid by ``now``: cards charged at finalization (one declined and
    retrying), transfers in full, in part and over, a bank statement matched by invoice number, the rest
    still open; then the daily reconciliation."""
    invoices = {i.account.name: i for i in Invoice.objects.filter(period_start=month.start).select_related("account")}
    collections_start(invoice_ids=[i.pk for i in invoices.values()], now=finalized_at)
    for name, _kind, _brand, _last4, outcome in CARD_PAYERS:
        collection = Collection.objects.filter(invoice=invoices[name]).first()
        if collection is None or collection.state != Collection.State.SCHEDULED:
            continue  # no automatic collection (any more)
        # Charged when finalized; a declined card's first retry is still to come (3 days later).
        _stripe_answer(collection, outcome, late.get(name, finalized_at))

    finance = get_user_model().objects.get(username="finance")

    def at(days: int) -> dt.datetime:
        moment = max(finalized_at, min(finalized_at + dt.timedelta(days=days), now))
        clock.clock_set(at=moment, allow_backwards=True)
        return moment

    acme, initech = invoices["Acme Retail Group"], invoices["Initech Software"]
    payment_record(
        account=acme.account,
        amount=round_money(acme.total / 2, acme.currency),
        provider=Payment.Provider.BANK_TRANSFER,
        reference=f"ACME AP RUN 4471 {acme.number} PART 1 OF 2",
        allocations=[(acme, round_money(acme.total / 2, acme.currency))],
        note="Customer pays in two instalments, agreed by e-mail.",
        actor=finance,
        now=at(2),
        received_at=at(2),
    )
    payment_record(
        account=initech.account,
        amount=initech.total + D("25.00"),
        provider=Payment.Provider.CHECK,
        reference="Check 000318",
        note="Rounded up by the customer: the excess stays as credit for the next invoice.",
        actor=finance,
        now=at(3),
        received_at=at(3),
    )
    globex = invoices["Globex Health"]
    booked = at(4).date()
    statement = (
        "date,amount,reference\n"
        f"{booked:%Y-%m-%d},{money_string(globex.total, globex.currency)},GLOBEX HEALTH PAYMENT {globex.number}\n"
        f"{booked:%Y-%m-%d},120.00,TRANSFER 88231 NO REFERENCE GIVEN\n"
    )
    bank_statement_import(content=statement, currency="USD", actor=finance, now=at(4))
    reconciliation_daily(now=at(5))
