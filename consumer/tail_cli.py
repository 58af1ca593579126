"""``flowbus tail``: the events of a topic, decoded, as they arrive or from the beginning.

The reader assigns every partition by hand and never commits: no consumer group is
created or moved, so tailing a production topic changes nothing. Each record is decoded
as the worker decodes it (:mod:`consumer.record_view`); one that does not decode is shown
with its dead-letter reason, not skipped.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Iterator

import click
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    Message,
    TopicPartition,
)

from flowbus import cloudevents
from flowbus.errors import TopicNotFoundError, TopicReadError
from flowbus.json_output import BYTES_ENCODING, echo_json, json_option
from flowbus.settings import FlowbusSettings, get_settings

from .kafka_clients import reader_config, topic_partitions
from .middleware import ConsumedRecord
from .record_view import view_record

__all__ = ["TopicTail", "tail"]

#: Seconds the broker has to answer the topic's metadata request.
BROKER_TIMEOUT_S = 5.0


class TopicTail:
    """Reads every partition of ``topic`` from its start or its end, never committing."""

    def __init__(
        self, topic: str, settings: FlowbusSettings, *, from_beginning: bool = False
    ) -> None:
        self.topic = topic
        self.from_beginning = from_beginning
        self._config = reader_config(settings)
        self._consumer = Consumer(self._config)

    def _partitions(self) -> list[int]:
        return topic_partitions(
            self._consumer, self.topic, BROKER_TIMEOUT_S, TopicReadError, self._config
        )

    def messages(self, idle_timeout: float | None = None) -> Iterator[Message]:
        """Records as they are read; ends after ``idle_timeout`` seconds without one."""
        start = OFFSET_BEGINNING if self.from_beginning else OFFSET_END
        self._consumer.assign([TopicPartition(self.topic, p, start) for p in self._partitions()])
        last = time.monotonic()
        while idle_timeout is None or time.monotonic() - last < idle_timeout:
            message = self._consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise TopicReadError(f"reading '{self.topic}' failed: {error}")
            last = time.monotonic()
            yield message

    def close(self) -> None:
        self._consumer.close()


def _record(message: Message) -> tuple[ConsumedRecord, int | None]:
    kind, stamp = message.timestamp()
    record = ConsumedRecord(
        message.topic() or "",
        message.partition() or 0,
        message.offset() or 0,
        message.key(),
        message.value(),
        message.headers() or [],
    )
    return record, stamp if kind else None


def _event_type(record: ConsumedRecord) -> str | None:
    for name, raw in cloudevents.header_pairs(record.headers):
        if name.lower() == cloudevents.TYPE:
            return raw.decode("utf-8", "replace")
    return None


@click.command(
    epilog=f"JSON lines (--json) always carry the same keys: topic, partition, offset, "
    f"timestamp, key, event_type, id, time, source, sender, data (null when the record did "
    f"not decode) and failure (null when it did: reason, kind, error_type, message). Bytes "
    f"in data are {BYTES_ENCODING}."
)
@click.argument("topic")
@json_option("One JSON object per record.")
@click.option(
    "--from-beginning", is_flag=True, help="Start at the earliest record (default: new ones)."
)
@click.option(
    "--type",
    "types",
    metavar="GLOB",
    multiple=True,
    help="Only records whose ce_type matches (glob, repeatable: 'org.flowbus.caluma.*').",
)
@click.option(
    "--max", "max_records", type=click.IntRange(min=1), help="Stop after N records shown."
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Stop once no record arrived for S seconds (default: follow until interrupted).",
)
@click.option(
    "--import",
    "modules",
    multiple=True,
    metavar="MODULE",
    help="Also import MODULE, which defines signals (repeatable; FLOWBUS_RECEIVER_MODULES "
    "and the catalog are always imported).",
)
def tail(
    topic: str,
    as_json: bool,
    from_beginning: bool,
    types: tuple[str, ...],
    max_records: int | None,
    timeout: float | None,
    modules: tuple[str, ...],
) -> None:
    """Show the events on TOPIC decoded: where each is, its metadata and its data.

    TOPIC is given without FLOWBUS_TOPIC_PREFIX (it is prepended). Records are decoded as
    a worker decodes them; one that does not decode is shown with the reason a worker
    would dead-letter it for (malformed-headers, unknown-event-type, undecodable,
    invalid-data). Nothing is committed: no consumer group is created or moved.
    """
    import flowbus.catalog  # noqa: F401  (the catalog's signals must be known here)
    from flowbus.avro.serializer import EventDeserializer
    from flowbus.receivers import import_receiver_modules

    settings = get_settings()
    import_receiver_modules([*settings.receiver_modules, *modules])
    deserializer = EventDeserializer.from_settings(settings)
    reader = TopicTail(f"{settings.topic_prefix}{topic}", settings, from_beginning=from_beginning)
    shown = 0
    try:
        for message in reader.messages(timeout):
            record, stamp = _record(message)
            if types and not any(
                fnmatch.fnmatchcase(_event_type(record) or "", glob) for glob in types
            ):
                continue
            view = view_record(record, deserializer, timestamp_ms=stamp)
            if as_json:
                echo_json(view.to_json())
            else:
                for line in view.text_lines():
                    click.echo(line)
            shown += 1
            if max_records is not None and shown >= max_records:
                break
    except TopicNotFoundError as exc:
        raise click.UsageError(str(exc)) from None
    except KeyboardInterrupt:
        pass
    finally:
        reader.close()
