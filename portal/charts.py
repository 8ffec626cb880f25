"""Bar charts as inline SVG, drawn on the server: no JavaScript, no build step, readable without styles.

Each chart is a ``<figure>``: the SVG (``role="img"`` with a ``<title>``, a ``<desc>`` and an ``aria-label``
summing it up, axis labels, one ``<title>`` per bar for pointer users), a legend when several series are
stacked, and the same figures as a table inside a ``<details>`` for screen readers and for copying.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from decimal import Decimal

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from billing.quantities import MetricLike, format_metric_quantity

# Graphical objects need 3:1 against white (WCAG 1.4.11); each of these has at least 4.5:1.
PALETTE = ["#0b57d0", "#0a6b2d", "#8a5300", "#b3261e", "#6a1b9a", "#00695c", "#37474f", "#ad1457"]
_ids = itertools.count(1)


@dataclass
class Series:
    label: str
    values: list[Decimal]


def number(value: Decimal | int) -> str:
    """An axis tick: thousands separated, no trailing zeros, at most 2 decimals above 1 (the bars' own
    figures follow their metric's rule, ``billing.quantities``)."""
    value = Decimal(value)
    if value == value.to_integral():
        return f"{value:,.0f}"
    places = 2 if abs(value) >= 1 else 4
    text = f"{value:,.{places}f}".rstrip("0").rstrip(".")
    return text


def _nice_ceiling(value: Decimal) -> Decimal:
    """The smallest 1, 2, 2.5 or 5 × 10ⁿ at or above ``value`` (a readable top for the y axis)."""
    if value <= 0:
        return Decimal(1)
    exponent = value.adjusted()
    for step in (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10)):
        candidate = step.scaleb(exponent)
        if candidate >= value:
            return candidate
    return Decimal(10).scaleb(exponent)


def bar_chart(
    *,
    title: str,
    days: list[dt.date],
    series: list[Series],
    unit: str,
    metric: MetricLike | None = None,
    width: int = 640,
    height: int = 220,
) -> SafeString:
    """Daily bars; several series are stacked (one colour each, with a legend). Figures are shown by
    ``metric``'s rule, as everywhere else in the portal."""
    chart_id = f"chart-{next(_ids)}"

    def figure(value: Decimal) -> str:
        return format_metric_quantity(value, metric)

    left, right, top, bottom = 64, 8, 12, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum((s.values[i] for s in series), Decimal(0)) for i in range(len(days))]
    peak = max(totals, default=Decimal(0))
    ceiling = _nice_ceiling(peak)
    slot = plot_w / max(len(days), 1)
    bar_w = max(slot * 0.7, 1)

    def y(value: Decimal) -> float:
        return top + plot_h - float(value / ceiling) * plot_h

    parts: list[str] = []
    # Grid lines and y ticks at round steps: quarters of a 2 × 10ⁿ top, fifths of the others.
    steps = 4 if ceiling.scaleb(-ceiling.adjusted()) == 2 else 5
    for q in range(steps + 1):
        tick = ceiling * q / steps
        ty = y(tick)
        parts.append(
            format_html(
                '<line x1="{}" x2="{}" y1="{}" y2="{}" class="grid"/>'
                '<text x="{}" y="{}" text-anchor="end" class="tick">{}</text>',
                left,
                width - right,
                f"{ty:.1f}",
                f"{ty:.1f}",
                left - 6,
                f"{ty + 4:.1f}",
                number(tick),
            )
        )
    for i, day in enumerate(days):
        x = left + i * slot + (slot - bar_w) / 2
        base = Decimal(0)
        for n, s in enumerate(series):
            value = s.values[i]
            if value <= 0:
                continue
            y_top, y_base = y(base + value), y(base)
            label = f"{day:%b} {day.day}: {figure(value)} {unit}" + (f" ({s.label})" if len(series) > 1 else "")
            parts.append(
                format_html(
                    '<rect class="bar" x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}</title></rect>',
                    f"{x:.1f}",
                    f"{y_top:.1f}",
                    f"{bar_w:.1f}",
                    f"{max(y_base - y_top, 0.5):.1f}",
                    PALETTE[n % len(PALETTE)],
                    label,
                )
            )
            base += value
        # Every day on a short month fits; otherwise every few days, and always the first.
        every = 1 if len(days) <= 10 else 5
        if i == 0 or (day.day % every == 0):
            parts.append(
                format_html(
                    '<text x="{}" y="{}" text-anchor="middle" class="tick">{}</text>',
                    f"{left + i * slot + slot / 2:.1f}",
                    top + plot_h + 18,
                    day.day,
                )
            )
    parts.append(
        format_html(
            '<line x1="{}" x2="{}" y1="{}" y2="{}" class="axis"/>'
            '<text x="{}" y="{}" text-anchor="middle" class="axis-label">Day of {} (UTC)</text>'
            '<text x="14" y="{}" text-anchor="middle" class="axis-label" transform="rotate(-90 14 {})">{}</text>',
            left,
            width - right,
            top + plot_h,
            top + plot_h,
            left + plot_w / 2,
            height - 4,
            f"{days[0]:%B}" if days else "the month",
            f"{top + plot_h / 2:.1f}",
            f"{top + plot_h / 2:.1f}",
            unit,
        )
    )
    busiest = max(range(len(days)), key=lambda i: totals[i]) if days and peak > 0 else None
    summary = (
        f"{title}: {len(days)} days, {figure(sum(totals, Decimal(0)))} {unit} in all"
        + (f", busiest {days[busiest]:%b} {days[busiest].day} with {figure(peak)}" if busiest is not None else "")
        + "."
    )
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
    legend = ""
    if len(series) > 1:
        legend = format_html(
            '<ul class="legend">{}</ul>',
            format_html_join(
                "",
                '<li><span class="swatch" style="background:{}" aria-hidden="true"></span>{}</li>',
                ((PALETTE[n % len(PALETTE)], s.label) for n, s in enumerate(series)),
            ),
        )
    head = format_html_join("", '<th scope="col" class="num">{}</th>', ((s.label,) for s in series))
    if len(series) > 1:
        head = format_html('{}<th scope="col" class="num">Total</th>', head)
    rows = format_html_join(
        "",
        '<tr><th scope="row">{}</th>{}</tr>',
        (
            (
                f"{day:%b} {day.day}",
                format_html_join(
                    "",
                    '<td class="num">{}</td>',
                    [(figure(s.values[i]),) for s in series] + ([(figure(totals[i]),)] if len(series) > 1 else []),
                ),
            )
            for i, day in enumerate(days)
        ),
    )
    table = format_html(
        '<details class="chart-data"><summary>{} as a table</summary><div class="table-wrap"><table>'
        '<caption class="visually-hidden">{} ({})</caption><thead><tr><th scope="col">Day</th>{}</tr></thead>'
        "<tbody>{}</tbody></table></div></details>",
        title,
        title,
        unit,
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
