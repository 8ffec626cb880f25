from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.urls import reverse
from django.utils.html import format_html_join

from accounts.models import EXPORT_DATASETS, Account, AccountUser, ApiKey, Budget
from accounts.selectors import account_user_email_taken
from accounts.services import (
    ACCOUNT_EDITABLE_FIELDS,
    ERR_EMAIL_TAKEN,
    ERR_KEY_EXPORT_LIMITS,
    KEY_SCOPES,
    account_create,
    account_reactivate,
    account_suspend,
    account_update,
    account_user_create,
    account_user_set_role,
    api_key_create,
    api_key_revoke,
    api_key_set_export_limits,
    budget_create,
    budget_update,
)
from common.admin_utils import ServiceAdmin, adopt, changed_data, money_column, run_action
from common.forms import EmailListField, PercentListField
from common.money import round_money
from tenants.models import MasterPartner, Tenant
from tenants.services import partner_create, partner_update, tenant_create, tenant_update


class HistoryFieldsFrozenForm(forms.ModelForm):
    """Inline rows: new rows take every field; existing rows keep their id and activation time,
    which are billing history (tenant- and partner-months are counted from them)."""

    frozen_fields = ("public_id", "activated_at")
    # Date and time side by side on one line (no calendar and clock shortcuts under each row).
    activated_at = forms.SplitDateTimeField(
        widget=forms.SplitDateTimeWidget(date_attrs={"size": 10}, time_attrs={"size": 8}),
        help_text="UTC, e.g. 2026-11-01 00:00:00.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            for name in self.frozen_fields:
                if name in self.fields:
                    self.fields[name].disabled = True


class TenantInline(admin.TabularInline):
    model = Tenant
    form = HistoryFieldsFrozenForm
    fields = ("public_id", "name", "status", "activated_at", "archived_at")
    readonly_fields = ("archived_at",)
    extra = 0
    can_delete = False
    show_change_link = True


class MasterPartnerInline(admin.TabularInline):
    model = MasterPartner
    form = HistoryFieldsFrozenForm
    fields = ("public_id", "name", "department", "activated_at", "deactivated_at")
    readonly_fields = ("deactivated_at",)
    extra = 0
    can_delete = False
    show_change_link = True


class AccountUserInline(admin.TabularInline):
    model = AccountUser
    fields = ("user", "role", "created_at")
    readonly_fields = ("user", "role", "created_at")
    extra = 0
    can_delete = False
    verbose_name_plural = "portal users (add them under Portal users)"

    def has_add_permission(self, request, obj=None):
        return False


class BudgetForm(forms.ModelForm):
    alert_thresholds = PercentListField(help_text="Percentages of the amount, increasing, e.g. 50, 75, 90, 100.")

    class Meta:
        model = Budget
        fields = ("account", "name", "amount", "period", "alert_thresholds", "is_active")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:  # 448.50 as it was entered, not the stored 448.5000
            self.initial["amount"] = round_money(self.instance.amount, self.instance.currency)


class AccountForm(forms.ModelForm):
    billing_emails = EmailListField(help_text="Addresses that receive invoices and reminders, comma-separated.")

    class Meta:
        model = Account
        fields = ACCOUNT_EDITABLE_FIELDS


class BudgetInline(admin.TabularInline):
    model = Budget
    form = BudgetForm
    fields = ("name", "amount", "currency", "period", "alert_thresholds", "is_active")
    readonly_fields = ("currency",)  # always the account currency
    extra = 0
    can_delete = False


# Inlines with more rows than this start collapsed (their heading says how many); the account's related
# lists link to the full, filtered lists.
INLINE_ROWS_SHOWN = 8


@admin.register(Account)
class AccountAdmin(ServiceAdmin):
    form = AccountForm
    list_display = (
        "public_id",
        "name",
        "status",
        "currency",
        "tenant_count",
        "tax_country",
        "created_at",
    )
    list_filter = ("status", "currency", "tax_country")
    search_fields = ("public_id", "name", "legal_name", "tax_id", "billing_emails")
    readonly_fields = ("public_id", "status", "status_changed_at", "related", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("public_id", "name", "legal_name", "status", "status_changed_at", "related")}),
        ("Billing", {"fields": ("currency", "billing_emails", "payment_terms_days", "timezone")}),
        ("Tax", {"fields": ("tax_id", "tax_country", "tax_rate", "tax_reverse_charge")}),
        ("Record", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
    )
    # What the "Related" line counts and links to: (label, admin changelist, reverse accessor or None).
    RELATED = (
        ("Invoices", "billing_invoice", "invoices"),
        ("Credit notes", "billing_creditnote", "credit_notes"),
        ("Disputes", "disputes_dispute", "disputes"),
        ("Subscriptions", "billing_subscription", "subscriptions"),
        ("Tenants", "tenants_tenant", "tenants"),
        ("Master partners", "tenants_masterpartner", "partners"),
        ("Budgets", "accounts_budget", "budgets"),
        ("Usage events", "usage_usageevent", None),  # not counted: the event table is large
    )
    inlines = (TenantInline, MasterPartnerInline, AccountUserInline, BudgetInline)
    actions = ("suspend", "reactivate")
    list_per_page = 50

    def get_queryset(self, request):
        live = ~Q(tenants__status=Tenant.Status.ARCHIVED)
        return super().get_queryset(request).annotate(_tenant_count=Count("tenants", filter=live, distinct=True))

    def get_readonly_fields(self, request, obj=None):
        fields = list(self.readonly_fields)
        if obj is not None and (obj.subscriptions.exists() or obj.budgets.exists() or obj.custom_plans.exists()):
            fields.append("currency")  # amounts already agreed in this currency
        return fields

    def get_fieldsets(self, request, obj=None):
        if obj is None:  # a new account has nothing related yet
            return [
                (name, {**options, "fields": tuple(f for f in options["fields"] if f != "related")})
                for name, options in self.fieldsets
            ]
        return self.fieldsets

    def get_inline_instances(self, request, obj=None):
        # Instances are made per request, so a long inline of this account can start collapsed here.
        inlines = super().get_inline_instances(request, obj)
        if obj is None:
            return inlines
        for inline in inlines:
            rows = inline.get_queryset(request).filter(account=obj).count()
            if rows > INLINE_ROWS_SHOWN:
                inline.classes = [*(inline.classes or ()), "collapse"]
                inline.verbose_name_plural = f"{inline.verbose_name_plural} ({rows})"
        return inlines

    @admin.display(description="Related")
    def related(self, obj):
        """Counts of the account's documents and records, each linking to the list filtered to this account."""
        query = f"?account__id__exact={obj.pk}"
        links = []
        for label, changelist, accessor in self.RELATED:
            url = reverse(f"admin:{changelist}_changelist") + query
            text = label if accessor is None else f"{label}: {getattr(obj, accessor).count()}"
            links.append((url, text))
        return format_html_join(" · ", '<a href="{}">{}</a>', links) if links else "–"

    @admin.display(description="Tenants", ordering="_tenant_count")
    def tenant_count(self, obj):
        return obj._tenant_count

    def save_model(self, request, obj, form, change):
        if change:
            saved = account_update(
                account=Account.objects.get(pk=obj.pk),
                data=changed_data(form, ACCOUNT_EDITABLE_FIELDS),
                actor=request.user,
            )
        else:
            data = {k: form.cleaned_data[k] for k in ACCOUNT_EDITABLE_FIELDS if k in form.cleaned_data}
            data["timezone_name"] = data.pop("timezone", "UTC")
            saved = account_create(**data, actor=request.user)
        adopt(obj, saved)

    def save_formset(self, request, form, formset, change):
        account = form.instance
        saved_by = {
            Tenant: self._save_tenant,
            MasterPartner: self._save_partner,
            Budget: self._save_budget,
        }.get(formset.model)
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        if saved_by is None:  # read-only inlines
            return
        for inline_form in formset.forms:
            if not inline_form.has_changed() or inline_form in formset.deleted_forms:
                continue
            saved = saved_by(request, account, inline_form)
            if inline_form.instance.pk is None:
                formset.new_objects.append(saved)
            else:
                formset.changed_objects.append((saved, inline_form.changed_data))
            adopt(inline_form.instance, saved)

    @staticmethod
    def _save_tenant(request, account, inline_form):
        data = inline_form.cleaned_data
        if inline_form.instance.pk is None:
            return tenant_create(
                account=account,
                name=data["name"],
                public_id=data.get("public_id", ""),
                activated_at=data.get("activated_at"),
                actor=request.user,
            )
        tenant = Tenant.objects.get(pk=inline_form.instance.pk)
        return tenant_update(tenant=tenant, data=changed_data(inline_form, ("name", "status")), actor=request.user)

    @staticmethod
    def _save_partner(request, account, inline_form):
        data = inline_form.cleaned_data
        if inline_form.instance.pk is None:
            return partner_create(
                account=account,
                public_id=data["public_id"],
                name=data["name"],
                department=data.get("department", ""),
                activated_at=data.get("activated_at"),
                actor=request.user,
            )
        partner = MasterPartner.objects.get(pk=inline_form.instance.pk)
        return partner_update(
            partner=partner, data=changed_data(inline_form, ("name", "department")), actor=request.user
        )

    @staticmethod
    def _save_budget(request, account, inline_form):
        data = inline_form.cleaned_data
        if inline_form.instance.pk is None:
            return budget_create(
                account=account,
                name=data["name"],
                amount=data["amount"],
                period=data["period"],
                alert_thresholds=data["alert_thresholds"],
                actor=request.user,
            )
        budget = Budget.objects.get(pk=inline_form.instance.pk)
        fields = ("name", "amount", "period", "alert_thresholds", "is_active")
        return budget_update(budget=budget, data=changed_data(inline_form, fields), actor=request.user)

    @admin.action(description="Suspend selected accounts", permissions=["change"])
    def suspend(self, request, queryset):
        run_action(
            self,
            request,
            queryset,
            lambda account, actor: account_suspend(account=account, actor=actor),
            "{count} account(s) suspended.",
        )

    @admin.action(description="Reactivate selected accounts", permissions=["change"])
    def reactivate(self, request, queryset):
        run_action(
            self,
            request,
            queryset,
            lambda account, actor: account_reactivate(account=account, actor=actor),
            "{count} account(s) reactivated.",
        )


class AccountUserAddForm(forms.ModelForm):
    email = forms.EmailField(
        help_text="The login. The user sets a password through the reset e-mail, unless you give one here."
    )
    password = forms.CharField(widget=forms.PasswordInput, required=False, help_text="Optional.")

    class Meta:
        model = AccountUser
        fields = ("account", "role")

    def clean_email(self):
        email = self.cleaned_data["email"].lower()
        if account_user_email_taken(email=email):
            raise ValidationError(ERR_EMAIL_TAKEN.format(email=email))
        return email


@admin.register(AccountUser)
class AccountUserAdmin(ServiceAdmin):
    list_display = ("user", "account", "role", "created_at")
    list_filter = ("role",)
    search_fields = ("user__email", "user__username", "account__public_id", "account__name")
    autocomplete_fields = ("account",)
    list_select_related = ("user", "account")

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = AccountUserAddForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("account", "email", "password", "role")
        return ("account", "user", "role", "created_at")

    def get_readonly_fields(self, request, obj=None):
        return ("account", "user", "created_at") if obj else ()

    def save_model(self, request, obj, form, change):
        if change:
            saved = account_user_set_role(
                membership=AccountUser.objects.get(pk=obj.pk), role=form.cleaned_data["role"], actor=request.user
            )
        else:
            saved = account_user_create(
                account=form.cleaned_data["account"],
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                password=form.cleaned_data.get("password") or None,
                actor=request.user,
            )
        adopt(obj, saved)


@admin.register(Budget)
class BudgetAdmin(ServiceAdmin):
    form = BudgetForm
    list_display = ("name", "account", "amount_display", "period", "alert_thresholds", "is_active")
    list_filter = ("period", "is_active", "currency")
    amount_display = money_column("amount")
    search_fields = ("name", "account__public_id", "account__name")
    autocomplete_fields = ("account",)
    list_select_related = ("account",)
    fields = ("account", "name", "amount", "currency", "period", "alert_thresholds", "is_active")
    readonly_fields = ("currency",)  # always the account currency

    def get_readonly_fields(self, request, obj=None):
        return ("account", "currency") if obj else ("currency",)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            fields = ("name", "amount", "period", "alert_thresholds", "is_active")
            saved = budget_update(
                budget=Budget.objects.get(pk=obj.pk), data=changed_data(form, fields), actor=request.user
            )
        else:
            saved = budget_create(
                account=data["account"],
                name=data["name"],
                amount=data["amount"],
                period=data["period"],
                alert_thresholds=data["alert_thresholds"],
                actor=request.user,
            )
        adopt(obj, saved)


EXPORT_DATASET_LABELS = {
    "events": "Events: billing events (usage)",
    "invoices": "Invoices",
    "credit_notes": "Credit notes",
    "payments": "Payments",
    "usage": "Usage: the monthly usage documents",
}


def _export_datasets_field() -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(
        choices=[(d, EXPORT_DATASET_LABELS[d]) for d in EXPORT_DATASETS],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        label="Export datasets",
        help_text=ApiKey._meta.get_field("export_datasets").help_text,
    )


class ApiKeyAddForm(forms.ModelForm):
    export_datasets = _export_datasets_field()

    class Meta:
        model = ApiKey
        fields = (
            "account",
            "tenant",
            "name",
            "scope_ingest",
            "scope_read",
            "scope_disputes",
            "scope_subscription",
            "scope_webhooks",
            "scope_export",
            "export_accounts",
            "export_datasets",
            "expires_at",
            "rate_limit_per_minute",
        )

    def clean(self):
        data = super().clean()
        if data.get("scope_export") and not self.may_create_export_keys:
            raise ValidationError("Only Finance admins may create platform-wide export keys.")
        if not data.get("scope_export") and (data.get("export_accounts") or data.get("export_datasets")):
            raise ValidationError(ERR_KEY_EXPORT_LIMITS)
        return data


class ApiKeyExportLimitsForm(forms.ModelForm):
    """An export key's limits, the one thing about a key that changes (by those who may create export keys)."""

    export_datasets = _export_datasets_field()

    class Meta:
        model = ApiKey
        fields = ("export_accounts", "export_datasets")


@admin.register(ApiKey)
class ApiKeyAdmin(ServiceAdmin):
    list_display = (
        "prefix",
        "name",
        "account",
        "tenant",
        "scope_list",
        "expires_at",
        "revoked_at",
        "last_used_at",
    )
    list_filter = (
        "scope_ingest",
        "scope_read",
        "scope_disputes",
        "scope_subscription",
        "scope_webhooks",
        "scope_export",
        ("revoked_at", admin.EmptyFieldListFilter),
    )
    search_fields = ("prefix", "name", "account__public_id", "account__name", "tenant__public_id")
    autocomplete_fields = ("account", "tenant", "export_accounts")
    list_select_related = ("account", "tenant")
    actions = ("revoke",)
    CHANGE_FIELDS = (
        "prefix",
        "name",
        "account",
        "tenant",
        "scope_ingest",
        "scope_read",
        "scope_disputes",
        "scope_subscription",
        "scope_webhooks",
        "scope_export",
        "expires_at",
        "rate_limit_per_minute",
        "created_at",
        "created_by",
        "revoked_at",
        "last_used_at",
    )
    EXPORT_LIMIT_FIELDS = ("export_accounts", "export_datasets")

    @admin.display(description="Scopes")
    def scope_list(self, obj):
        return ", ".join(obj.scopes)

    @admin.display(description="Export accounts")
    def export_accounts_shown(self, obj):
        accounts = [f"{a.name} ({a.public_id})" for a in obj.export_accounts.order_by("public_id")]
        return ", ".join(accounts) or "Every account"

    @admin.display(description="Export datasets")
    def export_datasets_shown(self, obj):
        return ", ".join(obj.export_datasets) or "Every dataset"

    def _limits_editable(self, request, obj) -> bool:
        return (
            obj is not None
            and obj.scope_export
            and obj.revoked_at is None
            and request.user.has_perm("accounts.create_export_key")
        )

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyAddForm
        elif self._limits_editable(request, obj):
            kwargs["form"] = ApiKeyExportLimitsForm
        form = super().get_form(request, obj, **kwargs)
        form.may_create_export_keys = request.user.has_perm("accounts.create_export_key")
        return form

    def get_fields(self, request, obj=None):
        if obj is None:
            return ApiKeyAddForm.Meta.fields
        if not obj.scope_export:
            return self.CHANGE_FIELDS
        if self._limits_editable(request, obj):
            return (*self.CHANGE_FIELDS, *self.EXPORT_LIMIT_FIELDS)
        return (*self.CHANGE_FIELDS, "export_accounts_shown", "export_datasets_shown")

    def get_readonly_fields(self, request, obj=None):
        # A key's identity and powers never change (issue a new key and revoke the old one instead), except an
        # export key's limits, which those who may create export keys narrow or widen.
        if obj is None:
            return ()
        return tuple(f for f in self.get_fields(request, obj) if f not in self.EXPORT_LIMIT_FIELDS)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            if "export_datasets" in form.fields:
                saved = api_key_set_export_limits(
                    api_key=ApiKey.objects.get(pk=obj.pk),
                    export_accounts=data.get("export_accounts") or [],
                    export_datasets=data.get("export_datasets") or [],
                    actor=request.user,
                )
                adopt(obj, saved)
            return
        scopes = [s for s in KEY_SCOPES if data.get(f"scope_{s}")]
        saved, secret = api_key_create(
            name=data["name"],
            scopes=scopes,
            account=data.get("account"),
            tenant=data.get("tenant"),
            expires_at=data.get("expires_at"),
            rate_limit_per_minute=data.get("rate_limit_per_minute"),
            export_accounts=data.get("export_accounts") or [],
            export_datasets=data.get("export_datasets") or [],
            actor=request.user,
        )
        adopt(obj, saved)
        self.message_user(request, f"New API key — copy it now, it is shown only once: {secret}", messages.WARNING)

    def save_related(self, request, form, formsets, change):
        # The services above set the export accounts (with their history); the form's own many-to-many save
        # would write them a second time, around the service.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke(self, request, queryset):
        run_action(
            self,
            request,
            queryset,
            lambda key, actor: api_key_revoke(api_key=key, actor=actor),
            "{count} key(s) revoked.",
        )
