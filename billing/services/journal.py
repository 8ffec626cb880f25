"""Writes for the ERP journal's configuration: the general-ledger account codes (``billing.models.GlAccount``).

Only Finance admin changes the chart (``billing.change_glaccount``, ``billing.add_glaccount``); billing staff
see it and download the journal. Every change is audited (simple-history, with the acting user)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from billing.models import GlAccount
from common.audit import stamp
from common.errors import BillingError
from common.services import model_update

PERM_CHANGE = "billing.change_glaccount"
PERM_ADD = "billing.add_glaccount"
ERR_NOT_ALLOWED = "Only Finance admin changes the general-ledger accounts."


def _check(actor: Any, permission: str) -> None:
    if actor is not None and not actor.has_perm(permission):
        raise BillingError(ERR_NOT_ALLOWED, code="permission_denied", status=403)


@transaction.atomic
def gl_account_create(*, kind: str, metric_code: str = "", code: str, name: str, actor: Any = None) -> GlAccount:
    """A new account of ``kind`` (one per kind; ``metric`` accounts one per metric code)."""
    _check(actor, PERM_ADD)
    account = GlAccount(kind=kind, metric_code=metric_code.strip(), code=code.strip(), name=name.strip())
    account.full_clean()
    stamp(account, actor=actor, reason="created")
    account.save()
    return account


@transaction.atomic
def gl_account_update(*, account: GlAccount, data: dict[str, Any], actor: Any = None) -> GlAccount:
    """Change an account's code or name; its kind and metric stay (add another account instead)."""
    _check(actor, PERM_CHANGE)
    cleaned = {key: str(value).strip() for key, value in data.items() if key in ("code", "name")}
    stamp(account, actor=actor, reason="updated")
    account, _ = model_update(instance=account, fields=("code", "name"), data=cleaned)
    return account
