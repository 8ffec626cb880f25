"""The demo's subscriptions after the invoice: plan changes in every state (an upgrade applied this month and
prorated, one scheduled for the period's end, a downgrade waiting for approval, one declined), a yearly plan, a
negotiated contract with volume-discount tiers, prepaid credits, a committed minimum, an account manager and its
signed PDF, a contract due for renewal, and a trial extended by staff. Written through the same services as the
portal, the API and the admin, each step at its own moment on the test clock."""

from __future__ import annotations

import datetime as dt

from django.contrib.auth import get_user_model
from django.db import transaction

from accounts.models import Account, AccountUser
from billing.models import PlanChangeRequest, PlanVersion, Subscription
from billing.services.plan_changes import plan_change_decline, plan_change_request
from common import clock
from common.periods import month_containing

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
