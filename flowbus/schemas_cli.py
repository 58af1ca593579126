"""``flowbus schemas``: the schema directory, compatibility checks and the registry."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from flowbus.avro.compat import CompatibilityMode, check_compatibility
from flowbus.avro.schema_dir import DEFAULT_MODE, SchemaDirectory, default_schemas_dir
from flowbus.errors import (
    ConfigurationError,
    FlowbusError,
    InvalidSchemaError,
    SchemaRegistryError,
)
from flowbus.exit_codes import ExitCode
from flowbus.json_output import echo_json, json_option
from flowbus.user_modules import import_user_module

DEFAULT_SIGNAL_MODULES = ("flowbus.catalog",)

_MODES = [mode.value for mode in CompatibilityMode if mode is not CompatibilityMode.NONE]


@click.group()
def schemas() -> None:
    """Avro schemas of the signals: generate, check, compare, register."""


def _schema_dir(directory: Path | None) -> SchemaDirectory:
    if directory is not None:
        return SchemaDirectory(directory)
    from flowbus.settings import get_settings

    return SchemaDirectory(get_settings().schemas_dir or default_schemas_dir())


def _signals(modules: Iterable[str]) -> list[Any]:
    for module in (*DEFAULT_SIGNAL_MODULES, *modules):
        try:
            import_user_module(module, "signal module")
        except ConfigurationError as exc:
            raise click.UsageError(str(exc)) from exc
    from flowbus.signals import WorkflowSignal

    return WorkflowSignal.all_signals()


_dir_option = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="The schema directory (default: FLOWBUS_SCHEMAS_DIR or the shipped schemas/).",
)
_module_option = click.option(
    "-m",
    "--module",
    "modules",
    multiple=True,
    help="Also import this module to define its signals (repeatable); flowbus.catalog "
    "is always imported.",
)
_mode_option = click.option(
    "--mode",
    type=click.Choice(_MODES),
    default=DEFAULT_MODE.value,
    show_default=True,
    help="Compatibility every new version must keep (see schemas/README.md).",
)


@schemas.command()
@_dir_option
@_module_option
@_mode_option
def generate(directory: Path | None, modules: tuple[str, ...], mode: str) -> None:
    """Write a new schema version for every new or changed signal schema.

    Released versions are never rewritten. Compatibility problems of the new versions
    are printed as warnings; `flowbus schemas check` fails on them.
    """
    schema_dir = _schema_dir(directory)
    signals = _signals(modules)
    try:
        written = schema_dir.generate(signals)
    except FlowbusError as exc:
        raise click.ClickException(str(exc)) from exc
    if not written:
        click.echo(f"{schema_dir.directory}: up to date ({len(signals)} signals)")
        return
    for entry in written:
        click.echo(f"wrote {entry.path}")
    changed = {entry.event_type for entry in written}
    problems = [
        p
        for p in schema_dir.check(signals, CompatibilityMode(mode))
        if p.event_type in changed and p.rule != "stale"
    ]
    for problem in problems:
        click.echo(f"warning: {problem}", err=True)


@schemas.command()
@_dir_option
@_module_option
@_mode_option
@json_option("One JSON object: ok, the counts and every problem (event_type, path, rule, message).")
def check(directory: Path | None, modules: tuple[str, ...], mode: str, as_json: bool) -> None:
    """Exit 1 when a schema file is stale or a version breaks the compatibility mode.

    Each problem names the event type, the field and the rule.
    """
    schema_dir = _schema_dir(directory)
    signals = _signals(modules)
    try:
        problems = schema_dir.check(signals, CompatibilityMode(mode))
    except FlowbusError as exc:
        raise click.ClickException(str(exc)) from exc
    versions = sum(len(schema_dir.versions(t)) for t in schema_dir.event_types())
    if as_json:
        echo_json(
            {
                "ok": not problems,
                "directory": str(schema_dir.directory),
                "mode": mode,
                "event_types": len(schema_dir.event_types()),
                "versions": versions,
                "signals": len(signals),
                "problems": [dataclasses.asdict(problem) for problem in problems],
            }
        )
        if problems:
            raise SystemExit(ExitCode.FAILURE)
        return
    if problems:
        for problem in problems:
            click.echo(str(problem))
        click.echo(f"{len(problems)} problem(s) in {schema_dir.directory} (mode {mode})", err=True)
        raise SystemExit(ExitCode.FAILURE)
    click.echo(
        f"{schema_dir.directory}: {len(schema_dir.event_types())} event types, "
        f"{versions} versions, "
        f"{len(signals)} signals up to date, {mode} compatible"
    )


def _read_schema(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise click.UsageError(f"{path}: not a readable JSON schema: {exc}") from exc


@schemas.command()
@click.option(
    "--reader",
    "reader_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Schema of the consumer reading the data.",
)
@click.option(
    "--writer",
    "writer_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Schema the data was written with.",
)
def compat(reader_path: Path, writer_path: Path) -> None:
    """Exit 0 when data written with WRITER can be read with READER, 1 otherwise.

    Every incompatibility is printed: where (a path of field names), why, and the rule.
    """
    try:
        problems = check_compatibility(_read_schema(reader_path), _read_schema(writer_path))
    except InvalidSchemaError as exc:
        raise click.UsageError(str(exc)) from exc
    if not problems:
        click.echo(f"compatible: {reader_path} can read data written with {writer_path}")
        return
    click.echo(f"incompatible: {reader_path} cannot read data written with {writer_path}")
    for problem in problems:
        click.echo(f"  {problem}")
    raise SystemExit(ExitCode.FAILURE)


def _listed(names: list[str], shown: int = 3) -> str:
    """``: a, b, c and 38 more`` (a few names, then how many more)."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f": {', '.join(names[:shown])}{more}"


def _routed_topics(event_type: str) -> list[str]:
    """Topics FLOWBUS_PRODUCER_CONFIG routes ``event_type`` to (prefix applied)."""
    from flowbus.settings import get_settings

    settings = get_settings()
    routes = settings.producer_config.get(event_type, [])
    if isinstance(routes, dict):
        routes = [routes]
    return [
        f"{settings.topic_prefix}{route['topic']}"
        for route in routes
        if isinstance(route, dict) and route.get("topic") and route.get("enabled", True)
    ]


@schemas.command()
@_dir_option
@click.option(
    "--topic",
    "topics",
    multiple=True,
    help="Register every event type under this topic (repeatable; FLOWBUS_TOPIC_PREFIX is "
    "applied, as by produce and consume). Default: the topics FLOWBUS_PRODUCER_CONFIG routes "
    "each event type to.",
)
@click.option("--registry-url", help="Default: SCHEMA_REGISTRY_URL.")
@_mode_option
@json_option(
    'One JSON object: {"subjects": [{"subject", "ok", "level", "versions": [{"version", '
    '"registered_as", "schema_id", "new_subject"}], "error"}], "skipped": [event type]}.'
)
def register(
    directory: Path | None,
    topics: tuple[str, ...],
    registry_url: str | None,
    mode: str,
    as_json: bool,
) -> None:
    """Register the schema directory with the schema registry, one subject per topic and event type.

    Subjects follow TopicRecordName (<topic>-<event type>). Each subject's compatibility
    level is set to MODE, then every schema version is registered oldest first; the
    registry's verdict is reported per subject, and the event types without a topic in one
    line. Exit 1 when a subject was rejected.
    """
    from flowbus.avro.registry import SchemaRegistry, subject_name
    from flowbus.settings import get_settings

    settings = get_settings()
    url = registry_url or settings.schema_registry_url
    if not url:
        raise click.UsageError("no registry: pass --registry-url or set SCHEMA_REGISTRY_URL")
    registry = SchemaRegistry(url, settings.schema_registry_config)
    schema_dir = _schema_dir(directory)
    level = CompatibilityMode(mode)
    failed = registered = 0
    given = [f"{settings.topic_prefix}{topic}" for topic in topics]
    skipped: list[str] = []
    reports: list[dict[str, Any]] = []
    say = (lambda line: None) if as_json else click.echo
    for event_type in schema_dir.event_types():
        event_topics = given or _routed_topics(event_type)
        if not event_topics:
            skipped.append(event_type)
            continue
        versions = schema_dir.versions(event_type)
        for topic in event_topics:
            subject = subject_name(topic, versions[-1].parsed.parsed["name"])
            report: dict[str, Any] = {
                "subject": subject, "ok": True, "level": level.registry_level,
                "versions": [], "error": None,
            }  # fmt: skip
            reports.append(report)
            verdicts: list[str] = []
            current = "compatibility level"
            try:
                registry.set_compatibility(subject, level)
                for entry in versions:
                    current = f"v{entry.version}"
                    known = registry.is_compatible(subject, entry.parsed)
                    written = registry.register(subject, entry.parsed)
                    version = written.dataschema.rsplit("/", 1)[1]
                    new = ", new subject" if known is None else ""
                    verdicts.append(f"v{entry.version}->{version} (id {written.schema_id}{new})")
                    report["versions"].append(
                        {"version": entry.version, "registered_as": int(version),
                         "schema_id": written.schema_id, "new_subject": known is None}
                    )  # fmt: skip
            except SchemaRegistryError as exc:
                failed += 1
                done = f" after {', '.join(verdicts)}" if verdicts else ""
                report.update(ok=False, error=f"{current}: {exc.message}")
                say(f"{subject}: REJECTED ({level.registry_level}) {current}{done}: {exc.message}")
                continue
            registered += 1
            say(f"{subject}: ok ({level.registry_level}) " + ", ".join(verdicts))
    if as_json:
        echo_json({"subjects": reports, "skipped": skipped})
    elif skipped:
        click.echo(
            f"skipped {len(skipped)} event type(s) without a topic (pass --topic or route "
            f"them in FLOWBUS_PRODUCER_CONFIG){_listed(skipped)}"
        )
    if failed:
        raise SystemExit(ExitCode.FAILURE)
    if not registered:
        raise click.ClickException("nothing registered: no event type has a topic")
