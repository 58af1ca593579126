"""``flowbus doctor``: is this environment ready? One line per check, with what to do.

Checks the broker (reachable), the registry (reachable, its compatibility level), the
subjects of the forwarding routes (registered; without a registry, their schemas in the
schema directory ``schemas/``), the webhook database (opened read-only, never created), the
receiver modules (they import) and the webhook SSRF allowlist (it parses). A setting that
does not parse fails the check that reads it; the others still run. Every network check
waits at most :data:`NETWORK_TIMEOUT_S`, and they run side by side, so against closed
ports the whole run ends in seconds. Nothing is written anywhere.

The producer and consumer sides are imported inside the checks that need them, as the
``flowbus`` CLI does (they install as ``flowbus.producer`` / ``flowbus.consumer``, a
rename type checkers do not follow: hence the ``type: ignore`` on those imports).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import click
from pydantic import ValidationError
from pydantic_settings import SettingsError

from flowbus.errors import BrokerUnreachableError, ConfigurationError, FlowbusError
from flowbus.exit_codes import ExitCode
from flowbus.json_output import echo_json
from flowbus.settings import FlowbusSettings, env_var_name, unparsable_field

if TYPE_CHECKING:
    from flowbus.avro.registry import SchemaRegistry

__all__ = ["Check", "Status", "doctor", "run_checks"]

#: Seconds each network check may wait (broker metadata, registry request, database).
NETWORK_TIMEOUT_S = 5.0
#: What to do when the broker or registry does not answer.
_STACK_HINT = 'is it running? (`flowbus dev status`; `eval "$(flowbus dev up)"` starts one)'


class Status(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclasses.dataclass(frozen=True)
class Check:
    """One check's verdict; ``fix`` says what to do when it is not ok."""

    name: str
    status: Status
    detail: str
    fix: str | None = None

    def line(self) -> str:
        fix = f" -> {self.fix}" if self.fix else ""
        return f"{self.status.value:<4}  {self.name:<16}  {self.detail}{fix}"


# --- settings --------------------------------------------------------------------------

#: The settings each check reads: a variable that does not parse fails that check.
_FIELDS = {
    "broker": ("kafka_bootstrap_servers", "kafka_config"),
    "registry": ("schema_registry_url", "schema_registry_config"),
    "subjects": (
        "producer_config",
        "producer_sink",
        "topic_prefix",
        "schema_auto_register",
        "schema_use_latest_version",
        "schemas_dir",
    ),
    "webhook database": ("webhooks_database_url", "state_dir"),
    "receiver modules": ("receiver_modules",),
    "ssrf allowlist": ("webhooks_ssrf_allowlist", "webhooks_allowed_ports"),
}


def load_settings() -> tuple[FlowbusSettings, dict[str, str]]:
    """The settings, and for each field whose variable does not parse, why.

    A broken variable is left out (its default used) so that the checks that do not read
    it still run; the environment is restored afterwards.
    """
    broken: dict[str, str] = {}
    removed: dict[str, str] = {}
    try:
        for _ in FlowbusSettings.model_fields:
            try:
                return FlowbusSettings(), broken
            except SettingsError as exc:
                field = unparsable_field(exc)
                if field is None:
                    raise
                fields = {field: str(exc.__cause__ or exc)}
            except ValidationError as exc:
                fields = {_field_of(e["loc"]): e["msg"] for e in exc.errors()}
            unknown = set(fields) - set(FlowbusSettings.model_fields)
            if not fields or unknown or set(fields) <= set(broken):
                raise ConfigurationError(f"the settings do not load: {fields}")
            broken.update(fields)
            for field in fields:
                removed.update(_pop_env(field))
        raise ConfigurationError(f"the settings do not load: {broken}")
    finally:
        os.environ.update(removed)


def _field_of(loc: tuple[int | str, ...]) -> str:
    name = str(loc[0]) if loc else ""
    for field, info in FlowbusSettings.model_fields.items():
        if name == field or name.upper() == env_var_name(field) or name in _aliases(info):
            return field
    return name


def _aliases(info: Any) -> list[str]:
    choices = getattr(info.validation_alias, "choices", None) or []
    return [str(choice) for choice in choices]


def _pop_env(field: str) -> dict[str, str]:
    info = FlowbusSettings.model_fields[field]
    names = {n.lower() for n in [*_aliases(info), env_var_name(field)]}
    return {key: os.environ.pop(key) for key in list(os.environ) if key.lower() in names}


def _broken_setting(name: str, broken: dict[str, str]) -> Check | None:
    for field in _FIELDS.get(name, ()):
        if field in broken:
            variable = env_var_name(field)
            return Check(
                name,
                Status.FAIL,
                f"{variable} does not parse: {broken[field]}",
                f"fix {variable} (JSON for lists and objects; see README, Configuration)",
            )
    return None


# --- the checks ------------------------------------------------------------------------


def check_broker(settings: FlowbusSettings, timeout: float) -> Check:
    from confluent_kafka.admin import AdminClient

    from flowbus.broker import BrokerLog, probe_broker
    from flowbus.consumer.kafka_clients import base_config

    bootstrap = settings.kafka_bootstrap_servers or settings.kafka_config.get("bootstrap.servers")
    if not bootstrap:
        return Check(
            "broker",
            Status.FAIL,
            "KAFKA_BOOTSTRAP_SERVERS is not set",
            'set it to the broker addresses (`eval "$(flowbus dev up)"` for a local one)',
        )
    # librdkafka's connection errors would repeat every few milliseconds; the verdict says it once.
    config = {**base_config(settings), **BrokerLog(quiet=True).client_config()}
    try:
        metadata = probe_broker(AdminClient(config), config, timeout=timeout)
    except BrokerUnreachableError as exc:
        return Check(
            "broker",
            Status.FAIL,
            f"KAFKA_BOOTSTRAP_SERVERS={bootstrap}: {exc.reason}",
            f"check the address; {_STACK_HINT}",
        )
    version = _local_kafka_version(settings, bootstrap)
    return Check(
        "broker",
        Status.OK,
        f"{bootstrap}: {len(metadata.brokers)} broker(s), cluster {metadata.cluster_id}"
        + (f", Kafka {version} (local stack)" if version else ""),
    )


def _local_kafka_version(settings: FlowbusSettings, bootstrap: str) -> str | None:
    """The version of the local dev stack's broker when it is the one configured (the
    Kafka protocol does not report a broker's version)."""
    from flowbus.stack_state import read_stack_info, state_file

    try:
        info = read_stack_info(state_file(settings.state_dir))
    except (OSError, ValueError):
        return None
    return info.kafka_version if info is not None and info.bootstrap_servers == bootstrap else None


def registry_client(settings: FlowbusSettings, timeout: float) -> SchemaRegistry | None:
    """A client that gives up after ``timeout`` seconds, without retries (None: no URL)."""
    from flowbus.avro.registry import SchemaRegistry

    if not settings.schema_registry_url:
        return None
    config = {**settings.schema_registry_config, "timeout": timeout, "max.retries": 0}
    return SchemaRegistry(settings.schema_registry_url, config)


def check_registry(registry: SchemaRegistry | None) -> Check:
    from flowbus.errors import SchemaRegistryError

    if registry is None:
        return Check(
            "registry",
            Status.OK,
            "SCHEMA_REGISTRY_URL is not set: single-object encoding with the schemas/ directory",
        )
    try:
        level = registry.compatibility_level()
    except SchemaRegistryError as exc:
        return Check(
            "registry",
            Status.FAIL,
            f"SCHEMA_REGISTRY_URL={registry.url} does not answer: {exc.message}",
            f"check the URL (Confluent API, e.g. .../apis/ccompat/v7); {_STACK_HINT}",
        )
    return Check("registry", Status.OK, f"{registry.url}: compatibility level {level}")


def check_subjects(
    settings: FlowbusSettings, registry: SchemaRegistry | None, registry_ok: bool
) -> Check:
    import flowbus.catalog  # noqa: F401  (routes may name the catalog's signals)
    from flowbus.avro.registry import subject_name
    from flowbus.avro.schema_dir import SchemaDirectory
    from flowbus.avro.serializer import codec_for
    from flowbus.errors import SchemaRegistryError
    from flowbus.producer.forwarding import parse_forwarding_config
    from flowbus.signals import WorkflowSignal
    from flowbus.wire import get_profile

    try:
        config = parse_forwarding_config(settings.producer_config)
    except FlowbusError as exc:
        return Check("subjects", Status.FAIL, str(exc), "fix FLOWBUS_PRODUCER_CONFIG")
    routes = [(t, r) for t, rs in config.items() for r in rs if r.enabled]
    if not routes:
        return Check("subjects", Status.OK, "no routes in FLOWBUS_PRODUCER_CONFIG: none needed")
    if registry is not None and not registry_ok:
        return Check("subjects", Status.FAIL, "not checked: the registry does not answer")
    missing: list[str] = []
    for event_type, route in routes:
        signal = WorkflowSignal.get_signal_by_type(event_type)
        schema = codec_for(signal, get_profile(route.wire or signal.wire)).schema
        topic = f"{settings.topic_prefix}{route.topic}"
        if registry is None:
            schema_dir = SchemaDirectory(settings.schemas_dir) if settings.schemas_dir else None
            if (schema_dir or SchemaDirectory.default()).by_fingerprint(schema.fingerprint) is None:
                missing.append(f"{event_type} (for {topic})")
            continue
        subject = subject_name(topic, schema.parsed["name"])
        try:
            if registry.lookup(subject, schema) is None:
                missing.append(subject)
        except SchemaRegistryError as exc:
            return Check("subjects", Status.FAIL, f"{subject}: {exc.message}", _STACK_HINT)
    where = "registered" if registry is not None else "in the schemas/ directory"
    if not missing:
        return Check("subjects", Status.OK, f"{len(routes)} route(s), every schema {where}")
    shown = f"{len(missing)} of {len(routes)} route(s) not {where}: {', '.join(missing)}"
    if registry is None:
        return Check(
            "subjects",
            Status.WARN,
            shown,
            "run `flowbus schemas generate` (consumers without this code cannot decode them)",
        )
    if settings.schema_auto_register:
        return Check(
            "subjects",
            Status.WARN,
            shown,
            "registered on first use (FLOWBUS_SCHEMA_AUTO_REGISTER); in production run "
            "`flowbus schemas register`",
        )
    return Check("subjects", Status.FAIL, shown, "run `flowbus schemas register`")


def check_webhook_database(settings: FlowbusSettings, timeout: float) -> Check:
    from flowbus.consumer.webhooks.store import default_database_url
    from flowbus.database import dialect_of, redact_database_url, sqlite_path
    from flowbus.errors import WebhookStoreError

    url = default_database_url(settings)
    shown = redact_database_url(url)
    try:
        if dialect_of(url, WebhookStoreError) == "sqlite":
            path = sqlite_path(url, WebhookStoreError)
            if path != ":memory:" and not Path(path).exists():
                configured = settings.webhooks_database_url is not None
                return Check(
                    "webhook database",
                    Status.WARN if configured else Status.OK,
                    f"{shown} does not exist yet",
                    "`flowbus webhooks add` creates it" if configured else None,
                )
            with contextlib.closing(_sqlite_read_only(path)) as conn:
                found = _webhook_tables(conn.execute)
        else:
            found = _postgres_tables(url, timeout)
    except WebhookStoreError as exc:
        return Check("webhook database", Status.FAIL, str(exc), "fix FLOWBUS_WEBHOOKS_DATABASE_URL")
    except Exception as exc:  # the drivers' errors: sqlite3.Error, psycopg.Error
        return Check(
            "webhook database",
            Status.FAIL,
            f"{shown}: {type(exc).__name__}: {exc}".strip(),
            "check FLOWBUS_WEBHOOKS_DATABASE_URL and that the database runs",
        )
    if found is None:
        return Check(
            "webhook database",
            Status.WARN,
            f"{shown} holds no webhook tables",
            "`flowbus webhooks add` creates them; or point FLOWBUS_WEBHOOKS_DATABASE_URL "
            "at the webhook database",
        )
    version, subscriptions = found
    return Check(
        "webhook database",
        Status.OK,
        f"{shown}: schema version {version}, {subscriptions} subscription(s)",
    )


def _sqlite_read_only(path: str) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=NETWORK_TIMEOUT_S)


def _webhook_tables(execute: Callable[[str], Any]) -> tuple[int, int] | None:
    """(schema version, subscriptions) of a webhook database; None: no webhook tables."""
    try:
        version = execute("SELECT version FROM webhook_schema_version").fetchall()
    except Exception as exc:
        if "webhook_schema_version" in str(exc):  # no such table / relation does not exist
            return None
        raise
    subscriptions = execute("SELECT COUNT(*) FROM webhook_subscriptions").fetchall()
    return (version[0][0] if version else 0), subscriptions[0][0]


def _postgres_tables(url: str, timeout: float) -> tuple[int, int] | None:
    from flowbus.database import connect_postgres
    from flowbus.errors import WebhookStoreError

    conn = connect_postgres(url, WebhookStoreError, autocommit=False, timeout=timeout)
    try:
        conn.read_only = True
        return _webhook_tables(conn.execute)
    finally:
        conn.rollback()
        conn.close()


def check_receivers(settings: FlowbusSettings) -> Check:
    from flowbus.receivers import import_receiver_modules

    modules = settings.receiver_modules
    if not modules:
        return Check("receiver modules", Status.OK, "none configured (FLOWBUS_RECEIVER_MODULES)")
    try:
        import_receiver_modules(modules)
    except FlowbusError as exc:
        return Check(
            "receiver modules",
            Status.FAIL,
            str(exc),
            "fix FLOWBUS_RECEIVER_MODULES, or make the module importable (PYTHONPATH)",
        )
    return Check("receiver modules", Status.OK, f"imported {', '.join(modules)}")


def check_ssrf_allowlist(settings: FlowbusSettings) -> Check:
    from flowbus.consumer.webhooks.ssrf import SSRFPolicy

    try:
        policy = SSRFPolicy.from_allowlist(
            settings.webhooks_ssrf_allowlist, settings.webhooks_allowed_ports
        )
    except ConfigurationError as exc:
        return Check(
            "ssrf allowlist",
            Status.FAIL,
            str(exc),
            "fix FLOWBUS_WEBHOOKS_SSRF_ALLOWLIST / FLOWBUS_WEBHOOKS_ALLOWED_PORTS",
        )
    ports = ", ".join(str(p) for p in sorted(policy.allowed_ports))
    return Check(
        "ssrf allowlist",
        Status.OK,
        f"{len(policy.allowed_networks)} network(s), {len(policy.allowed_hosts)} host "
        f"pattern(s) allowed; ports {ports}",
    )


def run_checks(timeout: float = NETWORK_TIMEOUT_S) -> list[Check]:
    """Every check, in the order shown."""
    settings, broken = load_settings()
    registry = registry_client(settings, timeout)

    def checked(name: str, check: Callable[[], Check]) -> Check:
        return _broken_setting(name, broken) or check()

    def registry_and_subjects() -> list[Check]:
        verdict = checked("registry", lambda: check_registry(registry))
        answers = verdict.status is Status.OK
        return [verdict, checked("subjects", lambda: check_subjects(settings, registry, answers))]

    # First: receiver modules may define the signals that routes name.
    receivers = checked("receiver modules", lambda: check_receivers(settings))
    # The network checks wait side by side: two silent hosts cost one timeout, not two.
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="flowbus-doctor") as pool:
        broker = pool.submit(checked, "broker", lambda: check_broker(settings, timeout))
        registry_checks = pool.submit(registry_and_subjects)
        database = pool.submit(
            checked, "webhook database", lambda: check_webhook_database(settings, timeout)
        )
        checks = [broker.result(), *registry_checks.result(), database.result()]
    checks.append(receivers)
    checks.append(checked("ssrf allowlist", lambda: check_ssrf_allowlist(settings)))
    owned = {field for fields in _FIELDS.values() for field in fields}
    for field, reason in broken.items():
        if field not in owned:
            variable = env_var_name(field)
            problem = f"{variable} does not parse: {reason}"
            fix = f"fix {variable} (see README, Configuration)"
            checks.append(Check("settings", Status.FAIL, problem, fix))
    return checks


@click.command()
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='One JSON object: {"ok": bool, "checks": [{"name", "status", "detail", "fix"}]}.',
)
@click.option("--all", "show_all", is_flag=True, help="A line for each check that is ok too.")
def doctor(as_json: bool, show_all: bool) -> None:
    """Check the broker, registry, route subjects, webhook database, receivers, allowlist.

    One line per check that is not ok: warn or fail, its name, what was found and what
    to do; then one line naming the checks that are ok (``--all``: a line for each, with
    what was found). Exits non-zero when a check fails (warnings do not). Nothing is
    written; each network check waits at most 5 seconds.
    """
    checks = run_checks()
    failed = any(check.status is Status.FAIL for check in checks)
    if as_json:
        echo_json({"ok": not failed, "checks": [dataclasses.asdict(check) for check in checks]})
    else:
        passed = [check.name for check in checks if check.status is Status.OK]
        for check in checks:
            if show_all or check.status is not Status.OK:
                click.echo(check.line())
        if passed and not show_all:
            every = "all checks" if len(passed) == len(checks) else "also ok"
            click.echo(f"{Status.OK.value:<4}  {every}: {', '.join(passed)} (--all: details)")
    if failed:
        raise click.exceptions.Exit(ExitCode.FAILURE)
