"""How an account pays (``PaymentProfile``): automatic collection switched on or off by the customer's owner
or admin in the portal, or by Finance admin.

Automatic collection charges the default payment method when an invoice is finalized and retries on
failure, so it is only ever on with a payment method on file. The payment method itself is set from
Stripe (a card set up through Stripe's hosted page), never typed in here.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from accounts.models import Account, AccountUser
from billing.models import PaymentProfile
from common.audit import stamp
from common.errors import BillingError

ERR_NO_PAYMENT_METHOD = "Add a payment method before turning on automatic collection: there is nothing to charge yet."
ERR_AUTO_COLLECTION_DENIED = "Only the account's owners and admins may change automatic collection."
PERM_CHANGE_PROFILE = "billing.change_paymentprofile"
# Portal roles that may switch automatic collection (the portal's Billing page offers it to them only).
AUTO_COLLECTION_ROLES = (AccountUser.Role.OWNER, AccountUser.Role.ADMIN)


def _require_may_change(actor: Any, account: Account) -> None:
    """``actor=None`` is the system. A portal user must be an owner or admin of ``account``; staff need
    ``billing.change_paymentprofile`` (Finance admin)."""
    if actor is None:
        return
    if not getattr(actor, "is_authenticated", False):
        raise BillingError(ERR_AUTO_COLLECTION_DENIED, code="permission_denied", status=403)
    membership = AccountUser.objects.filter(user=actor).only("account_id", "role").first()
    if membership is not None:
        if membership.account_id == account.pk and membership.role in AUTO_COLLECTION_ROLES:
            return
        raise BillingError(ERR_AUTO_COLLECTION_DENIED, code="permission_denied", status=403)
    if not actor.has_perm(PERM_CHANGE_PROFILE):
        raise BillingError(ERR_AUTO_COLLECTION_DENIED, code="permission_denied", status=403)


@transaction.atomic
def payment_profile_set_auto_collection(*, account: Account, enabled: bool, actor: Any) -> PaymentProfile:
    """Switch automatic collection on or off for ``account`` (creating its profile if it has none).

    Turning it on needs a payment method on file (409 otherwise). Unchanged is a no-op without a history
    row; a change leaves one with the actor and the reason."""
    _require_may_change(actor, account)
    profile, _ = PaymentProfile.objects.select_for_update().get_or_create(account=account)
    if enabled and not profile.has_payment_method:
        raise BillingError(ERR_NO_PAYMENT_METHOD, code="payment_method_required", field="auto_collection", status=409)
    if profile.auto_collection == enabled:
        return profile
    profile.auto_collection = enabled
    stamp(profile, actor=actor, reason=f"automatic collection turned {'on' if enabled else 'off'}")
    profile.save(update_fields=["auto_collection", "updated_at"])
    return profile
