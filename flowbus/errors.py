"""Typed exceptions raised by flowbus. Every failure a user can meet has its own class."""

from __future__ import annotations


class FlowbusError(Exception):
    """Base class of every flowbus error."""


class ConfigurationError(FlowbusError):
    """Settings or a configuration file are invalid; the message names the entry."""


class MissingExtraError(ConfigurationError):
    """An optional part of flowbus was used without the extra that installs its libraries."""


class InputError(FlowbusError):
    """A value or file given on the command line cannot be read or parsed; names the option."""


class SignalDefinitionError(FlowbusError):
    """A ``WorkflowSignal`` definition is invalid (event type, data, key path...)."""


class UnsupportedDataTypeError(SignalDefinitionError):
    """A signal's data declares a type flowbus cannot carry; names the field and why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"unsupported data type for field '{field}': {reason}")
        self.field = field
        self.reason = reason


class DuplicateEventTypeError(SignalDefinitionError):
    """A second signal was defined with an event type that is already taken."""

    def __init__(self, event_type: str) -> None:
        super().__init__(f"a signal with event type '{event_type}' already exists")
        self.event_type = event_type


class SenderValidationError(FlowbusError):
    """``send_event`` got arguments that do not match the signal's data; names each argument.

    ``problems`` holds every bad argument with its reason; ``argument`` and ``reason`` are
    the first of them.
    """

    def __init__(
        self,
        event_type: str,
        argument: str | None,
        reason: str,
        *,
        problems: tuple[tuple[str, str], ...] = (),
    ) -> None:
        if not problems and argument:
            problems = ((argument, reason),)
        if len(problems) > 1:
            where = "; ".join(f"argument '{name}': {why}" for name, why in problems)
            super().__init__(f"cannot send '{event_type}': {where}")
        else:
            where = f"argument '{argument}'" if argument else "arguments"
            super().__init__(f"cannot send '{event_type}': {where}: {reason}")
        self.event_type = event_type
        self.argument = argument
        self.reason = reason
        self.problems = problems

    @classmethod
    def of(cls, event_type: str, problems: list[tuple[str, str]]) -> SenderValidationError:
        """The error for one or more ``(argument, reason)`` problems."""
        argument, reason = problems[0]
        return cls(event_type, argument, reason, problems=tuple(problems))


class KeyPathError(ConfigurationError):
    """A key path does not lead to a value in a signal's data; names the path and the step."""


class WebhookError(FlowbusError):
    """Base class of webhook subscription, store and delivery errors."""


class InvalidSubscriptionError(WebhookError):
    """A webhook subscription field is invalid; ``field`` names it, ``reason`` says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"invalid webhook subscription {field}: {reason}")
        self.field = field
        self.reason = reason


class InvalidWebhookSecretError(InvalidSubscriptionError):
    """A webhook signing secret is not ``whsec_`` followed by base64 of 24 to 64 bytes."""

    def __init__(self, reason: str) -> None:
        super().__init__("secret", reason)


class BlockedURLError(WebhookError):
    """A webhook target URL is refused by the SSRF policy; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"blocked: {reason}")
        self.reason = reason


class URLResolutionError(WebhookError):
    """A webhook target host name does not resolve (possibly transient: deliveries retry)."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"cannot resolve host '{host}': {reason}")
        self.host = host
        self.reason = reason


class WebhookStoreError(WebhookError):
    """The webhook database URL is unusable, its driver is missing or a query failed."""


class SubscriptionNotFoundError(WebhookError):
    """No webhook subscription has the given id."""

    def __init__(self, subscription_id: str) -> None:
        super().__init__(f"no webhook subscription with id '{subscription_id}'")
        self.subscription_id = subscription_id


class DeliveryNotFoundError(WebhookError):
    """No webhook delivery has the given id."""

    def __init__(self, delivery_id: str) -> None:
        super().__init__(f"no webhook delivery with id '{delivery_id}'")
        self.delivery_id = delivery_id


class WebhookSignatureError(WebhookError):
    """A Standard Webhooks signature does not verify; ``reason`` says what is wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"webhook signature rejected: {reason}")
        self.reason = reason


class DeliveryEngineClosedError(WebhookError):
    """The webhook delivery engine was used after :meth:`stop`."""


# -- Avro schemas and encoding (flowbus.avro) -------------------------------------------------


class SchemaError(FlowbusError):
    """An Avro schema, the schema directory (``schemas/``) or the schema registry is not usable."""


class InvalidSchemaError(SchemaError):
    """A value or file is not a valid Avro schema; the message says what is wrong."""


class SchemaDirectoryError(SchemaError):
    """The schema directory (``schemas/``) is unreadable, or an action would rewrite a
    released version."""


class SchemaRegistryError(SchemaError):
    """The schema registry was unreachable or refused a request; ``subject`` names it."""

    def __init__(self, message: str, *, subject: str | None = None) -> None:
        super().__init__(f"{subject}: {message}" if subject else message)
        self.subject = subject
        self.message = message


class EncodeError(FlowbusError):
    """An event's data could not be encoded with its schema; ``reason`` says why."""

    def __init__(self, event_type: str, reason: str) -> None:
        super().__init__(f"cannot encode '{event_type}': {reason}")
        self.event_type = event_type
        self.reason = reason


class DecodeError(FlowbusError):
    """Bytes could not be decoded into an event's data; ``reason`` says why.

    Decoding either returns the whole data or raises one of the subclasses: never part of it.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TruncatedDataError(DecodeError):
    """The bytes end inside the framing header or inside the Avro body."""


class WrongMagicByteError(DecodeError):
    """The bytes start with neither the Confluent wire format's ``00`` nor ``C3 01``.

    ``prefix`` holds the first (at most two) bytes found.
    """

    def __init__(self, reason: str, prefix: bytes) -> None:
        super().__init__(reason)
        self.prefix = prefix


class UnknownSchemaError(DecodeError):
    """The writer schema named by the bytes is unknown: a registry schema id that the registry
    does not have (or cannot be asked for), or a fingerprint in no schema directory version."""

    def __init__(
        self, reason: str, *, schema_id: int | None = None, fingerprint: bytes | None = None
    ) -> None:
        super().__init__(reason)
        self.schema_id = schema_id
        self.fingerprint = fingerprint


class SchemaMismatchError(DecodeError):
    """The body does not match its writer schema, the writer schema cannot be resolved to the
    reader's, or the decoded values do not fit the signal's data types."""


class EventHeaderError(FlowbusError):
    """A record's CloudEvents headers cannot be turned into event metadata."""

    def __init__(self, header: str, reason: str) -> None:
        super().__init__(f"header {header!r}: {reason}")
        self.header = header
        self.reason = reason


class MissingHeaderError(EventHeaderError):
    """A required CloudEvents header is absent."""

    def __init__(self, header: str) -> None:
        super().__init__(header, "missing")


class MalformedHeaderError(EventHeaderError):
    """A CloudEvents header is present but its value is not valid."""


class BrokerUnreachableError(FlowbusError):
    """The Kafka broker at ``bootstrap_servers`` (``KAFKA_BOOTSTRAP_SERVERS``) did not answer."""

    def __init__(self, bootstrap_servers: str, reason: str) -> None:
        super().__init__(
            f"Kafka broker unreachable (KAFKA_BOOTSTRAP_SERVERS={bootstrap_servers}): "
            f"{reason}; is it running? `flowbus dev status` checks the local stack"
        )
        self.bootstrap_servers = bootstrap_servers
        self.reason = reason


class DeliveryError(FlowbusError):
    """A message handed to a Kafka producer was not delivered (:mod:`flowbus.kafka_delivery`)."""


class DeliveryTimeoutError(DeliveryError):
    """No delivery report within ``timeout`` seconds."""

    def __init__(self, timeout: float) -> None:
        super().__init__(f"not acknowledged within {timeout:.0f}s")
        self.timeout = timeout


class DeliveryFailedError(DeliveryError):
    """The delivery report carried ``error`` (a ``confluent_kafka.KafkaError``)."""

    def __init__(self, error: object) -> None:
        super().__init__(str(error))
        self.error = error


class ProducerError(FlowbusError):
    """The producer could not deliver an event (raised in synchronous mode only)."""


class ProducerClosedError(ProducerError):
    """An event was sent to a producer that is already closed."""


# -- Consumer operations: offset resets and dead-letter topics (flowbus.consumer) -------------


class OutboxError(FlowbusError):
    """The transactional outbox cannot take or relay an event."""


class OutboxStoreError(OutboxError):
    """The outbox database refused or is unreachable; the message names the database."""


class OutboxNotBoundError(OutboxError):
    """An event went to the outbox outside ``outbox.bind(connection)``: no transaction."""

    def __init__(self, event_id: str, event_type: str) -> None:
        super().__init__(
            f"event {event_id} ({event_type}): no database transaction bound; "
            "send it inside `with outbox.bind(connection_or_session):`"
        )
        self.event_id = event_id
        self.event_type = event_type


class TopicNotFoundError(FlowbusError):
    """A Kafka topic named on the command line or in a record does not exist."""

    def __init__(self, topic: str) -> None:
        super().__init__(f"topic '{topic}' does not exist")
        self.topic = topic


class TopicReadError(FlowbusError):
    """A topic could not be read (``flowbus tail``): the broker unreachable, or a read error."""


class OffsetResetError(FlowbusError):
    """A consumer group's offsets could not be read, planned or moved; the message says why."""


class InvalidResetTargetError(OffsetResetError):
    """An offset reset target names a partition the topic lacks or an offset outside its range."""


class ConsumerGroupActiveError(OffsetResetError):
    """The group has active members, so its committed offsets must not be moved now."""

    def __init__(self, group: str, members: tuple[str, ...]) -> None:
        shown = ", ".join(members) if members else "a member joined while committing"
        super().__init__(
            f"consumer group '{group}' has {len(members) or 'an'} active member(s) ({shown}); "
            "stop its consumers, then run the command again"
        )
        self.group = group
        self.members = members


class DeadLetterQueueError(FlowbusError):
    """A dead-letter topic could not be read, or a record in it could not be replayed."""


class DeadLetterRecordNotFoundError(DeadLetterQueueError):
    """No record at the given partition and offset of a dead-letter topic."""


class ReceiverTimeoutError(FlowbusError):
    """A receiver was still running at its deadline (the consumer's ``receiver_timeout``)."""

    def __init__(self, receiver: str, seconds: float) -> None:
        super().__init__(f"receiver {receiver} still running after {seconds:g}s")
        self.receiver = receiver
        self.seconds = seconds


class ReceiversAbandonedError(FlowbusError):
    """Too many receivers are stuck past their deadline: the worker exits to be restarted.

    Python cannot stop a thread, so a sync receiver that never returns keeps its thread;
    past ``max_abandoned`` of them the worker commits what it handled and gives up.
    """

    def __init__(self, abandoned: int, limit: int) -> None:
        super().__init__(
            f"{abandoned} receivers stuck past their deadline (limit {limit}): exiting "
            "so that a supervisor restarts the worker"
        )
        self.abandoned = abandoned
        self.limit = limit


class DeadLetterPointerError(DeadLetterQueueError):
    """A pointer record's original message could not be replayed in its place.

    ``position`` is the pointer record (``topic[partition]@offset`` of the dead-letter
    topic), ``origin`` where its original was (``topic[partition]@offset``).
    """

    def __init__(self, position: str, origin: str, reason: str) -> None:
        super().__init__(f"pointer record {position}: {reason}; not replayed")
        self.position = position
        self.origin = origin
        self.reason = reason


class PointerOriginalNotFoundError(DeadLetterPointerError):
    """The original is no longer where the pointer says (retention, compaction, a deleted
    topic), or the pointer does not say where it is."""


class PointerOriginalMismatchError(DeadLetterPointerError):
    """The record found where the pointer says has another size or SHA-256 than the pointer
    records (or the pointer records neither), so it is not known to be the original."""
