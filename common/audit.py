"""Who changed what. django-simple-history keeps a row per change with old and new values; the
request middleware fills in the user for admin and portal requests, and services name the actor
explicitly for commands, tasks and API keys through ``stamp``."""

from __future__ import annotations

from typing import Any


def stamp(instance: Any, *, actor: Any = None, reason: str = "") -> None:
    """Attach the acting user and a change reason to the next history row of ``instance``."""
    if actor is not None and getattr(actor, "is_authenticated", False):
        instance._history_user = actor
    if reason:
        instance._change_reason = reason
