"""Webhook endpoints and their deliveries in the admin.

- **Endpoints**: account, URL, enabled, failing since and the last 7 days' success rate; add and edit through
  the services (billing staff may: ``BILLING_STAFF_EDITABLE``), the secret shown once in a message when the
  endpoint is added or its secret rotated; actions: send a test event, resend failed deliveries, enable,
  disable, rotate the secret. The page lists the latest deliveries.
- **Deliveries**: read-only, with every attempt (status, latency, the answer's first characters, the error);
  "Resend" sends the selected ones again with the same ``webhook-id``.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from common import clock
from common.admin_utils import ServiceAdmin, adopt, changed_data, format_datetime, run_action, truncated
from common.errors import BillingError
from webhooks.event_types import EVENT_TYPES, TEST_EVENT
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.selectors import delivery_public_id, endpoint_stats, secret_hints
from webhooks.services.endpoints import (
    PERM_CHANGE,
    delivery_resend,
    endpoint_create,
    endpoint_delete,
    endpoint_disable,
    endpoint_enable,
    endpoint_resend_failed,
    endpoint_rotate_secret,
    endpoint_send_test,
    endpoint_update,
)

EDITABLE = ("url", "description", "event_types")
SECRET_MESSAGE = "The signing secret of {endpoint} is {secret} — copy it now: it is not shown again."
RECENT_DELIVERIES = 20


class EndpointForm(forms.ModelForm):
    url = forms.URLField(
        max_length=2000,
        assume_scheme="https",
        help_text=WebhookEndpoint._meta.get_field("url").help_text,
        widget=forms.URLInput(attrs={"size": 80}),
    )
    event_types = forms.MultipleChoiceField(
        choices=[
            (event.name, f"{event.name} — {event.description}") for event in EVENT_TYPES if event.name != TEST_EVENT
        ],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="None ticked: every event type.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("account", "url", "description", "event_types")


class RecentDeliveries(admin.TabularInline):
    model = WebhookDelivery
    verbose_name_plural = f"latest deliveries (up to {RECENT_DELIVERIES}; all of them under Webhook deliveries)"
    fields = ("delivery", "event_type", "status", "attempts", "last_status_code", "next_attempt_at", "delivered_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def get_queryset(self, request):
        queryset = super().get_queryset(request).order_by("-created_at", "-id")
        ids = list(queryset.values_list("id", flat=True)[:RECENT_DELIVERIES])
        return queryset.filter(id__in=ids)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Delivery")
    def delivery(self, delivery):
        url = reverse("admin:webhooks_webhookdelivery_change", args=[delivery.pk])
        return format_html('<a href="{}">{}</a>', url, delivery_public_id(delivery.pk))


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ServiceAdmin):
    form = EndpointForm
    list_display = ("public_id", "account", "url_short", "enabled", "failing_since", "success_rate", "secret")
    list_filter = ("enabled",)
    search_fields = ("public_id", "url", "account__public_id", "account__name")
    list_select_related = ("account",)
    autocomplete_fields = ("account",)
    readonly_fields = ("public_id", "secret", "enabled", "disabled_at", "disabled_reason", "failing_since",
                       "created_at", "created_by", "updated_at")  # fmt: skip
    inlines = [RecentDeliveries]
    actions = ["send_test", "resend_failed", "enable", "disable", "rotate_secret"]

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("account", "url", "description", "event_types")
        return ("public_id", "account", "url", "description", "event_types", "secret", "enabled", "disabled_at",
                "disabled_reason", "failing_since", "created_at", "created_by", "updated_at")  # fmt: skip

    def get_readonly_fields(self, request, obj=None):
        return (*self.readonly_fields, "account") if obj else ()

    def changelist_view(self, request, extra_context=None):
        self._hints: dict[int, str] = {}
        self._stats: dict = {}
        return super().changelist_view(request, extra_context)

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        ids = [endpoint.pk for endpoint in changelist.result_list]
        self._hints = secret_hints(endpoint_ids=ids)
        self._stats = endpoint_stats(endpoint_ids=ids, now=clock.now())
        return changelist

    @admin.display(description="URL", ordering="url")
    def url_short(self, endpoint):
        return truncated(endpoint.url, 48)

    @admin.display(description="Success (7 days)")
    def success_rate(self, endpoint):
        stats = getattr(self, "_stats", {}).get(endpoint.pk) or endpoint_stats(
            endpoint_ids=[endpoint.pk], now=clock.now()
        ).get(endpoint.pk)
        if stats is None or stats.success_rate is None:
            return "–"
        return f"{stats.success_rate:.1%} of {stats.attempts:,}"

    @admin.display(description="Secret")
    def secret(self, endpoint):
        hints = getattr(self, "_hints", {})
        return hints.get(endpoint.pk) or secret_hints(endpoint_ids=[endpoint.pk]).get(endpoint.pk, "–")

    def save_model(self, request, obj, form, change):
        if change:
            saved = endpoint_update(
                endpoint=WebhookEndpoint.objects.get(pk=obj.pk), data=changed_data(form, EDITABLE), actor=request.user
            )
        else:
            data = form.cleaned_data
            saved, secret = endpoint_create(
                account=data["account"],
                url=data["url"],
                description=data.get("description", ""),
                event_types=list(data.get("event_types") or []),
                actor=request.user,
            )
            self.message_user(request, SECRET_MESSAGE.format(endpoint=saved.public_id, secret=secret), messages.WARNING)
        adopt(obj, saved)

    def delete_model(self, request, obj):
        endpoint_delete(endpoint=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for endpoint in queryset:
            endpoint_delete(endpoint=endpoint, actor=request.user)

    def save_formset(self, request, form, formset, change):
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    @admin.action(description="Send a test event", permissions=["change"])
    def send_test(self, request, queryset):
        run_action(self, request, queryset, lambda e, actor: endpoint_send_test(endpoint=e, actor=actor),
                   "Test event queued for {count} endpoint(s).")  # fmt: skip

    @admin.action(description="Resend failed deliveries", permissions=["change"])
    def resend_failed(self, request, queryset):
        total = 0
        for endpoint in queryset:
            try:
                total += endpoint_resend_failed(endpoint=endpoint, actor=request.user)
            except BillingError as exc:
                self.message_user(request, f"{endpoint}: {exc.message}", messages.ERROR)
        self.message_user(request, f"{total} failed or cancelled deliveries queued again.", messages.SUCCESS)

    @admin.action(description="Enable", permissions=["change"])
    def enable(self, request, queryset):
        run_action(self, request, queryset, lambda e, actor: endpoint_enable(endpoint=e, actor=actor),
                   "{count} endpoint(s) enabled.")  # fmt: skip

    @admin.action(description="Disable", permissions=["change"])
    def disable(self, request, queryset):
        reason = f"Disabled by {request.user.get_username()} (staff)."
        run_action(self, request, queryset, lambda e, actor: endpoint_disable(endpoint=e, actor=actor, reason=reason),
                   "{count} endpoint(s) disabled.")  # fmt: skip

    @admin.action(description="Rotate the signing secret", permissions=["change"])
    def rotate_secret(self, request, queryset):
        for endpoint in queryset:
            try:
                saved, secret = endpoint_rotate_secret(endpoint=endpoint, actor=request.user)
            except BillingError as exc:
                self.message_user(request, f"{endpoint}: {exc.message}", messages.ERROR)
                continue
            self.message_user(request, SECRET_MESSAGE.format(endpoint=saved.public_id, secret=secret), messages.WARNING)


class AttemptInline(admin.TabularInline):
    model = WebhookAttempt
    fields = ("at_shown", "trigger", "status_code", "latency_ms", "response_excerpt", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("at", "id")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="At")
    def at_shown(self, attempt):
        return format_datetime(attempt.at)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ("delivery_id", "endpoint", "account", "event_type", "webhook_id", "status", "attempts",
                    "last_status_code", "next_attempt_at", "delivered_at")  # fmt: skip
    list_filter = ("status", "event_type", "trigger")
    search_fields = ("endpoint__public_id", "account__public_id", "account__name", "event_type")
    list_select_related = ("endpoint", "account")
    fields = ("delivery_id", "endpoint", "account", "event_type", "webhook_id", "status", "trigger", "attempts",
              "next_attempt_at", "last_status_code", "last_error", "delivered_at", "created_at", "payload")  # fmt: skip
    readonly_fields = fields
    inlines = [AttemptInline]
    actions = ["resend"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_resend_permission(self, request):
        return request.user.has_perm(PERM_CHANGE)

    @admin.display(description="Delivery", ordering="id")
    def delivery_id(self, delivery):
        return delivery_public_id(delivery.pk)

    @admin.display(description="webhook-id")
    def webhook_id(self, delivery):
        return delivery.webhook_id

    @admin.display(description="Event data")
    def payload(self, delivery):
        return format_html("<pre>{}</pre>", json.dumps(delivery.event.payload.get("data"), indent=2, sort_keys=True))

    @admin.action(description="Resend now (same webhook-id)", permissions=["resend"])
    def resend(self, request, queryset):
        run_action(self, request, queryset, lambda d, actor: delivery_resend(delivery=d, actor=actor),
                   "{count} deliveries queued to be sent again.")  # fmt: skip
