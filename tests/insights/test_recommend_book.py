"""The nightly re-rating of the whole book: the task fans the accounts out as one task per chunk (run inline
here), each chunk re-rated as of the same moment; an account no longer subscribed keeps no recommendations."""

import datetime as dt
from decimal import Decimal as D

import pytest
import time_machine

from billing.models import Subscription
from insights.models import Recommendation
from insights.services import recommendations_book_chunks, recommendations_refresh
from insights.tasks import recommendations_refresh_book_task
from tests.insights.test_recommend_worked import NOW, messaging_account

pytestmark = pytest.mark.django_db


def test_the_nightly_task_re_rates_every_subscribed_account_and_drops_the_cancelled_ones(plan):
    fabrikam = messaging_account(plan, "messaging-enterprise", tenants=8, messages=20_000, name="Fabrikam")
    contoso = messaging_account(plan, "messaging-startup", tenants=7, messages=10_000, name="Contoso")
    gone = messaging_account(plan, "messaging-enterprise", tenants=2, messages=1_000, name="Gone")
    recommendations_refresh(account=gone, now=NOW, months=3)
    assert Recommendation.objects.filter(account=gone).exists()
    Subscription.objects.filter(account=gone).update(status=Subscription.Status.CANCELLED, ended_at=NOW)

    assert recommendations_book_chunks(chunk=1) == [[fabrikam.pk], [contoso.pk]]
    with time_machine.travel(NOW, tick=False):
        assert recommendations_refresh_book_task.delay().get() == 1  # one chunk of 200 accounts

    plans = {
        r.account.name: (r.plan_version.plan.code, r.current_monthly, r.saving_monthly)
        for r in Recommendation.objects.filter(kind=Recommendation.Kind.PLAN).select_related("account")
    }
    # Enterprise $999.00 → Business $299.00; Startup $99 + 4 × $29 + 5,000 × $0.05 = $465.00 → Business $299.00.
    assert plans == {
        "Fabrikam": ("messaging-business", D("999.00"), D("700.00")),
        "Contoso": ("messaging-business", D("465.00"), D("166.00")),
    }
    assert set(Recommendation.objects.values_list("computed_at", flat=True)) == {NOW}
    assert not Recommendation.objects.filter(account=gone).exists()
    assert {(r.months_start, r.months_end) for r in Recommendation.objects.all()} == {
        (dt.date(2026, 9, 1), dt.date(2026, 12, 1))
    }
