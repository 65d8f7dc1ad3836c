from django.apps import AppConfig


class ConnectSettingsConfig(AppConfig):
    name = "connect_settings"
    verbose_name = "Atlassian Connect"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import (
            checks,  # noqa: F401  (registers the system checks)
            conf,  # noqa: F401  (connects the setting_changed receiver)
            configuration,  # noqa: F401  (connects the receivers that forget page states)
        )
