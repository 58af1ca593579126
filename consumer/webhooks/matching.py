"""Which events a subscription wants: an event type pattern and property filters.

Event type patterns are globs over the whole dotted type, case-sensitive: ``*`` matches
any run of characters (dots included, possibly empty), ``?`` exactly one character, and
everything else itself. ``org.flowbus.caluma.work_item.*`` matches every work item event,
``*.completed.v1`` every ``completed`` event at major version 1, ``*`` everything.

Property filters map a key to a wildcard pattern (same ``*`` / ``?`` rules) or a list of
patterns (any may match); all filters must match. A key is either a dotted path into the
event's data (``work_item.task_slug`` is ``data["work_item"]["task_slug"]``) or ``$``
followed by a CloudEvents attribute name (``$source``, ``$subject``, ``$type``,
``$sourcehost``, ...). A missing key never matches. Values compare as text: strings as is,
numbers in JSON form, booleans as ``true``/``false``, ``null`` as ``null``; a list value
matches when any of its scalar items does; objects never match.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flowbus.errors import InvalidSubscriptionError

from .event import WebhookEvent

__all__ = [
    "ATTRIBUTE_KEYS",
    "EventTypePattern",
    "PropertyFilter",
    "filters_to_json",
    "matches",
    "parse_filters",
]

#: Keys a property filter can use for CloudEvents attributes instead of data paths.
ATTRIBUTE_KEYS = frozenset(
    {
        "$id",
        "$type",
        "$source",
        "$time",
        "$subject",
        "$specversion",
        "$minorversion",
        "$sourcehost",
        "$sourcelib",
        "$sender",
        "$partitionkey",
    }
)

_PATTERN_CHARS = re.compile(r"^[A-Za-z0-9._\-*?]+$")
_PATH_SEGMENT = re.compile(r"^[^.\s]+$")
_MISSING = object()


@functools.lru_cache(maxsize=4096)
def _wildcard_regex(pattern: str) -> re.Pattern[str]:
    parts = []
    for char in pattern:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL)


@dataclass(frozen=True, slots=True)
class EventTypePattern:
    """A glob over the dotted event type (see the module docstring)."""

    text: str

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not _PATTERN_CHARS.match(self.text):
            raise InvalidSubscriptionError(
                "event pattern",
                f"{self.text!r} must be non-empty and use only letters, digits, '.', '_', '-'"
                " and the wildcards '*' and '?'",
            )

    def matches(self, event_type: str) -> bool:
        """Whether ``event_type`` matches the whole pattern."""
        return _wildcard_regex(self.text).fullmatch(event_type) is not None


@dataclass(frozen=True, slots=True)
class PropertyFilter:
    """One property filter: ``key`` and the wildcard patterns its value may match."""

    key: str
    patterns: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.key.startswith("$"):
            if self.key not in ATTRIBUTE_KEYS:
                known = ", ".join(sorted(ATTRIBUTE_KEYS))
                raise InvalidSubscriptionError(
                    "filter", f"unknown attribute key {self.key!r} (known: {known})"
                )
        elif not self.key or not all(_PATH_SEGMENT.match(s) for s in self.key.split(".")):
            raise InvalidSubscriptionError(
                "filter", f"key {self.key!r} must be a dotted data path or '$<attribute>'"
            )
        if not self.patterns:
            raise InvalidSubscriptionError("filter", f"key {self.key!r} has no patterns")
        for pattern in self.patterns:
            if not isinstance(pattern, str) or not pattern:
                raise InvalidSubscriptionError(
                    "filter", f"key {self.key!r}: patterns must be non-empty strings"
                )

    def matches(self, event: WebhookEvent) -> bool:
        """Whether the event's value at ``key`` matches one of ``patterns``."""
        value = _lookup(event, self.key)
        if value is _MISSING:
            return False
        candidates = value if isinstance(value, list) else [value]
        for candidate in candidates:
            text = _as_text(candidate)
            if text is not None and any(
                _wildcard_regex(p).fullmatch(text) is not None for p in self.patterns
            ):
                return True
        return False


def parse_filters(raw: Mapping[str, Any] | None) -> tuple[PropertyFilter, ...]:
    """Property filters from a mapping of key -> pattern or list of patterns."""
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise InvalidSubscriptionError("filter", "filters must be a JSON object")
    filters = []
    for key, value in raw.items():
        if not isinstance(key, str):
            raise InvalidSubscriptionError("filter", f"key {key!r} is not a string")
        if isinstance(value, str):
            patterns: tuple[str, ...] = (value,)
        elif isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
            patterns = tuple(value)
        else:
            raise InvalidSubscriptionError(
                "filter", f"key {key!r}: the value must be a pattern or a list of patterns"
            )
        filters.append(PropertyFilter(key, patterns))
    return tuple(sorted(filters, key=lambda f: f.key))


def filters_to_json(filters: Sequence[PropertyFilter]) -> dict[str, str | list[str]]:
    """The JSON form :func:`parse_filters` reads (single patterns as plain strings)."""
    return {f.key: f.patterns[0] if len(f.patterns) == 1 else list(f.patterns) for f in filters}


def matches(
    pattern: EventTypePattern, filters: Sequence[PropertyFilter], event: WebhookEvent
) -> bool:
    """Whether ``event`` matches the type pattern and every property filter."""
    return pattern.matches(event.type) and all(f.matches(event) for f in filters)


def _lookup(event: WebhookEvent, key: str) -> Any:
    if key.startswith("$"):
        value = event.attributes().get(key[1:], _MISSING)
        return value
    current: Any = event.data
    for segment in key.split("."):
        if not isinstance(current, Mapping) or segment not in current:
            return _MISSING
        current = current[segment]
    return current


def _as_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float) or value is None:
        return json.dumps(value)
    return None
