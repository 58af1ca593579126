"""``manage.py flowbus_outbox_relay``: the outbox relay on Django's outbox database.

The same relay as ``flowbus outbox relay`` (one function runs both), with the database
taken from ``DATABASES[FLOWBUS_OUTBOX_USING]`` and flowbus's settings from
``FLOWBUS_SETTINGS`` over the environment.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand


class Command(BaseCommand):  # type: ignore[misc]  # Django has no type stubs here
    help = "Publish committed flowbus outbox rows to Kafka until SIGTERM/SIGINT (or --drain)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--import",
            dest="modules",
            action="append",
            default=[],
            help="module defining signals (default: FLOWBUS_RECEIVER_MODULES)",
        )
        parser.add_argument("--batch-size", type=int, default=1000)
        parser.add_argument("--poll-interval", type=float, default=1.0)
        parser.add_argument("--lease-ttl", type=float, default=30.0)
        parser.add_argument("--retention", type=float, default=86_400.0)
        parser.add_argument("--name", default=None)
        parser.add_argument("--metrics-port", type=int, default=None)
        parser.add_argument(
            "--drain", action="store_true", help="exit once nothing is pending (a one-shot relay)"
        )

    def handle(self, *args: Any, modules: list[str], **options: Any) -> None:
        from ....cli import run_relay
        from ... import database_url, flowbus_settings, outbox_alias

        run_relay(
            database_url(outbox_alias()),
            modules,
            settings=flowbus_settings(),
            **{key: options[key] for key in RELAY_OPTIONS},
        )


RELAY_OPTIONS = (
    "batch_size", "poll_interval", "lease_ttl", "retention", "name", "metrics_port", "drain",
)  # fmt: skip
