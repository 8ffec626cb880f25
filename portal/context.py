"""Template context for portal pages: the signed-in user's membership and account (set by ``portal_view``),
and the banner of an account that is past due or suspended (read only for such an account)."""

from portal.payments import account_status_notice


def portal(request) -> dict:
    account = getattr(request, "account", None)
    return {
        "membership": getattr(request, "membership", None),
        "account": account,
        "account_notice": account_status_notice(account=account) if account is not None else None,
    }
