from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CommonConfig(AppConfig):
    name = "common"
    verbose_name = "Common"

    def ready(self) -> None:
        from common.schedule import schedule_install_after_migrate

        post_migrate.connect(schedule_install_after_migrate, sender=self, dispatch_uid="ledgerline-schedule")
