"""Forms of the admin's plan change pages: staff's "Change plan", approving and declining a customer's request."""

from __future__ import annotations

from django import forms
from django.db.models import Q

from billing.models import Plan, PlanChangeRequest, PlanVersion, Subscription
from common.errors import BillingError


def plan_version_choices(subscription: Subscription):
    """The versions an account may move to: published, sellable, of its product and currency — the catalogue's
    and its own custom plans — without the one it is on."""
    account = subscription.account
    return (
        PlanVersion.objects.filter(
            published_at__isnull=False,
            price_on_request=False,
            plan__is_active=True,
            plan__product=subscription.plan_version.plan.product,
            currency=account.currency,
        )
        .filter(Q(plan__kind=Plan.Kind.PUBLIC) | Q(plan__account=account))
        .exclude(pk=subscription.plan_version_id)
        .select_related("plan")
        .order_by("plan__display_order", "plan__code", "-version")
    )


class ServiceErrorsMixin:
    def add_service_error(self, exc: BillingError) -> None:
        field = exc.field if exc.field in self.fields else None  # type: ignore[attr-defined]
        self.add_error(field, exc.message)  # type: ignore[attr-defined]


class StaffPlanChangeForm(ServiceErrorsMixin, forms.Form):
    plan_version = forms.ModelChoiceField(queryset=PlanVersion.objects.none(), label="New plan")
    timing = forms.ChoiceField(
        choices=PlanChangeRequest.Timing.choices,
        initial=PlanChangeRequest.Timing.NOW,
        widget=forms.RadioSelect,
        help_text="Now: both plans are prorated on this month's invoice. At the end of the billing period: the "
        "current plan runs to the period's end (the paid year's, for a yearly plan).",
    )
    note = forms.CharField(
        max_length=2000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Why, e.g. “asked by phone, 3 Dec”; the customer's e-mail quotes it.",
    )

    def __init__(self, *args, subscription: Subscription, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["plan_version"].queryset = plan_version_choices(subscription)


class DecideForm(ServiceErrorsMixin, forms.Form):
    note = forms.CharField(
        max_length=2000,
        required=False,  # approving needs none; declining needs a reason: the service's rule and message
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        label="Note to the customer",
        help_text="Declining needs a reason: the customer reads it.",
    )
