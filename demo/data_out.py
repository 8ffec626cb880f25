"""The demo's data going out besides webhooks: Northwind's departments (its tenants mapped, one partner left
unmapped, so the portal's Allocation page has an "Unallocated" row), and an ERP system's export key limited to
two accounts and to invoices, credit notes and payments, which has exported last month's invoices once through the
API (the request is in the admin's export requests). Written through the same services as the portal and the admin,
and the export through the API's own view."""

from __future__ import annotations

import datetime as dt

from django.contrib.auth import get_user_model
from django.test import RequestFactory

from accounts.models import Account, ApiKey
from accounts.services import api_key_create
from common.periods import month_containing, previous_month
from exports.apis import InvoiceExportApi
from exports.models import ExportRequest
from tenants.models import MasterPartner, Tenant
from tenants.services import partner_update, tenant_update

EXPORT_KEY_NAME = "ERP export (Northwind, Acme)"
EXPORT_DATASETS = ["invoices", "credit_notes", "payments"]
TENANT_DEPARTMENTS = ("Operations", "Customer Success", "Sales")


def demo_data_out(*, now: dt.datetime) -> bool:
    """False when the demo has its export key already."""
    if ApiKey.objects.filter(name=EXPORT_KEY_NAME).exists():
        return False
    finance = get_user_model().objects.get(username="finance")
    main = Account.objects.earliest("public_id")
    live = Tenant.objects.filter(account=main).exclude(status=Tenant.Status.ARCHIVED).order_by("public_id")
    for i, tenant in enumerate(live):
        department = TENANT_DEPARTMENTS[i % len(TENANT_DEPARTMENTS)]
        tenant_update(tenant=tenant, data={"department": department}, actor=finance)
    partner = MasterPartner.objects.filter(account=main).order_by("public_id").last()
    if partner is not None:
        partner_update(partner=partner, data={"department": ""}, actor=finance)

    accounts = [main, *Account.objects.filter(name__startswith="Acme")[:1]]
    _, secret = api_key_create(
        name=EXPORT_KEY_NAME,
        scopes=["export"],
        export_accounts=accounts,
        export_datasets=EXPORT_DATASETS,
        actor=finance,
    )
    month = previous_month(month_containing(now)).start
    request = RequestFactory(HTTP_HOST="127.0.0.1").get(
        "/v1/export/invoices",
        {"billing_month": f"{month:%Y-%m}", "format": "ndjson"},
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )
    response = InvoiceExportApi.as_view()(request)
    # Read to the end: the stream records its export request when it has sent its last row.
    b"".join(response.streaming_content if response.streaming else [response.content])
    return True


def demo_data_out_summary() -> list[str]:
    key = ApiKey.objects.get(name=EXPORT_KEY_NAME)
    accounts = ", ".join(a.public_id for a in key.export_accounts.order_by("public_id"))
    lines = [
        f"Export key {key.prefix}… “{key.name}”: accounts {accounts}; datasets {', '.join(key.export_datasets)} "
        "(admin: Accounts › API keys)."
    ]
    for request in ExportRequest.objects.filter(api_key=key).order_by("id"):
        lines.append(
            f"  exported {request.dataset} as {request.format}: {request.row_count} rows (admin: Export requests)"
        )
    lines.append("Departments: Northwind's tenants mapped, one partner unmapped (portal: Departments, Allocation).")
    return lines
