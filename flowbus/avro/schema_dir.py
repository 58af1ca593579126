"""The schema directory (``schemas/``): every released Avro schema version of every event type.

Layout (see ``schemas/README.md``)::

    schemas/<event type>/<version>.avsc
    schemas/org.flowbus.caluma.case.post_complete.v1/1.avsc

``version`` counts the schema changes of one event type: 1, 2, 3... without gaps. A file,
once in the directory, is released and never rewritten; :meth:`SchemaDirectory.generate` only
adds the next version. Files hold the full schema (docs, defaults and aliases are kept,
unlike Avro's Parsing Canonical Form) in a stable format: :func:`format_schema`.

The registry-free decoder finds writer schemas here by fingerprint (CRC-64-AVRO of the
Parsing Canonical Form). Versions that differ only in docs or defaults share a fingerprint;
any of them decodes the data the same way, because a writer's docs and defaults are never
used when reading.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowbus.avro.codec import ParsedSchema, parse_schema
from flowbus.avro.compat import CompatibilityMode, check_mode
from flowbus.avro.schema import record_name_for_event_type
from flowbus.avro.signal_schemas import schema_from_signal
from flowbus.errors import InvalidSchemaError, SchemaDirectoryError

if TYPE_CHECKING:
    from flowbus.signals import WorkflowSignal

__all__ = [
    "DEFAULT_MODE",
    "SchemaDirectory",
    "SchemaProblem",
    "SchemaVersion",
    "default_schemas_dir",
    "format_schema",
]

#: The compatibility every new version must keep; see ``schemas/README.md`` for why.
DEFAULT_MODE = CompatibilityMode.FULL_TRANSITIVE

_VERSION_FILE = re.compile(r"([1-9][0-9]*)\.avsc")
#: The rule of misplaced files and version gaps; an output scripts read (``flowbus schemas
#: check --json``), so it keeps the name it was released with.
_LAYOUT_RULE = "catalog-layout"

# Key order of schema objects in schema files; unknown keys follow, sorted.
_TYPE_KEYS = (
    "type",
    "name",
    "namespace",
    "aliases",
    "doc",
    "fields",
    "symbols",
    "default",
    "items",
    "values",
    "size",
    "logicalType",
    "precision",
    "scale",
)
_FIELD_KEYS = ("name", "aliases", "type", "doc", "default", "order")


def _ordered(obj: dict[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    first = [key for key in keys if key in obj]
    rest = sorted(key for key in obj if key not in keys)
    return {key: obj[key] for key in (*first, *rest)}


def _normalize(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_normalize(branch) for branch in schema]
    if not isinstance(schema, dict):
        return schema
    out = _ordered(schema, _TYPE_KEYS)
    if isinstance(out.get("type"), dict | list):
        out["type"] = _normalize(out["type"])
    if isinstance(out.get("fields"), list):
        out["fields"] = [_normalize_field(entry) for entry in out["fields"]]
    for key in ("items", "values"):
        if key in out:
            out[key] = _normalize(out[key])
    return out


def _normalize_field(entry: Any) -> Any:
    if not isinstance(entry, dict):
        return entry
    out = _ordered(entry, _FIELD_KEYS)
    if "type" in out:
        out["type"] = _normalize(out["type"])
    return out


def format_schema(schema: Any) -> str:
    """The schema file text of ``schema``: fixed key order, 2-space indent, final newline."""
    return json.dumps(_normalize(schema), indent=2, ensure_ascii=False) + "\n"


def default_schemas_dir() -> Path:
    """The schema directory shipped with flowbus.

    In a source checkout (and an editable install) that is the repository's ``schemas/``;
    an installed wheel carries it as ``flowbus/schemas/``.
    """
    package = Path(__file__).resolve().parent.parent
    installed = package / "schemas"
    return installed if installed.is_dir() else package.parent / "schemas"


@dataclass(frozen=True, slots=True, eq=False)
class SchemaVersion:
    """One released schema version of one event type."""

    event_type: str
    version: int
    path: Path
    text: str
    schema: Any
    parsed: ParsedSchema

    @property
    def reference(self) -> str:
        """Where the schema lives, for the ``dataschema`` of events written with it."""
        return f"schemas/{self.event_type}/{self.version}.avsc"


@dataclass(frozen=True, slots=True)
class SchemaProblem:
    """Something ``flowbus schemas check`` rejects: which event type, where, which rule."""

    event_type: str
    path: str
    rule: str
    message: str

    def __str__(self) -> str:
        where = f" {self.path}" if self.path else ""
        return f"{self.event_type}{where}: {self.message} [{self.rule}]"


class SchemaDirectory:
    """The schema directory ``directory``, read on first use."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self._entries: dict[str, list[SchemaVersion]] | None = None
        self._by_fingerprint: dict[bytes, SchemaVersion] = {}
        self._layout_problems: list[SchemaProblem] = []

    @classmethod
    def default(cls) -> SchemaDirectory:
        """The schema directory of the settings' ``schemas_dir`` (default: the shipped one)."""
        from flowbus.settings import get_settings

        return cls(get_settings().schemas_dir or default_schemas_dir())

    # -- reading ---------------------------------------------------------------------------

    def _load(self) -> dict[str, list[SchemaVersion]]:
        if self._entries is not None:
            return self._entries
        entries: dict[str, list[SchemaVersion]] = {}
        problems: list[SchemaProblem] = []
        if self.directory.is_dir():
            for folder in sorted(p for p in self.directory.iterdir() if p.is_dir()):
                if folder.name.startswith(("_", ".")):
                    continue
                entries[folder.name] = self._load_event_type(folder, problems)
        by_fingerprint: dict[bytes, SchemaVersion] = {}
        for versions in entries.values():
            for entry in versions:
                by_fingerprint[entry.parsed.fingerprint] = entry
        self._entries, self._by_fingerprint = entries, by_fingerprint
        self._layout_problems = problems
        return entries

    def _load_event_type(self, folder: Path, problems: list[SchemaProblem]) -> list[SchemaVersion]:
        event_type = folder.name
        versions: list[SchemaVersion] = []
        for path in sorted(folder.iterdir()):
            match = _VERSION_FILE.fullmatch(path.name)
            if match is None:
                problems.append(
                    SchemaProblem(event_type, path.name, _LAYOUT_RULE, "not a <version>.avsc file")
                )
                continue
            text = path.read_text(encoding="utf-8")
            try:
                schema = json.loads(text)
                parsed = parse_schema(schema)
            except (ValueError, InvalidSchemaError) as exc:
                raise SchemaDirectoryError(f"{path}: not a valid Avro schema: {exc}") from exc
            versions.append(SchemaVersion(event_type, int(match[1]), path, text, schema, parsed))
        versions.sort(key=lambda entry: entry.version)
        expected = list(range(1, len(versions) + 1))
        if [entry.version for entry in versions] != expected:
            found = ", ".join(str(entry.version) for entry in versions)
            problems.append(
                SchemaProblem(event_type, "", _LAYOUT_RULE, f"versions must be 1..n, found {found}")
            )
        return versions

    def event_types(self) -> list[str]:
        """Every event type with at least one released version."""
        return [event_type for event_type, versions in self._load().items() if versions]

    def versions(self, event_type: str) -> list[SchemaVersion]:
        """The released versions of ``event_type``, oldest first (empty if none)."""
        return list(self._load().get(event_type, ()))

    def latest(self, event_type: str) -> SchemaVersion | None:
        """The newest released version of ``event_type``."""
        versions = self._load().get(event_type)
        return versions[-1] if versions else None

    def by_fingerprint(self, fingerprint: bytes) -> SchemaVersion | None:
        """The version whose Parsing Canonical Form has this CRC-64-AVRO fingerprint."""
        self._load()
        return self._by_fingerprint.get(fingerprint)

    def reload(self) -> None:
        """Forget what was read; the next call reads the directory again."""
        self._entries = None

    # -- generate and check ----------------------------------------------------------------

    def generate(self, signals: Iterable[WorkflowSignal]) -> list[SchemaVersion]:
        """Write a new version for each signal whose schema is new or changed.

        Returns the entries written. Released files are never touched.
        """
        written: list[SchemaVersion] = []
        for signal in signals:
            text = format_schema(schema_from_signal(signal))
            versions = self.versions(signal.event_type)
            if versions and format_schema(versions[-1].schema) == text:
                continue
            path = self.directory / signal.event_type / f"{len(versions) + 1}.avsc"
            if path.exists():
                raise SchemaDirectoryError(f"{path} exists already; refusing to rewrite it")
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("x", encoding="utf-8") as out:
                out.write(text)
            self.reload()
            written.append(self.versions(signal.event_type)[-1])
        return written

    def check(
        self, signals: Iterable[WorkflowSignal], mode: CompatibilityMode = DEFAULT_MODE
    ) -> list[SchemaProblem]:
        """Every reason the schema directory is not in order for ``signals`` under ``mode``.

        Stale (a signal's schema is missing or differs from its latest version), badly
        formatted or misplaced files, and versions that break ``mode`` against the
        earlier ones. A stale signal's current schema is checked as the would-be next
        version too, so a breaking change shows before ``generate`` is run.
        """
        self._load()
        problems = list(self._layout_problems)
        signals_by_type = {signal.event_type: signal for signal in signals}
        for event_type in sorted({*self.event_types(), *signals_by_type}):
            problems.extend(
                self._check_event_type(event_type, signals_by_type.get(event_type), mode)
            )
        return problems

    def _check_event_type(
        self, event_type: str, signal: WorkflowSignal | None, mode: CompatibilityMode
    ) -> list[SchemaProblem]:
        problems: list[SchemaProblem] = []
        versions = self.versions(event_type)
        for entry in versions:
            if entry.text != format_schema(entry.schema):
                problems.append(
                    SchemaProblem(
                        event_type,
                        entry.path.name,
                        "file-format",
                        "not in the schema file format (key order, 2-space indent, final newline); "
                        "reformat it without changing its content",
                    )
                )
            name = entry.schema.get("name") if isinstance(entry.schema, dict) else None
            if name != record_name_for_event_type(event_type):
                problems.append(
                    SchemaProblem(
                        event_type,
                        entry.path.name,
                        _LAYOUT_RULE,
                        f"record name {name!r} does not match the folder's event type",
                    )
                )
        schemas = [entry.schema for entry in versions]
        labels = [str(entry.version) for entry in versions]
        if signal is not None:
            current = schema_from_signal(signal)
            if not versions:
                problems.append(
                    SchemaProblem(
                        event_type,
                        "",
                        "stale",
                        "no schema in the schema directory (run: flowbus schemas generate)",
                    )
                )
            elif format_schema(versions[-1].schema) != format_schema(current):
                problems.append(
                    SchemaProblem(
                        event_type,
                        "",
                        "stale",
                        f"the signal's schema differs from version {versions[-1].version} "
                        "(run: flowbus schemas generate)",
                    )
                )
                schemas.append(current)
                labels.append("current")
        for upto in range(2, len(schemas) + 1):
            for reader, writer, problem in check_mode(schemas[:upto], mode):
                problems.append(
                    SchemaProblem(
                        event_type,
                        problem.path,
                        problem.rule,
                        f"{mode.value}: version {labels[reader]} cannot read data written "
                        f"with version {labels[writer]}: {problem.message}",
                    )
                )
        return problems
