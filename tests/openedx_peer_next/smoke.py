"""Run by ``setup_peer_venv.py`` in the new venv: the peer's packages import, not just install."""

import importlib

from django.conf import settings

# edx_event_bus_kafka reads Django settings at import time, so settings come first.
settings.configure()
for module in (
    "django",
    "attr",
    "confluent_kafka",
    "fastavro",
    "openedx_events",
    "edx_event_bus_kafka",
    "confluent_kafka.schema_registry.avro",
):
    importlib.import_module(module)
