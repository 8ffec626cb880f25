"""The export API's query filters (django-filter FilterSets), all combinable. Times are half-open, ``[from, to)``;
a bad value is a 400 naming its parameter. ``account`` is not here: it decides what the key may see (a 404 for an
account it may not), so the view resolves it first."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import django_filters
from django import forms
from django.db.models import QuerySet
from django.utils.dateparse import parse_datetime
from django_filters.utils import translate_validation

from billing.models import CreditNote, Invoice, Payment
from usage.models import UsageEvent

MONTH_RE = re.compile(r"(?P<year>[0-9]{4})-(?P<month>0[1-9]|1[0-2])")
DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
ERR_MONTH = "Give the month as YYYY-MM, from 2000-01 to 9998-12."
ERR_MOMENT = "Give a moment as ISO 8601 with a time zone (2026-11-01T00:00:00Z) or a day (2026-11-01, 00:00 UTC)."
ERR_RANGE = "`to` must be after `from` (the range is [from, to))."
ERR_ID = "Give an id of at most 64 printable characters."


class MomentField(forms.CharField):
    """``2026-11-01T00:00:00Z`` (any offset) or ``2026-11-01`` (midnight UTC) → an aware UTC datetime."""

    def to_python(self, value: Any) -> Any:
        value = str(super().to_python(value))
        if value in self.empty_values:
            return None
        if DATE_RE.fullmatch(value):
            try:
                day = dt.date.fromisoformat(value)
            except ValueError:
                raise forms.ValidationError(ERR_MOMENT, code="invalid") from None
            return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
        try:
            moment = parse_datetime(value)
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            raise forms.ValidationError(ERR_MOMENT, code="invalid")
        try:
            return moment.astimezone(dt.UTC)
        except OverflowError:
            raise forms.ValidationError(ERR_MOMENT, code="invalid") from None


class MonthField(forms.CharField):
    """``2026-11`` → the first day of that month."""

    def to_python(self, value: Any) -> Any:
        value = str(super().to_python(value))
        if value in self.empty_values:
            return None
        match = MONTH_RE.fullmatch(value)
        if match is None or not 2000 <= int(match["year"]) <= 9998:
            raise forms.ValidationError(ERR_MONTH, code="invalid")
        return dt.date(int(match["year"]), int(match["month"]), 1)


class IdField(forms.CharField):
    def to_python(self, value: Any) -> Any:
        value = str(super().to_python(value))
        if value not in self.empty_values and (len(value) > 64 or not value.isprintable()):
            raise forms.ValidationError(ERR_ID, code="invalid")
        return value


class MomentFilter(django_filters.Filter):
    field_class = MomentField


class MonthFilter(django_filters.Filter):
    field_class = MonthField


class IdFilter(django_filters.Filter):
    field_class = IdField


class RangeForm(forms.Form):
    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("from"), data.get("to")
        if start and end and end <= start:
            self.add_error("to", forms.ValidationError(ERR_RANGE, code="invalid"))
        return data


def _with_range(filterset: type[django_filters.FilterSet], field: str) -> type[django_filters.FilterSet]:
    """Adds ``from`` (inclusive) and ``to`` (exclusive) on ``field``; ``from`` is a keyword, so not declared in
    the class body."""
    filterset.base_filters["from"] = MomentFilter(field_name=field, lookup_expr="gte")
    filterset.base_filters["to"] = MomentFilter(field_name=field, lookup_expr="lt")
    return filterset


class EventFilter(django_filters.FilterSet):
    tenant = IdFilter(field_name="tenant__public_id")
    metric = IdFilter(field_name="metric__code")
    partner = IdFilter(field_name="partner__public_id")
    billing_month = MonthFilter(field_name="billing_month")

    class Meta:
        model = UsageEvent
        fields: list[str] = []
        form = RangeForm


class InvoiceFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(
        choices=[(s, s) for s in ("finalized", "paid", "void", "uncollectible")], field_name="status"
    )
    billing_month = MonthFilter(method="filter_billing_month")

    class Meta:
        model = Invoice
        fields: list[str] = []
        form = RangeForm

    def filter_billing_month(self, queryset: QuerySet, name: str, value: dt.date) -> QuerySet:
        return queryset.filter(period_start=dt.datetime(value.year, value.month, 1, tzinfo=dt.UTC))


class CreditNoteFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=CreditNote.Status.choices, field_name="status")

    class Meta:
        model = CreditNote
        fields: list[str] = []
        form = RangeForm


class PaymentFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Payment.Status.choices, field_name="status")
    provider = django_filters.ChoiceFilter(choices=Payment.Provider.choices, field_name="provider")

    class Meta:
        model = Payment
        fields: list[str] = []
        form = RangeForm


_with_range(EventFilter, "timestamp")
_with_range(InvoiceFilter, "finalized_at")
_with_range(CreditNoteFilter, "issued_at")
_with_range(PaymentFilter, "received_at")


def filtered(filterset_class: type[django_filters.FilterSet], params: Any, queryset: QuerySet) -> QuerySet:
    """``queryset`` narrowed by the query ``params``; a 400 naming the first bad parameter."""
    filterset = filterset_class(params, queryset=queryset)
    if not filterset.is_valid():
        raise translate_validation(filterset.errors)
    return filterset.qs
