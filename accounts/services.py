"""Writes for accounts, portal users and budgets."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from accounts.models import Account, AccountUser, Budget, default_alert_thresholds
from accounts.selectors import account_user_email_taken
from common.audit import stamp
from common.errors import BillingError
from common.services import model_update, public_id_next

ERR_CURRENCY_LOCKED = "The currency of an account with subscriptions cannot change."
ERR_BUDGET_CURRENCY = "A budget must be in the account currency ({currency})."
ERR_EMAIL_TAKEN = "A user with the e-mail address {email} already exists."

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
        status_changed_at=timezone.now(),
    )
    account.public_id = public_id_next(prefix="acc")
    account.full_clean()
    stamp(account, actor=actor, reason="created")
    account.save()
    return account


@transaction.atomic
def account_update(*, account: Account, data: dict[str, Any], actor: Any = None) -> Account:
    if "currency" in data and data["currency"] != account.currency and account.subscriptions.exists():
        raise BillingError(ERR_CURRENCY_LOCKED, code="currency_locked", field="currency")
    stamp(account, actor=actor, reason="updated")
    account, _ = model_update(instance=account, fields=ACCOUNT_EDITABLE_FIELDS, data=data)
    return account


@transaction.atomic
def account_set_status(*, account: Account, status: str, reason: str, actor: Any = None) -> Account:
    """Move an account to ``status``; the history row records who, when, old and new, and why."""
    if status not in Account.Status.values:
        raise BillingError(f"Unknown account status {status!r}.", code="invalid_status", field="status")
    if account.status == status:
        return account
    account.status = status
    account.status_changed_at = timezone.now()
    stamp(account, actor=actor, reason=reason)
    account.save(update_fields=["status", "status_changed_at", "updated_at"])
    return account


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
    user = User(username=email, email=email, first_name=first_name, last_name=last_name, is_staff=False)
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


@transaction.atomic
def account_user_set_role(*, membership: AccountUser, role: str, actor: Any = None) -> AccountUser:
    stamp(membership, actor=actor, reason="role changed")
    membership, _ = model_update(instance=membership, fields=("role",), data={"role": role})
    return membership


def _check_budget_currency(account: Account, currency: str) -> None:
    if currency != account.currency:
        raise BillingError(
            ERR_BUDGET_CURRENCY.format(currency=account.currency), code="currency_mismatch", field="currency"
        )


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
    return budget


@transaction.atomic
def budget_update(*, budget: Budget, data: dict[str, Any], actor: Any = None) -> Budget:
    if "currency" in data:
        _check_budget_currency(budget.account, data["currency"])
    stamp(budget, actor=actor, reason="updated")
    budget, _ = model_update(
        instance=budget, fields=("name", "amount", "currency", "period", "alert_thresholds", "is_active"), data=data
    )
    return budget
