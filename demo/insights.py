"""The demo's insights: an idle master partner of Northwind's, every account's recommendations from re-rating its
closed months on every plan it could be on, today's forecast of the running month, and the forecasts of last
month made weekly during it, against the bill once it was invoiced (so the portal's Forecast page shows the
forecast error). Written by the services the nightly schedule runs."""

from __future__ import annotations

import datetime as dt

from django.db.models import Count

from accounts.models import Account
from common.periods import month_containing, previous_month
from insights.models import Forecast, Recommendation
from insights.services import recommendations_refresh_book
from insights.services_forecast import forecast_accounts, forecast_actuals_fill, forecast_record, forecasts_record_book
from tenants.services import partner_create

IDLE_PARTNER = "prt_legacy_sms_gateway"
# Days of last month its forecasts were made on (as the daily schedule would have, one a week here).
LAST_MONTH_DAYS = (4, 11, 18, 25)


def demo_insights(*, now: dt.datetime) -> bool:
    """False when the demo has recommendations or forecasts already."""
    if Recommendation.objects.exists() or Forecast.objects.exists():
        return False
    main = Account.objects.earliest("public_id")
    # A partner Northwind signed up 40 days ago that has sent nothing since: idle, yet live on its plan.
    partner_create(
        account=main,
        public_id=IDLE_PARTNER,
        name="Legacy SMS gateway",
        activated_at=now - dt.timedelta(days=40),
    )
    last_month = previous_month(month_containing(now))
    for day in LAST_MONTH_DAYS:
        made = last_month.start + dt.timedelta(days=day - 1, hours=2, minutes=30)
        for account in forecast_accounts(now=made):
            forecast_record(account=account, now=made)
    forecast_actuals_fill(now=now)
    forecasts_record_book(now=now)
    recommendations_refresh_book(now=now)
    return True


def demo_insights_summary() -> list[str]:
    lines = ["Insights (portal: Analysis, Forecast, Recommendations; admin: Insights):"]
    kinds = dict(Recommendation.Kind.choices)
    counts = Recommendation.objects.values_list("kind").annotate(n=Count("id")).order_by("kind")
    lines.append("  recommendations: " + (", ".join(f"{n} {kinds[kind].lower()}" for kind, n in counts) or "none"))
    best = (
        Recommendation.objects.filter(saving_monthly__gt=0)
        .exclude(kind=Recommendation.Kind.OUTGROW_RISK)
        .select_related("account")
        .order_by("-saving_monthly", "id")[:3]
    )
    for rec in best:
        lines.append(f"    {rec.account.name}: {rec.title}")
    compared = Forecast.objects.filter(actual__isnull=False).count()
    lines.append(f"  forecasts: {Forecast.objects.count()} recorded, {compared} compared with the bill")
    return lines
