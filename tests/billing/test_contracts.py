"""Contract terms, worked by hand: the term's end computed on save, renewal notices e-mailed once through a real
local SMTP server, auto-renewal extending the term (and the finished term's last month still trued up),
a term that does not renew ending the subscription at its end, and cancellation inside a term — to the term's
end, or now with an early-termination charge the next close bills — or, without a contract, at the end of
the billing period or the paid year.

The contracted account is on a negotiated plan of USD 2,000.00 a month (``tests.billing.test_contract_rating``).
"""

import datetime as dt
from decimal import Decimal as D

import pytest
import time_machine

from accounts.models import Account
from billing.models import Contract, Plan, Subscription
from billing.services.catalogue import plan_create, plan_version_create
from billing.services.contracts import (
    ERR_CANCEL_REASON,
    ERR_EARLY_PERCENT,
    ERR_MANAGER_NOT_STAFF,
    cancellation_preview,
    contract_in_force,
    contract_save,
    contracts_renew_due,
    subscription_cancel_per_contract,
)
from billing.services.lifecycle import lifecycle_update
from common.errors import BillingError
from common.models import OutboxEvent
from tests.accounts.factories import AccountFactory, StaffUserFactory
from tests.billing.cycle import UTC, subscribe
from tests.billing.test_contract_rating import bill, enterprise, lines_of
from tests.billing.test_invoice_emails import smtp  # noqa: F401 - the real local SMTP server fixture
from tests.disputes.factories import finance_admin
from tests.tenants.factories import TenantFactory

pytestmark = pytest.mark.django_db

JAN_2027 = dt.datetime(2027, 1, 1, tzinfo=UTC)
JAN_2028 = dt.datetime(2028, 1, 1, tzinfo=UTC)
JAN_2030 = dt.datetime(2030, 1, 1, tzinfo=UTC)
CONTACTS = ["ap@globex.example"]
PLAN_NAME = "Custom Enterprise – Globex"


def globex(name="Globex"):
    """An account on its negotiated plan (USD 2,000.00 a month) since January 1, 2027, with one tenant."""
    account = AccountFactory(name=name, billing_emails=CONTACTS, tax_rate=D("0"))
    subscribe(account, enterprise(account), started_at=JAN_2027, at=JAN_2027)
    TenantFactory(account=account, public_id=f"ten_{account.pk}", activated_at=JAN_2027)
    return account


def signed(account, *, actor=None, **fields):
    """A 36-month contract from January 1, 2027, saved as the admin saves it."""
    values = {"term_start": JAN_2027, "term_months": 36, "auto_renew": True, "renewal_notice_days": 60, **fields}
    return contract_save(contract=Contract(account=account, **values), actor=actor)


def live(account) -> Subscription:
    return account.subscriptions.exclude(status=Subscription.Status.CANCELLED).get()


def delivered(smtp, capture, action):  # noqa: F811
    before = len(smtp.messages())
    with capture(execute=True):
        result = action()
    return result, smtp.messages()[before:]


def text_of(message) -> str:
    return " ".join(message.get_body(preferencelist=("plain",)).get_content().split())


def updates(account, prefix):
    return list(
        OutboxEvent.objects.filter(
            type="billing.subscription_updated", account_id=account.pk, dedup_key__startswith=prefix
        )
    )


# Saving -------------------------------------------------------------------------------------------------


def test_saving_computes_the_term_end_and_checks_the_rules(catalogue):
    account = globex()
    fiona = finance_admin()
    # January 31 + 1 month: the month's last day, February 28.
    short = signed(account, actor=fiona, term_start=dt.datetime(2027, 1, 31, tzinfo=UTC), term_months=1)
    assert short.term_end == dt.datetime(2027, 2, 28, tzinfo=UTC)
    assert short.public_id.startswith("ct_")
    row = short.history.get()
    assert (row.history_user, row.history_change_reason) == (fiona, "created: 1 months from 2027-01-31")

    other = globex(name="Initech")
    contract = signed(other)
    assert contract.term_end == JAN_2030  # 36 months from January 1, 2027

    with pytest.raises(BillingError) as overlap:
        signed(other, term_start=dt.datetime(2029, 6, 1, tzinfo=UTC), term_months=12)
    assert overlap.value.field == "term_start" and contract.public_id in overlap.value.message
    # From the term's end on, a new contract may start.
    later = signed(other, term_start=JAN_2030, term_months=12)
    assert later.term_end == dt.datetime(2031, 1, 1, tzinfo=UTC)

    with pytest.raises(BillingError) as early:
        signed(globex(name="Umbrella"), cancellation=Contract.Cancellation.EARLY_TERMINATION)
    assert (early.value.message, early.value.field) == (ERR_EARLY_PERCENT, "early_termination_percent")

    customer = StaffUserFactory(username="notstaff", is_staff=False)
    with pytest.raises(BillingError) as manager:
        signed(globex(name="Hooli"), account_manager=customer)
    assert manager.value.message == ERR_MANAGER_NOT_STAFF.format(user="notstaff")
    assert not Contract.objects.filter(account__name__in=["Umbrella", "Hooli"]).exists()


# Renewal ------------------------------------------------------------------------------------------------


def test_the_renewal_notice_is_emailed_once_60_days_before_the_term_ends(
    catalogue,
    smtp,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    account = globex()
    manager = StaffUserFactory(
        username="dscully", first_name="Dana", last_name="Scully", email="dana@ledgerline.example"
    )
    contract = signed(account, reference="MSA-0142", account_manager=manager)
    capture = django_capture_on_commit_callbacks
    # The term ends on January 1, 2030 (exclusive): 60 days before is November 2, 2029 (30 of December, 30 of
    # November).
    before = dt.datetime(2029, 11, 1, 23, 59, tzinfo=UTC)
    due = dt.datetime(2029, 11, 2, tzinfo=UTC)

    counts, mails = delivered(smtp, capture, lambda: contracts_renew_due(now=before))
    assert counts == {"renewal_notices": 0, "contracts_renewed": 0, "contracts_ended": 0} and mails == []

    with time_machine.travel(due, tick=False):
        counts, mails = delivered(smtp, capture, lambda: contracts_renew_due(now=due))
    assert counts["renewal_notices"] == 1
    assert len(mails) == 1 and mails[0]["To"] == "ap@globex.example"
    assert " ".join(mails[0]["Subject"].split()) == "Your contract MSA-0142 renews on 1 January 2030"
    body = text_of(mails[0])
    assert (
        f"Your contract {contract.public_id} (MSA-0142) reaches the end of its term on 31 December 2029. It renews "
        "automatically for another 36 months, to 31 December 2032, on the same terms" in body
    )
    assert "your account manager, Dana Scully <dana@ledgerline.example>" in body
    contract.refresh_from_db()
    assert contract.renewal_notified_for == JAN_2030

    later = dt.datetime(2029, 11, 3, tzinfo=UTC)
    counts, mails = delivered(smtp, capture, lambda: contracts_renew_due(now=later))
    assert counts["renewal_notices"] == 0 and mails == []


def test_an_auto_renewing_term_is_extended_once_it_is_over_and_its_last_month_still_trued_up(catalogue):
    account = globex()
    contract = signed(account, commitment_amount=D("30000.00"), commitment_period=Contract.CommitmentPeriod.YEAR)

    assert contracts_renew_due(now=JAN_2030 - dt.timedelta(seconds=1))["contracts_renewed"] == 0
    assert contracts_renew_due(now=JAN_2030)["contracts_renewed"] == 1
    contract.refresh_from_db()
    # A second term of 36 months; the start stays, so contract years keep counting from January 1, 2027.
    assert (contract.term_start, contract.term_end) == (JAN_2027, dt.datetime(2033, 1, 1, tzinfo=UTC))
    assert contract.history.first().history_change_reason == "renewed for 36 months: the term runs to 2032-12-31"
    assert contracts_renew_due(now=JAN_2030 + dt.timedelta(days=1))["contracts_renewed"] == 0

    # December 2029, closed after the renewal, is still the last month of contract year 3 (no earlier month of
    # the year was billed here, so its 2,000.00 base fee is the year's whole spend): 30,000.00 − 2,000.00.
    december = bill(account, 2029, 12)
    assert lines_of(december)[-1] == (
        "minimum_commitment",
        "Commitment true-up: 30,000.00 USD committed for contract year 3 (Jan 2029 – Dec 2029), 2,000.00 USD billed",
        D("28000.00"),
    )


def test_a_term_that_does_not_renew_cancels_the_subscription_at_its_end(catalogue):
    account = globex()
    contract = signed(account, auto_renew=False, renewal_notice_days=30)
    subscription = live(account)
    window = dt.datetime(2029, 12, 2, tzinfo=UTC)  # January 1, 2030 less 30 days: the notice, nothing else

    with time_machine.travel(window, tick=False):
        changes = lifecycle_update(now=window)
    assert (changes["renewal_notices"], changes["contracts_ended"], changes["cancelled"]) == (1, 0, 0)
    subscription.refresh_from_db()
    assert (subscription.status, subscription.cancel_at) == (Subscription.Status.ACTIVE, None)

    last_minute = JAN_2030 - dt.timedelta(minutes=1)
    with time_machine.travel(last_minute, tick=False):
        assert lifecycle_update(now=last_minute)["contracts_ended"] == 0

    # The first run at or after the term's end sets the end and applies it: ended at the term's end, not at the
    # moment of the run.
    run = JAN_2030 + dt.timedelta(hours=2)
    with time_machine.travel(run, tick=False):
        changes = lifecycle_update(now=run)
    assert (changes["contracts_ended"], changes["cancelled"]) == (1, 1)
    subscription.refresh_from_db()
    account.refresh_from_db()
    assert (subscription.status, subscription.ended_at, subscription.cancel_at) == (
        Subscription.Status.CANCELLED,
        JAN_2030,
        JAN_2030,
    )
    assert account.status == Account.Status.CANCELLED
    reasons = list(subscription.history.order_by("-history_id").values_list("history_change_reason", flat=True)[:2])
    assert reasons == [
        "cancelled at period end",
        f"contract ended: contract {contract.public_id}, 2030-01-01T00:00:00Z",
    ]
    [event] = updates(account, "contract_ended:")
    assert event.payload["data"] == {
        "account_id": account.public_id,
        "subscription_id": subscription.public_id,
        "plan": {"code": f"custom-{account.public_id}", "name": PLAN_NAME, "version": 1, "interval": "month"},
        "contract_id": contract.public_id,
        "status": "active",
        "cancel_at_period_end": True,
        "cancel_at": "2030-01-01T00:00:00Z",
        "effective_date": "2030-01-01T00:00:00Z",
        "reason": "contract ended",
    }
    contract.refresh_from_db()
    assert contract.term_end == JAN_2030  # not renewed
    later = run + dt.timedelta(days=1)
    with time_machine.travel(later, tick=False):
        assert lifecycle_update(now=later)["contracts_ended"] == 0


def test_finance_may_still_make_a_contract_renew_before_its_term_ends(catalogue):
    account = globex()
    contract = signed(account, auto_renew=False)
    with time_machine.travel(dt.datetime(2029, 12, 1, tzinfo=UTC), tick=False):
        contract.auto_renew = True
        contract_save(contract=contract, actor=finance_admin())

    with time_machine.travel(JAN_2030, tick=False):
        changes = lifecycle_update(now=JAN_2030)

    assert (changes["contracts_renewed"], changes["contracts_ended"], changes["cancelled"]) == (1, 0, 0)
    assert live(account).cancel_at is None


def test_a_contract_recorded_after_its_term_ended_ends_nothing(catalogue):
    account = globex()
    # Recorded in 2031 for the file: the 2027–2029 agreement, which did not renew.
    with time_machine.travel(dt.datetime(2031, 3, 1, tzinfo=UTC), tick=False):
        signed(account, auto_renew=False)
        changes = lifecycle_update(now=dt.datetime(2031, 3, 1, tzinfo=UTC))
    assert changes["contracts_ended"] == 0
    assert live(account).cancel_at is None


# Cancellation inside a term -----------------------------------------------------------------------------


def test_early_termination_charges_half_of_the_commitment_still_ahead_and_the_next_close_bills_it(catalogue):
    account = globex()
    contract = signed(
        account,
        auto_renew=False,
        commitment_amount=D("30000.00"),
        commitment_period=Contract.CommitmentPeriod.YEAR,
        cancellation=Contract.Cancellation.EARLY_TERMINATION,
        early_termination_percent=D("50"),
    )
    staff = finance_admin()

    with time_machine.travel(JAN_2028, tick=False):
        preview = cancellation_preview(subscription=live(account))
        # Contract years 2 (2028) and 3 (2029) are still ahead: 2 × 30,000.00 = 60,000.00; 50 % of it.
        assert (preview.rule, preview.ends_at, preview.remaining, preview.fee) == (
            "early_termination",
            JAN_2028,
            D("60000.00"),
            D("30000.00"),
        )
        assert preview.explanation == (
            f"Contract {contract.public_id} ends early with an early-termination charge: fee = 50% × remaining "
            "commitment; remaining commitment = USD 30,000.00 per contract year × 2 contract years still ahead "
            "(2028-01-01 – 2029-12-31, by days) = USD 60,000.00; fee = 50% × USD 60,000.00 = USD 30,000.00, billed "
            "on the invoice of this month. The subscription ends now."
        )
        with pytest.raises(BillingError) as no_reason:
            subscription_cancel_per_contract(subscription=live(account), actor=staff, reason=" ")
        assert no_reason.value.message == ERR_CANCEL_REASON
        subscription = subscription_cancel_per_contract(
            subscription=live(account), actor=staff, reason="Acquired by Initech"
        )

    assert (subscription.status, subscription.ended_at) == (Subscription.Status.CANCELLED, JAN_2028)
    contract.refresh_from_db()
    assert (contract.terminated_at, contract.termination_fee) == (JAN_2028, D("30000.00"))
    row = contract.history.first()
    assert row.history_user == staff
    assert row.history_change_reason == f"terminated early by {staff.username} <{staff.email}>, fee 30000.00: " + (
        "Acquired by Initech"
    )
    assert contract_in_force(account=account, at=JAN_2028) is None
    [event] = updates(account, "subscription_cancel:")
    assert event.dedup_key == f"subscription_cancel:{subscription.pk}:2028-01-01T00:00:00Z"
    assert event.payload["data"] == {
        "account_id": account.public_id,
        "subscription_id": subscription.public_id,
        "plan": {"code": f"custom-{account.public_id}", "name": PLAN_NAME, "version": 1, "interval": "month"},
        "status": "cancelled",
        "cancel_at_period_end": False,
        "effective_date": "2028-01-01T00:00:00Z",
        "rule": "early_termination",
        "contract_id": contract.public_id,
        "termination_fee": "30000.00",
        "reason": "Acquired by Initech",
    }

    # The close of December 2027 (the month holding the contract's last moment) bills the charge. No earlier
    # month of contract year 1 was billed here, so its true-up counts December's 2,000.00 only.
    december = bill(account, 2027, 12)
    assert lines_of(december) == [
        ("base_fee", f"{PLAN_NAME} base fee", D("2000.00")),
        ("usage", "Messages", D("0.00")),
        (
            "minimum_commitment",
            "Commitment true-up: 30,000.00 USD committed for contract year 1 (Jan 2027 – Dec 2027), "
            "2,000.00 USD billed",
            D("28000.00"),
        ),
        (
            "early_termination",
            f"Early termination of contract {contract.public_id}, term to Dec 31, 2029",
            D("30000.00"),
        ),
    ]


def test_early_termination_without_a_commitment_charges_the_base_fees_still_ahead(catalogue):
    account = globex()
    signed(account, cancellation=Contract.Cancellation.EARLY_TERMINATION, early_termination_percent=D("50"))
    march_15 = dt.datetime(2027, 3, 15, 12, tzinfo=UTC)

    preview = cancellation_preview(subscription=live(account), now=march_15)

    # Contract month 3 (March) has 17 of its 31 days ahead (the 15th counts), months 4–36 are whole:
    # 2,000.00 × (33 + 17/31) = 66,000.00 + 1,096.774… = 67,096.774…; 50 % = 33,548.387… → 33,548.39.
    assert preview.fee == D("33548.39")
    assert preview.remaining.quantize(D("0.001")) == D("67096.774")
    assert "USD 2,000.00 a month × 33.5484 months still ahead (2027-03-15 – 2029-12-31, by days)" in (
        preview.explanation
    )


def test_a_contract_that_runs_to_its_term_end_cancels_then(catalogue):
    account = globex()
    contract = signed(account)
    now = dt.datetime(2028, 6, 10, tzinfo=UTC)

    subscription = subscription_cancel_per_contract(
        subscription=live(account), actor=None, reason="Moving to another vendor", now=now
    )

    assert (subscription.status, subscription.cancel_at, subscription.cancel_at_period_end) == (
        Subscription.Status.ACTIVE,
        contract.term_end,
        True,
    )
    assert subscription.cancelled_at == now
    assert subscription.history.first().history_change_reason == (
        "cancelled (term end, ends 2030-01-01T00:00:00Z): Moving to another vendor"
    )
    [event] = updates(account, "subscription_cancel:")
    assert event.payload["data"]["effective_date"] == "2030-01-01T00:00:00Z"
    assert event.payload["data"]["termination_fee"] is None


def test_without_a_contract_a_yearly_plan_ends_with_the_paid_year_and_a_monthly_one_with_the_month(plan):
    yearly = plan_version_create(
        plan=plan_create(code="messaging-business-yearly", name="Business yearly", product=Plan.Product.MESSAGING),
        currency="USD",
        base_fee=D("2990.00"),
        billing_interval="year",
        publish=True,
    )
    annual = AccountFactory(name="Annual")
    subscribe(annual, yearly, started_at=dt.datetime(2027, 3, 10, tzinfo=UTC), at=dt.datetime(2027, 3, 10, tzinfo=UTC))
    monthly = AccountFactory(name="Monthly")
    subscribe(monthly, plan("messaging-business"), started_at=JAN_2027, at=dt.datetime(2027, 11, 2, tzinfo=UTC))
    now = dt.datetime(2027, 11, 20, tzinfo=UTC)

    with time_machine.travel(now, tick=False):
        preview = cancellation_preview(subscription=live(annual))
        assert (preview.rule, preview.ends_at, preview.fee) == (
            "paid_year_end",
            dt.datetime(2028, 3, 10, tzinfo=UTC),
            None,
        )
        ended = subscription_cancel_per_contract(subscription=live(annual), actor=None, reason="Budget cut")
        month = subscription_cancel_per_contract(subscription=live(monthly), actor=None, reason="Budget cut")

    assert (ended.cancel_at, ended.cancel_at_period_end) == (dt.datetime(2028, 3, 10, tzinfo=UTC), True)
    assert month.cancel_at == dt.datetime(2027, 12, 1, tzinfo=UTC)
    with time_machine.travel(dt.datetime(2028, 3, 10, tzinfo=UTC), tick=False):
        lifecycle_update(now=dt.datetime(2028, 3, 10, tzinfo=UTC))
    ended.refresh_from_db()
    assert (ended.status, ended.ended_at) == (Subscription.Status.CANCELLED, dt.datetime(2028, 3, 10, tzinfo=UTC))
