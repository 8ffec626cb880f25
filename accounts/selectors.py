"""Reads about accounts and their users."""

from __future__ import annotations

import datetime as dt
import time
import unicodedata
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet

from accounts import api_keys
from accounts.models import Account, AccountUser, ApiKey

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser


def _email_logins(email: str) -> QuerySet[AbstractBaseUser]:
    User = get_user_model()
    return User.objects.filter(Q(username__iexact=email) | Q(email__iexact=email))


def account_user_email_logins(*, email: str) -> list[Any]:
    """The logins (portal or staff, active or not) that use ``email`` as e-mail or username."""
    return list(_email_logins(email).order_by("pk"))


def account_user_email_taken(*, email: str) -> bool:
    """Whether any login (portal or staff) already uses ``email`` as e-mail or username."""
    return _email_logins(email).exists()


def account_user_removed_login(*, account: Account, logins: list[Any]) -> Any | None:
    """The one of ``logins`` that ``account`` removed and that has been in no account since: a deactivated
    portal login, without a membership, whose membership history ends with its removal from ``account``."""
    for user in logins:
        if user.is_active or user.is_staff or AccountUser.objects.filter(user=user).exists():
            continue
        last = AccountUser.history.filter(user_id=user.pk).order_by("-history_date", "-history_id").first()
        if last is not None and last.history_type == "-" and last.account_id == account.pk:
            return user
    return None


def login_fold(login: str) -> str:
    """The form in which logins (usernames, e-mail addresses) are compared: surrounding spaces dropped,
    compatibility characters folded (NFKC: full-width ``ｏ`` is ``o``) and case folded (``ß`` is ``ss``). Letters
    that merely look alike stay apart: the dotless ``ı`` is not ``i``."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", login.strip()).casefold())


def portal_user_for_email(*, email: str) -> Any | None:
    """The portal user (a login with an account membership) whose e-mail address ``email`` is, as
    ``login_fold`` compares them; None if there is none (or, against the rules, more than one).

    Signing in and password reset both find the login this way, and sign-in limits count under the login
    found, so every text that reaches an account is counted with it. PostgreSQL's case-insensitive match
    (``UPPER()``) only narrows the candidates: it takes the dotless ``ı`` for ``i``, which this does not."""
    folded = login_fold(email)
    if "@" not in folded:
        return None
    candidates = get_user_model()._default_manager.filter(
        Q(email__iexact=email.strip()) | Q(email__iexact=folded), account_membership__isnull=False
    )
    found = [user for user in candidates if login_fold(user.email) == folded]
    return found[0] if len(found) == 1 else None


# Keys looked up in the last few seconds, per process: the lookup is a large share of a small request.
# Revoking or expiring a key therefore takes effect within KEY_CACHE_SECONDS.
KEY_CACHE_SECONDS = 5.0
_key_cache: dict[str, tuple[float, ApiKey]] = {}


def api_key_for(*, key: str, now: dt.datetime) -> ApiKey | None:
    """The live key matching ``key`` (not revoked, not expired), or None."""
    parts = api_keys.split(key)
    if parts is None:
        return None
    prefix, secret = parts
    cached = _key_cache.get(prefix)
    api_key: ApiKey | None
    if cached is not None and time.monotonic() - cached[0] < KEY_CACHE_SECONDS:
        api_key = cached[1]
    else:
        # ``prefix`` is unique: no ordering needed.
        api_key = next(iter(ApiKey.objects.select_related("account").filter(prefix=prefix)), None)
        if api_key is not None:
            if len(_key_cache) > 10_000:
                _key_cache.clear()
            _key_cache[prefix] = (time.monotonic(), api_key)
    if api_key is None or not api_keys.matches(secret, api_key.secret_hash):
        return None
    if api_key.revoked_at is not None or (api_key.expires_at is not None and api_key.expires_at <= now):
        return None
    return api_key


def api_key_cache_clear() -> None:
    _key_cache.clear()


def export_readable_accounts(*, api_key: ApiKey) -> QuerySet[Account]:
    """The accounts an export key may read anywhere in the API: those it is limited to (``export_accounts``), or
    every account. Any other account is answered as if it did not exist (404)."""
    limited = api_key.export_accounts.all()
    if limited.exists():
        return Account.objects.filter(pk__in=limited.values("pk"))
    return Account.objects.all()


def export_may_read_account(*, api_key: ApiKey, account_id: int) -> bool:
    """Whether ``api_key`` may read ``account_id``: its own account, or one its export scope covers."""
    if not api_key.scope_export:
        return api_key.account_id == account_id
    return export_readable_accounts(api_key=api_key).filter(pk=account_id).exists()
