"""The demo's subscriptions after the invoice: plan changes in every state (an upgrade applied this month and
prorated, one scheduled for the period's end, a downgrade waiting for approval, one declined), a yearly plan, a
negotiated contract with volume-discount tiers, prepaid credits, a committed minimum, an account manager and its
signed PDF, a contract due for renewal, and a trial extended by staff. Written through the same services as the
portal, the API and the admin, each step at its own moment on the test clock."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from weasyprint import HTML

from accounts.models import Account, AccountUser
from billing.models import Contract, ContractDiscountTier, PlanChangeRequest, PlanVersion, PrepaidCredit, Subscription
from billing.services.contracts import (
    contract_document_add,
    contract_part_save,
    contract_save,
    contracts_renew_due,
    term_end_after,
)
from billing.services.plan_changes import plan_change_decline, plan_change_request
from billing.services.trials import trial_extend
from common import clock
from common.periods import month_containing
from usage.models import Metric

Channel = PlanChangeRequest.Channel


def _account(name: str) -> Account:
    return Account.objects.get(name=name)


def _owner(account: Account):
    return AccountUser.objects.select_related("user").get(account=account, role=AccountUser.Role.OWNER).user


def _version(code: str) -> PlanVersion | None:
    return PlanVersion.objects.filter(plan__code=code, published_at__isnull=False).order_by("-version").first()


def _at(moment: dt.datetime) -> dt.datetime:
    clock.clock_set(at=moment, allow_backwards=True)
    return moment


def _live(account: Account) -> Subscription:
    return account.subscriptions.exclude(status=Subscription.Status.CANCELLED).get()


def demo_plan_changes(*, now: dt.datetime) -> int:
    """Make the demo's plan changes once (none when a change exists already). Returns how many were made."""
    if PlanChangeRequest.objects.exists():
        return 0
    staff = get_user_model().objects.get(username="billing")
    month = month_containing(now)
    # Earlier this month (or at its start, early on the 1st), never in the future.
    early = max(month.start, min(now - dt.timedelta(days=4), month.start + dt.timedelta(days=9)))
    made = 0
    try:
        with transaction.atomic():
            # Cyberdyne outgrew Startup: its owner's upgrade applied at once, so this month's invoice prorates both.
            cyberdyne = _account("Cyberdyne Systems")
            plan_change_request(
                account=cyberdyne,
                to_version=_version("messaging-business"),
                timing=PlanChangeRequest.Timing.NOW,
                actor=_owner(cyberdyne),
                channel=Channel.PORTAL,
                note="We are onboarding two more regions.",
                now=_at(early),
            )
            made += 1
            # Stark Freight upgrades from next month: scheduled for the end of the period.
            stark = _account("Stark Freight")
            plan_change_request(
                account=stark,
                to_version=_version("messaging-business"),
                timing=PlanChangeRequest.Timing.PERIOD_END,
                actor=_owner(stark),
                channel=Channel.PORTAL,
                now=_at(early + dt.timedelta(hours=3)),
            )
            made += 1
            # Wayne Hospitality asked to move down to Basic; billing staff declined with a reason.
            wayne = _account("Wayne Hospitality")
            asked = plan_change_request(
                account=wayne,
                to_version=_version("platform-basic"),
                timing=PlanChangeRequest.Timing.PERIOD_END,
                actor=_owner(wayne),
                channel=Channel.PORTAL,
                note="Trying to cut costs this quarter.",
                now=_at(early + dt.timedelta(hours=5)),
            )
            plan_change_decline(
                change=asked,
                actor=staff,
                reason="Your tenants' storage and users are well above what Basic includes: the overage would cost "
                "more than Professional's fee. We will go through your usage with you this week.",
                now=_at(early + dt.timedelta(days=1)),
            )
            made += 1
            # Globex Health's owner asked to move from Enterprise down to Business: it waits for billing staff.
            globex = _account("Globex Health")
            plan_change_request(
                account=globex,
                to_version=_version("messaging-business"),
                timing=PlanChangeRequest.Timing.PERIOD_END,
                actor=_owner(globex),
                channel=Channel.PORTAL,
                note="Business should fit our eight tenants.",
                now=_at(max(month.start, now - dt.timedelta(hours=6))),
            )
            made += 1
            # Northwind (the portal's demo account) asked for the yearly Business plan: a change of contract waits.
            annual = _version("messaging-business-annual")
            if annual is not None:
                northwind = _account("Northwind Logistics")
                plan_change_request(
                    account=northwind,
                    to_version=annual,
                    timing=PlanChangeRequest.Timing.PERIOD_END,
                    actor=_owner(northwind),
                    channel=Channel.PORTAL,
                    note="Paying a year ahead for the 10 % discount.",
                    now=_at(max(month.start, now - dt.timedelta(hours=2))),
                )
                made += 1
    finally:
        clock.clock_reset()
    return made


def demo_plan_changes_summary() -> list[str]:
    lines = ["Plan changes (admin: Billing › Plan change requests; portal: Plan):"]
    for change in PlanChangeRequest.objects.select_related("account", "from_version__plan", "to_version__plan"):
        lines.append(
            f"  {change.public_id}  {change.account.name:<20} {change.from_version.plan.name} → "
            f"{change.to_version.plan.name}: {change.get_state_display().lower()}"
        )
    return lines


def _signed_pdf(account: Account, reference: str, months: int) -> SimpleUploadedFile:
    html = (
        f"<h1>Master Services Agreement {reference}</h1><p>Between Ledgerline Demo Ltd and {account.legal_name}.</p>"
        f"<p>Term: {months} months. Signed for both parties.</p>"
    )
    return SimpleUploadedFile(f"{reference}-signed.pdf", HTML(string=html).write_pdf(), "application/pdf")


def demo_contracts(*, now: dt.datetime) -> int:
    """Umbrella Pharma's 36-month agreement (volume-discount tiers on messages, EUR 5,000 prepaid, a yearly
    committed minimum, an account manager, the signed PDF), Hooli Cloud's 12-month one that ends without renewal
    soon (its renewal notice is e-mailed), and a trial extended by staff. Once: none when a contract exists."""
    if Contract.objects.exists():
        return 0
    finance = get_user_model().objects.get(username="finance")
    manager = get_user_model().objects.get(username="billing")
    month = month_containing(now)
    with transaction.atomic():
        umbrella = _account("Umbrella Pharma")
        start = month_containing(_live(umbrella).started_at).start
        contract = contract_save(
            contract=Contract(
                account=umbrella,
                reference="MSA-2026-014",
                term_start=start,
                term_months=36,
                auto_renew=True,
                renewal_notice_days=90,
                commitment_amount=D("40000.00"),
                commitment_period=Contract.CommitmentPeriod.YEAR,
                cancellation=Contract.Cancellation.EARLY_TERMINATION,
                early_termination_percent=D("50"),
                account_manager=manager,
                notes="Negotiated with procurement; EUR, reverse charge.",
            ),
            actor=finance,
        )
        messages = Metric.objects.get(code="messages")
        for threshold, percent in (("200000", "10"), ("500000", "15")):
            contract_part_save(
                part=ContractDiscountTier(
                    contract=contract, metric=messages, threshold=D(threshold), percent=D(percent)
                ),
                actor=finance,
            )
        contract_part_save(
            part=PrepaidCredit(
                contract=contract,
                amount=D("5000.00"),
                currency=umbrella.currency,
                effective_at=month.start,
                description="Prepaid usage, paid with the signature",
            ),
            actor=finance,
        )
        contract_document_add(contract=contract, upload=_signed_pdf(umbrella, "MSA-2026-014", 36), actor=finance)

        hooli = _account("Hooli Cloud")
        start = month_containing(_live(hooli).started_at).start
        # A term that ends 30 to 60 days from now: inside its renewal notice window.
        months = 1
        while term_end_after(start, months) < now + dt.timedelta(days=30):
            months += 1
        contract_save(
            contract=Contract(
                account=hooli,
                reference="ENT-2026-003",
                term_start=start,
                term_months=months,
                auto_renew=False,
                renewal_notice_days=60,
                cancellation=Contract.Cancellation.TERM_END,
                account_manager=manager,
            ),
            actor=finance,
        )
        contracts_renew_due(now=now)

        dunder = _account("Dunder Mifflin Paper")
        trial = _live(dunder)
        if trial.trial_end is not None and trial.trial_end > now:
            trial_extend(
                subscription=trial,
                until=trial.trial_end + dt.timedelta(days=14),
                actor=manager,
                reason="Procurement is still evaluating; agreed on the phone.",
                now=now,
            )
    return 2


def demo_contracts_summary() -> list[str]:
    lines = ["Contracts (admin: Billing › Contracts; portal: Plan):"]
    for contract in Contract.objects.select_related("account", "account_manager"):
        lines.append(
            f"  {contract.public_id}  {contract.account.name:<20} {contract.reference}, {contract.term_months} months "
            f"to {contract.term_end:%Y-%m-%d}, {'renews' if contract.auto_renew else 'ends without renewal'}"
        )
    return lines
