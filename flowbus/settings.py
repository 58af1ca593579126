"""flowbus configuration, read from environment variables.

The broker and registry addresses use the same names the local stack prints
(``KAFKA_BOOTSTRAP_SERVERS``, ``SCHEMA_REGISTRY_URL``), so ``eval "$(flowbus dev up)"``
configures every later command. Everything else is prefixed ``FLOWBUS_``.
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path
from typing import Any, Literal, get_origin

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from flowbus.errors import ConfigurationError

#: Where the producer's forwarder hands an event (see ``flowbus.producer.sinks``).
SinkName = Literal["direct", "on_commit", "outbox"]


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
    #: Forwarding: event type -> list of {"topic", "key_path", "enabled"} (JSON object).
    producer_config: dict[str, Any] = Field(default_factory=dict)
    #: The sink of routes that name none: ``direct`` (produce at once), ``on_commit``
    #: (produce after the caller's transaction commits) or ``outbox`` (an outbox table).
    producer_sink: SinkName = "direct"
    #: Where the local stack keeps its data, logs and pid files.
    state_dir: Path = Field(
        default_factory=lambda: _xdg("XDG_STATE_HOME", ".local/state") / "flowbus"
    )
    #: Where downloaded Kafka/registry artifacts are cached.
    cache_dir: Path = Field(default_factory=lambda: _xdg("XDG_CACHE_HOME", ".cache") / "flowbus")
    #: Webhook subscriptions and deliveries: ``sqlite:///path`` or ``postgresql://...``;
    #: unset means the SQLite file ``<state_dir>/webhooks.sqlite3``.
    webhooks_database_url: str | None = None
    #: Networks (CIDRs, IPs) and host names (``*.example.internal`` allowed) webhook
    #: deliveries may reach despite the SSRF protection, as a JSON list.
    webhooks_ssrf_allowlist: list[str] = Field(default_factory=list)
    #: The only ports webhook URLs may use, as a JSON list.
    webhooks_allowed_ports: list[int] = Field(default_factory=lambda: [80, 443])
    #: PEM file of extra CA certificates webhook deliveries trust (internal CAs);
    #: the public CAs stay trusted and TLS verification is always on.
    webhooks_ca_bundle: Path | None = None
    #: Delivery attempts in flight at once, overall and per subscription.
    webhooks_max_concurrency: int = Field(default=16, ge=1)
    webhooks_max_per_subscription: int = Field(default=4, ge=1)
    #: With a registry: register a signal's schema on first use. Handy in development; keep
    #: it off in production and run ``flowbus schemas register`` from CI instead, so only
    #: reviewed, compatibility-checked schemas reach the registry.
    schema_auto_register: bool = False
    #: Extra ``SchemaRegistryClient`` properties (JSON object), e.g. ``basic.auth.user.info``.
    schema_registry_config: dict[str, Any] = Field(default_factory=dict)
    #: With a registry: write with the subject's latest registered version instead of the
    #: signal's own schema (looked up once per subject and process).
    schema_use_latest_version: bool = False
    #: The schema directory (``schemas/``); unset means the one shipped with flowbus.
    schemas_dir: Path | None = None


def env_var_name(field: str) -> str:
    """The environment variable of a :class:`FlowbusSettings` field (its first alias, or
    ``FLOWBUS_<FIELD>``): ``kafka_bootstrap_servers`` -> ``KAFKA_BOOTSTRAP_SERVERS``."""
    alias = FlowbusSettings.model_fields[field].validation_alias
    choices = getattr(alias, "choices", None)
    if choices:
        return str(choices[0])
    return f"FLOWBUS_{field.upper()}"


@functools.cache
def get_settings() -> FlowbusSettings:
    """The process-wide settings, read once. Tests call ``get_settings.cache_clear()``.

    Raises :class:`~flowbus.errors.ConfigurationError` naming every invalid variable.
    """
    try:
        return FlowbusSettings()
    except (SettingsError, ValidationError) as exc:
        raise ConfigurationError(describe_settings_error(exc)) from None


_PARSE_ERROR_FIELD = re.compile(r'field "(\w+)"')


def unparsable_field(exc: SettingsError) -> str | None:
    """The field whose variable pydantic-settings could not parse (not JSON), if it says."""
    found = _PARSE_ERROR_FIELD.search(str(exc))
    return found.group(1) if found else None


def _variable(name: str) -> str:
    """A field's variable; pydantic reports an aliased field by its alias, kept as it is."""
    return env_var_name(name) if name in FlowbusSettings.model_fields else name


def describe_settings_error(exc: SettingsError | ValidationError) -> str:
    """One line naming each invalid variable and why (never its value: it may be a secret)."""
    if isinstance(exc, ValidationError):
        problems = [
            f"{_variable(str(error['loc'][0])) if error['loc'] else 'settings'}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        ]
        return "invalid settings: " + "; ".join(problems)
    field = unparsable_field(exc)
    if field is None:
        return f"invalid settings: {exc}"
    cause = exc.__cause__
    reason = f"not valid JSON ({cause})" if isinstance(cause, json.JSONDecodeError) else str(exc)
    info = FlowbusSettings.model_fields.get(field)
    origin = get_origin(info.annotation) if info is not None else None
    expected = "a JSON list" if origin is list else "a JSON object" if origin is dict else None
    return f"{_variable(field)}: {reason}" + (f"; expected {expected}" if expected else "")
