"""General-ledger account codes the ERP journal posts to (``billing.journal``).

One row per kind of posting (receivables, base fee, the usage default, other charges, discounts, prepaid
credit, tax payable, credit notes), and one per metric that has its own revenue account. A usage line posts to
its metric's row when there is one, else to the usage default. Finance admin edits codes and names in the
admin; the defaults are seeded by migration 0017.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from usage.models import code_validator


class GlAccount(models.Model):
    class Kind(models.TextChoices):
        RECEIVABLES = "receivables", "Receivables"
        BASE_FEE = "base_fee", "Base fee revenue"
        USAGE = "usage", "Usage revenue (metrics without their own account)"
        METRIC = "metric", "Usage revenue of one metric"
        OTHER_CHARGES = "other_charges", "Other charges (minimum commitment, early termination)"
        DISCOUNTS = "discounts", "Discounts"
        PREPAID_CREDIT = "prepaid_credit", "Prepaid credit drawn"
        TAX = "tax", "Tax payable"
        CREDIT_NOTES = "credit_notes", "Credit notes (lines not tied to an invoice line)"

    kind = models.CharField(max_length=16, choices=Kind.choices, help_text="What the journal posts to this account.")
    metric_code = models.CharField(
        max_length=63,
        blank=True,
        validators=[code_validator],
        help_text="For “Usage revenue of one metric”: the metric's code (e.g. messages). Empty for other kinds.",
    )
    code = models.CharField(max_length=20, help_text="The account's code in the general ledger, e.g. 4110.")
    name = models.CharField(max_length=120, help_text="The account's name in the general ledger.")
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        ordering = ["code", "kind", "metric_code"]
        verbose_name = "GL account"
        verbose_name_plural = "GL accounts"
        constraints = [
            models.UniqueConstraint(
                fields=["kind"],
                condition=~Q(kind="metric"),
                name="gl_account_one_per_kind",
                violation_error_message="There already is an account of this kind.",
            ),
            models.UniqueConstraint(
                fields=["metric_code"],
                condition=Q(kind="metric"),
                name="gl_account_one_per_metric",
                violation_error_message="This metric already has an account.",
            ),
            models.CheckConstraint(
                name="gl_account_metric_code_for_metric_kind",
                condition=(Q(kind="metric") & ~Q(metric_code="")) | (~Q(kind="metric") & Q(metric_code="")),
                violation_error_message="Give a metric code for a metric's account, and only for it.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"
