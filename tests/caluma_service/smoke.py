"""Proves the venv runs Caluma with flowbus's receiver module: Django's system checks pass
with EVENT_RECEIVER_MODULES=flowbus.producer.caluma.receivers (no database needed)."""

import os

os.environ.update(
    ENV="development",
    DJANGO_SETTINGS_MODULE="caluma.settings.django",
    EVENT_RECEIVER_MODULES="flowbus.producer.caluma.receivers",
    KAFKA_BOOTSTRAP_SERVERS=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1"),
)
import django

django.setup()
from django.core.management import call_command  # noqa: E402

from flowbus.producer.caluma import receivers  # noqa: E402

call_command("check")
assert receivers.settings.sink == "outbox"
print("caluma service ok:", django.get_version())
