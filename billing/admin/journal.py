"""The general-ledger accounts the ERP journal posts to, and the month's journal as CSV.

Finance admin adds and changes accounts (``billing.add_glaccount``, ``billing.change_glaccount``, checked again by
``billing.services.journal``); billing staff see them and download the journal (``billing.view_glaccount``).
Nothing is deleted here: an account in use by past journals keeps its row (change its code or name instead).
"""

from __future__ import annotations

import csv

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.urls import path, reverse

from billing.journal import journal_rows, month_journal
from billing.models import GlAccount
from billing.services.journal import gl_account_create, gl_account_update
from common import clock
from common.admin_utils import ServiceAdmin, adopt, changed_data
from common.periods import month_containing, parse_month, previous_month

ERR_MONTH = "Give the journal's month as YYYY-MM."


class _Echo:
    def write(self, value: str) -> str:
        return value


def journal_csv_response(rows, filename: str) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse((writer.writerow(row) for row in rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    return response


@admin.register(GlAccount)
class GlAccountAdmin(ServiceAdmin):
    list_display = ("code", "name", "kind", "metric_code")
    list_filter = ("kind",)
    search_fields = ("code", "name", "metric_code")
    ordering = ("code",)

    def get_fields(self, request, obj=None):
        return ("kind", "metric_code", "code", "name")

    def get_readonly_fields(self, request, obj=None):
        # What an account is for stays; its code and name are Finance admin's to change.
        return ("kind", "metric_code") if obj is not None else ()

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            saved = gl_account_update(
                account=GlAccount.objects.get(pk=obj.pk), data=changed_data(form, ("code", "name")), actor=request.user
            )
        else:
            saved = gl_account_create(
                kind=data["kind"],
                metric_code=data.get("metric_code", ""),
                code=data["code"],
                name=data["name"],
                actor=request.user,
            )
        adopt(obj, saved)

    def changelist_view(self, request, extra_context=None):
        last_month = previous_month(month_containing(clock.now()))
        extra_context = {**(extra_context or {}), "journal_month": f"{last_month.start:%Y-%m}"}
        return super().changelist_view(request, extra_context)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("journal/", view(self.journal_view), name="billing_glaccount_journal"),
            *super().get_urls(),
        ]

    def journal_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            period = parse_month(request.GET.get("month", ""))
        except ValueError:
            self.message_user(request, ERR_MONTH, messages.ERROR)
            return HttpResponseRedirect(reverse("admin:billing_glaccount_changelist"))
        journal = month_journal(period=period)
        return journal_csv_response(journal_rows(journal.lines), f"journal-{journal.reference}.csv")
