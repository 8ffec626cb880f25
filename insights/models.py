"""What insights keep: the recommendations of the last re-rating of each account, and the forecasts made during
a month (kept so that, once the month is invoiced, the forecast error can be shown)."""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q

from accounts.models import Account

MONEY = {"max_digits": 14, "decimal_places": 2}


class Recommendation(models.Model):
    """One piece of advice for an account, with its evidence and its monthly saving. Written by
    ``insights.services.recommendations_refresh``, which replaces an account's recommendations in one transaction
    each time it re-rates the account; never edited by hand."""

    class Kind(models.TextChoices):
        PLAN = "plan", "Cheaper plan"
        ANNUAL_TERMS = "annual_terms", "Annual terms"
        RIGHT_SIZE = "right_size", "Right-sizing"
        FEATURE = "feature", "Premium features"
        IDLE_TENANT = "idle_tenant", "Idle tenant"
        IDLE_PARTNER = "idle_partner", "Idle master partner"
        OUTGROW_RISK = "outgrow_risk", "Likely to outgrow the plan"

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="recommendations")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    title = models.CharField(max_length=200, help_text="The advice in one line, as the customer reads it.")
    evidence = models.TextField(help_text="What the advice rests on: the months re-rated, the usage seen.")
    details = models.JSONField(default=dict, blank=True, help_text="The figures behind the advice, per month.")
    plan_version = models.ForeignKey(
        "billing.PlanVersion",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The plan recommended (plan and annual-terms advice).",
    )
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    partner = models.ForeignKey(
        "tenants.MasterPartner", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    currency = models.CharField(max_length=3)
    current_monthly = models.DecimalField(
        **MONEY, null=True, blank=True, help_text="What the months re-rated cost a month on the account's own terms."
    )
    proposed_monthly = models.DecimalField(
        **MONEY, null=True, blank=True, help_text="What they would have cost a month with the advice followed."
    )
    saving_monthly = models.DecimalField(
        **MONEY,
        default=0,
        help_text="current − proposed, a month. For a risk: the extra cost a month expected if nothing changes.",
    )
    saving_percent = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    months_start = models.DateField(help_text="First month re-rated (the months are [start, end)).")
    months_end = models.DateField(help_text="Month after the last one re-rated.")
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["account_id", "-saving_monthly", "id"]
        constraints = [
            models.CheckConstraint(
                name="recommendation_months_half_open", condition=Q(months_end__gt=F("months_start"))
            )
        ]
        indexes = [
            models.Index(fields=["account", "kind"], name="recommendation_account_kind"),
            models.Index(fields=["-saving_monthly"], name="recommendation_saving"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.title}"


class Forecast(models.Model):
    """The running month's total as forecast on one day of it: the expected figure and its range. Written once a
    day by ``insights.services_forecast.forecast_record``; ``actual`` is filled when the month's invoice is issued,
    so the portal can show how far the forecasts were from the bill."""

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="forecasts")
    month = models.DateField(help_text="The first day of the month forecast.")
    made_on = models.DateField(help_text="The day (UTC) the forecast was made, from the usage until its start.")
    currency = models.CharField(max_length=3)
    expected = models.DecimalField(**MONEY, help_text="Projected total before tax at the month's end.")
    low = models.DecimalField(**MONEY, help_text="Lower end of the range.")
    high = models.DecimalField(**MONEY, help_text="Upper end of the range.")
    actual = models.DecimalField(
        **MONEY, null=True, blank=True, help_text="The invoice's subtotal before tax, once the month is invoiced."
    )
    made_at = models.DateTimeField()

    class Meta:
        ordering = ["account_id", "-month", "-made_on"]
        constraints = [
            models.UniqueConstraint(fields=["account", "month", "made_on"], name="forecast_one_per_day"),
            models.CheckConstraint(
                name="forecast_range_ordered", condition=Q(low__lte=F("expected"), high__gte=F("expected"))
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.month:%Y-%m} on {self.made_on}: {self.expected} {self.currency}"


class AccountCostAnalysis(Account):
    """An account seen through its costs: the admin's cost analysis page for account managers (no table of its
    own)."""

    class Meta:
        proxy = True
        verbose_name = "cost analysis"
        verbose_name_plural = "cost analysis"
