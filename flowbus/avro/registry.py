"""A Confluent-API schema registry, through confluent-kafka's ``SchemaRegistryClient``.

Subjects follow the TopicRecordName strategy, ``<topic>-<record full name>``, so several
event types share one topic, each with its own version history. A writer schema is
resolved once per subject and schema: registered (``auto_register``), the subject's
latest version (``use_latest_version``), or looked up (the production setting: schemas
are registered by ``flowbus schemas register``). The answer is cached for the life of the
process, as are schemas fetched by id, so a producer or consumer that has seen its ids
keeps working while the registry is down.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError as ClientError

from flowbus.avro.codec import ParsedSchema, parse_schema
from flowbus.avro.compat import CompatibilityMode
from flowbus.avro.framing import confluent_header
from flowbus.errors import InvalidSchemaError, SchemaRegistryError, UnknownSchemaError

__all__ = ["RegisteredWriter", "SchemaRegistry", "subject_name"]

log = logging.getLogger(__name__)

#: Confluent error codes: subject not found, version not found, schema not found.
_NOT_FOUND = {40401, 40402, 40403}


def subject_name(topic: str, record_fullname: str) -> str:
    """The TopicRecordName subject: ``<topic>-<record full name>``."""
    return f"{topic}-{record_fullname}"


#: The client waits forever by default; a registry that stops answering must be an error.
REQUEST_TIMEOUT_S = 30


@dataclass(frozen=True, slots=True, eq=False)
class RegisteredWriter:
    """A writer schema as the registry knows it, with the wire header naming it."""

    subject: str
    schema_id: int
    version: int | None
    schema: ParsedSchema
    header: bytes

    @property
    def dataschema(self) -> str:
        """``<subject>/<version>``: the ``dataschema`` of events written with it."""
        return f"{self.subject}/{self.version if self.version is not None else 'latest'}"


def _schema(parsed: ParsedSchema) -> Schema:
    return Schema(json.dumps(parsed.schema, ensure_ascii=False), "AVRO")


class SchemaRegistry:
    """Writer-schema resolution and schema-by-id lookups against one registry."""

    def __init__(
        self,
        url: str,
        config: Mapping[str, Any] | None = None,
        *,
        client: SchemaRegistryClient | None = None,
    ) -> None:
        self.url = url
        self._client = client or SchemaRegistryClient(
            {"timeout": REQUEST_TIMEOUT_S, **(config or {}), "url": url}
        )
        self._writers: dict[tuple[str, bytes, bool, bool], RegisteredWriter] = {}
        self._by_id: dict[int, ParsedSchema] = {}
        self._lock = threading.Lock()

    # -- producing ---------------------------------------------------------------------

    def writer(
        self,
        subject: str,
        schema: ParsedSchema,
        *,
        auto_register: bool,
        use_latest_version: bool,
    ) -> RegisteredWriter:
        """The registered writer for ``schema`` under ``subject``; cached after the first call.

        ``use_latest_version`` writes with the subject's latest version (which must be
        able to carry the data); otherwise ``auto_register`` registers ``schema`` or, when
        off, the schema must already be registered.
        """
        key = (subject, schema.fingerprint, auto_register, use_latest_version)
        cached = self._writers.get(key)
        if cached is not None:
            return cached
        with self._lock:
            cached = self._writers.get(key)
            if cached is None:
                cached = self._resolve_writer(subject, schema, auto_register, use_latest_version)
                self._writers[key] = cached
        return cached

    def _resolve_writer(
        self, subject: str, schema: ParsedSchema, auto_register: bool, use_latest: bool
    ) -> RegisteredWriter:
        if use_latest:
            latest = self._call(subject, self._client.get_latest_version, subject)
            parsed = self._parse_registered(latest.schema.schema_str, latest.schema_id)
            self._by_id.setdefault(latest.schema_id, parsed)
            return self._writer(subject, latest.schema_id, latest.version, parsed)
        if auto_register:
            return self.register(subject, schema)
        found = self.lookup(subject, schema)
        if found is None:
            raise SchemaRegistryError(
                "the schema is not registered under this subject and automatic "
                "registration is off (run: flowbus schemas register)",
                subject=subject,
            )
        return found

    def lookup(self, subject: str, schema: ParsedSchema) -> RegisteredWriter | None:
        """``schema`` as registered under ``subject``; ``None`` when it is not (not cached)."""
        try:
            found = self._client.lookup_schema(subject, _schema(schema))
        except ClientError as exc:
            if exc.error_code in _NOT_FOUND:
                return None
            raise SchemaRegistryError(str(exc), subject=subject) from exc
        except Exception as exc:  # connection errors come from the HTTP client
            raise SchemaRegistryError(f"registry unreachable: {exc}", subject=subject) from exc
        if found.schema_id is None:
            raise SchemaRegistryError("the registry answered without a schema id", subject=subject)
        self._by_id.setdefault(found.schema_id, schema)
        return self._writer(subject, found.schema_id, found.version, schema)

    @staticmethod
    def _writer(
        subject: str, schema_id: int, version: int | None, schema: ParsedSchema
    ) -> RegisteredWriter:
        return RegisteredWriter(subject, schema_id, version, schema, confluent_header(schema_id))

    def register(self, subject: str, schema: ParsedSchema) -> RegisteredWriter:
        """Register ``schema`` under ``subject`` (a no-op when it is already registered)."""
        schema_id = self._call(subject, self._client.register_schema, subject, _schema(schema))
        version = self._call(subject, self._client.lookup_schema, subject, _schema(schema)).version
        self._by_id.setdefault(schema_id, schema)
        return self._writer(subject, schema_id, version, schema)

    def set_compatibility(self, subject: str, mode: CompatibilityMode) -> None:
        """Set the subject's compatibility level to ``mode``."""
        self._call(subject, self._client.set_compatibility, subject, mode.registry_level)

    def compatibility_level(self) -> str:
        """The registry's global compatibility level (``BACKWARD``, ``FULL_TRANSITIVE``...)."""
        return str(self._call("(global)", self._client.get_compatibility))

    def is_compatible(self, subject: str, schema: ParsedSchema) -> bool | None:
        """The registry's verdict on ``schema`` for ``subject``; ``None``: subject is new."""
        try:
            return bool(self._client.test_compatibility(subject, _schema(schema)))
        except ClientError as exc:
            if exc.error_code in _NOT_FOUND:
                return None
            raise SchemaRegistryError(str(exc), subject=subject) from exc
        except Exception as exc:
            raise SchemaRegistryError(f"registry unreachable: {exc}", subject=subject) from exc

    # -- consuming ---------------------------------------------------------------------

    def schema_by_id(self, schema_id: int) -> ParsedSchema:
        """The writer schema with this id (fetched once, then cached)."""
        cached = self._by_id.get(schema_id)
        if cached is not None:
            return cached
        try:
            found = self._client.get_schema(schema_id)
        except ClientError as exc:
            if exc.error_code in _NOT_FOUND:
                raise UnknownSchemaError(
                    f"schema id {schema_id} is unknown to the registry at {self.url}",
                    schema_id=schema_id,
                ) from exc
            raise SchemaRegistryError(f"schema id {schema_id}: {exc}") from exc
        except Exception as exc:
            raise SchemaRegistryError(
                f"registry unreachable while fetching schema id {schema_id}: {exc}"
            ) from exc
        parsed = self._parse_registered(found.schema_str, schema_id)
        self._by_id[schema_id] = parsed
        return parsed

    @staticmethod
    def _parse_registered(text: str | None, schema_id: int) -> ParsedSchema:
        try:
            return parse_schema(json.loads(text or ""))
        except (ValueError, InvalidSchemaError) as exc:
            raise UnknownSchemaError(
                f"schema id {schema_id} is not a usable Avro schema: {exc}", schema_id=schema_id
            ) from exc

    def _call(self, subject: str, method: Any, *args: Any) -> Any:
        try:
            return method(*args)
        except ClientError as exc:
            raise SchemaRegistryError(str(exc), subject=subject) from exc
        except Exception as exc:  # connection errors come from the HTTP client
            raise SchemaRegistryError(f"registry unreachable: {exc}", subject=subject) from exc
