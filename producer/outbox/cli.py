"""``flowbus outbox``: migrate the outbox tables, run the relay, show the backlog, list and
re-queue rejected rows."""

from __future__ import annotations

import dataclasses
import signal as signals
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any, NoReturn

import click
from pydantic_settings import SettingsError

from flowbus.errors import FlowbusError
from flowbus.exit_codes import ExitCode, exit_code_for
from flowbus.json_output import echo_json, json_option
from flowbus.settings import FlowbusSettings

DATABASE = click.option(
    "--database",
    "database_url",
    envvar="FLOWBUS_OUTBOX_DATABASE_URL",
    required=True,
    help="sqlite:///<path> or postgresql://... (env FLOWBUS_OUTBOX_DATABASE_URL).",
)


@click.group()
def outbox() -> None:
    """The transactional outbox: its tables, its relay, its backlog."""


@outbox.command()
@DATABASE
def migrate(database_url: str) -> None:
    """Create or upgrade the outbox tables; prints the schema version."""
    from . import migrate as run_migrate

    try:
        click.echo(f"outbox schema version {run_migrate(database_url)}")
    except FlowbusError as exc:
        _fail(exc)


@outbox.command()
@DATABASE
@json_option("One JSON object instead of text.")
def status(database_url: str, as_json: bool) -> None:
    """The backlog: rows not yet published and the age of the oldest one."""
    from . import status as read_status

    try:
        found = read_status(database_url)
    except FlowbusError as exc:
        _fail(exc)
    if as_json:
        echo_json(dataclasses.asdict(found))
        return
    age = "-" if found.oldest_age_seconds is None else f"{found.oldest_age_seconds:.1f}s"
    click.echo(
        f"pending {found.pending}  oldest {age}  rejected {found.rejected}  "
        f"sent (kept) {found.sent_kept}"
    )


@outbox.command()
@DATABASE
@click.option("--limit", type=click.IntRange(1), help="At most this many rows.")
@json_option("One JSON object per line instead of text.")
def rejected(database_url: str, limit: int | None, as_json: bool) -> None:
    """Rows the broker rejected for good (never the payload), oldest first."""
    from . import rejected as read_rejected

    try:
        rows = read_rejected(database_url, limit)
    except FlowbusError as exc:
        _fail(exc)
    for row in rows:
        if as_json:
            echo_json(dataclasses.asdict(row))
        else:
            click.echo(
                f"{row.id}  {row.event_type}  topic {row.topic}  key {row.key}  "
                f"{row.payload_bytes} bytes  {row.code}: {row.reason}"
            )
    if not as_json:
        click.echo(f"{len(rows)} rejected row(s)", err=True)


@outbox.command()
@DATABASE
@click.argument("ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every rejected row.")
def retry(database_url: str, ids: tuple[str, ...], every: bool) -> None:
    """Re-queue rejected rows (event ids, or --all) in their old place, for the relay to
    publish again. An id that is not a rejected row is bad input (exit 2)."""
    from . import retry as requeue

    if bool(ids) == every:
        _fail(click.UsageError("give the event ids of rejected rows, or --all"))
    try:
        done = requeue(database_url, None if every else list(ids))
    except FlowbusError as exc:
        _fail(exc)
    click.echo(f"{len(done)} row(s) re-queued")
    missing = sorted(set(ids) - set(done))
    if missing:
        _fail(click.UsageError(f"not rejected rows: {', '.join(missing)}"))


@outbox.command()
@DATABASE
@click.option(
    "--import",
    "modules",
    multiple=True,
    help="Module defining signals whose events the outbox holds (repeatable; default: "
    "FLOWBUS_RECEIVER_MODULES). The catalog's signals are always known.",
)
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(1))
@click.option("--poll-interval", default=1.0, show_default=True, type=click.FloatRange(0.01),
              help="Seconds between polls (PostgreSQL NOTIFY wakes the relay sooner).")  # fmt: skip
@click.option("--lease-ttl", default=30.0, show_default=True, type=click.FloatRange(1),
              help="Seconds a relay's bucket leases last without renewal.")  # fmt: skip
@click.option("--retention", default=86_400.0, show_default=True, type=click.FloatRange(0),
              help="Seconds sent rows are kept before they are deleted.")  # fmt: skip
@click.option("--name", help="This relay's name in the lease table (default: host-pid-random).")
@click.option("--metrics-port", type=click.IntRange(0, 65535), help="Serve /metrics here.")
@click.option("--drain", is_flag=True, help="Exit once nothing is pending (a one-shot relay).")
def relay(database_url: str, modules: tuple[str, ...], **options: Any) -> None:
    """Publish committed outbox rows to Kafka until SIGTERM/SIGINT (or drained)."""
    run_relay(database_url, modules, **options)


def run_relay(
    database_url: str,
    modules: Sequence[str] = (),
    *,
    settings: FlowbusSettings | None = None,
    batch_size: int = 1000,
    poll_interval: float = 1.0,
    lease_ttl: float = 30.0,
    retention: float = 86_400.0,
    name: str | None = None,
    metrics_port: int | None = None,
    drain: bool = False,
) -> None:
    """Run one relay in this process until SIGTERM/SIGINT (or drained): ``flowbus outbox
    relay`` and the Django app's ``flowbus_outbox_relay`` command. Exits 2 on a
    configuration error, 1 on a database error, naming it."""
    import flowbus.catalog  # noqa: F401  (registers the catalog's signals)
    from flowbus.progress import Progress
    from flowbus.receivers import import_receiver_modules

    from . import status as read_status
    from .relay import OutboxRelay

    try:
        import_receiver_modules(list(modules) or None)
        metrics = None
        if metrics_port is not None:
            from .metrics import OutboxMetrics  # without the 'metrics' extra: an error naming it

            metrics = OutboxMetrics()
        runner = OutboxRelay(
            database_url,
            settings=settings,
            name=name,
            batch_size=batch_size,
            poll_interval=poll_interval,
            lease_ttl=lease_ttl,
            retention=retention,
            metrics=metrics,
        )
        if metrics is not None and metrics_port is not None:
            port = metrics.serve(metrics_port)
            click.echo(f"metrics on :{port}/metrics", err=True)
        backlog = read_status(database_url).pending
    except (FlowbusError, SettingsError) as exc:
        _fail(exc)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        runner.stop(timeout=0)  # the loop finishes its batch and returns

    for signum in (signals.SIGTERM, signals.SIGINT):
        signals.signal(signum, on_signal)
    click.echo(
        f"outbox relay {runner.name} running"
        + (f"; catching up with {backlog} pending event(s)" if backlog else ""),
        err=True,
    )
    # What this relay published of the backlog it found; other relays may share it.
    progress = Progress(f"outbox relay {runner.name}: published", backlog)
    runner.run(drain=drain, on_published=progress.advance)
    progress.finish()
    runner.metrics.close()
    if drain:
        click.echo(f"outbox relay {runner.name}: drained", err=True)


def _fail(exc: Exception) -> NoReturn:
    # Also run by the Django management command, outside the flowbus command line.
    click.echo(f"flowbus outbox: {exc}", err=True)
    sys.exit(exit_code_for(exc) or ExitCode.BAD_INPUT)  # SettingsError: Django's settings
