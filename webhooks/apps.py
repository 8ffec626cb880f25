from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        # Imported here: the tasks need the app registry, which is ready only now.
        from webhooks import tasks  # noqa: F401 - registers the tasks services queue by name
