"""Cost analysis: what a range of months cost (``insights.analysis``) per month, charge, tenant, master partner
and premium feature, the unit costs, each month's change explained, and the efficiency metrics
(``insights.efficiency``). Every role of the account reads it; figures are the account's own
(``request.account``), so another account's tenants never appear.

The charts are drawn on the server like the dashboard's (``portal.charts``): an SVG with a title, a summary and
one ``<title>`` per bar, then the figures as a table in a ``<details>``."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from decimal import Decimal

from django.shortcuts import render
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from common import clock
from common.errors import BillingError
from common.money import format_money
from insights.analysis import CostAnalysis, cost_analysis
from insights.apis_analysis import default_range, requested_range
from insights.efficiency import efficiency
from insights.selectors import RISKS, recommendations_for
from portal.access import portal_view
from portal.charts import PALETTE, Series, _nice_ceiling, grid_lines
from portal.views.forecast import forecast_summary_context
from portal.views.recommendations import recommendation_cards

MAX_TENANT_BARS = 12
# The biggest savings shown on the page (the Recommendations page has them all, and the risks).
TOP_RECOMMENDATIONS = 3
_chart_ids = itertools.count(1)


def _chart_svg(*, chart_id: str, title: str, summary: str, width: int, height: int, parts: list[str]) -> SafeString:
    return format_html(
        '<svg class="chart" viewBox="0 0 {w} {h}" width="100%" preserveAspectRatio="xMidYMid meet" role="img"'
        ' aria-label="{summary}" aria-describedby="{id}-desc"><title id="{id}-title">{title}</title>'
        '<desc id="{id}-desc">{summary} The data table below the chart has every figure.</desc>{body}</svg>',
        w=width,
        h=height,
        id=chart_id,
        title=title,
        summary=summary,
        body=mark_safe("".join(parts)),  # noqa: S308 - every part is built with format_html
    )


def stacked_column_chart(
    *,
    title: str,
    categories: list[str],
    series: list[Series],
    unit: str,
    figure: Callable[[Decimal], str],
    first_column: str = "Month",
    width: int = 640,
    height: int = 240,
) -> SafeString:
    """One column per category (e.g. a month), its series stacked (one colour each, with a legend), drawn like
    ``bar_chart``; ``figure`` formats a value (e.g. money). Negative values (discounts) are not drawn; the
    table has them, and its Total column is every series added up."""
    chart_id = f"analysis-chart-{next(_chart_ids)}"
    left, right, top, bottom = 84, 8, 12, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    stacks = [sum((max(s.values[i], Decimal(0)) for s in series), Decimal(0)) for i in range(len(categories))]
    totals = [sum((s.values[i] for s in series), Decimal(0)) for i in range(len(categories))]
    ceiling = _nice_ceiling(max(stacks, default=Decimal(0)))
    slot = plot_w / max(len(categories), 1)
    bar_w = max(min(slot * 0.6, 72), 1)

    def y(value: Decimal) -> float:
        return top + plot_h - float(value / ceiling) * plot_h

    parts: list[str] = []
    parts.extend(grid_lines(ceiling=ceiling, left=left, right=width - right, y=y))
    for i, category in enumerate(categories):
        x = left + i * slot + (slot - bar_w) / 2
        base = Decimal(0)
        for n, s in enumerate(series):
            value = s.values[i]
            if value <= 0:
                continue
            y_top, y_base = y(base + value), y(base)
            parts.append(
                format_html(
                    '<rect class="bar" x="{}" y="{}" width="{}" height="{}" fill="{}">'
                    "<title>{}: {} ({})</title></rect>",
                    f"{x:.1f}",
                    f"{y_top:.1f}",
                    f"{bar_w:.1f}",
                    f"{max(y_base - y_top, 0.5):.1f}",
                    PALETTE[n % len(PALETTE)],
                    category,
                    figure(value),
                    s.label,
                )
            )
            base += value
        parts.append(
            format_html(
                '<text x="{}" y="{}" text-anchor="middle" class="tick">{}</text>',
                f"{left + i * slot + slot / 2:.1f}",
                top + plot_h + 18,
                category,
            )
        )
    parts.append(
        format_html(
            '<line x1="{}" x2="{}" y1="{}" y2="{}" class="axis"/>'
            '<text x="14" y="{}" text-anchor="middle" class="axis-label" transform="rotate(-90 14 {})">{}</text>',
            left,
            width - right,
            top + plot_h,
            top + plot_h,
            f"{top + plot_h / 2:.1f}",
            f"{top + plot_h / 2:.1f}",
            unit,
        )
    )
    summary = f"{title}: " + "; ".join(f"{c} {figure(t)}" for c, t in zip(categories, totals, strict=True)) + "."
    svg = _chart_svg(chart_id=chart_id, title=title, summary=summary, width=width, height=height, parts=parts)
    legend = format_html(
        '<ul class="legend">{}</ul>',
        format_html_join(
            "",
            '<li><span class="swatch" style="background:{}" aria-hidden="true"></span>{}</li>',
            ((PALETTE[n % len(PALETTE)], s.label) for n, s in enumerate(series)),
        ),
    )
    head = format_html_join("", '<th scope="col" class="num">{}</th>', ((s.label,) for s in series))
    rows = format_html_join(
        "",
        '<tr><th scope="row">{}</th>{}<td class="num">{}</td></tr>',
        (
            (
                category,
                format_html_join("", '<td class="num">{}</td>', [(figure(s.values[i]),) for s in series]),
                figure(totals[i]),
            )
            for i, category in enumerate(categories)
        ),
    )
    table = format_html(
        '<details class="chart-data"><summary>{} as a table</summary><div class="table-wrap"><table>'
        '<caption class="visually-hidden">{} ({})</caption><thead><tr><th scope="col">{}</th>{}'
        '<th scope="col" class="num">Total</th></tr></thead><tbody>{}</tbody></table></div></details>',
        title,
        title,
        unit,
        first_column,
        head,
        rows,
    )
    return format_html(
        '<figure class="chart-figure" aria-labelledby="{}-caption">{}<figcaption id="{}-caption">{}{}</figcaption>{}'
        "</figure>",
        chart_id,
        svg,
        chart_id,
        title,
        legend,
        table,
    )


def horizontal_bar_chart(
    *,
    title: str,
    rows: list[tuple[str, Decimal]],
    unit: str,
    figure: Callable[[Decimal], str],
    first_column: str = "Name",
    width: int = 640,
) -> SafeString:
    """One horizontal bar per row (label, value), its figure beside it, then the figures as a table: the
    shape of the Allocation page's department chart, for any rows."""
    chart_id = f"analysis-chart-{next(_chart_ids)}"
    left, right, top, bar_h, gap = 170, 110, 8, 20, 10
    height = top + len(rows) * (bar_h + gap) + 24
    ceiling = _nice_ceiling(max((value for _, value in rows), default=Decimal(0)))
    plot_w = width - left - right
    parts: list[str] = []
    for i, (label, value) in enumerate(rows):
        y = top + i * (bar_h + gap)
        w = float(max(value, Decimal(0)) / ceiling) * plot_w
        parts.append(
            format_html(
                '<text x="{}" y="{}" text-anchor="end" class="tick">{}</text>'
                '<rect class="bar" x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}: {}</title></rect>'
                '<text x="{}" y="{}" class="tick">{}</text>',
                left - 6,
                y + bar_h - 6,
                label if len(label) <= 26 else label[:25] + "…",
                left,
                y,
                f"{max(w, 0.5):.1f}",
                bar_h,
                PALETTE[i % len(PALETTE)],
                label,
                figure(value),
                f"{left + w + 4:.1f}",
                y + bar_h - 6,
                figure(value),
            )
        )
    axis_y = top + len(rows) * (bar_h + gap)
    parts.append(
        format_html(
            '<line x1="{}" x2="{}" y1="{}" y2="{}" class="axis"/>'
            '<text x="{}" y="{}" text-anchor="middle" class="axis-label">{}</text>',
            left,
            width - right,
            axis_y,
            axis_y,
            left + plot_w / 2,
            axis_y + 18,
            unit,
        )
    )
    summary = f"{title}: " + "; ".join(f"{label} {figure(value)}" for label, value in rows) + "."
    svg = _chart_svg(chart_id=chart_id, title=title, summary=summary, width=width, height=height, parts=parts)
    table = format_html(
        '<details class="chart-data"><summary>{} as a table</summary><div class="table-wrap"><table>'
        '<caption class="visually-hidden">{}</caption><thead><tr><th scope="col">{}</th>'
        '<th scope="col" class="num">{}</th></tr></thead><tbody>{}</tbody></table></div></details>',
        title,
        title,
        first_column,
        unit,
        format_html_join(
            "", '<tr><th scope="row">{}</th><td class="num">{}</td></tr>', ((lb, figure(v)) for lb, v in rows)
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


# --- The page ------------------------------------------------------------------------------------------------


def _month_label(month: dt.date, estimate: bool) -> str:
    return f"{month:%b %Y}" + (" (est.)" if estimate else "")


def month_chart(analysis: CostAnalysis) -> SafeString:
    """Cost per month, stacked per charge."""
    currency = analysis.currency
    keys = [c.key for c in analysis.charges]
    labels = {c.key: c.label for c in analysis.charges}
    series = [
        Series(
            label=labels[key],
            values=[next((c.amount for c in m.charges if c.key == key), Decimal(0)) for m in analysis.months],
        )
        for key in keys
    ]
    return stacked_column_chart(
        title="Cost per month, per charge (before tax)",
        categories=[_month_label(m.month, m.is_estimate) for m in analysis.months],
        series=series,
        unit=currency,
        figure=lambda v: format_money(v, currency),
    )


def tenant_chart(analysis: CostAnalysis) -> SafeString:
    currency = analysis.currency
    rows = [(t.label, t.total) for t in analysis.tenants[:MAX_TENANT_BARS]]
    return horizontal_bar_chart(
        title="Cost per tenant over the range (before tax)",
        rows=rows,
        unit=currency,
        figure=lambda v: format_money(v, currency),
        first_column="Tenant",
    )


@portal_view
def analysis_page(request):
    now = clock.now()
    error: BillingError | None = None
    try:
        start, end = requested_range(request.GET, now)
    except BillingError as exc:
        error = exc
        start, end = default_range(now)
    analysis = cost_analysis(account=request.account, start_month=start, end_month=end, now=now)
    eff = efficiency(account=request.account, analysis=analysis, now=now)
    # The stored recommendations only: re-rating is the Recommendations page's (and the nightly run's) work.
    top = list(
        recommendations_for(account=request.account)
        .exclude(kind__in=RISKS)
        .filter(saving_monthly__gt=0)[:TOP_RECOMMENDATIONS]
    )
    return render(
        request,
        "portal/analysis.html",
        {
            "analysis": analysis,
            "efficiency": eff,
            "currency": analysis.currency,
            "from_value": f"{start:%Y-%m}",
            "to_value": f"{end:%Y-%m}",
            "error": error,
            "month_chart": month_chart(analysis) if analysis.charges else None,
            "tenant_chart": tenant_chart(analysis) if analysis.tenants else None,
            "latest_change": next((m.change for m in reversed(analysis.months) if m.change), None),
            **recommendation_cards(request, top, risks=False, all_url=reverse("portal:recommendations")),
            **forecast_summary_context(request.account, now),
        },
        status=400 if error else 200,
    )
