from django.apps import AppConfig


class PermitsConfig(AppConfig):
    name = "permits"

    def ready(self) -> None:
        from permits import flowbus_setup

        flowbus_setup.start()
