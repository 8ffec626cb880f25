from __future__ import annotations

from django.contrib import admin

from common import clock
from common.admin_utils import ServiceAdmin, adopt, changed_data, run_action, truncated
from tenants.models import MasterPartner, Tenant
from tenants.services import (
    partner_create,
    partner_deactivate,
    partner_update,
    tenant_archive,
    tenant_create,
    tenant_update,
)


@admin.register(Tenant)
class TenantAdmin(ServiceAdmin):
    list_display = ("public_id", "name", "account_name", "status", "activated_at", "archived_at")
    list_filter = ("status",)
    search_fields = ("public_id", "name", "account__public_id", "account__name")
    autocomplete_fields = ("account",)
    list_select_related = ("account",)
    date_hierarchy = "activated_at"
    actions = ("archive",)

    @admin.display(description="Account", ordering="account__name")
    def account_name(self, tenant):
        return truncated(tenant.account.name, 26)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("account", "public_id", "name", "activated_at")
        return (
            "account",
            "public_id",
            "name",
            "department",
            "status",
            "activated_at",
            "archived_at",
            "created_at",
            "updated_at",
        )

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        # The account, id and billable life of an existing tenant are billing history.
        return ("account", "public_id", "activated_at", "archived_at", "created_at", "updated_at")

    def get_changeform_initial_data(self, request):
        return {"activated_at": clock.now(), **super().get_changeform_initial_data(request)}

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            saved = tenant_update(
                tenant=Tenant.objects.get(pk=obj.pk),
                data=changed_data(form, ("name", "status", "department")),
                actor=request.user,
            )
        else:
            saved = tenant_create(
                account=data["account"],
                name=data["name"],
                public_id=data.get("public_id", ""),
                activated_at=data.get("activated_at"),
                actor=request.user,
            )
        adopt(obj, saved)

    @admin.action(description="Archive selected tenants now", permissions=["change"])
    def archive(self, request, queryset):
        run_action(
            self,
            request,
            queryset,
            lambda tenant, actor: tenant_archive(tenant=tenant, actor=actor),
            "{count} tenant(s) archived.",
        )


@admin.register(MasterPartner)
class MasterPartnerAdmin(ServiceAdmin):
    list_display = ("public_id", "name", "department", "account", "activated_at", "deactivated_at")
    list_filter = ("department",)
    search_fields = ("public_id", "name", "department", "account__public_id", "account__name")
    autocomplete_fields = ("account",)
    list_select_related = ("account",)
    actions = ("deactivate",)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("account", "public_id", "name", "department", "activated_at")
        return ("account", "public_id", "name", "department", "activated_at", "deactivated_at", "created_at")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("account", "public_id", "activated_at", "deactivated_at", "created_at")

    def get_changeform_initial_data(self, request):
        return {"activated_at": clock.now(), **super().get_changeform_initial_data(request)}

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            saved = partner_update(
                partner=MasterPartner.objects.get(pk=obj.pk),
                data=changed_data(form, ("name", "department")),
                actor=request.user,
            )
        else:
            saved = partner_create(
                account=data["account"],
                public_id=data["public_id"],
                name=data["name"],
                department=data.get("department", ""),
                activated_at=data.get("activated_at"),
                actor=request.user,
            )
        adopt(obj, saved)

    @admin.action(description="Deactivate selected partners now", permissions=["change"])
    def deactivate(self, request, queryset):
        run_action(
            self,
            request,
            queryset,
            lambda partner, actor: partner_deactivate(partner=partner, actor=actor),
            "{count} partner(s) deactivated.",
        )
