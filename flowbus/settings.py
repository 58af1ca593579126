"""flowbus configuration, read from environment variables.

The broker and registry addresses use the same names the local stack prints
(``KAFKA_BOOTSTRAP_SERVERS``, ``SCHEMA_REGISTRY_URL``), so ``eval "$(flowbus dev up)"``
configures every later command. Everything else is prefixed ``FLOWBUS_``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _xdg(var: str, fallback: str) -> Path:
    base = os.environ.get(var)
    return Path(base) if base else Path.home() / fallback


class FlowbusSettings(BaseSettings):
    """All flowbus settings; see README "Configuration" for each variable."""

    model_config = SettingsConfigDict(env_prefix="FLOWBUS_", extra="ignore")

    kafka_bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "FLOWBUS_KAFKA_BOOTSTRAP_SERVERS"),
    )
    schema_registry_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("SCHEMA_REGISTRY_URL", "FLOWBUS_SCHEMA_REGISTRY_URL"),
    )
    #: Extra librdkafka properties (JSON object), e.g. SASL/SSL, compression, linger.ms.
    kafka_config: dict[str, Any] = Field(default_factory=dict)
    #: Name of the service emitting events; part of every event's ``source``.
    service_name: str = "flowbus"
    #: Modules imported by workers at start so their ``@on`` receivers connect.
    receiver_modules: list[str] = Field(default_factory=list)
    #: Prepended to every topic name the producer and consumer use.
    topic_prefix: str = ""
    #: Where the local stack keeps its data, logs and pid files.
    state_dir: Path = Field(default_factory=lambda: _xdg("XDG_STATE_HOME", ".local/state") / "flowbus")
    #: Where downloaded Kafka/registry artifacts are cached.
    cache_dir: Path = Field(default_factory=lambda: _xdg("XDG_CACHE_HOME", ".cache") / "flowbus")


@functools.cache
def get_settings() -> FlowbusSettings:
    """The process-wide settings, read once. Tests call ``get_settings.cache_clear()``."""
    return FlowbusSettings()
