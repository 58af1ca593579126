"""``flowbus signals``: list the defined signals and show one's data, key path and version.

The catalog (:mod:`flowbus.catalog`) is always loaded; ``--import`` loads modules that
define further signals.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterable
from enum import Enum
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import click
from pydantic import BaseModel, JsonValue

from flowbus.avro import schema_from_signal
from flowbus.errors import InputError, SenderValidationError
from flowbus.json_output import echo_json, json_option
from flowbus.signals import WorkflowSignal
from flowbus.user_modules import import_user_module

__all__ = ["describe_type", "signals"]


def describe_type(tp: Any) -> str:
    """A short, readable name of a data type: ``"list[str]"``, ``"WorkItemSnapshot | None"``."""
    if get_origin(tp) is Annotated:
        return describe_type(get_args(tp)[0])
    if tp is JsonValue:
        return "JsonValue"
    if tp is None or tp is type(None):
        return "None"
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        members = [m for m in get_args(tp) if m is not type(None)]
        names = [describe_type(m) for m in members]
        if len(members) != len(get_args(tp)):
            names.append("None")
        return " | ".join(names)
    if origin is Literal:
        return f"Literal[{', '.join(repr(v) for v in get_args(tp))}]"
    if origin is not None:
        args = ", ".join(describe_type(a) for a in get_args(tp))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if isinstance(tp, type):
        return tp.__name__
    return str(tp)


def _named_types(tp: Any) -> Iterable[type[BaseModel] | type[Enum]]:
    """The models and enums a type mentions, outermost first."""
    if get_origin(tp) is Annotated:
        yield from _named_types(get_args(tp)[0])
    elif tp is JsonValue:
        return
    elif get_origin(tp) is not None and get_origin(tp) is not Literal:
        for arg in get_args(tp):
            yield from _named_types(arg)
    elif isinstance(tp, type) and issubclass(tp, BaseModel | Enum):
        yield tp


def _field_tree(tp: Any, seen: set[type[BaseModel] | type[Enum]]) -> list[dict[str, Any]]:
    """Nested description of the models and enums inside ``tp`` (each shown once)."""
    out: list[dict[str, Any]] = []
    for named in _named_types(tp):
        if named in seen:
            continue
        seen.add(named)
        if issubclass(named, Enum):
            out.append({"name": named.__name__, "values": [m.value for m in named]})
            continue
        fields = []
        for name, info in named.model_fields.items():
            fields.append(
                {
                    "name": name,
                    "type": describe_type(info.annotation),
                    "required": info.is_required(),
                    "nested": _field_tree(info.annotation, seen),
                }
            )
        out.append({"name": named.__name__, "fields": fields})
    return out


def _summary(signal: WorkflowSignal) -> dict[str, Any]:
    return {
        "event_type": signal.event_type,
        "minor_version": signal.minor_version,
        "key_path": signal.key_path,
        "doc": signal.doc,
        "data": {name: describe_type(tp) for name, tp in signal.data.items()},
    }


def _details(signal: WorkflowSignal) -> dict[str, Any]:
    seen: set[type[BaseModel] | type[Enum]] = set()
    return {
        **_summary(signal),
        "fields": [
            {"name": name, "type": describe_type(tp), "nested": _field_tree(tp, seen)}
            for name, tp in signal.data.items()
        ],
        "avro_schema": schema_from_signal(signal),
    }


def _load(modules: Iterable[str]) -> None:
    for name in ("flowbus.catalog", *modules):
        import_user_module(name)


def _echo_nested(nested: list[dict[str, Any]], indent: int) -> None:
    pad = " " * indent
    for item in nested:
        if "values" in item:
            click.echo(f"{pad}{item['name']}: {', '.join(item['values'])}")
            continue
        click.echo(f"{pad}{item['name']}:")
        for field in item["fields"]:
            optional = "" if field["required"] else "  (optional)"
            click.echo(f"{pad}  {field['name']}: {field['type']}{optional}")
            _echo_nested(field["nested"], indent + 4)


_IMPORT_OPTION = click.option(
    "--import",
    "modules",
    multiple=True,
    metavar="MODULE",
    help="Also import MODULE, which defines signals (repeatable).",
)


@click.group()
def signals() -> None:
    """List the defined signals and show one."""


@signals.command("list")
@json_option("Print JSON instead of a table.")
@_IMPORT_OPTION
def list_signals(as_json: bool, modules: tuple[str, ...]) -> None:
    """List every signal: event type, minor version, key path and data arguments."""
    _load(modules)
    found = sorted(WorkflowSignal.all_signals(), key=lambda s: s.event_type)
    if as_json:
        echo_json([_summary(s) for s in found], indent=2)
        return
    width = max((len(s.event_type) for s in found), default=10)
    key_width = max((len(s.key_path or "-") for s in found), default=8)
    click.echo(f"{'EVENT TYPE':<{width}}  MINOR  {'KEY PATH':<{key_width}}  DATA")
    for s in found:
        click.echo(
            f"{s.event_type:<{width}}  {s.minor_version:<5}  {s.key_path or '-':<{key_width}}  "
            f"{', '.join(s.data)}"
        )


def _find(event_type: str, modules: Iterable[str]) -> WorkflowSignal:
    _load(modules)
    try:
        return WorkflowSignal.get_signal_by_type(event_type)
    except KeyError:
        known = [s.event_type for s in WorkflowSignal.all_signals()]
        close = difflib.get_close_matches(event_type, known, n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise InputError(
            f"no signal with event type '{event_type}'.{hint} "
            "(`flowbus signals list` shows them all)"
        ) from None


@signals.command("show")
@click.argument("event_type")
@json_option("Print JSON (with the Avro schema).")
@_IMPORT_OPTION
def show_signal(event_type: str, as_json: bool, modules: tuple[str, ...]) -> None:
    """Show one signal: its data fields and their types, key path and minor version."""
    signal = _find(event_type, modules)
    details = _details(signal)
    if as_json:
        echo_json(details, indent=2)
        return
    click.echo(signal.event_type)
    if signal.doc:
        click.echo(f"  {signal.doc}")
    click.echo(f"  minor version: {signal.minor_version}")
    click.echo(f"  key path:      {signal.key_path or '-'}")
    click.echo("  data:")
    for field in details["fields"]:
        click.echo(f"    {field['name']}: {field['type']}")
        _echo_nested(field["nested"], 6)


@signals.command("example")
@click.argument("event_type")
@_IMPORT_OPTION
def example_signal(event_type: str, modules: tuple[str, ...]) -> None:
    """Print a valid JSON payload of EVENT_TYPE's data, for `flowbus produce --data`.

    Every argument and field is filled (optional ones too) with a value of its type that
    honours its constraints; the payload is checked with the signal's validation first.
    """
    from flowbus.signal_examples import example_payload

    signal = _find(event_type, modules)
    try:
        payload = example_payload(signal)
    except SenderValidationError as exc:
        raise click.ClickException(
            f"could not build a valid example ({exc}); see `flowbus signals show {event_type}`"
        ) from None
    echo_json(payload, indent=2)
