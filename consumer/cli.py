"""``flowbus consume``: run a consumer worker."""

from __future__ import annotations

import sys

import click

from flowbus.errors import ConfigurationError

from .cli_params import metrics_options
from .deadletter import DEFAULT_SUFFIX
from .retry import RetryPolicy


@click.command()
@click.option(
    "--topic", "topics", multiple=True, required=True, help="Topic to consume (repeatable)."
)
@click.option("--group", required=True, help="Consumer group id.")
@click.option("--receivers", "receiver_modules", multiple=True,
              help="Module whose receivers to connect (repeatable).")  # fmt: skip
@click.option("--max-attempts", type=click.IntRange(1), default=3, show_default=True,
              help="Calls of a failing receiver before its event is dead-lettered.")  # fmt: skip
@click.option("--retry-delay", type=click.FloatRange(0), default=0.2, show_default=True,
              help="First backoff delay in seconds (doubles per retry, up to 5 s).")  # fmt: skip
@click.option("--dlq-suffix", default=DEFAULT_SUFFIX, show_default=True,
              help="Dead-letter topic = source topic + this suffix.")  # fmt: skip
@metrics_options
@click.option("--max-messages", type=int, default=None, hidden=True)
def consume(
    topics: tuple[str, ...],
    group: str,
    receiver_modules: tuple[str, ...],
    max_attempts: int,
    retry_delay: float,
    dlq_suffix: str,
    metrics_port: int | None,
    health_timeout: float,
    max_messages: int | None,
) -> None:
    """Consume event topics and re-send each event's signal here.

    Exits 0 after SIGTERM/SIGINT (message in hand finished, offsets committed),
    2 when the configuration is invalid (e.g. a receiver module fails to import).
    """
    from .worker import Worker

    metrics = None
    try:
        if metrics_port is not None:
            from .metrics import WorkerMetrics

            metrics = WorkerMetrics()
            metrics.serve(metrics_port, health_timeout=health_timeout)
        worker = Worker(
            topics,
            group,
            receiver_modules=receiver_modules,
            retry=RetryPolicy(max_attempts=max_attempts, initial_delay=retry_delay),
            dead_letter_suffix=dlq_suffix,
            metrics=metrics,
        )
    except ConfigurationError as exc:
        click.echo(f"flowbus consume: {exc}", err=True)
        sys.exit(2)
    click.echo(f"consuming {', '.join(worker.topics)} as group {group}", err=True)
    try:
        stats = worker.run(max_messages=max_messages)
    finally:
        if metrics is not None:
            metrics.close()
    click.echo(
        f"stopped: {stats.handled} handled, {stats.retried} retried, "
        f"{stats.dead_lettered} dead-lettered",
        err=True,
    )
