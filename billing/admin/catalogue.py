"""The catalogue in the admin: plans, plan versions, charges and price tiers (metrics are in usage's admin)."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.forms.models import BaseInlineFormSet

from billing.models import Plan, PlanCharge, PlanVersion, PriceTier
from billing.services.catalogue import (
    PLAN_CHARGE_DRAFT_FIELDS,
    PLAN_EDITABLE_FIELDS,
    PLAN_VERSION_DRAFT_FIELDS,
    ChargeSpec,
    TierSpec,
    plan_charge_create,
    plan_charge_set_tiers,
    plan_charge_update,
    plan_create,
    plan_update,
    plan_version_create,
    plan_version_publish,
    plan_version_update,
    validate_tiers,
)
from common.admin_utils import (
    ServiceAdmin,
    adopt,
    changed_data,
    money_column,
    quantity_column,
    run_action,
)
from common.errors import BillingError
from common.money import format_money


class PlanVersionInline(admin.TabularInline):
    model = PlanVersion
    fields = (
        "version",
        "currency",
        "base_fee",
        "price_on_request",
        "trial_days",
        "minimum_commitment",
        "discount_percent",
        "term_months",
        "published_at",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Plan)
class PlanAdmin(ServiceAdmin):
    list_display = ("name", "code", "product", "kind", "account", "latest_price", "is_active")
    list_filter = ("product", "kind", "is_active")
    search_fields = ("code", "name", "account__public_id", "account__name")
    autocomplete_fields = ("account",)
    inlines = (PlanVersionInline,)
    list_select_related = ("account",)

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("versions")

    def get_readonly_fields(self, request, obj=None):
        return ("code", "product", "kind", "account", "created_at") if obj else ("kind", "created_at")

    @admin.display(description="Latest version")
    def latest_price(self, obj):
        versions = sorted(obj.versions.all(), key=lambda v: v.version)
        if not versions:
            return "—"
        latest = versions[-1]
        price = "price on request" if latest.price_on_request else format_money(latest.base_fee, latest.currency)
        return f"v{latest.version}: {price}"

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            saved = plan_update(
                plan=Plan.objects.get(pk=obj.pk), data=changed_data(form, PLAN_EDITABLE_FIELDS), actor=request.user
            )
        else:
            saved = plan_create(
                code=data["code"],
                name=data["name"],
                product=data["product"],
                description=data["description"],
                account=data.get("account"),
                display_order=data["display_order"],
                actor=request.user,
            )
        adopt(obj, saved)


class PlanChargeInline(admin.TabularInline):
    model = PlanCharge
    fields = (
        "metric",
        "included_quantity",
        "limit",
        "limit_window",
        "pricing_model",
        "unit_price",
        "package_size",
        "package_price",
    )
    extra = 0
    can_delete = False
    show_change_link = True

    def _frozen(self, obj):
        return obj is not None and obj.is_published

    def get_readonly_fields(self, request, obj=None):
        return self.fields if self._frozen(obj) else ()

    def has_add_permission(self, request, obj=None):
        return not self._frozen(obj) and super().has_add_permission(request, obj)


@admin.register(PlanVersion)
class PlanVersionAdmin(ServiceAdmin):
    list_display = ("__str__", "plan", "base_fee_shown", "price_on_request", "trial_days", "published_at")
    base_fee_shown = money_column("base_fee", "Base fee")
    list_filter = ("plan__product", "currency", "plan")
    search_fields = ("plan__code", "plan__name")
    inlines = (PlanChargeInline,)
    list_select_related = ("plan",)
    actions = ("publish",)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ("version", "published_at", "created_at")
        if obj.is_published:  # frozen: a price change is a new version
            return [f.name for f in PlanVersion._meta.fields if f.name != "id"]
        return ("plan", "version", "published_at", "created_at")

    def save_model(self, request, obj, form, change):
        if change:
            saved = plan_version_update(
                plan_version=PlanVersion.objects.get(pk=obj.pk),
                data=changed_data(form, PLAN_VERSION_DRAFT_FIELDS),
                actor=request.user,
            )
        else:
            data = {k: form.cleaned_data[k] for k in PLAN_VERSION_DRAFT_FIELDS}
            saved = plan_version_create(plan=form.cleaned_data["plan"], actor=request.user, **data)
        adopt(obj, saved)

    def save_formset(self, request, form, formset, change):
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for inline_form in formset.forms:
            if not inline_form.has_changed():
                continue
            data = inline_form.cleaned_data
            if inline_form.instance.pk is None:
                spec = ChargeSpec(metric_code=data["metric"].code, **{k: data.get(k) for k in PLAN_CHARGE_DRAFT_FIELDS})
                saved = plan_charge_create(plan_version=form.instance, spec=spec, actor=request.user)
                formset.new_objects.append(saved)
            else:
                saved = plan_charge_update(
                    charge=PlanCharge.objects.get(pk=inline_form.instance.pk),
                    data=changed_data(inline_form, PLAN_CHARGE_DRAFT_FIELDS),
                    actor=request.user,
                )
                formset.changed_objects.append((saved, inline_form.changed_data))
            adopt(inline_form.instance, saved)

    @admin.action(description="Publish selected draft versions", permissions=["change"])
    def publish(self, request, queryset):
        run_action(
            self,
            request,
            queryset,
            lambda version, actor: plan_version_publish(plan_version=version, actor=actor),
            "{count} version(s) published.",
        )


class PriceTierFormSet(BaseInlineFormSet):
    """Checks the whole ladder (contiguous from 0, last open-ended) before anything is saved."""

    tier_specs = None

    def clean(self):
        super().clean()
        if any(self.errors) or not self.instance.is_tiered:
            return
        rows = [f.cleaned_data for f in self.forms if f.cleaned_data and not f.cleaned_data.get("DELETE")]
        tiers = sorted(
            (TierSpec(r["lower_bound"], r.get("upper_bound"), r["unit_price"], r.get("flat_fee") or 0) for r in rows),
            key=lambda t: t.lower_bound,
        )
        try:
            validate_tiers(tiers)
        except BillingError as exc:
            raise ValidationError(exc.message) from exc
        self.tier_specs = tiers


class PriceTierInline(admin.TabularInline):
    model = PriceTier
    formset = PriceTierFormSet
    fields = ("lower_bound", "upper_bound", "unit_price", "flat_fee")
    extra = 0

    def _frozen(self, obj):
        return obj is not None and (obj.plan_version.is_published or not obj.is_tiered)

    def get_readonly_fields(self, request, obj=None):
        return self.fields if self._frozen(obj) else ()

    def has_add_permission(self, request, obj=None):
        return not self._frozen(obj) and super().has_add_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return not self._frozen(obj) and super().has_delete_permission(request, obj)


@admin.register(PlanCharge)
class PlanChargeAdmin(ServiceAdmin):
    list_display = (
        "__str__",
        "metric",
        "included_shown",
        "limit_shown",
        "limit_window",
        "pricing_model",
        "price_shown",
    )
    included_shown = quantity_column("included_quantity", "Included")
    limit_shown = quantity_column("limit")
    price_shown = money_column("unit_price", "Unit price", currency_field="plan_version__currency", unit_price=True)
    list_filter = ("pricing_model", "metric", "plan_version__plan")
    search_fields = ("plan_version__plan__code", "metric__code")
    list_select_related = ("plan_version__plan", "metric")
    inlines = (PriceTierInline,)

    def has_add_permission(self, request):
        return False  # charges are added on their plan version

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.plan_version.is_published:
            return ("plan_version", "metric", *PLAN_CHARGE_DRAFT_FIELDS)
        return ("plan_version", "metric")

    def save_model(self, request, obj, form, change):
        saved = plan_charge_update(
            charge=PlanCharge.objects.get(pk=obj.pk),
            data=changed_data(form, PLAN_CHARGE_DRAFT_FIELDS),
            actor=request.user,
        )
        adopt(obj, saved)

    def save_formset(self, request, form, formset, change):
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        if not formset.has_changed() or formset.tier_specs is None:
            return
        saved = plan_charge_set_tiers(charge=form.instance, tiers=formset.tier_specs, actor=request.user)
        formset.new_objects, formset.changed_objects, formset.deleted_objects = saved, [], []


@admin.register(PriceTier)
class PriceTierAdmin(ServiceAdmin):
    """A list of every tier for review; tiers are edited as a whole ladder on their charge's page."""

    list_display = ("charge", "lower_shown", "upper_shown", "price_shown", "flat_fee_shown")
    lower_shown = quantity_column("lower_bound", "From")
    upper_shown = quantity_column("upper_bound", "Up to")
    price_shown = money_column(
        "unit_price", "Unit price", currency_field="charge__plan_version__currency", unit_price=True
    )
    flat_fee_shown = money_column("flat_fee", "Flat fee", currency_field="charge__plan_version__currency")
    list_filter = ("charge__pricing_model", "charge__plan_version__plan")
    search_fields = ("charge__plan_version__plan__code", "charge__metric__code")
    list_select_related = ("charge__plan_version__plan", "charge__metric")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
