"""Subscriptions in the admin: their own list, and the account page's subscriptions inline."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.urls import reverse

from accounts.admin import AccountAdmin
from accounts.models import Account
from billing.admin.plan_changes import PlanChangeAdminMixin
from billing.admin.subscription_terms import SubscriptionTermsAdminMixin
from billing.models import PlanChangeRequest, PlanVersion, Subscription
from billing.services.plan_changes import PERM_APPROVE
from billing.services.subscriptions import subscription_check, subscription_create
from common import clock
from common.admin_utils import (
    ServiceAdmin,
    adopt,
    format_datetime,
    truncated,
)
from common.errors import BillingError


class SubscriptionAddForm(forms.ModelForm):
    class Meta:
        model = Subscription
        fields = ("account", "plan_version", "started_at")

    def clean(self):
        data = super().clean()
        account, version = data.get("account"), data.get("plan_version")
        if account and version:
            try:
                subscription_check(account=account, plan_version=version)
            except BillingError as exc:
                raise ValidationError(exc.message) from exc
        return data


@admin.register(Subscription)
class SubscriptionAdmin(SubscriptionTermsAdminMixin, PlanChangeAdminMixin, ServiceAdmin):
    """Subscriptions change only through their pages, each previewing what it does: "Change plan" (plan
    changes), "Extend trial" and "Cancel" (per the contract, ``subscription_terms``); no bulk actions, so no
    cancellation skips the contract's rule."""

    list_display = (
        "public_id",
        "account_name",
        "plan_version",
        "status",
        "trial_ends",
        "period_ends",
        "cancel_at_period_end",
    )
    list_filter = ("status", "plan_version__plan__product", "plan_version__plan", "cancel_at_period_end")
    search_fields = ("public_id", "account__public_id", "account__name")
    autocomplete_fields = ("account",)
    list_select_related = ("account", "plan_version__plan")
    actions = None
    change_form_template = "admin/billing/subscription/change_form.html"

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.status != Subscription.Status.CANCELLED and request.user.has_perm(PERM_APPROVE):
            context["change_plan_url"] = reverse("admin:billing_subscription_change_plan", args=[obj.pk])
        if obj is not None:
            open_change = PlanChangeRequest.objects.filter(
                subscription=obj, state__in=[PlanChangeRequest.State.PENDING, PlanChangeRequest.State.SCHEDULED]
            ).first()
            if open_change is not None:
                context["open_change"] = open_change
                context["open_change_url"] = reverse("admin:billing_planchangerequest_change", args=[open_change.pk])
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    @admin.display(description="Account", ordering="account__name")
    def account_name(self, sub):
        return truncated(sub.account.name, 26)

    @admin.display(description="Trial ends", ordering="trial_end")
    def trial_ends(self, sub):
        return format_datetime(sub.trial_end.date()) if sub.trial_end else "–"

    @admin.display(description="Period ends", ordering="current_period_end")
    def period_ends(self, sub):
        return format_datetime(sub.current_period_end.date()) if sub.current_period_end else "–"

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("account", "plan_version", "started_at")
        return (
            "public_id",
            "account",
            "plan_version",
            "status",
            "started_at",
            "trial_end",
            "current_period_start",
            "current_period_end",
            "cancel_at_period_end",
            "cancel_at",
            "cancelled_at",
            "ended_at",
            "created_at",
        )

    def get_readonly_fields(self, request, obj=None):
        # Subscriptions change only through actions, so every change has its own audited reason.
        return self.get_fields(request, obj) if obj else ()

    def get_changeform_initial_data(self, request):
        return {"started_at": clock.now(), **super().get_changeform_initial_data(request)}

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "plan_version":
            kwargs["queryset"] = PlanVersion.objects.filter(
                published_at__isnull=False, price_on_request=False, plan__is_active=True
            ).select_related("plan")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = SubscriptionAddForm
        return super().get_form(request, obj, **kwargs)

    def save_model(self, request, obj, form, change):
        if change:
            return  # every field is read-only; changes go through the actions
        data = form.cleaned_data
        saved = subscription_create(
            account=data["account"],
            plan_version=data["plan_version"],
            started_at=data["started_at"],
            actor=request.user,
        )
        adopt(obj, saved)


class SubscriptionInline(admin.TabularInline):
    model = Subscription
    fields = (
        "public_id",
        "plan_version",
        "status",
        "started_at",
        "trial_end",
        "current_period_start",
        "current_period_end",
        "cancel_at_period_end",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


class BillingAccountAdmin(AccountAdmin):
    """The account page with what billing adds: the plan column and filter, and the subscriptions inline."""

    list_display = (*AccountAdmin.list_display[:4], "current_plan", *AccountAdmin.list_display[4:])
    list_filter = (*AccountAdmin.list_filter, "subscriptions__plan_version__plan")
    inlines = (SubscriptionInline, *AccountAdmin.inlines)

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("subscriptions__plan_version__plan")

    @admin.display(description="Plan")
    def current_plan(self, obj):
        live = [s for s in obj.subscriptions.all() if s.status != Subscription.Status.CANCELLED]
        return str(live[0].plan_version) if live else "—"


admin.site.unregister(Account)
admin.site.register(Account, BillingAccountAdmin)
