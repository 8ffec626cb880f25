"""Bar charts as inline SVG, drawn on the server: no JavaScript, no build step, readable without styles.

Each chart is a ``<figure>``: the SVG (``role="img"`` with a ``<title>``, a ``<desc>`` and an ``aria-label``
summing it up, axis labels, one ``<title>`` per bar for pointer users), a legend when several series are
stacked, and the same figures as a table inside a ``<details>`` for screen readers and for copying.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
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


def grid_lines(*, ceiling: Decimal, left: float, right: float, y: Callable[[Decimal], float]) -> list[SafeString]:
    """Grid lines from ``left`` to ``right`` with their y ticks at round steps: quarters of a 2 × 10ⁿ top
    (``ceiling``), fifths of the others; ``y`` places a value."""
    steps = 4 if ceiling.scaleb(-ceiling.adjusted()) == 2 else 5
    lines = []
    for q in range(steps + 1):
        tick = ceiling * q / steps
        ty = y(tick)
        lines.append(
            format_html(
                '<line x1="{}" x2="{}" y1="{}" y2="{}" class="grid"/>'
                '<text x="{}" y="{}" text-anchor="end" class="tick">{}</text>',
                left,
                right,
                f"{ty:.1f}",
                f"{ty:.1f}",
                left - 6,
                f"{ty + 4:.1f}",
                number(tick),
            )
        )
    return lines


def _month_axes(*, box: tuple, days: list, unit: str) -> SafeString:
    """The x axis line with "Day of <month> (UTC)" under it and the unit along the y axis."""
    left, right, top, plot_w, plot_h, width, height = box
    return format_html(
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
    parts.extend(grid_lines(ceiling=ceiling, left=left, right=width - right, y=y))
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
    parts.append(_month_axes(box=(left, right, top, plot_w, plot_h, width, height), days=days, unit=unit))
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


def range_chart(
    *,
    title: str,
    days: list[dt.date],
    actual: list[Decimal],
    expected: list[Decimal],
    low: list[Decimal],
    high: list[Decimal],
    unit: str,
    metric: MetricLike | None = None,
    width: int = 640,
    height: int = 240,
) -> SafeString:
    """A running total over the days of a month: a solid line for the days so far (``actual``, one figure per day
    from the first), then a dashed line for the days projected (``expected``, one per day after those) inside the
    shaded band of their range (``low`` to ``high``). Drawn like ``bar_chart``: an SVG with a title, a summary
    and one ``<title>`` per point, then every figure as a table inside a ``<details>``."""
    chart_id = f"chart-{next(_ids)}"

    def figure(value: Decimal) -> str:
        return format_metric_quantity(value, metric)

    left, right, top, bottom = 64, 12, 12, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    ceiling = _nice_ceiling(max([*actual, *high, Decimal(0)]))
    slot = plot_w / max(len(days), 1)
    first_projected = len(actual)

    def x(i: int) -> float:
        return left + i * slot + slot / 2

    def y(value: Decimal) -> float:
        return top + plot_h - float(value / ceiling) * plot_h

    def points(pairs: list[tuple[int, Decimal]]) -> str:
        return " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in pairs)

    parts: list[str] = []
    parts.extend(grid_lines(ceiling=ceiling, left=left, right=width - right, y=y))
    # The projection starts from the last day so far (or from zero before the month's first day).
    start = [(first_projected - 1, actual[-1])] if actual else []
    projected = list(range(first_projected, first_projected + len(expected)))
    if expected:
        band = start + list(zip(projected, high, strict=True)) + list(reversed(list(zip(projected, low, strict=True))))
        parts.append(
            format_html(
                '<polygon class="band" points="{}" fill="{}" fill-opacity="0.18" stroke="none"/>',
                points(band),
                PALETTE[0],
            )
        )
        parts.append(
            format_html(
                '<polyline class="projected" points="{}" fill="none" stroke="{}" stroke-width="2" '
                'stroke-dasharray="6 4"/>',
                points(start + list(zip(projected, expected, strict=True))),
                PALETTE[0],
            )
        )
    if actual:
        parts.append(
            format_html(
                '<polyline class="actual" points="{}" fill="none" stroke="{}" stroke-width="2.5"/>',
                points(list(enumerate(actual))),
                PALETTE[1],
            )
        )
    for i, value in enumerate(actual):
        parts.append(
            format_html(
                '<circle cx="{}" cy="{}" r="3" fill="{}"><title>{}: {} {} so far</title></circle>',
                f"{x(i):.1f}",
                f"{y(value):.1f}",
                PALETTE[1],
                f"{days[i]:%b} {days[i].day}",
                figure(value),
                unit,
            )
        )
    for n, i in enumerate(projected):
        parts.append(
            format_html(
                '<circle cx="{}" cy="{}" r="2.5" fill="#fff" stroke="{}"><title>{}: {} {} expected ({} to {})</title>'
                "</circle>",
                f"{x(i):.1f}",
                f"{y(expected[n]):.1f}",
                PALETTE[0],
                f"{days[i]:%b} {days[i].day}",
                figure(expected[n]),
                unit,
                figure(low[n]),
                figure(high[n]),
            )
        )
    every = 1 if len(days) <= 10 else 5
    for i, day in enumerate(days):
        if i == 0 or day.day % every == 0:
            parts.append(
                format_html(
                    '<text x="{}" y="{}" text-anchor="middle" class="tick">{}</text>',
                    f"{x(i):.1f}",
                    top + plot_h + 18,
                    day.day,
                )
            )
    parts.append(_month_axes(box=(left, right, top, plot_w, plot_h, width, height), days=days, unit=unit))
    summary = (
        f"{title}: {figure(actual[-1]) if actual else '0'} {unit} in {len(actual)} day{'s' if len(actual) != 1 else ''}"
    )
    if expected:
        summary += (
            f"; {figure(expected[-1])} {unit} expected by {days[-1]:%b} {days[-1].day}"
            f" (range {figure(low[-1])} to {figure(high[-1])})"
        )
    summary += "."
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
    legend = format_html(
        '<ul class="legend"><li><span class="swatch" style="background:{}" aria-hidden="true"></span>So far</li>'
        '<li><span class="swatch" style="background:{}" aria-hidden="true"></span>Expected, with its range shaded'
        "</li></ul>",
        PALETTE[1],
        PALETTE[0],
    )
    rows = [(f"{days[i]:%b} {days[i].day}", figure(v), "", "", "") for i, v in enumerate(actual)]
    rows += [
        (f"{days[i]:%b} {days[i].day}", "", figure(expected[n]), figure(low[n]), figure(high[n]))
        for n, i in enumerate(projected)
    ]
    table = format_html(
        '<details class="chart-data"><summary>{} as a table</summary><div class="table-wrap"><table>'
        '<caption class="visually-hidden">{} ({}, running total)</caption><thead><tr><th scope="col">Day</th>'
        '<th scope="col" class="num">So far</th><th scope="col" class="num">Expected</th>'
        '<th scope="col" class="num">Low</th><th scope="col" class="num">High</th></tr></thead>'
        "<tbody>{}</tbody></table></div></details>",
        title,
        title,
        unit,
        format_html_join(
            "",
            '<tr><th scope="row">{}</th><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td>'
            '<td class="num">{}</td></tr>',
            rows,
        ),
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
