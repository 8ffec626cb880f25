"""Template context for portal pages: the signed-in user's membership and account (set by ``portal_view``)."""


def portal(request) -> dict:
    return {"membership": getattr(request, "membership", None), "account": getattr(request, "account", None)}
