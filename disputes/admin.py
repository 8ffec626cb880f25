"""The billing team's dispute workbench in the admin.

- **Queue** (the list): open cases by default, breached ones first and then the oldest; filters by status,
  assignee (me, unassigned), age and SLA breach; search by case id, account id or name, and invoice number;
  "Assign to me" on the selected cases.
- **Open a case** (``disputes.add_dispute``): for a customer who phoned or wrote; account, then one of its
  issued invoices, then the lines and what is disputed (``dispute_open`` with source staff).
- **The case page**: read-only (no Save: the state moves only through the services), with the header, the
  disputed lines and their usage evidence, the thread and timeline, the credits proposed, and the actions
  the case's state allows, each calling one service (``disputes.admin_views``).
"""

from __future__ import annotations

import datetime as dt

from django.contrib import admin
from django.db.models import F, Q
from django.urls import path
from django.utils.html import format_html

from common import clock
from common.admin_utils import ServiceAdmin, format_datetime, run_action, truncated
from disputes import admin_views
from disputes.models import Dispute
from disputes.selectors import dispute_queue
from disputes.services import dispute_assign

OPEN = "open"
ALL = "all"


def breach_condition(now: dt.datetime) -> Q:
    """Cases that missed a target, as ``disputes.selectors.sla`` reads them (the queue's SLA column): answered
    after the response target, or not answered by it (while open, or before closing); closed after the
    resolution target, or open past it (a case waiting on the customer has its target pushed back by the wait,
    so it is late only if it was late when the wait began)."""
    response = (
        Q(first_response_at__isnull=False, first_response_at__gt=F("response_due_at"))
        | Q(first_response_at__isnull=True, closed_at__isnull=True, response_due_at__lt=now)
        | Q(first_response_at__isnull=True, closed_at__gt=F("response_due_at"))
    )
    resolution = (
        Q(closed_at__isnull=True, waiting_since__isnull=True, resolution_due_at__lt=now)
        | Q(closed_at__isnull=True, waiting_since__isnull=False, resolution_due_at__lt=F("waiting_since"))
        | Q(closed_at__gt=F("resolution_due_at"))
    )
    return response | resolution


class CaseStatusFilter(admin.SimpleListFilter):
    """Open cases unless another status is chosen. A list of one account's cases (the account page links to
    it) shows all of them."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [(OPEN, "Open cases"), *Dispute.State.choices, (ALL, "All cases")]

    def value(self):
        chosen = super().value()
        if chosen:
            return chosen
        return ALL if self.account_chosen else OPEN

    def __init__(self, request, params, model, model_admin):
        self.account_chosen = any(key.startswith("account__") or key == "account" for key in request.GET)
        super().__init__(request, params, model, model_admin)

    def choices(self, changelist):
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == str(lookup),
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        value = self.value()
        if value == OPEN:
            return queryset.filter(state__in=Dispute.OPEN_STATES)
        if value in Dispute.State.values:
            return queryset.filter(state=value)
        return queryset


class AssigneeFilter(admin.SimpleListFilter):
    title = "assignee"
    parameter_name = "assignee"

    def lookups(self, request, model_admin):
        return [("me", "Me"), ("none", "Unassigned"), ("others", "Someone else")]

    def choices(self, changelist):
        choices = list(super().choices(changelist))
        choices[0]["display"] = "Anyone"
        return choices

    def queryset(self, request, queryset):
        value = self.value()
        if value == "me":
            return queryset.filter(assigned_to=request.user)
        if value == "none":
            return queryset.filter(assigned_to__isnull=True)
        if value == "others":
            return queryset.exclude(assigned_to__isnull=True).exclude(assigned_to=request.user)
        return queryset


# Age buckets: (value, label, at least, less than), measured from the opening.
AGE_BUCKETS = (
    ("lt1d", "Under a day", dt.timedelta(0), dt.timedelta(days=1)),
    ("1to3d", "1 to 3 days", dt.timedelta(days=1), dt.timedelta(days=3)),
    ("3to7d", "3 to 7 days", dt.timedelta(days=3), dt.timedelta(days=7)),
    ("gt7d", "Over 7 days", dt.timedelta(days=7), None),
)


class AgeFilter(admin.SimpleListFilter):
    title = "age"
    parameter_name = "age"

    def lookups(self, request, model_admin):
        return [(value, label) for value, label, _, _ in AGE_BUCKETS]

    def queryset(self, request, queryset):
        now = clock.now()
        for value, _, at_least, less_than in AGE_BUCKETS:
            if self.value() == value:
                queryset = queryset.filter(opened_at__lte=now - at_least)
                if less_than is not None:
                    queryset = queryset.filter(opened_at__gt=now - less_than)
        return queryset


class SlaFilter(admin.SimpleListFilter):
    title = "SLA"
    parameter_name = "sla"

    def lookups(self, request, model_admin):
        return [("breached", "Breached"), ("on_track", "On track")]

    def queryset(self, request, queryset):
        if self.value() == "breached":
            return queryset.filter(breach_condition(clock.now()))
        if self.value() == "on_track":
            return queryset.exclude(breach_condition(clock.now()))
        return queryset


@admin.register(Dispute)
class DisputeAdmin(ServiceAdmin):
    # Fits a 1366 px screen beside the filters: the id links to the case page.
    list_display = (
        "case_id",
        "account_name",
        "invoice_number",
        "subject_short",
        "state_shown",
        "assignee",
        "age",
        "sla_shown",
        "updated",
    )
    list_display_links = ("case_id",)
    list_filter = (CaseStatusFilter, AssigneeFilter, AgeFilter, SlaFilter, "category", "source")
    search_fields = ("=public_id", "=account__public_id", "account__name", "=invoice__number")
    search_help_text = "Case id (dsp_…), account id (acc_…) or name, or invoice number."
    list_select_related = ("account", "invoice", "assigned_to")
    actions = ("assign_to_me",)
    list_per_page = 50

    def get_queryset(self, request):
        return dispute_queue(now=clock.now())

    def get_ordering(self, request):
        # The selector's order: open cases past a target first, then the oldest (closed ones last).
        return ("is_closed", "-breach", "opened_at")

    def has_add_permission(self, request):
        return request.user.has_perm(admin_views.PERM_ADD)

    def has_delete_permission(self, request, obj=None):
        return False

    # --- Columns ---------------------------------------------------------------------------------------

    @admin.display(description="ID", ordering="public_id")
    def case_id(self, dispute):
        return dispute.public_id

    @admin.display(description="Account", ordering="account__name")
    def account_name(self, dispute):
        return truncated(dispute.account.name, 22)

    @admin.display(description="Invoice", ordering="invoice__number")
    def invoice_number(self, dispute):
        if not dispute.invoice_id:
            return "–"
        return format_html('<span style="white-space: nowrap">{}</span>', dispute.invoice.number)

    @admin.display(description="Subject", ordering="subject")
    def subject_short(self, dispute):
        return truncated(dispute.subject, 30)

    @admin.display(description="State", ordering="state")
    def state_shown(self, dispute):
        if dispute.resolution:
            return f"{dispute.get_state_display()} ({dispute.resolution})"
        return dispute.get_state_display()

    @admin.display(description="Assignee", ordering="assigned_to__username")
    def assignee(self, dispute):
        return admin_views.actor_name(dispute.assigned_to) if dispute.assigned_to_id else "–"

    @admin.display(description="Age", ordering="opened_at")
    def age(self, dispute):
        return admin_views.duration_text((dispute.closed_at or clock.now()) - dispute.opened_at)

    @admin.display(description="SLA", ordering="-breach")
    def sla_shown(self, dispute):
        return admin_views.sla_cell(dispute, clock.now())

    @admin.display(description="Last update", ordering="updated_at")
    def updated(self, dispute):
        return format_datetime(dispute.updated_at)

    # --- Actions -----------------------------------------------------------------------------------------

    @admin.action(description="Assign to me", permissions=["change"])
    def assign_to_me(self, request, queryset):
        run_action(
            self,
            request,
            queryset,
            lambda dispute, actor: dispute_assign(dispute=dispute, assignee=actor, actor=actor),
            "{count} case(s) assigned to you.",
        )

    # --- The pages: opening a case, the case page and its actions ----------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view

        def bound(function):
            return view(lambda request, *args, **kwargs: function(self, request, *args, **kwargs))

        return [
            path("<int:object_id>/act/<str:action>/", bound(admin_views.act_view), name="disputes_dispute_act"),
            path("<int:object_id>/credit/", bound(admin_views.credit_view), name="disputes_dispute_credit"),
            path(
                "<int:object_id>/evidence.csv",
                bound(admin_views.evidence_csv_view),
                name="disputes_dispute_evidence_csv",
            ),
            path(
                "<int:object_id>/attachments/<str:token>/",
                bound(admin_views.attachment_view),
                name="disputes_dispute_attachment",
            ),
            *super().get_urls(),
        ]

    def add_view(self, request, form_url="", extra_context=None):
        return admin_views.open_view(self, request)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return admin_views.case_view(self, request, object_id)
