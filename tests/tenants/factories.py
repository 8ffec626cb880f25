from __future__ import annotations

import datetime as dt

import factory

from tenants.models import MasterPartner, Tenant
from tenants.services import partner_create, tenant_create
from tests.accounts.factories import AccountFactory


class TenantFactory(factory.Factory):
    class Meta:
        model = Tenant

    account = factory.SubFactory(AccountFactory)
    name = factory.Sequence(lambda n: f"Tenant {n}")
    public_id = factory.Sequence(lambda n: f"ten_test_{n}")
    activated_at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return tenant_create(**kwargs)


class MasterPartnerFactory(factory.Factory):
    class Meta:
        model = MasterPartner

    account = factory.SubFactory(AccountFactory)
    name = factory.Sequence(lambda n: f"Partner {n}")
    public_id = factory.Sequence(lambda n: f"prt_supplier_{n:03d}")
    department = "Procurement"
    activated_at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return partner_create(**kwargs)
