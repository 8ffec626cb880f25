"""The subscription page's "Extend trial" and "Cancel" (intermediate pages, then confirm), for staff who may change
subscriptions (``billing.change_subscription``). "Cancel" shows what the account's contract (or, without one, its
billing period or paid year) says first: when the subscription ends, the early-termination charge to the cent and
how it was worked out. Both call ``billing.services`` (``trials``, ``contracts``).

``SubscriptionAdmin`` inherits ``SubscriptionTermsAdminMixin``; its change form includes
``admin/billing/subscription/_terms_buttons.html`` among the object tools."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib import messages
from django.contrib.admin.widgets import AdminDateWidget
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from billing.models import Subscription
from billing.services.contracts import CancellationPreview, cancellation_preview, subscription_cancel_per_contract
from billing.services.trials import ERR_NOT_TRIALING, trial_extend
from common.admin_utils import format_datetime
from common.errors import BillingError
from common.money import format_money
from common.periods import Period

PERM_CHANGE = "billing.change_subscription"
ERR_FIGURES_CHANGED = (
    "The figures changed since they were shown (the day turned, or the subscription changed): check them and "
    "confirm again."
)


class ExtendTrialForm(forms.Form):
    last_day = forms.DateField(
        label="Last day of the trial",
        widget=AdminDateWidget,
        help_text="The trial ends at 00:00 UTC the day after; at most 365 days after the subscription started.",
    )
    reason = forms.CharField(
        required=False,  # the service's rule and message
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Why, e.g. “evaluation delayed by their security review”; kept with the change.",
    )


class CancelForm(forms.Form):
    reason = forms.CharField(
        required=False,  # the service's rule and message
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Why the customer cancels; kept with the change.",
    )
    shown = forms.CharField(widget=forms.HiddenInput, required=False)


def preview_key(preview: CancellationPreview) -> str:
    """What the confirmation must match: the rule, the end (its day, for an end that is now) and the fee."""
    ends = preview.ends_at.date().isoformat() if preview.rule == "early_termination" else preview.ends_at.isoformat()
    return f"{preview.rule}|{ends}|{preview.fee if preview.fee is not None else ''}"


def preview_rows(preview: CancellationPreview) -> dict:
    ends = preview.ends_at
    return {
        "preview": preview,
        "rule_label": preview.rule_label,
        "ends_at": format_datetime(ends),
        "last_day": format_datetime(Period(ends - dt.timedelta(days=1), ends).last_day),
        "fee": format_money(preview.fee, preview.currency) if preview.fee is not None else "",
        "remaining": format_money(preview.remaining, preview.currency) if preview.remaining is not None else "",
        "preview_key": preview_key(preview),
    }


class SubscriptionTermsAdminMixin:
    """Adds ``<pk>/extend-trial/`` and ``<pk>/cancel/`` to the subscription admin."""

    def get_urls(self):
        view = self.admin_site.admin_view  # type: ignore[attr-defined]
        return [
            path(
                "<path:object_id>/extend-trial/", view(self.extend_trial_view), name="billing_subscription_extend_trial"
            ),
            path("<path:object_id>/cancel/", view(self.cancel_view), name="billing_subscription_cancel"),
            *super().get_urls(),  # type: ignore[misc]
        ]

    def _subscription(self, request, object_id: str) -> Subscription:
        if not request.user.has_perm(PERM_CHANGE):
            raise PermissionDenied
        subscription = (
            Subscription.objects.select_related("account", "plan_version__plan").filter(pk=object_id).first()
            if object_id.isdigit()
            else None
        )
        if subscription is None:
            raise Http404
        return subscription

    def _page(self, request, template: str, subscription: Subscription, title: str, **context):
        return TemplateResponse(
            request,
            template,
            {
                **self.admin_site.each_context(request),  # type: ignore[attr-defined]
                "opts": Subscription._meta,
                "title": title,
                "subscription": subscription,
                "back_url": reverse("admin:billing_subscription_change", args=[subscription.pk]),
                **context,
            },
        )

    def extend_trial_view(self, request, object_id: str):
        subscription = self._subscription(request, object_id)
        back = reverse("admin:billing_subscription_change", args=[subscription.pk])
        trialing = subscription.status == Subscription.Status.TRIALING and subscription.trial_end is not None
        initial = {}
        if trialing:
            assert subscription.trial_end is not None
            current_last = Period(subscription.started_at, subscription.trial_end).last_day
            initial["last_day"] = current_last + dt.timedelta(days=7)
        form = ExtendTrialForm(request.POST if request.method == "POST" else None, initial=initial)
        if request.method == "POST" and form.is_valid():
            last_day = form.cleaned_data["last_day"]
            until = dt.datetime.combine(last_day + dt.timedelta(days=1), dt.time(0), tzinfo=dt.UTC)
            try:
                trial_extend(
                    subscription=subscription, until=until, actor=request.user, reason=form.cleaned_data["reason"]
                )
            except BillingError as exc:
                field = "last_day" if exc.field == "until" else exc.field if exc.field in form.fields else None
                form.add_error(field, exc.message)
            else:
                self.message_user(  # type: ignore[attr-defined]
                    request,
                    f"The trial of {subscription.account.name} ({subscription.public_id}) now ends on "
                    f"{format_datetime(until)}.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(back)
        return self._page(
            request,
            "admin/billing/subscription/extend_trial.html",
            subscription,
            f"Extend the trial of {subscription.account.name}",
            form=form,
            trialing=trialing,
            not_trialing=ERR_NOT_TRIALING.format(
                subscription=subscription.public_id, status=subscription.get_status_display().lower()
            ),
            trial_ends=format_datetime(subscription.trial_end) if subscription.trial_end else "",
        )

    def cancel_view(self, request, object_id: str):
        subscription = self._subscription(request, object_id)
        back = reverse("admin:billing_subscription_change", args=[subscription.pk])
        live = subscription.status != Subscription.Status.CANCELLED
        form = CancelForm(request.POST if request.method == "POST" else None)
        shown: dict = {}
        if live:
            preview = cancellation_preview(subscription=subscription)
            shown = preview_rows(preview)
            if request.method == "POST" and form.is_valid():
                if form.cleaned_data["shown"] != shown["preview_key"]:
                    form.add_error(None, ERR_FIGURES_CHANGED)
                else:
                    try:
                        done = subscription_cancel_per_contract(
                            subscription=subscription, actor=request.user, reason=form.cleaned_data["reason"]
                        )
                    except BillingError as exc:
                        form.add_error(exc.field if exc.field in form.fields else None, exc.message)
                    else:
                        if done.status == Subscription.Status.CANCELLED:
                            text = (
                                f"{subscription.account.name} ({done.public_id}) ended now; the early-termination "
                                f"charge of {shown['fee']} is billed with this month's invoice."
                            )
                        else:
                            text = f"{subscription.account.name} ({done.public_id}) ends at {shown['ends_at']}."
                        self.message_user(request, text, messages.SUCCESS)  # type: ignore[attr-defined]
                        return HttpResponseRedirect(back)
        return self._page(
            request,
            "admin/billing/subscription/cancel.html",
            subscription,
            f"Cancel the subscription of {subscription.account.name}",
            form=form,
            live=live,
            **shown,
        )
