"""Admin: recommendations. Staff read the book's biggest opportunities: every account's recommendations of its
last re-rating (``insights.services`` writes them, nightly and when a customer opens stale ones), the biggest
saving a month first. "Show" picks the opportunities (every kind but the outgrow risks, with a saving; the
default) or the risks (accounts likely to outgrow their plan, the biggest expected extra cost first); a list of
one account's recommendations (the cost analysis page links to it) shows all of them. A recommendation's page
shows its evidence and the figures behind it.

Read-only: the rows are written by the re-rating only, never added, changed or deleted here. "Re-rate these
accounts now" re-rates the selected rows' accounts at once (``recommendations_rerate``, recorded in each
account's history), for staff who may read the recommendations (billing staff and finance admins)."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from accounts.models import Account
from common.admin_utils import format_datetime, money_column
from common.errors import BillingError
from insights.models import Recommendation
from insights.selectors import book_opportunities
from insights.services import PERM_RERATE, recommendations_rerate

OPPORTUNITIES = "opportunities"
RISKS = "risks"
ALL = "all"
ACCOUNT_PARAM = "account__id__exact"


def recommendations_url(account: Account) -> str:
    """The changelist of ``account``'s recommendations (all of them: advice and risks)."""
    return f"{reverse('admin:insights_recommendation_changelist')}?{ACCOUNT_PARAM}={account.pk}"


class ShowFilter(admin.SimpleListFilter):
    """The opportunities unless the risks (or all) are chosen. A list of one account's recommendations shows all
    of them."""

    title = "show"
    parameter_name = "show"

    def __init__(self, request, params, model, model_admin):
        self.account_chosen = any(key.startswith("account__") or key == "account" for key in request.GET)
        super().__init__(request, params, model, model_admin)

    def lookups(self, request, model_admin):
        return [(OPPORTUNITIES, "Opportunities"), (RISKS, "Risks"), (ALL, "All")]

    def value(self):
        chosen = super().value()
        if chosen:
            return chosen
        return ALL if self.account_chosen else OPPORTUNITIES

    def choices(self, changelist):
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        value = self.value()
        if value == OPPORTUNITIES:
            return queryset & book_opportunities()
        if value == RISKS:
            return queryset & book_opportunities(risks=True)
        return queryset


@admin.register(Recommendation)
class RecommendationAdmin(admin.ModelAdmin):
    list_display = (
        "account_link",
        "kind",
        "title",
        "saving_display",
        "saving_percent_display",
        "months_display",
        "computed",
    )
    list_display_links = ("title",)
    list_filter = (ShowFilter, "kind")
    search_fields = ("account__name", "=account__public_id", "title")
    search_help_text = "Account name or id (acc_…), or words of the advice."
    list_select_related = ("account",)
    # The book's biggest opportunities first (``book_opportunities``'s order).
    ordering = ("-saving_monthly", "account_id", "id")
    actions = ("rerate_now",)
    fields = (
        "account_link",
        "kind",
        "title",
        "evidence",
        "details_display",
        "plan_version",
        "tenant",
        "partner",
        "current_display",
        "proposed_display",
        "saving_display",
        "saving_percent_display",
        "months_display",
        "computed",
    )
    readonly_fields = fields

    saving_display = money_column("saving_monthly", "Saving a month")
    current_display = money_column("current_monthly", "Current a month")
    proposed_display = money_column("proposed_monthly", "Proposed a month")

    @admin.display(description="Account", ordering="account__name")
    def account_link(self, obj: Recommendation) -> str:
        url = reverse("admin:accounts_account_change", args=[obj.account_id])
        return format_html('<a href="{}">{} ({})</a>', url, obj.account.name, obj.account.public_id)

    @admin.display(description="Saving %", ordering="saving_percent")
    def saving_percent_display(self, obj: Recommendation) -> str:
        return "–" if obj.saving_percent is None else f"{obj.saving_percent} %"

    @admin.display(description="Months re-rated", ordering="months_start")
    def months_display(self, obj: Recommendation) -> str:
        start, end = obj.months_start, obj.months_end  # [start, end): end is the month after the last
        count = (end.year - start.year) * 12 + end.month - start.month
        last_year, last_month = divmod(end.year * 12 + end.month - 2, 12)
        last = f"{last_year}-{last_month + 1:02d}"
        span = f"{start:%Y-%m}" if count == 1 else f"{start:%Y-%m} – {last}"
        return f"{span} ({count} month{'s' if count != 1 else ''})"

    @admin.display(description="Computed at", ordering="computed_at")
    def computed(self, obj: Recommendation) -> str | None:
        return format_datetime(obj.computed_at)

    @admin.display(description="Details")
    def details_display(self, obj: Recommendation) -> str:
        text = json.dumps(obj.details, indent=2, ensure_ascii=False, sort_keys=True)
        return format_html('<pre id="recommendation-details">{}</pre>', text)

    def changelist_view(self, request, extra_context=None):
        # A list of one account's recommendations (the cost analysis page's link) is titled with the account.
        chosen = request.GET.get(ACCOUNT_PARAM, "")
        account = Account.objects.filter(pk=int(chosen)).first() if chosen.isdigit() else None
        if account is not None:
            extra_context = {"title": f"Recommendations: {account.name} ({account.public_id})", **(extra_context or {})}
        return super().changelist_view(request, extra_context)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_rerate_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_staff and request.user.has_perm(PERM_RERATE)

    @admin.action(description="Re-rate these accounts now", permissions=["rerate"])
    def rerate_now(self, request, queryset):
        ids = sorted(set(queryset.values_list("account_id", flat=True)))
        rerated = written = 0
        for account in Account.objects.filter(pk__in=ids).order_by("name", "pk"):
            try:
                written += recommendations_rerate(account=account, actor=request.user)
            except BillingError as exc:
                self.message_user(request, f"{account}: {exc.message}", messages.ERROR)
                continue
            rerated += 1
        if rerated:
            self.message_user(
                request,
                f"{rerated} account{'s' if rerated != 1 else ''} re-rated: "
                f"{written} recommendation{'s' if written != 1 else ''} now.",
                messages.SUCCESS,
            )
