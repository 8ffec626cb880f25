"""Display filters for money and quantities on portal pages (display only; never parsed back)."""

from decimal import Decimal

from django import template

from common.money import format_money
from portal.charts import number

register = template.Library()


@register.filter
def money(amount, currency: str) -> str:
    """``{{ invoice.total|money:invoice.currency }}`` → ``USD 1,234.50``."""
    if amount is None or amount == "":
        return ""
    return format_money(Decimal(amount), currency)


@register.filter
def qty(value) -> str:
    """A quantity: thousands separated, no trailing zeros."""
    if value is None or value == "":
        return ""
    return number(Decimal(value))


@register.filter
def unit_price(value) -> str:
    """A unit price keeps its own places (they can be finer than the currency's minor unit), at least 2."""
    if value is None or value == "":
        return ""
    text = format(Decimal(value), "f")
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0").ljust(2, "0")
    return f"{int(whole):,}.{fraction}" if not whole.startswith("-") else f"-{int(whole[1:]):,}.{fraction}"
