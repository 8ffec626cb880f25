"""Admin: cost analysis. Account managers and billing staff read an account's costs: the changelist has every
account with last month's invoiced cost (before tax), and an account's page is its analysis (``insights.analysis``
and ``insights.efficiency``) for a chosen range of months. Read-only: nothing is added, changed or deleted here.

Who may read it: staff with the view permission of the cost-analysis proxy, or of accounts (billing staff and
finance admins read accounts already). The page links to the account's recommendations in the admin, for staff who
may read them."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import DecimalField, OuterRef, Subquery
from django.template.response import TemplateResponse

from billing.allocation import ALLOCATED_STATUSES
from billing.models import Invoice
from common import clock
from common.errors import BillingError
from common.money import format_money
from common.periods import month_containing, previous_month
from insights.admin_recommendations import recommendations_url
from insights.analysis import cost_analysis
from insights.apis_analysis import default_range, requested_range
from insights.efficiency import efficiency
from insights.models import AccountCostAnalysis
from insights.selectors import recommendations_for

VIEW_PERMISSIONS = ("insights.view_accountcostanalysis", "accounts.view_account")
VIEW_RECOMMENDATIONS = "insights.view_recommendation"


@admin.register(AccountCostAnalysis)
class AccountCostAnalysisAdmin(admin.ModelAdmin):
    list_display = ("name", "public_id", "currency", "last_month_cost")
    search_fields = ("name", "public_id")
    ordering = ("name",)
    analysis_template = "admin/insights/accountcostanalysis/analysis.html"

    def _may_view(self, request) -> bool:
        return (
            request.user.is_active and request.user.is_staff and any(request.user.has_perm(p) for p in VIEW_PERMISSIONS)
        )

    def has_module_permission(self, request) -> bool:
        return self._may_view(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return self._may_view(request)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        last = previous_month(month_containing(clock.now()))
        invoice = Invoice.objects.filter(
            account=OuterRef("pk"), period_start=last.start, status__in=ALLOCATED_STATUSES
        ).values("subtotal")[:1]
        return (
            super()
            .get_queryset(request)
            .annotate(last_month=Subquery(invoice, output_field=DecimalField(max_digits=18, decimal_places=4)))
        )

    @admin.display(description="Last month (before tax)", ordering="last_month")
    def last_month_cost(self, account) -> str:
        return "not invoiced" if account.last_month is None else format_money(account.last_month, account.currency)

    def _recommendations(self, request, account) -> dict:
        if not request.user.has_perm(VIEW_RECOMMENDATIONS):
            return {}
        return {
            "recommendations_url": recommendations_url(account),
            "recommendations_count": recommendations_for(account=account).count(),
        }

    def change_view(self, request, object_id, form_url="", extra_context=None):
        account = self.get_object(request, unquote(object_id))
        if account is None:
            return self._get_obj_does_not_exist_redirect(request, self.model._meta, object_id)
        if not self.has_view_permission(request, account):
            raise PermissionDenied
        now = clock.now()
        error = None
        try:
            start, end = requested_range(request.GET, now)
        except BillingError as exc:
            error = exc
            start, end = default_range(now)
        analysis = cost_analysis(account=account, start_month=start, end_month=end, now=now)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": account,
            "title": f"Cost analysis: {account.name}",
            "analysis": analysis,
            "efficiency": efficiency(account=account, analysis=analysis, now=now),
            "currency": analysis.currency,
            "from_value": f"{start:%Y-%m}",
            "to_value": f"{end:%Y-%m}",
            "error": error,
            **self._recommendations(request, account),
            **(extra_context or {}),
        }
        return TemplateResponse(request, self.analysis_template, context, status=400 if error else 200)
