"""The exit status of every ``flowbus`` command, and which errors lead to which.

One table for the whole command line: scripts and supervisors can tell a broken
environment (retry later) from a broken command line (fix it) from a refusal (act first).
:func:`exit_code_for` is the only place an exception is turned into a status.
"""

from __future__ import annotations

import enum

from flowbus.errors import (
    ConfigurationError,
    ConsumerGroupActiveError,
    DeadLetterRecordNotFoundError,
    DeliveryNotFoundError,
    EncodeError,
    FlowbusError,
    InputError,
    InvalidResetTargetError,
    InvalidSchemaError,
    InvalidSubscriptionError,
    SenderValidationError,
    SignalDefinitionError,
    SubscriptionNotFoundError,
    TopicNotFoundError,
)

__all__ = ["EXIT_CODES_HELP", "ExitCode", "exit_code_for"]


class ExitCode(enum.IntEnum):
    """What a ``flowbus`` command's exit status means."""

    #: Done (also when nothing matched, and for ``--dry-run``).
    SUCCESS = 0
    #: The command could not do its job: the broker, registry or a database is unreachable
    #: or refused, a record was not replayed or failed again, a check found problems, a
    #: worker gave up (too many receivers stuck). Worth running again once that is fixed.
    FAILURE = 1
    #: The command line, the configuration or the input is wrong (unknown option or topic,
    #: invalid settings, event data that does not validate): nothing was attempted.
    BAD_INPUT = 2
    #: The command refused to act on what it found (a consumer group with active members).
    REFUSED = 3


EXIT_CODES_HELP = """\b
Exit status (every command):
  0  success
  1  failure: broker, registry or database unreachable; a record not replayed; a check failed
  2  bad input: options, configuration (environment) or event data
  3  refused: acting now would be unsafe (e.g. the consumer group is active)"""

#: Errors of the caller's input or configuration; every other FlowbusError is a failure.
_BAD_INPUT: tuple[type[BaseException], ...] = (
    ConfigurationError,
    InputError,
    SenderValidationError,
    SignalDefinitionError,
    EncodeError,
    InvalidSchemaError,
    InvalidSubscriptionError,
    TopicNotFoundError,
    InvalidResetTargetError,
    DeadLetterRecordNotFoundError,
    SubscriptionNotFoundError,
    DeliveryNotFoundError,
)


def exit_code_for(exc: BaseException) -> ExitCode | None:
    """The exit status for ``exc``; ``None`` for an unexpected error (a bug: traceback)."""
    if isinstance(exc, ConsumerGroupActiveError):
        return ExitCode.REFUSED
    if isinstance(exc, _BAD_INPUT):
        return ExitCode.BAD_INPUT
    if isinstance(exc, FlowbusError):
        return ExitCode.FAILURE
    return None
