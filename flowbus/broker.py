"""Reaching the Kafka broker: where it is, librdkafka's log with connection failures
collapsed, and a start-up probe that names the setting.

:func:`bootstrap_servers` is the one answer to "is a broker configured?" of every client:
``bootstrap.servers`` of the caller's own librdkafka properties, else of
``FLOWBUS_KAFKA_CONFIG``, else ``KAFKA_BOOTSTRAP_SERVERS``; none is a
:class:`~flowbus.errors.ConfigurationError` naming ``KAFKA_BOOTSTRAP_SERVERS``.
:func:`kafka_client_config` builds a client's configuration on it.

librdkafka retries an unreachable broker several times a second and logs every failed
attempt. :class:`BrokerLog` (a client's ``logger`` and ``error_cb``) logs the first failure
of a streak, counts the repeats and logs one summary line with the count per
``summary_interval``; everything else librdkafka logs passes through unchanged.
:func:`probe_broker` asks for the cluster's metadata once, so a command (or a worker at
start) meets an unreachable broker within seconds, as a
:class:`~flowbus.errors.BrokerUnreachableError` naming ``KAFKA_BOOTSTRAP_SERVERS``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Mapping
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException

from flowbus.errors import BrokerUnreachableError, ConfigurationError
from flowbus.settings import FlowbusSettings

__all__ = [
    "PROBE_TIMEOUT_S",
    "BrokerLog",
    "bootstrap_servers",
    "kafka_client_config",
    "kafka_error_text",
    "operator_client_config",
    "probe_broker",
]

#: How long a command waits for the broker's first answer before calling it unreachable.
PROBE_TIMEOUT_S = 6.0
#: While the broker stays unreachable, one summary line per this many seconds.
SUMMARY_INTERVAL_S = 60.0

#: A failure this recent means the connection is still failing: librdkafka retries at
#: least every ``reconnect.backoff.max.ms`` (10 s by default).
RECENT_S = 15.0

#: librdkafka's log facility of a failed connection (refused, unresolvable, TLS, SASL...).
_FAILURE_FACILITY = "FAIL"
#: In a FAIL line: the connection was established before it failed.
_WAS_UP = "in state UP"
#: Error events that repeat what a ``FAIL`` line already said (or sum them up).
_CONNECTION_ERRORS = frozenset(
    {KafkaError._TRANSPORT, KafkaError._RESOLVE, KafkaError._ALL_BROKERS_DOWN}
)
#: ``127.0.0.1:1/bootstrap: Connect to ... failed: Connection refused (after 0ms in state
#: CONNECT)`` -> ``Connect to ... failed: Connection refused``
_BROKER_PREFIX = re.compile(r"^(?:\[thrd:[^\]]*\]: )?\S+/(?:bootstrap|\d+): ")
_STATE_SUFFIX = re.compile(
    r" \(after \d+ms in state \w+(?:, \d+ identical error\(s\) suppressed)?\)$"
)


def bootstrap_servers(
    settings: FlowbusSettings, kafka_config: Mapping[str, Any] | None = None
) -> str:
    """The broker addresses a client connects to (see the module docstring).

    ``kafka_config``: the caller's own librdkafka properties, which override the settings.
    """
    for properties in (kafka_config or {}, settings.kafka_config):
        if properties.get("bootstrap.servers"):
            return str(properties["bootstrap.servers"])
    if settings.kafka_bootstrap_servers:
        return settings.kafka_bootstrap_servers
    raise ConfigurationError("no broker configured: set KAFKA_BOOTSTRAP_SERVERS")


def kafka_client_config(
    settings: FlowbusSettings,
    kafka_config: Mapping[str, Any] | None = None,
    *,
    client_id: str | None = None,
) -> dict[str, Any]:
    """A client's librdkafka properties: the broker address (:func:`bootstrap_servers`),
    ``client_id`` if given, then ``FLOWBUS_KAFKA_CONFIG``, then ``kafka_config``."""
    config: dict[str, Any] = {"bootstrap.servers": bootstrap_servers(settings, kafka_config)}
    if client_id is not None:
        config["client.id"] = client_id
    return {**config, **settings.kafka_config, **(kafka_config or {})}


def operator_client_config(settings: FlowbusSettings) -> dict[str, Any]:
    """The base of an operator command's clients (``flowbus doctor``, ``replay``, ``dlq``).

    They never create topics: a mistyped name is an error, not a new topic. Their
    ``logger`` is a :class:`BrokerLog`: an unreachable broker is one line.
    """
    return {
        **kafka_client_config(settings, client_id=f"flowbus-{settings.service_name}-ops"),
        # Asking for a topic's metadata must never create it (brokers default to
        # auto.create.topics.enable=true, and producer-type clients to asking for it).
        "allow.auto.create.topics": False,
        **BrokerLog().client_config(),
    }


def kafka_error_text(exc: KafkaException) -> str:
    """The readable part of a librdkafka error (not its ``KafkaError{code=...}`` form)."""
    error = exc.args[0] if exc.args else None
    return error.str() if isinstance(error, KafkaError) else str(exc)


def failure_reason(text: str) -> str:
    """librdkafka's failure message without the broker name and the connection state."""
    return _STATE_SUFFIX.sub("", _BROKER_PREFIX.sub("", text.strip()))


class BrokerLog:
    """librdkafka's ``logger`` and ``error_cb`` for one client; see the module docstring.

    Pass ``**BrokerLog().client_config()`` into a client's configuration. ``failures`` and
    ``last_failure`` say what the connection attempts met so far. ``quiet``: count the
    failures, log none of them (for a caller that reports the outcome itself).
    """

    def __init__(
        self,
        logger: logging.Logger | None = None,
        *,
        summary_interval: float = SUMMARY_INTERVAL_S,
        clock: Any = time.monotonic,
        quiet: bool = False,
    ) -> None:
        self.logger = logger or logging.getLogger("flowbus.librdkafka")
        self.quiet = quiet
        self.summary_interval = summary_interval
        self._clock = clock
        self._lock = threading.Lock()
        self.failures = 0
        self.last_failure: str | None = None
        self._unreported = 0  # failures since the last line
        self._line_at: float | None = None  # when the current streak's last line was logged
        self._last_at = 0.0  # when the last failure happened

    def client_config(self) -> dict[str, Any]:
        """The ``logger`` and ``error_cb`` properties of a confluent-kafka client."""
        return {"logger": self, "error_cb": self.error}

    def recent_failure(self, within: float = RECENT_S) -> str | None:
        """The last connection failure if it happened in the last ``within`` seconds."""
        with self._lock:
            if self.last_failure is None or self._clock() - self._last_at > within:
                return None
            return self.last_failure

    def log(self, level: int, msg: str, *args: Any) -> None:
        """librdkafka's log line (``logger.log(level, "%s [%s] %s", fac, name, text)``)."""
        facility = args[0] if args else ""
        text = str(args[-1]) if args else ""
        # A connection that was up and closed (the broker reaped an idle one, or went away)
        # is a FAIL line too, once per connection: logged as it is. What repeats are the
        # attempts to connect again.
        if facility != _FAILURE_FACILITY or level < logging.WARNING or _WAS_UP in text:
            self.logger.log(level, msg, *args)
            return
        self._connection_failed(failure_reason(text))

    def error(self, error: KafkaError) -> None:
        """librdkafka's error event: connection errors only update what is known."""
        if error.code() in _CONNECTION_ERRORS and not error.fatal():
            if error.code() != KafkaError._ALL_BROKERS_DOWN:
                with self._lock:
                    self.last_failure = failure_reason(error.str())
            return
        self.logger.error("Kafka client error: %s", error.str())

    def _connection_failed(self, reason: str) -> None:
        now = self._clock()
        with self._lock:
            self.failures += 1
            self.last_failure = reason
            quiet = now - self._last_at > self.summary_interval
            self._last_at = now
            if self._line_at is None or quiet:  # a new streak
                first, count = True, 1
            elif now - self._line_at >= self.summary_interval:
                first, count = False, self._unreported + 1
            else:
                self._unreported += 1
                return
            self._line_at, self._unreported = now, 0
        if self.quiet:
            return
        if first:
            self.logger.warning(
                "Kafka broker connection failed: %s (retrying; repeats are counted, "
                "one line per %gs)",
                reason,
                self.summary_interval,
            )
        else:
            self.logger.warning(
                "Kafka broker connection still failing: %d failed attempt(s) since the last "
                "line; last: %s",
                count,
                reason,
            )


class _MetadataClient(Protocol):
    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any: ...

    def poll(self, timeout: float = -1) -> Any: ...


def probe_broker(
    client: _MetadataClient, config: Mapping[str, Any], *, timeout: float = PROBE_TIMEOUT_S
) -> Any:
    """The cluster's metadata; raises :class:`BrokerUnreachableError` if no answer.

    ``config`` is the client's configuration: its ``bootstrap.servers`` is named in the
    error, and when its ``logger`` is a :class:`BrokerLog` the error also says what the
    connection attempts met (``Connection refused``) and how many failed.
    """
    try:
        return client.list_topics(timeout=timeout)
    except KafkaException as exc:
        reason = kafka_error_text(exc)
    log = config.get("logger")
    if isinstance(log, BrokerLog):
        client.poll(0)  # serve the log lines and error events queued meanwhile
        reason = log.last_failure or reason
        if log.failures:
            reason = f"{reason}, {log.failures} failed attempt(s)"
    raise BrokerUnreachableError(
        str(config.get("bootstrap.servers", "?")), f"no answer within {timeout:g}s ({reason})"
    )
