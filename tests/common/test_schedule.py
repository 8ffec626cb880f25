"""The periodic tasks are in the admin's tables once the database is migrated, and staff edits stay."""

import pytest
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from common.schedule import schedule_install
from config.celery import app as celery_app

pytestmark = pytest.mark.django_db


def test_migrating_installs_the_whole_schedule():
    rows = {
        t.name: (t.task, str(t.crontab.minute), str(t.crontab.hour), t.enabled)
        for t in PeriodicTask.objects.filter(crontab__isnull=False)
    }
    assert rows == {
        "close-billing-period": ("billing.period_close", "5", "0", True),
        "finalize-reviewed-invoices": ("billing.finalize_due", "*/15", "*", True),
        "billing-lifecycle": ("billing.lifecycle", "30", "0", True),
        "evaluate-budgets": ("billing.budgets_evaluate", "20", "*", True),
        "invoice-reminders": ("billing.invoice_reminders", "0", "8", True),
        "sweep-deliveries": ("billing.deliveries_sweep", "*/10", "*", True),
        "collection-attempts": ("billing.collections_due", "*/15", "*", True),
        "reconcile-payments": ("billing.reconcile", "15", "2", True),
        "forecasts-record": ("insights.forecasts_record", "30", "2", True),
        "recommendations-refresh": ("insights.recommendations_refresh_book", "45", "3", True),
        "webhooks-usage-report": ("webhooks.usage_report", "5", "*", True),
    }
    every = {
        (t.name, t.task, t.interval.every, t.interval.period)
        for t in PeriodicTask.objects.filter(interval__isnull=False)
    }
    assert every == {("webhooks", "webhooks.run", 10, "seconds")}
    assert PeriodicTask.objects.get(name="close-billing-period").crontab.day_of_month == "1"
    assert PeriodicTask.objects.get(name="evaluate-budgets").description == (
        "Records a budget alert for every threshold a budget's spend has reached (hourly)."
    )


def test_an_edited_or_paused_entry_is_kept_by_installing_again_and_by_beat():
    budgets = PeriodicTask.objects.get(name="evaluate-budgets")
    budgets.crontab = CrontabSchedule.objects.create(minute="45", hour="*")
    budgets.save()
    PeriodicTask.objects.filter(name="invoice-reminders").update(enabled=False)
    PeriodicTask.objects.filter(name="sweep-deliveries").delete()

    assert schedule_install() == ["sweep-deliveries"]  # only what is missing

    assert PeriodicTask.objects.get(name="evaluate-budgets").crontab.minute == "45"
    assert PeriodicTask.objects.get(name="invoice-reminders").enabled is False
    assert PeriodicTask.objects.filter(name="sweep-deliveries").count() == 1
    # At start, beat's database scheduler writes Celery's own schedule over the tables: there is none.
    assert celery_app.conf.beat_schedule == {}
