"""Helpers that let admin forms save through services instead of writing rows themselves."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from simple_history.admin import SimpleHistoryAdmin

from common.errors import BillingError


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

    def revert_disabled(self, request, obj=None):
        return True

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        raise PermissionDenied

    def get_history_queryset(self, request, history_manager, pk_name, object_id):
        # Written order: a test clock may have dated an earlier change later than a newer one.
        return super().get_history_queryset(request, history_manager, pk_name, object_id).order_by("-history_id")

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except BillingError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def response_action(self, request, queryset):
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
