"""API key authentication and scope permissions for the REST API."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions
from simple_history.models import HistoricalRecords

from accounts.models import ApiKey
from accounts.selectors import api_key_for
from accounts.services import api_key_touch
from common import clock

ERR_NO_KEY = "Send an API key as 'Authorization: Bearer <key>'."
ERR_BAD_KEY = "The API key is not valid: unknown, revoked or expired."
ERR_SCOPE = "This API key lacks the '{scope}' scope."


WWW_AUTHENTICATE = 'Bearer realm="ledgerline"'


def api_key_authenticate(*, header: str, now: dt.datetime) -> ApiKey | None:
    """The live API key an ``Authorization`` header value names, recording its use; None when the header
    is empty. Raises ``AuthenticationFailed`` for a malformed header or an unknown, revoked or expired key.
    Shared by the REST framework authentication and the lean events handler (``usage.fast_ingest``)."""
    if not header:
        return None
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise exceptions.AuthenticationFailed(ERR_NO_KEY)
    api_key = api_key_for(key=key.strip(), now=now)
    if api_key is None:
        raise exceptions.AuthenticationFailed(ERR_BAD_KEY)
    api_key_touch(api_key=api_key, now=now)
    return api_key


@dataclass(frozen=True)
class ApiClient:
    """The authenticated caller of an API request (``request.user``)."""

    api_key: ApiKey
    is_authenticated: bool = True
    is_anonymous: bool = False
    is_staff: bool = False

    @property
    def pk(self) -> int:
        return self.api_key.pk

    def __str__(self) -> str:
        return f"API key {self.api_key.prefix}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        api_key = api_key_authenticate(
            header=authentication.get_authorization_header(request).decode("latin-1"), now=clock.now()
        )
        if api_key is None:
            return None
        # The request's user becomes the ApiClient, which is no User: simple-history's middleware would credit
        # it with the history rows the request writes (and fail). A key's writes are credited by the services
        # (``stamp``, the disputes timeline's actor label), so the history middleware forgets this request.
        _forget_history_request()
        return ApiClient(api_key), api_key

    def authenticate_header(self, request):
        return WWW_AUTHENTICATE


def _forget_history_request() -> None:
    try:
        del HistoricalRecords.context.request
    except AttributeError:  # no history middleware in front of this request
        pass


class NotAuthenticated(exceptions.NotAuthenticated):
    default_detail = ERR_NO_KEY


def _scope_permission(scope: str) -> type[permissions.BasePermission]:
    class HasScope(permissions.BasePermission):
        message = ERR_SCOPE.format(scope=scope)

        def has_permission(self, request, view):
            if not isinstance(request.auth, ApiKey):
                raise NotAuthenticated()
            return scope in request.auth.scopes

    HasScope.__name__ = f"Has{scope.title()}Scope"
    return HasScope


HasIngestScope = _scope_permission("ingest")
HasReadScope = _scope_permission("read")
HasExportScope = _scope_permission("export")
HasDisputesScope = _scope_permission("disputes")


class HasSubscriptionScope(permissions.BasePermission):
    """Requesting plan changes: a key with the ``subscription`` scope (read from the key's own field, so that it
    holds whichever scopes ``ApiKey.scopes`` lists)."""

    message = ERR_SCOPE.format(scope="subscription")

    def has_permission(self, request, view):
        if not isinstance(request.auth, ApiKey):
            raise NotAuthenticated()
        return request.auth.scope_subscription


class HasWebhooksScope(permissions.BasePermission):
    """Managing the account's webhook endpoints: a key with the ``webhooks`` scope."""

    message = ERR_SCOPE.format(scope="webhooks")

    def has_permission(self, request, view):
        if not isinstance(request.auth, ApiKey):
            raise NotAuthenticated()
        return request.auth.scope_webhooks


class HasSubscriptionReadScope(permissions.BasePermission):
    """Reading the subscription: the account's own with a ``read`` or ``subscription`` key, any account's with
    ``export`` (naming it with ``?account=``)."""

    message = "This API key needs the 'read', 'subscription' or 'export' scope."

    def has_permission(self, request, view):
        if not isinstance(request.auth, ApiKey):
            raise NotAuthenticated()
        return bool(request.auth.scope_subscription or {"read", "export"} & set(request.auth.scopes))


class HasReadOrExportScope(permissions.BasePermission):
    message = "This API key needs the 'read' or 'export' scope."

    def has_permission(self, request, view):
        if not isinstance(request.auth, ApiKey):
            raise NotAuthenticated()
        return bool({"read", "export"} & set(request.auth.scopes))


class HasDisputesReadScope(permissions.BasePermission):
    """Reading disputes: the account's own with a ``read`` or ``disputes`` key, every account's with ``export``."""

    message = "This API key needs the 'read', 'disputes' or 'export' scope."

    def has_permission(self, request, view):
        if not isinstance(request.auth, ApiKey):
            raise NotAuthenticated()
        return bool({"read", "disputes", "export"} & set(request.auth.scopes))


ERR_EXPORT_DATASET = "This export key is limited to the datasets {allowed}; this endpoint reads {dataset}."
ERR_EXPORT_DATASETS_ALL = (
    "This export key is limited to the datasets {allowed}; this endpoint reads more than those: it needs an export "
    "key without a dataset limit."
)


def export_dataset_permission(dataset: str | None) -> type[permissions.BasePermission]:
    """Least privilege beyond ``/v1/export``: an export key limited to some datasets (``export_datasets``) reads only
    the endpoints of those datasets; ``dataset=None`` marks an endpoint outside the five datasets (disputes, the
    subscription), which only an export key without a dataset limit reads. Other keys are not concerned."""

    class ExportDataset(permissions.BasePermission):
        def has_permission(self, request, view):
            api_key = request.auth
            if not isinstance(api_key, ApiKey) or not api_key.scope_export or not api_key.export_datasets:
                return True
            allowed = api_key.export_datasets_allowed
            if dataset is not None and dataset in allowed:
                return True
            template = ERR_EXPORT_DATASET if dataset is not None else ERR_EXPORT_DATASETS_ALL
            self.message = template.format(allowed=", ".join(allowed), dataset=dataset)
            return False

    ExportDataset.__name__ = f"ExportDataset{(dataset or 'All').title().replace('_', '')}"
    return ExportDataset


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Documents the API key as an HTTP bearer token in the OpenAPI schema."""

    target_class = ApiKeyAuthentication
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "ll_<prefix>_<secret>",
            "description": "An API key: `Authorization: Bearer ll_…`. Scopes: ingest, read, disputes, subscription, "
            "webhooks, export.",
        }
