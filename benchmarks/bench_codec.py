"""Section 1, codec: flowbus's serializer and deserializer against bare fastavro.

Both sides encode the same records with the same parsed schema and put the same framing
header in front:

* flowbus encode: ``EventSerializer.serialize(signal, validated data, topic)``: data
  conversion (models to dicts, enums to values, JSON to text), header, fastavro.
* fastavro encode: ``schemaless_writer`` of the already converted datum after the header.
* flowbus decode: ``EventDeserializer.deserialize(signal, value, topic)``: framing,
  writer-schema lookup, fastavro, and the datum turned back into the signal's models.
* fastavro decode: header check, ``schemaless_reader`` of the body into plain dicts.

Framings: Confluent (``00`` + schema id, registry) and Avro single-object (``C3 01`` +
fingerprint, schema directory). CPU only: no broker traffic once the schema id is known.
"""

from __future__ import annotations

import io
import struct
from typing import Any

import fastavro
from bench_common import Target, best_and_median, rate, time_loop, unique_name
from workload import SIGNAL, build_events

from flowbus.avro.codec import ParsedSchema
from flowbus.avro.framing import (
    CONFLUENT_HEADER_SIZE,
    SINGLE_OBJECT_HEADER_SIZE,
    SINGLE_OBJECT_MAGIC,
)
from flowbus.avro.serializer import EventDeserializer, EventSerializer, codec_for

_SCHEMA_ID = struct.Struct(">I")


def _raw_encoder(header: bytes, schema: ParsedSchema) -> Any:
    parsed = schema.parsed

    def encode(datum: dict[str, Any]) -> bytes:
        out = io.BytesIO()
        out.write(header)
        fastavro.schemaless_writer(out, parsed, datum)
        return out.getvalue()

    return encode


def _raw_decoder(header: bytes, schema: ParsedSchema) -> Any:
    parsed = schema.parsed
    size = len(header)
    confluent = header[:1] == b"\x00"

    def decode(value: bytes) -> Any:
        # The same checks a reader has to make: the magic and the schema reference.
        if confluent:
            if value[0] != 0:
                raise ValueError("not Confluent framed")
            _SCHEMA_ID.unpack_from(value, 1)
        elif value[:2] != SINGLE_OBJECT_MAGIC:
            raise ValueError("not single-object framed")
        return fastavro.schemaless_reader(io.BytesIO(value[size:]), parsed, None)

    return decode


def run(target: Target, count: int, rounds: int) -> dict[str, Any]:
    """Encode and decode ``count`` events per round, both framings, flowbus and fastavro."""
    settings = target.settings()
    topic = unique_name("codec")  # names the registry subject; nothing is produced
    codec = codec_for(SIGNAL)
    events = [SIGNAL.validate_data(**event) for event in build_events(count)]
    datums = [codec.to_datum(event) for event in events]
    framings = {
        "confluent": (
            EventSerializer.from_settings(settings),
            EventDeserializer.from_settings(settings),
        ),
        "single_object": (EventSerializer(), EventDeserializer()),
    }
    result: dict[str, Any] = {"events": count, "rounds": rounds}
    for framing, (serializer, deserializer) in framings.items():
        # First call outside the timing: registers the schema / reads the schema directory.
        first = serializer.serialize(SIGNAL, events[0], topic).value
        deserializer.deserialize(SIGNAL, first, topic)
        size = CONFLUENT_HEADER_SIZE if framing == "confluent" else SINGLE_OBJECT_HEADER_SIZE
        raw_encode = _raw_encoder(first[:size], codec.schema)
        raw_decode = _raw_decoder(first[:size], codec.schema)
        # Same bytes both ways: the raw writer must produce exactly what flowbus produces.
        if raw_encode(datums[0]) != first:
            raise RuntimeError(f"{framing}: fastavro and flowbus encode differently")
        values = [serializer.serialize(SIGNAL, event, topic).value for event in events]

        def encode(data: Any, serializer: EventSerializer = serializer) -> bytes:
            return serializer.serialize(SIGNAL, data, topic).value

        def decode(value: bytes, deserializer: EventDeserializer = deserializer) -> Any:
            return deserializer.deserialize(SIGNAL, value, topic)

        rates: dict[str, list[float]] = {name: [] for name in ("flowbus_encode", "fastavro_encode")}
        rates |= {name: [] for name in ("flowbus_decode", "fastavro_decode")}
        for _ in range(rounds):
            rates["fastavro_encode"].append(rate(count, time_loop(raw_encode, datums)))
            rates["flowbus_encode"].append(rate(count, time_loop(encode, events)))
            rates["fastavro_decode"].append(rate(count, time_loop(raw_decode, values)))
            rates["flowbus_decode"].append(rate(count, time_loop(decode, values)))
        summary = {name: best_and_median(values) for name, values in rates.items()}
        result[framing] = {
            "value_bytes": len(first),
            **{f"{name}_events_per_s": s["median"] for name, s in summary.items()},
            "encode_vs_fastavro": round(
                summary["flowbus_encode"]["median"] / summary["fastavro_encode"]["median"], 3
            ),
            "decode_vs_fastavro": round(
                summary["flowbus_decode"]["median"] / summary["fastavro_decode"]["median"], 3
            ),
            "rounds": {name: s["rounds"] for name, s in summary.items()},
        }
    return result
