"""Helpers that let admin forms save through services instead of writing rows themselves, and that show
money, quantities and times the same way on every admin page.

Display rules of the admin (docs/operations.md, "The admin console"): money with its currency at the
currency's minor unit (``USD 618.38``, ``common.money.format_money``), unit prices with the places they
need; quantities without trailing zeros (``33,518``, ``common.money.format_quantity``); times in UTC as
``2026-11-30 23:59 UTC`` and dates as ``2026-11-30`` (``config/formats``, used by Django for model fields,
and ``format_datetime`` for values computed in admin methods).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin
from simple_history.template_utils import HistoricalRecordContextHelper

from common.errors import BillingError
from common.money import AMOUNT_DECIMAL_PLACES, format_money, format_quantity


def format_datetime(value: dt.datetime | dt.date | None) -> str | None:
    """The admin's one format for a moment (``2026-11-30 23:59 UTC``) or a day (``2026-11-30``)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return date_format(timezone.localtime(value), "DATETIME_FORMAT")
    return date_format(value, "DATE_FORMAT")


def _label(field: str) -> str:
    return field.replace("_", " ").capitalize()


def money_column(
    field: str, description: str | None = None, *, currency_field: str = "currency", unit_price: bool = False
) -> Callable[[Any, Any], str]:
    """An admin column or read-only field showing ``obj.<field>`` as money in ``obj.<currency_field>``
    (``currency_field`` may follow relations with ``__``). Use as ``total_display = money_column("total")``."""

    @admin.display(description=description or _label(field), ordering=field)
    def show(self: Any, obj: Any) -> str:
        amount = getattr(obj, field)
        if amount is None:
            return "–"
        currency: Any = obj
        for part in currency_field.split("__"):
            currency = getattr(currency, part)
        return format_money(amount, currency, unit_price=unit_price)

    return show


def quantity_column(field: str, description: str | None = None) -> Callable[[Any, Any], str]:
    """An admin column or read-only field showing ``obj.<field>`` as a quantity (``33,518``)."""

    @admin.display(description=description or _label(field), ordering=field)
    def show(self: Any, obj: Any) -> str:
        value = getattr(obj, field)
        return "–" if value is None else format_quantity(value)

    return show


def truncated(text: Any, length: int = 28) -> str:
    """``text`` cut to ``length`` characters with an ellipsis, the whole of it in the tooltip."""
    text = str(text)
    if len(text) <= length:
        return text
    return format_html('<span title="{}">{}…</span>', text, text[: length - 1].rstrip())


def adopt(target: Any, saved: Any) -> None:
    """Make the admin's in-memory ``target`` the row the service saved, so the admin's log entry,
    change message and redirect refer to it."""
    target.__dict__.update({k: v for k, v in saved.__dict__.items() if k != "_state"})
    target._state.adding = False
    target._state.db = saved._state.db


def changed_data(form: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    return {name: form.cleaned_data[name] for name in form.changed_data if name in fields}


def run_action(modeladmin: Any, request: Any, queryset: Any, service: Any, success: str, **kwargs: Any) -> None:
    """Apply ``service(obj, **kwargs)`` to each selected row; report successes and each failure."""
    done = 0
    for obj in queryset:
        try:
            service(obj, actor=request.user, **kwargs)
            done += 1
        except BillingError as exc:
            modeladmin.message_user(request, f"{obj}: {exc.message}", messages.ERROR)
        except ValidationError as exc:
            modeladmin.message_user(request, f"{obj}: {' '.join(exc.messages)}", messages.ERROR)
    if done:
        modeladmin.message_user(request, success.format(count=done), messages.SUCCESS)


class HistoryValues(HistoricalRecordContextHelper):
    """History entries show values as the rest of the admin does: money with its currency, quantities
    without trailing zeros, times as ``2026-11-30 23:59 UTC``, nothing as "–", and JSON documents (the
    invoice snapshot) by their size rather than their text."""

    def prepare_delta_change_value(self, change: Any, value: Any) -> Any:
        field = self.model._meta.get_field(change.field)
        if value is None or value == "":
            return "–"
        if isinstance(field, models.JSONField):
            return f"{len(value)} entries" if value else "–"
        if isinstance(value, dt.datetime | dt.date):
            return format_datetime(value)
        if isinstance(value, Decimal):
            currency = getattr(self.record, "currency", None)
            if field.decimal_places == AMOUNT_DECIMAL_PLACES and currency:
                return format_money(value, currency)
            return format_quantity(value)
        return super().prepare_delta_change_value(change, value)


ERR_ACTION_DENIED = "You do not have permission to run “{action}”: nothing was changed."


class ServiceAdmin(SimpleHistoryAdmin):
    """Base admin: audit history, and a domain or validation error raised by a service while saving
    becomes an error message on the same page instead of a server error. The admin's transaction is
    rolled back first, so nothing is half-written.

    History is read-only: entries are listed in the order they were written, and no entry can be
    reverted. simple-history's revert saves an old version of the whole row through the admin form,
    around the services and their rules (an issued invoice or credit note cannot change at all; a draft's
    money is the billing run's to compute), so its page answers 403 for every model here.
    """

    object_history_list_template = "admin/history_entries.html"

    def revert_disabled(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return True

    def history_form_view(
        self, request: HttpRequest, object_id: str, version_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        raise PermissionDenied

    def get_historical_record_context_helper(self, request: HttpRequest, historical_record: Any) -> HistoryValues:
        return HistoryValues(self.model, historical_record)

    def get_history_queryset(
        self, request: HttpRequest, history_manager: Any, pk_name: str, object_id: str
    ) -> models.QuerySet[Any]:
        # Written order: a test clock may have dated an earlier change later than a newer one.
        return super().get_history_queryset(request, history_manager, pk_name, object_id).order_by("-history_id")

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except BillingError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def response_action(self, request: HttpRequest, queryset: models.QuerySet[Any]) -> HttpResponse | None:
        """An action of this admin that the user may not run (it is not offered to them, but it can still be
        posted) is refused with an error message naming it, instead of Django's "No action selected"."""
        names = request.POST.getlist("action")
        try:
            name = names[int(request.POST.get("index", 0))]
        except (IndexError, ValueError):
            name = ""
        declared = {a if isinstance(a, str) else a.__name__ for a in self.actions or ()}
        if name in declared and name not in self.get_actions(request):
            description = getattr(getattr(self, name, None), "short_description", name)
            self.message_user(request, ERR_ACTION_DENIED.format(action=description), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())
        return super().response_action(request, queryset)
