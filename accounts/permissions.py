"""The two staff groups and what they may do. Applied by migration (and re-applied by later
migrations as models are added) through ``staff_groups_sync``.

- Billing staff work accounts and disputes: they add and change accounts, portal users, budgets,
  API keys of accounts, tenants, partners, subscriptions and disputes (and credit a customer from a dispute
  up to ``DISPUTES_CREDIT_APPROVAL_ABOVE``: ``disputes.issue_credit``), hold, release, finalize and void
  drafts in review, and view everything else (the catalogue included) without changing it, except the
  internal tables (number series, outbox events, idempotency records, the test clock), which they do not
  see at all. They delete nothing and cannot create platform-wide export keys.
- Subscriptions: billing staff change plans, extend trials and approve or decline customers' plan change
  requests (``billing.approve_plan_change``); contracts (terms, commitments, volume discounts, prepaid credits,
  documents) are Finance admin's to edit, billing staff see them.
- Payments: billing staff see the payments ledger and the dunning state of every open invoice, and may pause,
  resume or retry collection; recording, refunding and reversing payments, importing bank statements and
  resolving reconciliation mismatches are Finance admin's (``billing.add_payment``, ``billing.refund_payment``).
- Finance admin may do everything in Ledgerline's apps, including the catalogue and credits, edit the
  periodic task schedule, and see failed sign-in attempts, lifting a sign-in lock by deleting its attempt
  (django-axes, ``accounts.sign_in``). Only they take money back off an issued invoice: voiding a finalized
  invoice (``billing.void_issued_invoice``) and writing one off as uncollectible
  (``billing.write_off_invoice``); the invoice services check these permissions of the acting user. They
  issue credit notes outside a dispute (``billing.add_creditnote``), void one not yet applied
  (``billing.void_credit_note``) and approve a dispute's credit above the threshold (``disputes.approve_credit``),
  never their own.
  Creating staff logins stays with superusers, so no group can grant itself more rights.
"""

from __future__ import annotations

from django.contrib.auth.management import create_permissions

BILLING_STAFF = "Billing staff"
FINANCE_ADMIN = "Finance admin"

LEDGERLINE_APPS = ("accounts", "tenants", "billing", "disputes", "common", "usage", "webhooks", "exports", "insights")
# Finance admins also run the billing schedule (django-celery-beat's periodic tasks).
FINANCE_EXTRA_APPS = ("django_celery_beat",)
# ... and see failed sign-in attempts, lifting a lock by deleting its row (django-axes).
FINANCE_EXTRA_PERMISSIONS = (("axes", "view_accessattempt"), ("axes", "delete_accessattempt"))

# (app_label, model) pairs billing staff may add and change.
BILLING_STAFF_EDITABLE = {
    ("accounts", "account"),
    ("accounts", "accountuser"),
    ("accounts", "budget"),
    ("accounts", "apikey"),
    ("tenants", "tenant"),
    ("tenants", "masterpartner"),
    ("billing", "subscription"),
    ("billing", "invoice"),  # hold, release, finalize and void drafts in review
    ("disputes", "dispute"),
    ("billing", "collection"),  # pause and resume dunning, retry a payment now
    ("billing", "planchangerequest"),  # request a plan change for a customer
    ("webhooks", "webhookendpoint"),  # add a customer's webhook endpoint, edit, enable, disable, rotate, resend
}
# Internal tables: kept by services for services (numbering, webhooks, idempotent replays, the test
# clock). Billing staff have no view permission on them, so the admin neither lists nor opens them.
BILLING_STAFF_HIDDEN = {
    ("common", "counter"),
    ("common", "outboxevent"),
    ("common", "idempotencyrecord"),
    ("common", "clock"),
}
# Custom permissions (beyond add/change/delete/view) that stay with Finance admin, listed so that no
# rule for billing staff can hand them out by accident.
FINANCE_ONLY = {
    ("billing", "void_issued_invoice"),
    ("billing", "write_off_invoice"),
    ("billing", "refund_payment"),
    ("billing", "void_credit_note"),
    ("disputes", "approve_credit"),
}
# Custom permissions billing staff hold: they credit customers from a dispute up to the approval threshold
# (above it a Finance admin approves).
BILLING_STAFF_EXTRA = {("disputes", "issue_credit"), ("billing", "approve_plan_change")}


def staff_groups_sync(apps, schema_editor=None) -> None:
    """Create or update both groups so they hold exactly the permissions above.

    Works with historical models (``apps`` from a migration) as well as the live registry.
    """
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    ours = list(Permission.objects.filter(content_type__app_label__in=LEDGERLINE_APPS).select_related("content_type"))

    finance, _ = Group.objects.get_or_create(name=FINANCE_ADMIN)
    extras = list(Permission.objects.filter(content_type__app_label__in=FINANCE_EXTRA_APPS))
    for app_label, codename in FINANCE_EXTRA_PERMISSIONS:
        # Absent while the app's own migrations have not run yet: a later migration syncs again.
        extras.extend(Permission.objects.filter(content_type__app_label=app_label, codename=codename))
    finance.permissions.set(ours + extras)

    billing_staff, _ = Group.objects.get_or_create(name=BILLING_STAFF)
    allowed = []
    for perm in ours:
        action = perm.codename.split("_", 1)[0]
        model = (perm.content_type.app_label, perm.content_type.model)
        if (perm.content_type.app_label, perm.codename) in FINANCE_ONLY or model in BILLING_STAFF_HIDDEN:
            continue
        if (perm.content_type.app_label, perm.codename) in BILLING_STAFF_EXTRA:
            allowed.append(perm)
        elif action == "view" or (action in ("add", "change") and model in BILLING_STAFF_EDITABLE):
            allowed.append(perm)
    billing_staff.permissions.set(allowed)
