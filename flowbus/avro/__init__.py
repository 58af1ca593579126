"""Avro for flowbus: schemas derived from signals, the codec, framings, the schema directory.

Modules: ``schema`` (derivation from data types), ``signal_schemas`` (each signal's analysis
and schemas: :func:`schema_from_signal`), ``codec`` (fastavro encoding of signal data),
``framing`` (single-object and Confluent wire format), ``compat`` (Avro resolution
checker), ``schema_dir`` (the ``schemas/`` directory), ``registry`` (Confluent-API schema
registry), ``serializer`` (what the producer and consumer call per message).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowbus.lazy_exports import lazy_exports_by_module

if TYPE_CHECKING:
    from flowbus.avro.signal_schemas import schema_from_signal as schema_from_signal

# Imported on first use: flowbus.wire imports flowbus.avro.schema, which runs this file, and
# flowbus.avro.signal_schemas imports flowbus.wire.
__all__, __getattr__, __dir__ = lazy_exports_by_module(
    __name__, {"flowbus.avro.signal_schemas": ["schema_from_signal"]}
)
