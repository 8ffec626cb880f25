"""The customer's plan change forms: which plan and when (now, prorated, or at the end of the billing period),
with a note; and withdrawing the open request.

The form only parses: ``billing.services.plan_changes`` keeps the rules (which plans an account may move to, whether
the usage fits, whether the change waits for approval) and its refusals come back on the field they name
(``add_service_error``; the service calls the plan ``plan_version``).
"""

from __future__ import annotations

from typing import Any

from django import forms

from billing.models import PlanChangeRequest, PlanVersion
from common.errors import BillingError
from portal.forms import PortalForm

ERR_PLAN = "Choose one of the plans listed."
TIMING_CHOICES = [
    (PlanChangeRequest.Timing.NOW, "Now: both plans are prorated on this month's invoice"),
    (PlanChangeRequest.Timing.PERIOD_END, "At the end of the billing period"),
]


class PlanChangeForm(PortalForm):
    plan = forms.ChoiceField(label="New plan", error_messages={"invalid_choice": ERR_PLAN, "required": ERR_PLAN})
    timing = forms.ChoiceField(
        label="When",
        choices=TIMING_CHOICES,
        initial=PlanChangeRequest.Timing.NOW,
        widget=forms.RadioSelect,
    )
    note = forms.CharField(
        label="Note for our billing team (optional)",
        required=False,
        max_length=2_000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args: Any, options: list[PlanVersion], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.options = {version.plan.code: version for version in options}
        self.fields["plan"].choices = [(code, version.plan.name) for code, version in self.options.items()]

    @property
    def version(self) -> PlanVersion | None:
        code = self.cleaned_data.get("plan") if hasattr(self, "cleaned_data") else None
        return self.options.get(code) if code else None

    def add_service_error(self, exc: BillingError | Any) -> None:
        if isinstance(exc, BillingError) and exc.field == "plan_version":
            self.add_error("plan", exc.message)
            return
        super().add_service_error(exc)


class WithdrawChangeForm(PortalForm):
    """No fields: the button alone (the request is named by the URL)."""
