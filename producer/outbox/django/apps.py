"""The Django app config: binds the outbox sink to Django's connection when ready."""

from __future__ import annotations

from django.apps import AppConfig


class FlowbusOutboxConfig(AppConfig):  # type: ignore[misc]  # Django has no type stubs here
    """``flowbus.producer.outbox.django``: the outbox table, its migration and relay command."""

    name = "flowbus.producer.outbox.django"
    label = "flowbus_outbox"
    verbose_name = "flowbus transactional outbox"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import bind_django_connection

        bind_django_connection()
