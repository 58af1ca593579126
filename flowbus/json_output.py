"""Machine-readable output of the ``flowbus`` commands (``--json``).

One conversion for every command, so the same value looks the same everywhere:
pydantic models become objects, datetimes and dates ISO 8601 (UTC datetimes end in ``Z``),
UUIDs and string enums their text, tuples and sets lists, non-finite floats ``null``, and
**bytes URL-safe base64** (RFC 4648 section 5, padded). Keys keep the order the command
gives them: each command builds its objects with a fixed set of keys.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click
from pydantic_core import to_jsonable_python

__all__ = ["BYTES_ENCODING", "dumps", "echo_json", "json_option", "to_json_value"]

F = TypeVar("F", bound=Callable[..., Any])

#: How bytes appear in JSON output (stated in the commands' help).
BYTES_ENCODING = "URL-safe base64"


def to_json_value(value: Any) -> Any:
    """``value`` made of JSON types only (dicts, lists, strings, numbers, booleans, None)."""
    return to_jsonable_python(value, bytes_mode="base64", inf_nan_mode="null")


def dumps(value: Any, *, indent: int | None = None) -> str:
    """``value`` as JSON text: one line, or ``indent``-ed for reading."""
    return json.dumps(to_json_value(value), indent=indent, ensure_ascii=False, allow_nan=False)


def echo_json(value: Any, *, indent: int | None = None) -> None:
    """Print ``value`` as JSON on standard output (one line unless ``indent``)."""
    click.echo(dumps(value, indent=indent))


def json_option(help: str) -> Callable[[F], F]:
    """A command's ``--json`` flag (its parameter ``as_json``); ``help`` says what it prints."""
    return click.option("--json", "as_json", is_flag=True, help=help)
