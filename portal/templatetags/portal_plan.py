"""Display filters for spans of time on portal pages: a half-open span ``[start, end)`` is shown by its first and
last UTC days, as invoices and plan previews state them (display only)."""

from __future__ import annotations

import datetime as dt

from django import template

register = template.Library()
_ONE_MICROSECOND = dt.timedelta(microseconds=1)


@register.filter
def last_day(end: dt.datetime | None) -> dt.date | None:
    """The UTC day of the last instant before ``end`` (exclusive): ``{{ line.period_end|last_day }}``; for a span
    ending at midnight, the day before."""
    if end is None:
        return None
    return (end - _ONE_MICROSECOND).astimezone(dt.UTC).date()


@register.filter
def covers_other_span(line, invoice) -> bool:
    """Whether an invoice line covers another span than the invoice's month (part of it, a year, a term)."""
    return line.period_start != invoice.period_start or line.period_end != invoice.period_end
