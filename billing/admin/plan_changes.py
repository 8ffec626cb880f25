"""Plan changes in the admin: the queue of customers' requests with Approve and Decline, and the subscription's
"Change plan" page (preview first, then confirm). Both call ``billing.services.plan_changes``."""

from __future__ import annotations

from decimal import Decimal

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Case, IntegerField, Value, When
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from billing.forms_plans import DecideForm, StaffPlanChangeForm
from billing.models import PlanChangeRequest, Subscription
from billing.services.plan_changes import (
    PERM_APPROVE,
    ChangePreview,
    plan_change_approve,
    plan_change_decline,
    plan_change_preview,
    plan_change_staff,
)
from common.admin_utils import ServiceAdmin, format_datetime, truncated
from common.errors import BillingError
from common.money import format_money

ERR_PREVIEW_FIRST = "Preview the change first: confirm it once its figures are shown."


def preview_rows(preview: ChangePreview) -> dict:
    """A preview as the admin's templates show it: money with its currency."""
    currency = preview.currency
    return {
        "preview": preview,
        "lines": [
            {
                "description": line.description,
                "amount": format_money(line.amount, currency),
                "first_day": line.first_day,
                "last_day": line.last_day,
            }
            for line in preview.lines
        ],
        "current_subtotal": format_money(preview.current_subtotal, currency),
        "new_subtotal": format_money(preview.new_subtotal, currency),
        "difference": format_money(preview.difference, currency),
    }


def stored_preview_rows(change: PlanChangeRequest) -> dict:
    """The figures kept on the request when it was asked (or approved)."""
    stored = change.preview or {}
    currency = stored.get("currency", change.account.currency)

    def money(value: str | None) -> str:
        return format_money(Decimal(value), currency) if value not in (None, "") else "–"

    return {
        "lines": [
            {
                "description": line["description"],
                "amount": money(line["amount"]),
                "first_day": line["first_day"],
                "last_day": line["last_day"],
            }
            for line in stored.get("lines", [])
        ],
        "current_subtotal": money(stored.get("current_subtotal")),
        "new_subtotal": money(stored.get("new_subtotal")),
        "difference": money(stored.get("difference")),
        "overage": stored.get("overage", []),
        "refusals": stored.get("refusals", []),
    }


@admin.register(PlanChangeRequest)
class PlanChangeRequestAdmin(ServiceAdmin):
    list_display = (
        "public_id",
        "account_name",
        "change",
        "direction",
        "timing",
        "state",
        "requested_by_label",
        "requested",
        "effective",
    )
    list_filter = ("state", "direction", "channel", "timing")
    search_fields = ("=public_id", "=account__public_id", "account__name")
    list_select_related = ("account", "from_version__plan", "to_version__plan")
    change_form_template = "admin/billing/planchangerequest/change_form.html"
    fields = (
        "public_id",
        "account",
        "subscription",
        "from_version",
        "to_version",
        "timing",
        "direction",
        "needs_approval",
        "state",
        "channel",
        "requested_by_label",
        "note",
        "requested_at",
        "decided_by",
        "decided_at",
        "decision_note",
        "effective_at",
        "applied_at",
        "new_subscription",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("account", "from_version__plan", "to_version__plan")

    def get_ordering(self, request):
        # The queue first: requests waiting for a decision, then the scheduled ones, then what was decided (or
        # withdrawn); newest first in each.
        queue = Case(
            When(state=PlanChangeRequest.State.PENDING, then=Value(0)),
            When(state=PlanChangeRequest.State.SCHEDULED, then=Value(1)),
            default=Value(2),
            output_field=IntegerField(),
        )
        return (queue.asc(), "-requested_at", "-pk")

    def has_add_permission(self, request):
        return False  # customers ask in the portal or the API; staff use the subscription's "Change plan"

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request)  # read-only; Approve and Decline stay

    @admin.display(description="Account", ordering="account__name")
    def account_name(self, change):
        return truncated(change.account.name, 24)

    @admin.display(description="Change")
    def change(self, change):
        return f"{change.from_version.plan.name} → {change.to_version.plan.name}"

    @admin.display(description="Requested", ordering="requested_at")
    def requested(self, change):
        return format_datetime(change.requested_at)

    @admin.display(description="Takes effect", ordering="effective_at")
    def effective(self, change):
        return format_datetime(change.effective_at) if change.effective_at else "–"

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context.update(stored_preview_rows(obj))
            context["may_decide"] = obj.state == PlanChangeRequest.State.PENDING and request.user.has_perm(PERM_APPROVE)
            context["decide_form"] = DecideForm()
            context["approve_url"] = reverse("admin:billing_planchangerequest_approve", args=[obj.pk])
            context["decline_url"] = reverse("admin:billing_planchangerequest_decline", args=[obj.pk])
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/approve/", view(self.approve_view), name="billing_planchangerequest_approve"),
            path("<path:object_id>/decline/", view(self.decline_view), name="billing_planchangerequest_decline"),
            *super().get_urls(),
        ]

    def _decide(self, request, object_id: str, decide):
        if not request.user.has_perm(PERM_APPROVE):
            raise PermissionDenied
        change = PlanChangeRequest.objects.filter(pk=object_id).first() if object_id.isdigit() else None
        if change is None:
            raise Http404
        back = reverse("admin:billing_planchangerequest_change", args=[change.pk])
        if request.method != "POST":
            return HttpResponseRedirect(back)
        form = DecideForm(request.POST)
        form.is_valid()
        try:
            done = decide(change, form.cleaned_data.get("note", ""))
        except BillingError as exc:
            self.message_user(request, f"Plan change {change.public_id}: {exc.message}", messages.ERROR)
        else:
            self.message_user(
                request, f"Plan change {done.public_id} is {done.get_state_display().lower()}.", messages.SUCCESS
            )
        return HttpResponseRedirect(back)

    def approve_view(self, request, object_id: str):
        return self._decide(
            request, object_id, lambda change, note: plan_change_approve(change=change, actor=request.user, note=note)
        )

    def decline_view(self, request, object_id: str):
        return self._decide(
            request,
            object_id,
            lambda change, note: plan_change_decline(change=change, actor=request.user, reason=note),
        )


class PlanChangeAdminMixin:
    """The subscription page's "Change plan": choose a plan and the timing, preview, confirm."""

    def get_urls(self):
        view = self.admin_site.admin_view  # type: ignore[attr-defined]
        return [
            path("<path:object_id>/change-plan/", view(self.change_plan_view), name="billing_subscription_change_plan"),
            *super().get_urls(),  # type: ignore[misc]
        ]

    def change_plan_view(self, request, object_id: str):
        if not request.user.has_perm(PERM_APPROVE):
            raise PermissionDenied
        subscription = (
            Subscription.objects.select_related("account", "plan_version__plan").filter(pk=object_id).first()
            if object_id.isdigit()
            else None
        )
        if subscription is None:
            raise Http404
        back = reverse("admin:billing_subscription_change", args=[subscription.pk])
        form = StaffPlanChangeForm(request.POST if request.method == "POST" else None, subscription=subscription)
        shown: dict = {}
        if request.method == "POST" and form.is_valid():
            version, timing = form.cleaned_data["plan_version"], form.cleaned_data["timing"]
            try:
                preview = plan_change_preview(subscription=subscription, to_version=version, timing=timing)
            except BillingError as exc:
                form.add_service_error(exc)
            else:
                shown = preview_rows(preview)
                previewed = request.POST.get("previewed") == f"{version.pk}:{timing}"
                if "_confirm" in request.POST and not previewed:
                    self.message_user(request, ERR_PREVIEW_FIRST, messages.WARNING)  # type: ignore[attr-defined]
                elif "_confirm" in request.POST and preview.allowed:
                    try:
                        change = plan_change_staff(
                            subscription=subscription,
                            to_version=version,
                            timing=timing,
                            actor=request.user,
                            note=form.cleaned_data["note"],
                        )
                    except BillingError as exc:
                        form.add_service_error(exc)
                    else:
                        self.message_user(  # type: ignore[attr-defined]
                            request,
                            f"Plan change {change.public_id}: {subscription.account.name} "
                            + (
                                f"is now on {version}."
                                if change.state == PlanChangeRequest.State.APPLIED
                                else f"moves to {version} on {format_datetime(change.effective_at)}."
                            ),
                            messages.SUCCESS,
                        )
                        return HttpResponseRedirect(back)
                shown["previewed_key"] = f"{version.pk}:{timing}"
        return TemplateResponse(
            request,
            "admin/billing/subscription/change_plan.html",
            {
                **self.admin_site.each_context(request),  # type: ignore[attr-defined]
                "opts": Subscription._meta,
                "title": f"Change the plan of {subscription.account.name}",
                "subscription": subscription,
                "form": form,
                "back_url": back,
                **shown,
            },
        )
