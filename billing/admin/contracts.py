"""Contracts in the admin: Finance admins record and edit an account's negotiated contract — term, renewal,
commitment, cancellation rule, account manager — with its volume-discount tiers, prepaid credits and signed
documents; billing staff see them (``accounts.permissions``). Every save goes through
``billing.services.contracts``: ``term_end`` is computed there, and a document must be a PDF by its content."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import filesizeformat
from django.urls import path, reverse
from django.utils.html import format_html

from billing.models import Contract, ContractDiscountTier, ContractDocument, PrepaidCredit
from billing.services.contracts import (
    contract_document_add,
    contract_document_check,
    contract_part_delete,
    contract_part_save,
    contract_save,
    contract_validate,
    term_last_day,
)
from common.admin_utils import ServiceAdmin, format_datetime, money_column, truncated
from common.errors import BillingError
from common.money import format_money


class ContractForm(forms.ModelForm):
    """The contract's own fields; the service's checks (overlapping terms, a staff account manager, the
    early-termination percentage) show on the field they concern."""

    class Meta:
        model = Contract
        fields = (
            "account",
            "reference",
            "term_start",
            "term_months",
            "auto_renew",
            "renewal_notice_days",
            "commitment_amount",
            "commitment_period",
            "cancellation",
            "early_termination_percent",
            "account_manager",
            "notes",
        )

    def _post_clean(self) -> None:
        super()._post_clean()
        if self.errors or self.instance.account_id is None:
            return
        try:
            contract_validate(contract=self.instance)
        except BillingError as exc:
            self.add_error(exc.field if exc.field in self.fields else None, exc.message)


class DiscountTierInline(admin.TabularInline):
    model = ContractDiscountTier
    fields = ("metric", "threshold", "percent")
    extra = 0
    verbose_name = "volume-discount tier"
    verbose_name_plural = "Volume-discount tiers (graduated: each tier discounts the usage above its threshold)"


class PrepaidCreditInline(admin.TabularInline):
    model = PrepaidCredit
    fields = ("amount", "currency", "effective_at", "expires_at", "description")
    extra = 0
    verbose_name_plural = "Prepaid credits (drawn against usage charges before tax, the first to expire first)"


class DocumentForm(forms.ModelForm):
    upload = forms.FileField(required=False, label="Signed PDF", help_text="PDF only (checked by its content).")

    class Meta:
        model = ContractDocument
        fields = ("upload",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:  # a stored document is kept as it is; only new rows take a file
            self.fields["upload"].disabled = True
            self.fields["upload"].widget = forms.HiddenInput()

    def clean_upload(self):
        upload = self.cleaned_data.get("upload")
        if upload:
            try:
                contract_document_check(upload=upload)
            except BillingError as exc:
                raise forms.ValidationError(exc.message) from exc
        return upload


class DocumentInline(admin.TabularInline):
    model = ContractDocument
    form = DocumentForm
    fields = ("document", "size_display", "uploaded_by", "uploaded_at", "upload")
    readonly_fields = ("document", "size_display", "uploaded_by", "uploaded_at")
    extra = 1
    can_delete = False
    verbose_name_plural = "Documents (the signed contract and its amendments)"

    @admin.display(description="Document")
    def document(self, doc):
        if not doc.pk:
            return "–"
        url = reverse("admin:billing_contract_document", args=[doc.contract_id, doc.token])
        return format_html('<a href="{}">{}</a>', url, doc.name)

    @admin.display(description="Size")
    def size_display(self, doc):
        return filesizeformat(doc.size) if doc.pk else "–"


@admin.register(Contract)
class ContractAdmin(ServiceAdmin):
    form = ContractForm
    list_display = (
        "public_id",
        "account_name",
        "reference",
        "term",
        "auto_renew",
        "commitment",
        "account_manager",
        "terminated",
    )
    list_filter = ("auto_renew", "cancellation", "commitment_period")
    search_fields = ("=public_id", "=account__public_id", "account__name", "reference")
    list_select_related = ("account", "account_manager")
    autocomplete_fields = ("account",)
    inlines = (DiscountTierInline, PrepaidCreditInline, DocumentInline)
    change_form_template = "admin/billing/contract/change_form.html"
    readonly_fields = (
        "public_id",
        "term_end_display",
        "renewal_notified_for",
        "terminated_at",
        "termination_fee_display",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": ("public_id", "account", "reference")}),
        (
            "Term",
            {
                "fields": (
                    "term_start",
                    "term_months",
                    "term_end_display",
                    "auto_renew",
                    "renewal_notice_days",
                    "renewal_notified_for",
                )
            },
        ),
        ("Commitment", {"fields": ("commitment_amount", "commitment_period")}),
        (
            "Cancellation inside the term",
            {"fields": ("cancellation", "early_termination_percent", "terminated_at", "termination_fee_display")},
        ),
        (None, {"fields": ("account_manager", "notes", "created_at", "updated_at")}),
    )

    def get_readonly_fields(self, request, obj=None):
        fields = tuple(super().get_readonly_fields(request, obj))
        return (*fields, "account") if obj is not None else fields

    def has_delete_permission(self, request, obj=None):
        return False  # a contract is the record of what was signed: it ends (or is terminated), never vanishes

    @admin.display(description="Account", ordering="account__name")
    def account_name(self, contract):
        return truncated(contract.account.name, 26)

    @admin.display(description="Term", ordering="term_start")
    def term(self, contract):
        return (
            f"{format_datetime(contract.term_start.date())} – {format_datetime(term_last_day(contract))} "
            f"({contract.term_months} months)"
        )

    @admin.display(description="Commitment", ordering="commitment_amount")
    def commitment(self, contract):
        if not contract.commitment_amount:
            return "–"
        period = Contract.CommitmentPeriod(contract.commitment_period or "year")
        return f"{format_money(contract.commitment_amount, contract.account.currency)} {period.label.lower()}"

    @admin.display(description="Terminated", ordering="terminated_at")
    def terminated(self, contract):
        return format_datetime(contract.terminated_at) if contract.terminated_at else "–"

    @admin.display(description="Term ends")
    def term_end_display(self, contract):
        if not contract.pk:
            return "Computed: the start plus the term's months."
        return (
            f"{format_datetime(contract.term_end)} (exclusive; the last day is "
            f"{format_datetime(term_last_day(contract))})"
        )

    termination_fee_display = money_column("termination_fee", "Termination fee", currency_field="account__currency")

    # Saving through the services ----------------------------------------------------------------------

    def save_model(self, request, obj, form, change):
        contract_save(contract=obj, actor=request.user)

    def save_formset(self, request, form, formset, change):
        contract = form.instance
        if formset.model is ContractDocument:
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
            for document_form in formset.forms:
                upload = document_form.cleaned_data.get("upload") if not document_form.instance.pk else None
                if upload:
                    formset.new_objects.append(
                        contract_document_add(contract=contract, upload=upload, actor=request.user)
                    )
            return
        parts = formset.save(commit=False)
        for part in formset.deleted_objects:
            contract_part_delete(part=part, actor=request.user)
        for part in parts:
            part.contract = contract
            contract_part_save(part=part, actor=request.user)

    # The signed documents, for staff who may see the contract ------------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "<int:object_id>/documents/<str:token>/",
                view(self.document_view),
                name="billing_contract_document",
            ),
            *super().get_urls(),
        ]

    def document_view(self, request, object_id: int, token: str):
        contract = get_object_or_404(Contract, pk=object_id)
        if not self.has_view_or_change_permission(request, contract):
            raise PermissionDenied
        document = ContractDocument.objects.filter(contract=contract, token=token).first()
        if document is None or not document.file:
            raise Http404
        response = FileResponse(
            document.file.open("rb"), as_attachment=True, filename=document.name, content_type="application/pdf"
        )
        response["X-Content-Type-Options"] = "nosniff"
        return response
