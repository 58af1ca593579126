"""The pieces behind the command line's failures: the exit-code table, settings errors that
name the variable, librdkafka's connection failures collapsed, the broker probe."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from flowbus.broker import BrokerLog, failure_reason, probe_broker
from flowbus.errors import (
    BrokerUnreachableError,
    ConfigurationError,
    ConsumerGroupActiveError,
    InputError,
    ReceiversAbandonedError,
    SchemaRegistryError,
    SenderValidationError,
    TopicNotFoundError,
)
from flowbus.exit_codes import ExitCode, exit_code_for
from flowbus.settings import get_settings
from flowbus.user_modules import import_user_module

REFUSED = (
    "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused "
    "(after 0ms in state CONNECT)"
)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ConfigurationError("x"), ExitCode.BAD_INPUT),
        (InputError("x"), ExitCode.BAD_INPUT),
        (SenderValidationError("a.b.c.v1", "x", "missing"), ExitCode.BAD_INPUT),
        (TopicNotFoundError("t"), ExitCode.BAD_INPUT),
        (BrokerUnreachableError("127.0.0.1:1", "no answer"), ExitCode.FAILURE),
        (SchemaRegistryError("registry unreachable"), ExitCode.FAILURE),
        (ReceiversAbandonedError(17, 16), ExitCode.FAILURE),
        (ConsumerGroupActiveError("g", ("m1",)), ExitCode.REFUSED),
        (ValueError("a bug"), None),
        (FileNotFoundError("a bug too: input files are read into InputError"), None),
    ],
)
def test_every_error_has_its_exit_code(error: Exception, code: ExitCode | None) -> None:
    assert exit_code_for(error) == code


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"FLOWBUS_RECEIVER_MODULES": "billing.receivers"},
            "FLOWBUS_RECEIVER_MODULES: not valid JSON (Expecting value: line 1 column 1 "
            "(char 0)); expected a JSON list",
        ),
        (
            {"FLOWBUS_KAFKA_CONFIG": "{"},
            "FLOWBUS_KAFKA_CONFIG: not valid JSON (Expecting property name enclosed in double "
            "quotes: line 1 column 2 (char 1)); expected a JSON object",
        ),
        (
            {"FLOWBUS_PRODUCER_SINK": "kafka", "FLOWBUS_WEBHOOKS_MAX_CONCURRENCY": "0"},
            "invalid settings: FLOWBUS_PRODUCER_SINK: Input should be 'direct', 'on_commit' or "
            "'outbox'; FLOWBUS_WEBHOOKS_MAX_CONCURRENCY: Input should be greater than or equal "
            "to 1",
        ),
    ],
)
def test_invalid_settings_name_every_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigurationError) as caught:
            get_settings()
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert str(caught.value) == message


def test_a_validation_error_lists_each_argument_the_first_as_argument() -> None:
    error = SenderValidationError.of("a.b.c.v1", [("x", "missing"), ("y", "expected int")])
    assert str(error) == "cannot send 'a.b.c.v1': argument 'x': missing; argument 'y': expected int"
    assert (error.argument, error.reason) == ("x", "missing")
    assert error.problems == (("x", "missing"), ("y", "expected int"))


# -- librdkafka's connection failures ---------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def broker_log(clock: Clock) -> BrokerLog:
    return BrokerLog(logging.getLogger("test.librdkafka"), summary_interval=60, clock=clock)


def fail(log: BrokerLog, text: str = REFUSED, level: int = logging.ERROR) -> None:
    log.log(
        level, "%s [%s] %s", "FAIL", "rdkafka#consumer-1", f"[thrd:127.0.0.1:1/bootstrap]: {text}"
    )


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "test.librdkafka"]


def test_repeated_connection_failures_are_one_line_then_one_count_a_minute(
    broker_log: BrokerLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    for _ in range(200):  # librdkafka retries several times a second
        fail(broker_log)
        clock.now += 0.25
    assert messages(caplog) == [
        "Kafka broker connection failed: Connect to ipv4#127.0.0.1:1 failed: Connection refused "
        "(retrying; repeats are counted, one line per 60s)"
    ]
    fail(broker_log)  # 50 s after the first line
    clock.now += 10.0
    fail(broker_log)  # 60 s after it: the count of what was not logged
    assert messages(caplog)[1:] == [
        "Kafka broker connection still failing: 201 failed attempt(s) since the last line; "
        "last: Connect to ipv4#127.0.0.1:1 failed: Connection refused"
    ]
    assert broker_log.failures == 202
    assert broker_log.recent_failure() == "Connect to ipv4#127.0.0.1:1 failed: Connection refused"
    clock.now += 20.0
    assert broker_log.recent_failure() is None  # the broker answers again


def test_a_failure_after_a_quiet_minute_is_a_new_first_line(
    broker_log: BrokerLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    fail(broker_log)
    clock.now += 61
    fail(broker_log, "b:9092/1: Connect to ipv4#10.0.0.2:9092 failed: Connection timed out")
    assert [m.split(" (retrying")[0] for m in messages(caplog)] == [
        "Kafka broker connection failed: Connect to ipv4#127.0.0.1:1 failed: Connection refused",
        "Kafka broker connection failed: Connect to ipv4#10.0.0.2:9092 failed: "
        "Connection timed out",
    ]


def test_other_lines_and_errors_pass_through(
    broker_log: BrokerLog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    broker_log.log(logging.INFO, "%s [%s] %s", "FAIL", "c", "b:9092/1: Disconnected (idle)")
    up = "b:9092/1: Disconnected (after 600045ms in state UP)"
    broker_log.log(logging.ERROR, "%s [%s] %s", "FAIL", "c", up)
    broker_log.log(logging.WARNING, "%s [%s] %s", "BGQUEUE", "c", "Purging 1 unserved events")
    broker_log.error(KafkaError(KafkaError._TRANSPORT, REFUSED))
    broker_log.error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    broker_log.error(KafkaError(KafkaError._SSL, "SSL handshake failed"))
    assert messages(caplog) == [
        "FAIL [c] b:9092/1: Disconnected (idle)",
        "FAIL [c] b:9092/1: Disconnected (after 600045ms in state UP)",
        "BGQUEUE [c] Purging 1 unserved events",
        "Kafka client error: SSL handshake failed",
    ]
    assert broker_log.failures == 0
    assert broker_log.last_failure == "Connect to ipv4#127.0.0.1:1 failed: Connection refused"


def test_failure_reason_drops_the_broker_and_the_state() -> None:
    assert failure_reason(f"[thrd:x/bootstrap]: {REFUSED}") == (
        "Connect to ipv4#127.0.0.1:1 failed: Connection refused"
    )
    assert failure_reason("Failed to get metadata") == "Failed to get metadata"


class SilentBroker:
    """A client whose metadata requests time out; serving its queue logs failures."""

    def __init__(self, log: BrokerLog | None) -> None:
        self.log = log

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        raise KafkaException(KafkaError(KafkaError._TRANSPORT, "Failed to get metadata"))

    def poll(self, timeout: float = -1) -> None:
        if self.log is not None:
            for _ in range(3):
                fail(self.log)


def test_the_probe_names_the_setting_the_reason_and_the_attempts(broker_log: BrokerLog) -> None:
    config = {"bootstrap.servers": "127.0.0.1:1", **broker_log.client_config()}
    with pytest.raises(BrokerUnreachableError) as caught:
        probe_broker(SilentBroker(broker_log), config, timeout=2)
    assert str(caught.value) == (
        "Kafka broker unreachable (KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1): no answer within 2s "
        "(Connect to ipv4#127.0.0.1:1 failed: Connection refused, 3 failed attempt(s)); "
        "is it running? `flowbus dev status` checks the local stack"
    )


def test_the_probe_without_a_broker_log_gives_the_client_error() -> None:
    with pytest.raises(BrokerUnreachableError, match=r"within 2s \(Failed to get metadata\)"):
        probe_broker(SilentBroker(None), {"bootstrap.servers": "b:9092"}, timeout=2)


# -- user modules -------------------------------------------------------------------------


def test_user_modules_are_found_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cwd_only_signals_7f3a.py").write_text("ANSWER = 42\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "cwd_only_signals_7f3a", raising=False)
    assert import_user_module("cwd_only_signals_7f3a").ANSWER == 42
    assert sys.path[-1] == str(tmp_path)  # installed modules come first


def test_a_user_module_that_fails_names_it() -> None:
    with pytest.raises(ConfigurationError, match="could not import receiver module 'nope_x'"):
        import_user_module("nope_x", "receiver module")
