"""Display filters for money and quantities on portal pages (display only; never parsed back)."""

from decimal import Decimal

from django import template

from billing.quantities import format_metric_quantity, format_usage
from common.money import format_money

register = template.Library()


@register.filter
def money(amount, currency: str) -> str:
    """``{{ invoice.total|money:invoice.currency }}`` → ``USD 1,234.50``."""
    if amount is None or amount == "":
        return ""
    return format_money(Decimal(amount), currency)


@register.filter
def qty(value, metric=None) -> str:
    """A quantity by its metric's rule (``billing.quantities``): ``{{ line.quantity|qty:line.metric }}``;
    without a metric, up to 2 decimals without trailing zeros (percentages, tax rates)."""
    if value is None or value == "":
        return ""
    return format_metric_quantity(Decimal(value), metric or None)


@register.filter
def usage_figures(line) -> dict[str, str]:
    """An invoice line's quantity, included and billable quantity as shown, reading as a sum."""
    return format_usage(quantity=line.quantity, included=line.included, billable=line.billable, metric=line.metric)


@register.filter
def unit_price(value) -> str:
    """A unit price keeps its own places (they can be finer than the currency's minor unit), at least 2."""
    if value is None or value == "":
        return ""
    text = format(Decimal(value), "f")
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0").ljust(2, "0")
    return f"{int(whole):,}.{fraction}" if not whole.startswith("-") else f"-{int(whole[1:]):,}.{fraction}"
