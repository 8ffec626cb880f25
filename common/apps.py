from django.apps import AppConfig


class CommonConfig(AppConfig):
    name = "common"
    verbose_name = "Common"

    def ready(self) -> None:
        from simple_history.signals import pre_create_historical_record

        from common.audit import date_history_by_the_clock

        pre_create_historical_record.connect(date_history_by_the_clock, dispatch_uid="ledgerline_history_date")
