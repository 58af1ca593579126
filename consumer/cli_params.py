"""Command-line parameters shared by several commands (``reset-offsets``, ``dlq``, ...)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


class PartitionOffset(NamedTuple):
    """A position in a topic; ``partition`` is None when only an offset was given."""

    partition: int | None
    offset: int

    def __str__(self) -> str:
        return str(self.offset) if self.partition is None else f"{self.partition}:{self.offset}"


def parse_time(text: str) -> datetime:
    """An ISO 8601 time; without a UTC offset it is taken as UTC. Raises ValueError."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time (e.g. 2025-01-31T14:00:00Z)") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_partition_offset(text: str, *, partition_required: bool) -> PartitionOffset:
    """``P:O`` (or ``O`` when the partition may be left out). Raises ValueError."""
    head, sep, tail = text.strip().partition(":")
    partition_text, offset_text = (head, tail) if sep else (None, head)
    expected = "PARTITION:OFFSET" if partition_required else "OFFSET or PARTITION:OFFSET"
    if partition_text is None and partition_required:
        raise ValueError(f"{text!r} is not {expected} (e.g. 0:42)")
    if not offset_text.isdigit() or not (partition_text is None or partition_text.isdigit()):
        raise ValueError(f"{text!r} is not {expected} with non-negative integers")
    partition = None if partition_text is None else int(partition_text)
    return PartitionOffset(partition, int(offset_text))


def iso_time_option(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> datetime | None:
    """Click callback: an ISO 8601 time option as an aware datetime (None when not given)."""
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def partition_offsets_option(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[PartitionOffset, ...]:
    """Click callback: a repeatable ``PARTITION:OFFSET`` option."""
    try:
        return tuple(parse_partition_offset(v, partition_required=True) for v in value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def position_argument(ctx: click.Context, param: click.Parameter, value: str) -> PartitionOffset:
    """Click callback: ``OFFSET`` or ``PARTITION:OFFSET``."""
    try:
        return parse_partition_offset(value, partition_required=False)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def options(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    """One decorator applying ``decorators`` (click options), the first one outermost."""

    def apply(command: F) -> F:
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return apply


#: ``--timeout``: how long an operator command waits for each broker request.
broker_timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=30.0,
    show_default=True,
    help="Seconds to wait for each broker request.",
)


def metrics_options(func: F) -> F:
    """``--metrics-port`` and ``--health-timeout`` of a command that runs a consumer worker."""
    func = click.option("--health-timeout", type=float, default=60.0, show_default=True,
                        help="/healthz fails when no poll succeeded for this many seconds.",
                        )(func)  # fmt: skip
    return click.option("--metrics-port", type=int, default=None,
                        help="Serve Prometheus /metrics and /healthz on 127.0.0.1:PORT.",
                        )(func)  # fmt: skip
