"""Departments: which department each master partner and tenant belongs to, the month's cost per department
(``billing.allocation``), and the month's ERP journal as CSV (``billing.journal``).

Owners and admins assign departments; billing users and members read them (a POST from them is a 403). Partners
and tenants are looked up through ``request.account``: another account's is a 404. Every change goes through
``tenants.services`` with ``actor=request.user`` and is kept in the partner's or tenant's history.
"""

from __future__ import annotations

import csv
from decimal import Decimal

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_http_methods

from accounts.models import Account, AccountUser
from billing.allocation import RULE, UNALLOCATED, DepartmentRow, latest_allocated_month, month_allocation
from billing.journal import journal_rows, month_journal
from common import clock
from common.errors import BillingError
from common.money import format_money
from common.periods import Period, month_containing, parse_month, previous_month
from portal.access import portal_view
from portal.charts import PALETTE, _nice_ceiling
from tenants.models import MasterPartner, Tenant
from tenants.services import partner_update, tenant_update

Role = AccountUser.Role
MANAGE_DEPARTMENTS = (Role.OWNER, Role.ADMIN)
DOWNLOAD_JOURNAL = (Role.OWNER, Role.ADMIN, Role.BILLING)
DEPARTMENT_MAX_LENGTH = 120

ERR_MONTH = "Give the month as YYYY-MM."
ERR_UNALLOCATED_NAME = f"“{UNALLOCATED}” is where usage without a department goes; leave the field empty instead."
DEPARTMENT_HELP = (
    "Usage sent for a master partner goes to the partner's department; other usage goes to its tenant's "
    "department; usage of neither is “Unallocated”. Leave empty for none."
)


def _can_manage(request) -> bool:
    return request.membership.role in MANAGE_DEPARTMENTS


def _clean_department(value: str) -> str:
    value = " ".join(value.split())
    if value.casefold() == UNALLOCATED.casefold():
        raise ValidationError(ERR_UNALLOCATED_NAME)
    return value


class DepartmentForm(forms.Form):
    department = forms.CharField(max_length=DEPARTMENT_MAX_LENGTH, required=False, help_text=DEPARTMENT_HELP)

    def clean_department(self):
        return _clean_department(self.cleaned_data["department"])


class DepartmentsForm(forms.Form):
    """One department field per partner (``partner:<id>``) and per live tenant (``tenant:<id>``)."""

    def __init__(self, *args, partners: list[MasterPartner], tenants: list[Tenant], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.partners, self.tenants = partners, tenants
        for partner in partners:
            self.fields[f"partner:{partner.public_id}"] = forms.CharField(
                label=f"{partner.name} ({partner.public_id})",
                max_length=DEPARTMENT_MAX_LENGTH,
                required=False,
                initial=partner.department,
            )
        for tenant in tenants:
            if tenant.status != Tenant.Status.ARCHIVED:
                self.fields[f"tenant:{tenant.public_id}"] = forms.CharField(
                    label=f"{tenant.name} ({tenant.public_id})",
                    max_length=DEPARTMENT_MAX_LENGTH,
                    required=False,
                    initial=tenant.department,
                )

    def clean(self):
        data = super().clean()
        for name, value in list(data.items()):
            try:
                data[name] = _clean_department(value or "")
            except ValidationError as exc:
                self.add_error(name, exc)
        return data

    def partner_rows(self):
        return [(p, self[f"partner:{p.public_id}"]) for p in self.partners]

    def tenant_rows(self):
        return [
            (t, self[f"tenant:{t.public_id}"] if f"tenant:{t.public_id}" in self.fields else None) for t in self.tenants
        ]


def _partners(account: Account) -> list[MasterPartner]:
    return list(MasterPartner.objects.filter(account=account).order_by("name", "public_id"))


def _tenants(account: Account) -> list[Tenant]:
    return list(Tenant.objects.filter(account=account).order_by("name", "public_id"))


@transaction.atomic
def _save_all(form: DepartmentsForm, actor) -> int:
    changed = 0
    for partner in form.partners:
        value = form.cleaned_data[f"partner:{partner.public_id}"]
        if value != partner.department:
            partner_update(partner=partner, data={"department": value}, actor=actor)
            changed += 1
    for tenant in form.tenants:
        key = f"tenant:{tenant.public_id}"
        if key in form.cleaned_data and form.cleaned_data[key] != tenant.department:
            tenant_update(tenant=tenant, data={"department": form.cleaned_data[key]}, actor=actor)
            changed += 1
    return changed


@portal_view
@require_http_methods(["GET", "POST"])
def departments(request):
    partners, tenants = _partners(request.account), _tenants(request.account)
    can_manage = _can_manage(request)
    if request.method == "POST" and not can_manage:
        return _forbidden(request)
    form = DepartmentsForm(request.POST or None, partners=partners, tenants=tenants)
    if request.method == "POST" and form.is_valid():
        try:
            changed = _save_all(form, request.user)
        except (BillingError, ValidationError) as exc:
            form.add_error(None, getattr(exc, "message", None) or "; ".join(exc.messages))
        else:
            messages.success(request, f"Departments saved ({changed} change{'s' if changed != 1 else ''}).")
            return redirect("portal:departments")
    known = sorted({p.department for p in partners if p.department} | {t.department for t in tenants if t.department})
    return render(
        request,
        "portal/departments.html",
        {"form": form, "can_manage": can_manage, "known": known, "help": DEPARTMENT_HELP, "rule": RULE},
        status=400 if form.is_bound and form.errors else 200,
    )


def _forbidden(request):
    names = ", ".join(Role(r).label.lower() for r in MANAGE_DEPARTMENTS)
    return render(
        request,
        "portal/forbidden.html",
        {"membership": request.membership, "account": request.account, "allowed": names},
        status=403,
    )


def _edit_one(request, obj, kind: str, save):
    form = DepartmentForm(request.POST or None, initial={"department": obj.department})
    if request.method == "POST":
        if not _can_manage(request):
            return _forbidden(request)
        if form.is_valid():
            try:
                save(form.cleaned_data["department"])
            except (BillingError, ValidationError) as exc:
                form.add_error(None, getattr(exc, "message", None) or "; ".join(exc.messages))
            else:
                messages.success(request, f"Department of {obj.name} saved.")
                return redirect("portal:departments")
    return render(
        request,
        "portal/department_edit.html",
        {"form": form, "object": obj, "kind": kind, "can_manage": _can_manage(request)},
        status=400 if form.is_bound and form.errors else 200,
    )


@portal_view
@require_http_methods(["GET", "POST"])
def partner_department(request, public_id):
    partner = get_object_or_404(MasterPartner, account=request.account, public_id=public_id)
    return _edit_one(
        request,
        partner,
        "master partner",
        lambda value: partner_update(partner=partner, data={"department": value}, actor=request.user),
    )


@portal_view
@require_http_methods(["GET", "POST"])
def tenant_department(request, public_id):
    tenant = get_object_or_404(Tenant, account=request.account, public_id=public_id)
    return _edit_one(
        request,
        tenant,
        "tenant",
        lambda value: tenant_update(tenant=tenant, data={"department": value}, actor=request.user),
    )


# --- Allocation ----------------------------------------------------------------------------------------------


def _month(request, default: Period) -> tuple[Period, str | None]:
    raw = request.GET.get("month")
    if not raw:
        return default, None
    try:
        return parse_month(raw), None
    except ValueError:
        return default, ERR_MONTH


def department_chart(rows: list[DepartmentRow], currency: str, title: str) -> SafeString:
    """Horizontal bars of the departments' totals, drawn like the dashboard's charts (``portal.charts``): an
    SVG with a title, a summary and one ``<title>`` per bar, then the figures as a table."""
    chart_id = f"departments-{id(rows)}"
    left, right, top, bar_h, gap = 150, 96, 8, 20, 10
    width = 640
    height = top + len(rows) * (bar_h + gap) + 24
    peak = max((row.total for row in rows), default=Decimal(0))
    ceiling = _nice_ceiling(peak)
    plot_w = width - left - right
    parts = []
    for i, row in enumerate(rows):
        y = top + i * (bar_h + gap)
        w = float(max(row.total, Decimal(0)) / ceiling) * plot_w
        parts.append(
            format_html(
                '<text x="{}" y="{}" text-anchor="end" class="tick">{}</text>'
                '<rect class="bar" x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}: {}</title></rect>'
                '<text x="{}" y="{}" class="tick">{}</text>',
                left - 6,
                y + bar_h - 6,
                row.department if len(row.department) <= 22 else row.department[:21] + "…",
                left,
                y,
                f"{max(w, 0.5):.1f}",
                bar_h,
                PALETTE[i % len(PALETTE)],
                row.department,
                format_money(row.total, currency),
                f"{left + w + 4:.1f}",
                y + bar_h - 6,
                format_money(row.total, currency),
            )
        )
    axis_y = top + len(rows) * (bar_h + gap)
    parts.append(
        format_html(
            '<line x1="{}" x2="{}" y1="{}" y2="{}" class="axis"/>'
            '<text x="{}" y="{}" text-anchor="middle" class="axis-label">{} (tax included)</text>',
            left,
            width - right,
            axis_y,
            axis_y,
            left + plot_w / 2,
            axis_y + 18,
            currency,
        )
    )
    summary = f"{title}: " + "; ".join(f"{row.department} {format_money(row.total, currency)}" for row in rows) + "."
    svg = format_html(
        '<svg class="chart" viewBox="0 0 {w} {h}" width="100%" preserveAspectRatio="xMidYMid meet" role="img"'
        ' aria-label="{summary}" aria-describedby="{id}-desc"><title id="{id}-title">{title}</title>'
        '<desc id="{id}-desc">{summary} The data table below the chart has every figure.</desc>{body}</svg>',
        w=width,
        h=height,
        id=chart_id,
        title=title,
        summary=summary,
        body=mark_safe("".join(parts)),  # noqa: S308 - every part above is built with format_html
    )
    table = format_html(
        '<details class="chart-data"><summary>{} as a table</summary><div class="table-wrap"><table>'
        '<caption class="visually-hidden">{}</caption><thead><tr><th scope="col">Department</th>'
        '<th scope="col" class="num">Total</th></tr></thead><tbody>{}</tbody></table></div></details>',
        title,
        title,
        format_html_join(
            "",
            '<tr><th scope="row">{}</th><td class="num">{}</td></tr>',
            ((row.department, format_money(row.total, currency)) for row in rows),
        ),
    )
    return format_html(
        '<figure class="chart-figure" aria-labelledby="{}-caption">{}<figcaption id="{}-caption">{}</figcaption>{}'
        "</figure>",
        chart_id,
        svg,
        chart_id,
        title,
        table,
    )


@portal_view
def allocation(request):
    latest = latest_allocated_month(account=request.account)
    default = parse_month(f"{latest:%Y-%m}") if latest else previous_month(month_containing(clock.now()))
    period, error = _month(request, default)
    result = month_allocation(account=request.account, period=period)
    title = f"Cost per department, {period.start:%B %Y}"
    return render(
        request,
        "portal/allocation.html",
        {
            "allocation": result,
            "period": period,
            "month_value": f"{period.start:%Y-%m}",
            "month_error": error,
            "chart": department_chart(result.rows, result.currency, title) if result.rows else None,
            "title": title,
            "rule": RULE,
            "can_download_journal": request.membership.role in DOWNLOAD_JOURNAL,
            "journal_url": f"{reverse('portal:journal_csv')}?month={period.start:%Y-%m}",
        },
        status=400 if error else 200,
    )


class _Echo:
    def write(self, value: str) -> str:
        return value


@portal_view(roles=DOWNLOAD_JOURNAL)
def journal_csv(request):
    period, error = _month(request, previous_month(month_containing(clock.now())))
    if error:
        messages.error(request, error)
        return redirect("portal:allocation")
    journal = month_journal(period=period, accounts=Account.objects.filter(pk=request.account.pk))
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in journal_rows(journal.lines)), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="journal-{journal.reference}.csv"'
    response["Cache-Control"] = "private, no-store"
    return response
