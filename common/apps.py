from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CommonConfig(AppConfig):
    name = "common"
    verbose_name = "Common"

    def ready(self) -> None:
        # Imported here: receivers, checks and tasks need the app registry, which is ready only now.
        from common.schedule import schedule_install_after_migrate

        post_migrate.connect(schedule_install_after_migrate, sender=self, dispatch_uid="ledgerline-schedule")

        from simple_history.signals import pre_create_historical_record

        from common.audit import date_history_by_the_clock

        pre_create_historical_record.connect(date_history_by_the_clock, dispatch_uid="ledgerline_history_date")
