"""People and invoices for dispute tests: billing staff, finance admins, portal users of each role, and the
issued Business invoice ($299 + 6,000 × $0.03 = $479.00; $574.80 with 20 % tax)."""

from decimal import Decimal

from django.contrib.auth.models import Group

from accounts.models import AccountUser
from accounts.permissions import BILLING_STAFF, FINANCE_ADMIN
from billing.models import Invoice
from tests.accounts.factories import AccountFactory, AccountUserFactory, StaffUserFactory
from tests.billing.cycle import JAN_1, close, event, ingest, subscribe
from tests.billing.factories import business_invoice
from tests.tenants.factories import TenantFactory


def billing_staff(username="bianca", **kwargs):
    return StaffUserFactory(username=username, groups=[Group.objects.get(name=BILLING_STAFF)], **kwargs)


def finance_admin(username="fiona", **kwargs):
    return StaffUserFactory(username=username, groups=[Group.objects.get(name=FINANCE_ADMIN)], **kwargs)


def portal_user(account, role=AccountUser.Role.OWNER, email=None):
    email = email or f"{role}@{account.name.lower().replace(' ', '')}.example"
    return AccountUserFactory(account=account, email=email, role=role).user


def issued_invoice(plan, *, name="Northwind", tax_rate="20"):
    """Northwind's November invoice, finalized on 1 December: $479.00 + 20 % = $574.80."""
    return business_invoice(plan, name=name, tax_rate=tax_rate)


def issued_invoices(plan, names=("Northwind", "Contoso"), tax_rate="20"):
    """One November invoice per name, each as ``issued_invoice``'s, from one close of the month."""
    accounts = []
    for name in names:
        account = AccountFactory(name=name, tax_rate=Decimal(tax_rate))
        subscribe(account, plan("messaging-business"))
        tenant = f"ten_{name.lower()}"
        TenantFactory(account=account, public_id=tenant, activated_at=JAN_1)
        ingest(account, [event(f"{name}-m1", tenant, "messages", 31_000, "2026-11-10T10:00:00Z")])
        accounts.append(account)
    close()
    return [Invoice.objects.get(account=account) for account in accounts]
