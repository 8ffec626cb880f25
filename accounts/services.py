"""Writes for accounts, portal users and budgets."""

from __future__ import annotations

import datetime as dt
import re
import secrets
import smtplib
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction

from accounts import api_keys
from accounts.models import EXPORT_DATASETS, Account, AccountUser, ApiKey, Budget, default_alert_thresholds
from accounts.selectors import (
    account_user_email_logins,
    account_user_email_taken,
    account_user_removed_login,
    api_key_cache_clear,
)
from accounts.signals import account_status_changed
from common import clock
from common.audit import stamp
from common.enqueue import enqueue_on_commit
from common.errors import BillingError
from common.services import model_update, public_id_next

BUDGETS_EVALUATE_TASK = "billing.budgets_evaluate"  # registered by billing; queued by name
USERNAME_RE = re.compile(r"^[\w.@+-]+\Z")
ERR_CURRENCY_LOCKED = "The currency of an account with subscriptions, budgets or custom plans cannot change."
ERR_SUSPEND = "Only trialing, active or past-due accounts can be suspended; this one is {status}."
ERR_REACTIVATE = "Only suspended accounts can be reactivated; this one is {status}."
ERR_BUDGET_CURRENCY = "A budget must be in the account currency ({currency})."
ERR_EMAIL_TAKEN = "A user with the e-mail address {email} already exists."
ERR_LAST_OWNER = "An account needs an owner: make someone else owner first."
ERR_INVITE_NOT_SENT = "The invitation e-mail could not be sent ({error}); nobody was added. Please try again."
ERR_ALREADY_MEMBER = "{email} is already a user of this account."

ACCOUNT_EDITABLE_FIELDS = (
    "name",
    "legal_name",
    "currency",
    "billing_emails",
    "tax_id",
    "tax_country",
    "tax_rate",
    "tax_reverse_charge",
    "timezone",
    "payment_terms_days",
)


@transaction.atomic
def account_create(
    *,
    name: str,
    currency: str,
    billing_emails: list[str],
    legal_name: str = "",
    tax_id: str = "",
    tax_country: str = "",
    tax_rate: Decimal = Decimal("0"),
    tax_reverse_charge: bool = False,
    timezone_name: str = "UTC",
    payment_terms_days: int = 30,
    status: str = Account.Status.TRIALING,
    actor: Any = None,
) -> Account:
    account = Account(
        name=name,
        legal_name=legal_name,
        currency=currency,
        billing_emails=list(billing_emails),
        tax_id=tax_id,
        tax_country=tax_country,
        tax_rate=tax_rate,
        tax_reverse_charge=tax_reverse_charge,
        timezone=timezone_name,
        payment_terms_days=payment_terms_days,
        status=status,
        status_changed_at=clock.now(),
    )
    account.public_id = public_id_next(prefix="acc")
    account.full_clean()
    stamp(account, actor=actor, reason="created")
    account.save()
    return account


def _currency_in_use(account: Account) -> bool:
    return account.subscriptions.exists() or account.budgets.exists() or account.custom_plans.exists()


@transaction.atomic
def account_update(*, account: Account, data: dict[str, Any], actor: Any = None) -> Account:
    if "currency" in data and data["currency"] != account.currency and _currency_in_use(account):
        raise BillingError(ERR_CURRENCY_LOCKED, code="currency_locked", field="currency")
    stamp(account, actor=actor, reason="updated")
    account, _ = model_update(instance=account, fields=ACCOUNT_EDITABLE_FIELDS, data=data)
    return account


@transaction.atomic
def account_set_status(
    *, account: Account, status: str, reason: str, actor: Any = None, cause: dict[str, Any] | None = None
) -> Account:
    """Move an account to ``status``; the history row records who, when, old and new, and why. Sends
    ``accounts.signals.account_status_changed`` (``cause``: what the caller knows of why, e.g. the invoice)."""
    if status not in Account.Status.values:
        raise BillingError(f"Unknown account status {status!r}.", code="invalid_status", field="status")
    if account.status == status:
        return account
    account.status = status
    account.status_changed_at = clock.now()
    account.status_reason = reason[:200]
    # Set by the system (no acting user): the billing cycle may lift it again; set by staff, only staff do.
    account.status_automatic = not getattr(actor, "is_authenticated", False)
    previous = Account.objects.filter(pk=account.pk).values_list("status", flat=True).first()
    stamp(account, actor=actor, reason=reason)
    account.save(update_fields=["status", "status_changed_at", "status_reason", "status_automatic", "updated_at"])
    account_status_changed.send(
        sender=Account, account=account, previous=previous, reason=reason, actor=actor, cause=cause or {}
    )
    return account


@transaction.atomic
def account_suspend(*, account: Account, reason: str = "suspended by staff", actor: Any = None) -> Account:
    """Suspend a trialing, active or past-due account (cancelled accounts stay cancelled)."""
    if account.status not in (Account.Status.TRIALING, Account.Status.ACTIVE, Account.Status.PAST_DUE):
        raise BillingError(
            ERR_SUSPEND.format(status=account.get_status_display()), code="invalid_transition", field="status"
        )
    return account_set_status(account=account, status=Account.Status.SUSPENDED, reason=reason, actor=actor)


@transaction.atomic
def account_reactivate(*, account: Account, reason: str = "reactivated by staff", actor: Any = None) -> Account:
    """Lift a suspension: back to trialing while the live subscription is in its trial, else active."""
    if account.status != Account.Status.SUSPENDED:
        raise BillingError(
            ERR_REACTIVATE.format(status=account.get_status_display()), code="invalid_transition", field="status"
        )
    live = account.subscriptions.exclude(status="cancelled").first()
    in_trial = live is not None and live.trial_end is not None and live.trial_end > clock.now()
    status = Account.Status.TRIALING if in_trial else Account.Status.ACTIVE
    return account_set_status(account=account, status=status, reason=reason, actor=actor)


@transaction.atomic
def account_user_create(
    *,
    account: Account,
    email: str,
    role: str = AccountUser.Role.MEMBER,
    password: str | None = None,
    first_name: str = "",
    last_name: str = "",
    actor: Any = None,
) -> AccountUser:
    """Create a portal login for ``account``. Without a password the user sets one by reset e-mail."""
    User = get_user_model()
    email = User.objects.normalize_email(email).lower()
    if account_user_email_taken(email=email):
        raise BillingError(ERR_EMAIL_TAKEN.format(email=email), code="email_taken", field="email")
    # The e-mail is the login; Django usernames allow fewer characters, so fall back to a generated one.
    username = email if len(email) <= 150 and USERNAME_RE.match(email) else f"user_{secrets.token_hex(8)}"
    user = User(username=username, email=email, first_name=first_name, last_name=last_name, is_staff=False)
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.full_clean()
    user.save()
    membership = AccountUser(account=account, user=user, role=role)
    membership.full_clean()
    stamp(membership, actor=actor, reason="created")
    membership.save()
    return membership


def _check_not_last_owner(membership: AccountUser) -> None:
    """An account always keeps an owner. The owners' rows are locked so two owners demoting each other
    at the same moment cannot both succeed."""
    if membership.role != AccountUser.Role.OWNER:
        return
    owners = list(
        AccountUser.objects.select_for_update()
        .filter(account_id=membership.account_id, role=AccountUser.Role.OWNER)
        .values_list("pk", flat=True)
    )
    if owners == [membership.pk]:
        raise BillingError(ERR_LAST_OWNER, code="last_owner", field="role")


@transaction.atomic
def account_user_set_role(*, membership: AccountUser, role: str, actor: Any = None) -> AccountUser:
    if role != membership.role:
        _check_not_last_owner(membership)
    stamp(membership, actor=actor, reason="role changed")
    membership, _ = model_update(instance=membership, fields=("role",), data={"role": role})
    return membership


@transaction.atomic
def account_user_remove(*, membership: AccountUser, actor: Any = None) -> None:
    """Take a user out of the account: the membership is deleted (its history keeps who did it) and the
    login deactivated, not deleted, so the audit trail of what it did keeps pointing at it. The last
    owner cannot be removed. The account can invite the address again (``account_user_invite``): the same
    login comes back."""
    _check_not_last_owner(membership)
    user = membership.user
    stamp(membership, actor=actor, reason="removed")
    membership.delete()
    user.is_active = False
    user.set_unusable_password()
    user.save(update_fields=["is_active", "password"])


@transaction.atomic
def account_user_invite(
    *, account: Account, email: str, role: str, set_password_url: Callable[[Any], str], actor: Any = None
) -> AccountUser | None:
    """Invite ``email`` to ``account`` by e-mail. Whether the address has a login elsewhere is not the
    inviter's to know, so what they are told is the same in every case but one — an address that is already a
    user of this account, which they can see anyway (``ERR_ALREADY_MEMBER``):

    - No login has the address: a login without a password is created, and the invitation's link, built by
      ``set_password_url(user)`` (a one-time password-reset link), lets the person choose one.
    - The address is a login this account removed (``account_user_remove`` deactivated it), not in another
      account since: the login comes back with ``role``, and is invited as above.
    - Any other login has it (another account's user, removed or not, or staff): nobody is added, and the address
      is told instead that it was invited but cannot be added, since a login belongs to one account. Returns
      None; the caller answers as if the invitation had been sent, which it was, to the address only.

    Either way one e-mail is sent, the same way, so a failure to send it is answered alike too. The account's
    list of users still shows only its members: an address that was not added never appears there.

    The e-mail is sent inside the transaction, as its last step: if it cannot be sent nothing is created and
    the owner can simply try again, rather than leaving a login the person was never told about. (Such a login
    could still be reached: unlike Django's default form, the portal's password reset,
    ``PortalPasswordResetForm``, also serves active members without a usable password.)"""
    email = get_user_model().objects.normalize_email(email).lower()
    logins = account_user_email_logins(email=email)
    if AccountUser.objects.filter(account=account, user__in=logins).exists():
        raise BillingError(ERR_ALREADY_MEMBER.format(email=email), code="already_member", field="email")
    if not logins:
        membership = account_user_create(account=account, email=email, role=role, actor=actor)
    elif (removed := account_user_removed_login(account=account, logins=logins)) is not None:
        membership = _account_user_restore(account=account, user=removed, role=role, actor=actor)
    else:
        _send_invitation_mail(email, *_invitation_refused(account=account, actor=actor))
        return None
    invitation = _invitation(membership=membership, set_password_url=set_password_url, actor=actor)
    _send_invitation_mail(membership.user.email, *invitation)
    return membership


def _account_user_restore(*, account: Account, user: Any, role: str, actor: Any) -> AccountUser:
    """Bring back a login that ``account_user_remove`` took out of ``account``: active again, still without
    a password (removal made it unusable), a member again with ``role``."""
    user.is_active = True
    user.save(update_fields=["is_active"])
    membership = AccountUser(account=account, user=user, role=role)
    membership.full_clean()
    stamp(membership, actor=actor, reason="invited again")
    membership.save()
    return membership


def _invitation(*, membership: AccountUser, set_password_url: Callable[[Any], str], actor: Any) -> tuple[str, str]:
    account, user = membership.account, membership.user
    inviter = getattr(actor, "email", "") or "Your account owner"
    link_days = max(settings.PASSWORD_RESET_TIMEOUT // 86_400, 1)
    subject = f"You are invited to {account.name} on Ledgerline"
    body = (
        f"{inviter} invited you to the Ledgerline billing portal of {account.name} "
        f"as {membership.get_role_display().lower()}.\n\n"
        f"Choose your password here to sign in (the link works once, for {link_days} days):\n"
        f"{set_password_url(user)}\n\n"
        f"Your login is this e-mail address: {user.email}\n"
    )
    return subject, body


def _invitation_refused(*, account: Account, actor: Any) -> tuple[str, str]:
    inviter = getattr(actor, "email", "") or f"The owner of {account.name}"
    subject = f"Your invitation to {account.name} on Ledgerline"
    body = (
        f"{inviter} tried to invite you to the Ledgerline billing portal of {account.name}.\n\n"
        "This address already has a Ledgerline login, and a login belongs to one account only, so you were not "
        f"added to {account.name}. Nothing has changed for your login.\n\n"
        f"If you want to join {account.name}, ask {inviter} to invite another of your e-mail addresses. "
        "If you did not expect this invitation, you need not do anything.\n"
    )
    return subject, body


def _send_invitation_mail(to: str, subject: str, body: str) -> None:
    try:
        send_mail(subject, body, None, [to])
    except (OSError, smtplib.SMTPException) as exc:
        raise BillingError(ERR_INVITE_NOT_SENT.format(error=exc), code="email_failed", field="email") from exc


def _check_budget_currency(account: Account, currency: str) -> None:
    if currency != account.currency:
        raise BillingError(
            ERR_BUDGET_CURRENCY.format(currency=account.currency), code="currency_mismatch", field="currency"
        )


def _budgets_evaluate_after_commit(account: Account) -> None:
    """A new or changed budget is checked at once (after commit) rather than at the next hourly run. Robust:
    if queueing fails the budget is still saved, and the hourly run catches up."""
    enqueue_on_commit(BUDGETS_EVALUATE_TASK, [account.pk])


@transaction.atomic
def budget_create(
    *,
    account: Account,
    name: str,
    amount: Decimal,
    period: str = Budget.Period.MONTHLY,
    alert_thresholds: list[int] | None = None,
    currency: str | None = None,
    actor: Any = None,
) -> Budget:
    currency = currency or account.currency
    _check_budget_currency(account, currency)
    budget = Budget(
        account=account,
        name=name,
        amount=amount,
        currency=currency,
        period=period,
        alert_thresholds=alert_thresholds if alert_thresholds is not None else default_alert_thresholds(),
    )
    budget.full_clean()
    stamp(budget, actor=actor, reason="created")
    budget.save()
    _budgets_evaluate_after_commit(account)
    return budget


@transaction.atomic
def budget_update(*, budget: Budget, data: dict[str, Any], actor: Any = None) -> Budget:
    if "currency" in data:
        _check_budget_currency(budget.account, data["currency"])
    stamp(budget, actor=actor, reason="updated")
    budget, changed = model_update(
        instance=budget, fields=("name", "amount", "currency", "period", "alert_thresholds", "is_active"), data=data
    )
    if changed:
        _budgets_evaluate_after_commit(budget.account)
    return budget


@transaction.atomic
def budget_delete(*, budget: Budget, actor: Any = None) -> None:
    """Delete a budget; its history keeps who deleted it and its last values. Alerts already recorded stay."""
    stamp(budget, actor=actor, reason="deleted")
    budget.delete()


# What a key may be given, in the order ``ApiKey.scopes`` lists them.
KEY_SCOPES = ("ingest", "read", "disputes", "subscription", "webhooks", "export")
ERR_KEY_SCOPES = (
    "Scopes must be a non-empty subset of ingest, read, disputes, subscription, webhooks, export; got {scopes}."
)
ERR_KEY_EXPORT_ACCOUNT = "Export keys are platform-wide: give no account or tenant, and no other scope."
ERR_KEY_NEEDS_ACCOUNT = "Keys with the ingest, read, disputes, subscription or webhooks scope belong to an account."
ERR_KEY_TENANT_ACCOUNT = "Tenant {tenant} does not belong to account {account}."
ERR_KEY_DISPUTES_PINNED = "Disputes are the account's: a key with the disputes scope cannot be pinned to a tenant."
ERR_KEY_SUBSCRIPTION_PINNED = (
    "The subscription is the account's: a key with the subscription scope cannot be pinned to a tenant."
)
ERR_KEY_WEBHOOKS_PINNED = (
    "Webhook endpoints are the account's: a key with the webhooks scope cannot be pinned to a tenant."
)
ERR_KEY_EXPORT_LIMITS = "Only export keys are limited to accounts and datasets."
ERR_KEY_EXPORT_DATASETS = "Unknown export dataset(s) {datasets}; choose from {choices}."
ERR_KEY_EXPORT_LIMITS_REVOKED = "API key {prefix} is revoked: its export limits no longer change."
ERR_KEY_REVOKED = "API key {prefix} is already revoked."
KEY_TOUCH_INTERVAL = dt.timedelta(seconds=60)


def _export_datasets_checked(datasets: Iterable[str] | None) -> list[str]:
    """The datasets in ``EXPORT_DATASETS`` order, without repeats; an unknown name is refused."""
    wanted = list(datasets or ())
    unknown = sorted({str(d) for d in wanted} - set(EXPORT_DATASETS))
    if unknown:
        raise BillingError(
            ERR_KEY_EXPORT_DATASETS.format(datasets=", ".join(unknown), choices=", ".join(EXPORT_DATASETS)),
            code="invalid_export_datasets",
            field="export_datasets",
        )
    return [d for d in EXPORT_DATASETS if d in wanted]


@transaction.atomic
def api_key_create(
    *,
    name: str,
    scopes: list[str],
    account: Account | None = None,
    tenant: Any = None,
    expires_at: dt.datetime | None = None,
    rate_limit_per_minute: int | None = None,
    export_accounts: Iterable[Account] | None = None,
    export_datasets: Iterable[str] | None = None,
    actor: Any = None,
) -> tuple[ApiKey, str]:
    """Issue a key. Returns the row and the secret key, which is never retrievable again.

    Export keys may be limited (least privilege) to ``export_accounts`` (none given: every account) and to
    ``export_datasets`` (none given: every dataset of ``EXPORT_DATASETS``)."""
    wanted = set(scopes)
    if not wanted or not wanted <= set(KEY_SCOPES):
        raise BillingError(
            ERR_KEY_SCOPES.format(scopes=", ".join(sorted(wanted)) or "none"), code="invalid_scopes", field="scopes"
        )
    if "export" in wanted and (account is not None or tenant is not None or len(wanted) > 1):
        raise BillingError(ERR_KEY_EXPORT_ACCOUNT, code="invalid_scopes", field="scopes")
    if "export" not in wanted and account is None:
        raise BillingError(ERR_KEY_NEEDS_ACCOUNT, code="account_required", field="account")
    if "disputes" in wanted and tenant is not None:
        raise BillingError(ERR_KEY_DISPUTES_PINNED, code="invalid_scopes", field="tenant")
    if "subscription" in wanted and tenant is not None:
        raise BillingError(ERR_KEY_SUBSCRIPTION_PINNED, code="invalid_scopes", field="tenant")
    if "webhooks" in wanted and tenant is not None:
        raise BillingError(ERR_KEY_WEBHOOKS_PINNED, code="invalid_scopes", field="tenant")
    if tenant is not None and account is not None and tenant.account_id != account.pk:
        raise BillingError(
            ERR_KEY_TENANT_ACCOUNT.format(tenant=tenant.public_id, account=account.public_id),
            code="tenant_not_in_account",
            field="tenant",
        )
    limited_accounts = list(export_accounts or ())
    datasets = _export_datasets_checked(export_datasets)
    if "export" not in wanted and (limited_accounts or datasets):
        raise BillingError(ERR_KEY_EXPORT_LIMITS, code="invalid_scopes", field="export_accounts")
    key, prefix, secret_hash = api_keys.generate()
    api_key = ApiKey(
        account=account,
        tenant=tenant,
        name=name,
        prefix=prefix,
        secret_hash=secret_hash,
        scope_ingest="ingest" in wanted,
        scope_read="read" in wanted,
        scope_export="export" in wanted,
        scope_disputes="disputes" in wanted,
        scope_subscription="subscription" in wanted,
        scope_webhooks="webhooks" in wanted,
        export_datasets=datasets,
        expires_at=expires_at,
        rate_limit_per_minute=rate_limit_per_minute,
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    api_key.full_clean()
    stamp(api_key, actor=actor, reason="created")
    api_key.save()
    if limited_accounts:
        # A second history row, in the same transaction, records the accounts (many-to-many rows need the key).
        stamp(api_key, actor=actor, reason="created: export accounts")
        api_key.export_accounts.set(limited_accounts)
    return api_key, key


@transaction.atomic
def api_key_set_export_limits(
    *,
    api_key: ApiKey,
    export_accounts: Iterable[Account],
    export_datasets: Iterable[str],
    actor: Any = None,
) -> ApiKey:
    """Change what an export key may export: ``export_accounts`` (empty: every account) and ``export_datasets``
    (empty: every dataset). One history row records who, when, and the old and new limits. Its other powers never
    change (issue a new key instead). Takes effect in other processes within ``KEY_CACHE_SECONDS``."""
    api_key = ApiKey.objects.select_for_update().get(pk=api_key.pk)
    if not api_key.scope_export:
        raise BillingError(ERR_KEY_EXPORT_LIMITS, code="invalid_scopes", field="export_accounts")
    if api_key.revoked_at is not None:
        raise BillingError(ERR_KEY_EXPORT_LIMITS_REVOKED.format(prefix=api_key.prefix), code="already_revoked")
    datasets = _export_datasets_checked(export_datasets)
    accounts = list(export_accounts)
    # The accounts change without history rows of their own, then one row snapshots both limits together.
    api_key.skip_history_when_saving = True  # type: ignore[attr-defined]
    try:
        api_key.export_accounts.set(accounts)
    finally:
        del api_key.skip_history_when_saving  # type: ignore[attr-defined]
    api_key.export_datasets = datasets
    api_key.full_clean()
    stamp(api_key, actor=actor, reason="export limits changed")
    api_key.save(update_fields=["export_datasets"])
    transaction.on_commit(api_key_cache_clear)
    return api_key


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, actor: Any = None) -> ApiKey:
    if api_key.revoked_at is not None:
        raise BillingError(ERR_KEY_REVOKED.format(prefix=api_key.prefix), code="already_revoked")
    api_key.revoked_at = clock.now()
    stamp(api_key, actor=actor, reason="revoked")
    api_key.save(update_fields=["revoked_at"])
    # This process forgets the key at once; other processes within KEY_CACHE_SECONDS.
    transaction.on_commit(api_key_cache_clear)
    return api_key


def api_key_touch(*, api_key: ApiKey, now: dt.datetime) -> None:
    """Record use, at most once a minute per key so the hot path does not write on every request."""
    if api_key.last_used_at is None or now - api_key.last_used_at >= KEY_TOUCH_INTERVAL:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
