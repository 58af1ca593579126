"""Run by ``setup_peer_venv.py`` in the new venv: the peer's packages import, not just install."""

import importlib

for module in (
    "faststream",
    "faststream.confluent",
    "faststream.middlewares",
    "confluent_kafka",
    "confluent_kafka.admin",
    "fastavro",
):
    importlib.import_module(module)
