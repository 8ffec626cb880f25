"""Writes for tenants and master partners."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction

from accounts.models import Account
from common import clock
from common.audit import stamp
from common.errors import BillingError
from common.services import counter_next, model_update
from tenants.models import MasterPartner, Tenant
from tenants.selectors import tenant_cache_clear

ERR_TENANT_ARCHIVED = "Tenant {public_id} is archived and cannot change."
ERR_ARCHIVE_BEFORE_ACTIVATION = "A tenant cannot be archived before it was activated ({activated_at})."
ERR_ARCHIVE_IN_FUTURE = "A tenant can only be archived now or in the past."
ERR_DEACTIVATE_BEFORE_ACTIVATION = "A partner cannot be deactivated before it was activated ({activated_at})."
ERR_PARTNER_INACTIVE = "Partner {public_id} is already deactivated."


@transaction.atomic
def tenant_create(
    *,
    account: Account,
    name: str,
    public_id: str = "",
    activated_at: dt.datetime | None = None,
    actor: Any = None,
) -> Tenant:
    """Create a live tenant. Without a public id one is assigned (``ten_000042``)."""
    tenant = Tenant(
        account=account,
        name=name,
        public_id=public_id or f"ten_{counter_next(name='public_id:ten'):06d}",
        activated_at=activated_at or clock.now(),
        status=Tenant.Status.ACTIVE,
    )
    tenant.full_clean()
    stamp(tenant, actor=actor, reason="created")
    tenant.save()
    return tenant


@transaction.atomic
def tenant_update(*, tenant: Tenant, data: dict[str, Any], actor: Any = None) -> Tenant:
    """Rename, suspend/reactivate or (re)assign the department of a tenant. Archiving has its own service; ids
    never change."""
    if not data:
        return tenant
    if tenant.status == Tenant.Status.ARCHIVED:
        raise BillingError(ERR_TENANT_ARCHIVED.format(public_id=tenant.public_id), code="tenant_archived")
    if data.get("status") == Tenant.Status.ARCHIVED:
        return tenant_archive(tenant=tenant, actor=actor)
    stamp(tenant, actor=actor, reason="updated")
    tenant, _ = model_update(instance=tenant, fields=("name", "status", "department"), data=data)
    return tenant


@transaction.atomic
def tenant_archive(*, tenant: Tenant, at: dt.datetime | None = None, actor: Any = None) -> Tenant:
    """End a tenant's billable life at ``at`` (exclusive). Its usage up to then is still billed."""
    if tenant.status == Tenant.Status.ARCHIVED:
        raise BillingError(ERR_TENANT_ARCHIVED.format(public_id=tenant.public_id), code="tenant_archived")
    now = clock.now()
    at = at or now
    if at > now:
        raise BillingError(ERR_ARCHIVE_IN_FUTURE, code="invalid_archive_time", field="archived_at")
    if at <= tenant.activated_at:
        raise BillingError(
            ERR_ARCHIVE_BEFORE_ACTIVATION.format(activated_at=tenant.activated_at.isoformat()),
            code="invalid_archive_time",
            field="archived_at",
        )
    tenant.status = Tenant.Status.ARCHIVED
    tenant.archived_at = at
    stamp(tenant, actor=actor, reason="archived")
    tenant.save(update_fields=["status", "archived_at", "updated_at"])
    # This process forgets the tenant's billable life at once; others within LOOKUP_CACHE_SECONDS.
    transaction.on_commit(tenant_cache_clear)
    return tenant


@transaction.atomic
def partner_create(
    *,
    account: Account,
    public_id: str,
    name: str,
    department: str = "",
    activated_at: dt.datetime | None = None,
    actor: Any = None,
) -> MasterPartner:
    partner = MasterPartner(
        account=account,
        public_id=public_id,
        name=name,
        department=department,
        activated_at=activated_at or clock.now(),
    )
    partner.full_clean()
    stamp(partner, actor=actor, reason="created")
    partner.save()
    return partner


@transaction.atomic
def partner_update(*, partner: MasterPartner, data: dict[str, Any], actor: Any = None) -> MasterPartner:
    stamp(partner, actor=actor, reason="updated")
    partner, _ = model_update(instance=partner, fields=("name", "department"), data=data)
    return partner


@transaction.atomic
def partner_deactivate(*, partner: MasterPartner, at: dt.datetime | None = None, actor: Any = None) -> MasterPartner:
    if partner.deactivated_at is not None:
        raise BillingError(ERR_PARTNER_INACTIVE.format(public_id=partner.public_id), code="partner_inactive")
    at = at or clock.now()
    if at <= partner.activated_at:
        raise BillingError(
            ERR_DEACTIVATE_BEFORE_ACTIVATION.format(activated_at=partner.activated_at.isoformat()),
            code="invalid_deactivation_time",
            field="deactivated_at",
        )
    partner.deactivated_at = at
    partner.full_clean()
    stamp(partner, actor=actor, reason="deactivated")
    partner.save(update_fields=["deactivated_at"])
    return partner
