"""The demo's dispute cases on last month's invoices, as billing staff would find them today: a fresh one from
the portal, one waiting on the customer, one credited, a credit awaiting Finance approval, one explained and
closed, and a chargeback from the bank. Written through the same services as the portal, the admin, the API
and Stripe's webhooks, each step at its own moment on the test clock."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction

from accounts.models import Account, AccountUser
from accounts.services import api_key_create
from billing.models import Invoice, InvoiceLine, Payment
from billing.services.credit_notes import CreditLine, credit_line_for_quantity
from billing.services.stripe_gateway import to_minor
from common import clock
from common.money import round_money
from common.periods import month_containing, previous_month
from disputes.models import Dispute
from disputes.services import (
    LineClaim,
    dispute_ask_customer,
    dispute_credit_propose,
    dispute_from_chargeback,
    dispute_investigate,
    dispute_open,
    dispute_reply,
    dispute_resolve,
)
from usage.models import UsageEvent


def _usage_line(invoice: Invoice) -> InvoiceLine | None:
    """The invoice's largest usage line with a single unit price (one a quantity can be credited from)."""
    lines = invoice.lines.filter(kind=InvoiceLine.Kind.USAGE, unit_price__isnull=False, billable__gt=0)
    return lines.order_by("-amount").first()


def _owner(account: Account):
    return AccountUser.objects.select_related("user").get(account=account, role=AccountUser.Role.OWNER).user


def _at(moment: dt.datetime) -> dt.datetime:
    clock.clock_set(at=moment, allow_backwards=True)
    return moment


def _outage_csv(invoice: Invoice, line: InvoiceLine) -> SimpleUploadedFile:
    events = UsageEvent.objects.filter(account_id=invoice.account_id, metric_id=line.metric_id).order_by("timestamp")
    rows = ["transaction_id,timestamp,quantity,note"]
    for event in events[:12]:
        rows.append(
            f"{event.transaction_id},{event.timestamp:%Y-%m-%dT%H:%M:%SZ},{event.quantity:f},retried by our gateway"
        )
    return SimpleUploadedFile("gateway-retries.csv", ("\n".join(rows) + "\n").encode(), content_type="text/csv")


@transaction.atomic
def demo_disputes(*, now: dt.datetime) -> int:
    """Open the demo's cases once (none when a case exists already). Returns how many were opened."""
    if Dispute.objects.exists():
        return 0
    month = previous_month(month_containing(now))
    invoices = {
        i.account.name: i
        for i in Invoice.objects.filter(period_start=month.start, number__isnull=False).select_related("account")
    }
    staff = get_user_model().objects.get(username="billing")
    threshold = D(settings.DISPUTES_CREDIT_APPROVAL_ABOVE)
    opened = 0
    try:
        # 1. Fresh from the portal, five hours ago: the customer says retries were counted twice.
        first = Account.objects.earliest("public_id")
        invoice = invoices.get(first.name)
        line = _usage_line(invoice) if invoice else None
        if invoice and line:
            disputed = max(D(1), (line.billable * D("0.1")).quantize(D(1)))
            dispute_open(
                account=first,
                invoice=invoice,
                subject=f"{line.description}: retries counted twice",
                description=(
                    "Our gateway retried requests during the outage on the 14th and we think each retry was billed. "
                    "The attached export lists the retried transactions."
                ),
                category=Dispute.Category.USAGE,
                lines=[LineClaim(invoice_line=line, quantity=disputed, note="retries during the outage")],
                source=Dispute.Source.PORTAL,
                channel=Dispute.Channel.PORTAL,
                actor=_owner(first),
                attachments=[_outage_csv(invoice, line)],
                now=_at(now - dt.timedelta(hours=5)),
            )
            opened += 1

        # 2. Phoned in two days ago; staff asked the customer which tenant the spike came from.
        stark = invoices.get("Stark Freight")
        if stark:
            case = dispute_open(
                account=stark.account,
                invoice=stark,
                subject="Usage spike we cannot explain",
                description="Called in: messages are up sharply and the customer believes a test tenant caused it.",
                category=Dispute.Category.USAGE,
                lines=[LineClaim(invoice_line=line)] if (line := _usage_line(stark)) else [],
                source=Dispute.Source.STAFF,
                channel=Dispute.Channel.PHONE,
                actor=staff,
                now=_at(now - dt.timedelta(days=2)),
            )
            dispute_investigate(dispute=case, actor=staff, now=_at(now - dt.timedelta(days=2, hours=-1)))
            dispute_ask_customer(
                dispute=case,
                actor=staff,
                question="Could you tell us which tenant ran the load test, and on which days? We will check "
                "its events against the invoice.",
                now=_at(now - dt.timedelta(days=1, hours=22)),
            )
            opened += 1

        # 3. Credited: part of a usage line, below the approval threshold, issued at once.
        acme = invoices.get("Acme Retail Group")
        line = _usage_line(acme) if acme else None
        if acme and line:
            case = dispute_open(
                account=acme.account,
                invoice=acme,
                subject="Duplicate messages from our EU tenant",
                description="A misconfigured worker sent the same messages twice on two days.",
                category=Dispute.Category.DUPLICATE,
                lines=[LineClaim(invoice_line=line)],
                source=Dispute.Source.PORTAL,
                channel=Dispute.Channel.PORTAL,
                actor=_owner(acme.account),
                now=_at(now - dt.timedelta(days=6)),
            )
            dispute_investigate(dispute=case, actor=staff, now=_at(now - dt.timedelta(days=5, hours=20)))
            dispute_reply(
                dispute=case,
                body="Checked against the worker's logs: the customer's duplicates had new transaction ids.",
                internal=True,
                actor=staff,
                now=_at(now - dt.timedelta(days=5, hours=19)),
            )
            quantity = max(D(1), (line.billable * D("0.05")).quantize(D(1)))
            credit = credit_line_for_quantity(line=line, quantity=quantity)
            while credit.amount * (1 + acme.tax_rate / 100) > threshold and quantity > 1:
                quantity = (quantity / 2).quantize(D(1))
                credit = credit_line_for_quantity(line=line, quantity=quantity)
            dispute_credit_propose(
                dispute=case,
                actor=staff,
                lines=[credit],
                reason="Duplicates confirmed in the worker's logs; credited as goodwill.",
                now=_at(now - dt.timedelta(days=5, hours=18)),
            )
            opened += 1

        # 4. A large goodwill credit waits for a Finance admin's approval.
        biggest = max(
            (i for name, i in invoices.items() if name not in ("Acme Retail Group", "Stark Freight", first.name)),
            key=lambda i: i.total,
            default=None,
        )
        if biggest is not None and biggest.total - biggest.amount_credited > threshold:
            case = dispute_open(
                account=biggest.account,
                invoice=biggest,
                subject="Service outage on the 3rd",
                description="Our tenants could not send for most of a day; we ask for a service credit.",
                category=Dispute.Category.SERVICE,
                source=Dispute.Source.API,
                channel=Dispute.Channel.API,
                actor=api_key_create(
                    name="Support desk integration", scopes=["read", "disputes"], account=biggest.account
                )[0],
                now=_at(now - dt.timedelta(days=4)),
            )
            dispute_investigate(dispute=case, actor=staff, now=_at(now - dt.timedelta(days=3, hours=20)))
            rate = 1 + (D(0) if biggest.tax_reverse_charge else biggest.tax_rate) / 100
            goodwill = round_money(
                min(threshold * 2, (biggest.total - biggest.amount_credited) / rate * D("0.9")), biggest.currency
            )
            dispute_credit_propose(
                dispute=case,
                actor=staff,
                lines=[CreditLine(invoice_line=None, description="Service credit: outage on the 3rd", amount=goodwill)],
                reason="Outage confirmed by the status page; one day's service credit per the SLA.",
                now=_at(now - dt.timedelta(days=3, hours=18)),
            )
            opened += 1

        # 5. Explained and closed.
        initech = invoices.get("Initech Software")
        if initech:
            case = dispute_open(
                account=initech.account,
                invoice=initech,
                subject="Why are we billed for an extra tenant?",
                description="We count three tenants, the invoice bills four.",
                category=Dispute.Category.PRICE,
                source=Dispute.Source.PORTAL,
                channel=Dispute.Channel.PORTAL,
                actor=_owner(initech.account),
                now=_at(now - dt.timedelta(days=8)),
            )
            dispute_investigate(dispute=case, actor=staff, now=_at(now - dt.timedelta(days=7, hours=21)))
            dispute_resolve(
                dispute=case,
                actor=staff,
                reason="The fourth tenant (staging) was active until the 20th; tenants are billed for the days they "
                "are active, as the plan says.",
                now=_at(now - dt.timedelta(days=7)),
            )
            opened += 1

        # 6. A chargeback: Umbrella's bank disputes the SEPA debit.
        payment = Payment.objects.filter(account__name="Umbrella Pharma", status=Payment.Status.SUCCEEDED).first()
        if payment is not None and payment.invoice is not None:
            created = _at(now - dt.timedelta(days=1))
            dispute_from_chargeback(
                payment=payment,
                stripe_dispute={
                    "id": "dp_demo_umbrella_1",
                    "amount": to_minor(payment.amount, payment.currency),
                    "currency": payment.currency.lower(),
                    "reason": "debit_not_authorized",
                    "status": "needs_response",
                    "created": int(created.timestamp()),
                },
                invoice=payment.invoice,
                now=created,
            )
            opened += 1
        return opened
    finally:
        clock.clock_reset()


def demo_disputes_summary() -> list[str]:
    lines = ["Disputes (admin: Disputes; portal: Disputes):"]
    for case in Dispute.objects.select_related("account", "invoice").order_by("opened_at"):
        pending = case.credit_proposals.filter(status="pending").exists()
        state = case.get_state_display().lower() + (
            f" ({case.get_resolution_display().lower()})" if case.resolution else ""
        )
        lines.append(
            f"  {case.public_id} {case.account.name}, {case.invoice.number if case.invoice else '-'}: {state}"
            + (", credit awaiting Finance approval" if pending else "")
        )
    return lines
