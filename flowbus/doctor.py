"""``flowbus doctor``: is this environment ready? One line per check, with what to do.

Checks the broker (reachable), the registry (reachable, its compatibility level), the
subjects of the forwarding routes (registered; without a registry, their schemas in the
schema directory ``schemas/``), the webhook database (opened read-only, never created), the
receiver modules (they import) and the webhook SSRF allowlist (it parses). A setting that
does not parse fails the check that reads it; the others still run. Every network check
waits at most :data:`NETWORK_TIMEOUT_S`, and they run side by side, so against closed
ports the whole run ends in seconds. Nothing is written anywhere.

The checks that read a side's settings with that side's own parser (the producer's
routes, the webhook store URL, the SSRF allowlist) are the side's own, in its
``doctor_checks`` module: :data:`SIDE_CHECKS` names them, and they are imported by name
when the doctor runs, as the ``flowbus`` CLI imports its subcommands (the core imports no
side).
"""

from __future__ import annotations

import dataclasses
import enum
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import click
from pydantic import ValidationError
from pydantic_settings import SettingsError

from flowbus.errors import BrokerUnreachableError, ConfigurationError, FlowbusError
from flowbus.exit_codes import ExitCode
from flowbus.json_output import echo_json, json_option
from flowbus.lazy_exports import import_named
from flowbus.settings import FlowbusSettings, env_var_name, unparsable_field

if TYPE_CHECKING:
    from flowbus.avro.registry import SchemaRegistry

__all__ = ["SIDE_CHECKS", "Check", "Status", "doctor", "run_checks"]

#: Seconds each network check may wait (broker metadata, registry request, database).
NETWORK_TIMEOUT_S = 5.0
#: The checks a side contributes: check name -> "module:function".
SIDE_CHECKS: dict[str, str] = {
    "subjects": "flowbus.producer.doctor_checks:check_subjects",
    "webhook database": "flowbus.consumer.doctor_checks:check_webhook_database",
    "ssrf allowlist": "flowbus.consumer.doctor_checks:check_ssrf_allowlist",
}
#: What to do when the broker or registry does not answer.
STACK_HINT = 'is it running? (`flowbus dev status`; `eval "$(flowbus dev up)"` starts one)'


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

    from flowbus.broker import BrokerLog, bootstrap_servers, operator_client_config, probe_broker

    try:
        bootstrap = bootstrap_servers(settings)
    except ConfigurationError:
        return Check(
            "broker",
            Status.FAIL,
            "KAFKA_BOOTSTRAP_SERVERS is not set",
            'set it to the broker addresses (`eval "$(flowbus dev up)"` for a local one)',
        )
    # librdkafka's connection errors would repeat every few milliseconds; the verdict says it once.
    config = {**operator_client_config(settings), **BrokerLog(quiet=True).client_config()}
    try:
        metadata = probe_broker(AdminClient(config), config, timeout=timeout)
    except BrokerUnreachableError as exc:
        return Check(
            "broker",
            Status.FAIL,
            f"KAFKA_BOOTSTRAP_SERVERS={bootstrap}: {exc.reason}",
            f"check the address; {STACK_HINT}",
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
            f"check the URL (Confluent API, e.g. .../apis/ccompat/v7); {STACK_HINT}",
        )
    return Check("registry", Status.OK, f"{registry.url}: compatibility level {level}")


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


def side_check(name: str) -> Callable[..., Check]:
    """The check function :data:`SIDE_CHECKS` names for check ``name``."""
    check: Callable[..., Check] = import_named(SIDE_CHECKS[name])
    return check


def run_checks(timeout: float = NETWORK_TIMEOUT_S) -> list[Check]:
    """Every check, in the order shown."""
    settings, broken = load_settings()
    registry = registry_client(settings, timeout)

    def checked(name: str, check: Callable[[], Check]) -> Check:
        return _broken_setting(name, broken) or check()

    def registry_and_subjects() -> list[Check]:
        verdict = checked("registry", lambda: check_registry(registry))
        answers = verdict.status is Status.OK
        return [
            verdict,
            checked("subjects", lambda: side_check("subjects")(settings, registry, answers)),
        ]

    # First: receiver modules may define the signals that routes name.
    receivers = checked("receiver modules", lambda: check_receivers(settings))
    # The network checks wait side by side: two silent hosts cost one timeout, not two.
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="flowbus-doctor") as pool:
        broker = pool.submit(checked, "broker", lambda: check_broker(settings, timeout))
        registry_checks = pool.submit(registry_and_subjects)
        database = pool.submit(
            checked, "webhook database", lambda: side_check("webhook database")(settings, timeout)
        )
        checks = [broker.result(), *registry_checks.result(), database.result()]
    checks.append(receivers)
    checks.append(checked("ssrf allowlist", lambda: side_check("ssrf allowlist")(settings)))
    owned = {field for fields in _FIELDS.values() for field in fields}
    for field, reason in broken.items():
        if field not in owned:
            variable = env_var_name(field)
            problem = f"{variable} does not parse: {reason}"
            fix = f"fix {variable} (see README, Configuration)"
            checks.append(Check("settings", Status.FAIL, problem, fix))
    return checks


@click.command()
@json_option('One JSON object: {"ok": bool, "checks": [{"name", "status", "detail", "fix"}]}.')
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
