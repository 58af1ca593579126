"""``flowbus consume``: run a consumer worker."""

from __future__ import annotations

import click

from flowbus.errors import ConfigurationError
from flowbus.user_modules import import_user_module

from .cli_params import metrics_options
from .dead_letter import DEFAULT_SUFFIX
from .retry import ReceiverRetryPolicy
from .worker import DEFAULT_RECEIVER_TIMEOUT


def _exception_type(dotted: str) -> type[BaseException]:
    module_name, _, name = dotted.rpartition(".")
    try:  # a bare name is a built-in exception (TimeoutError)
        found = getattr(import_user_module(module_name or "builtins"), name)
    except (ConfigurationError, AttributeError) as exc:
        reason = exc.__cause__ or exc
        raise ConfigurationError(f"cannot import exception type {dotted!r}: {reason}") from exc
    if not (isinstance(found, type) and issubclass(found, BaseException)):
        raise ConfigurationError(f"{dotted!r} is not an exception type (module.ClassName)")
    return found


@click.command()
@click.option(
    "--topic", "topics", multiple=True, required=True, help="Topic to consume (repeatable)."
)
@click.option("--group", required=True, help="Consumer group id.")
@click.option("--receivers", "receiver_modules", multiple=True,
              help="Module whose receivers to connect (repeatable).")  # fmt: skip
@click.option("--concurrency", type=click.IntRange(1, 1024), default=1, show_default=True,
              help="Messages handled at once; never two of the same key.")  # fmt: skip
@click.option("--receiver-timeout", type=click.FloatRange(0), default=DEFAULT_RECEIVER_TIMEOUT,
              show_default=True,
              help="Seconds a receiver call may run before it fails (0: no limit).")  # fmt: skip
@click.option("--shutdown-timeout", type=click.FloatRange(0), default=30.0, show_default=True,
              help="On SIGTERM, seconds to let running receivers finish.")  # fmt: skip
@click.option("--commit-interval", type=click.FloatRange(0.05), default=1.0, show_default=True,
              help="Seconds between offset commits (what a crash redoes).")  # fmt: skip
@click.option("--max-attempts", type=click.IntRange(1), default=3, show_default=True,
              help="Calls of a failing receiver before its event is dead-lettered.")  # fmt: skip
@click.option("--retry-delay", type=click.FloatRange(0), default=0.2, show_default=True,
              help="First backoff delay in seconds (doubles per retry, up to 5 s).")  # fmt: skip
@click.option("--max-abandoned", type=click.IntRange(1), default=16, show_default=True,
              help="Receivers stuck past their deadline before exiting (status 1).")  # fmt: skip
@click.option("--infrastructure-error", "infrastructure_errors", multiple=True, metavar="CLASS",
              help="Receiver exception (module.Class) that pauses the partition and retries "
                   "instead of dead-lettering (repeatable).")  # fmt: skip
@click.option("--data-error", "data_errors", multiple=True, metavar="CLASS",
              help="Receiver exception (module.Class) dead-lettered at once.")  # fmt: skip
@click.option("--dlq-suffix", default=DEFAULT_SUFFIX, show_default=True,
              help="Dead-letter topic = source topic + this suffix.")  # fmt: skip
@metrics_options
@click.option("--max-messages", type=int, default=None, hidden=True)
def consume(
    topics: tuple[str, ...],
    group: str,
    receiver_modules: tuple[str, ...],
    concurrency: int,
    receiver_timeout: float,
    shutdown_timeout: float,
    commit_interval: float,
    max_attempts: int,
    retry_delay: float,
    max_abandoned: int,
    infrastructure_errors: tuple[str, ...],
    data_errors: tuple[str, ...],
    dlq_suffix: str,
    metrics_port: int | None,
    health_timeout: float,
    max_messages: int | None,
) -> None:
    """Consume event topics and re-send each event's signal here.

    Exits 0 after SIGTERM/SIGINT (running receivers given --shutdown-timeout, finished
    work committed); 2 when the configuration is invalid (e.g. a receiver module fails to
    import); 1 when the broker does not answer at start, or when more than
    --max-abandoned receivers hung past their deadline (for a supervisor to restart it).
    A broker lost while running pauses the worker, it does not end it.
    """
    from .failures import FailureClassifier
    from .worker import Worker

    metrics = None
    classifier = FailureClassifier(
        infrastructure=[_exception_type(name) for name in infrastructure_errors],
        data=[_exception_type(name) for name in data_errors],
    )
    if metrics_port is not None:
        from .metrics import WorkerMetrics

        metrics = WorkerMetrics()
        metrics.serve(metrics_port, health_timeout=health_timeout)
    try:
        worker = Worker(
            topics,
            group,
            receiver_modules=receiver_modules,
            retry=ReceiverRetryPolicy(max_attempts=max_attempts, initial_delay=retry_delay),
            dead_letter_suffix=dlq_suffix,
            metrics=metrics,
            concurrency=concurrency,
            receiver_timeout=receiver_timeout or None,
            shutdown_timeout=shutdown_timeout,
            commit_interval=commit_interval,
            max_abandoned=max_abandoned,
            classifier=classifier,
        )
        with worker.stopped_by_signals():  # a signal right after the line below stops it too
            click.echo(
                f"consuming {', '.join(worker.topics)} as group {group} "
                f"(concurrency {concurrency})",
                err=True,
            )
            stats = worker.run(max_messages=max_messages, install_signal_handlers=False)
    finally:
        if metrics is not None:
            metrics.close()
    click.echo(
        f"stopped: {stats.handled} handled, {stats.retried} retried, "
        f"{stats.dead_lettered} dead-lettered, {stats.timeouts} timed out",
        err=True,
    )
