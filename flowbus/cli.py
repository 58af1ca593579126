"""The ``flowbus`` command line.

Subcommands are registered by dotted name and imported only when invoked, so the
core never imports the producer or consumer side at module level and ``flowbus
--help`` starts fast.

Errors are reported here, for every command: a flowbus error (configuration, input,
an unreachable broker or registry...) becomes one ``Error: ...`` line and the exit status
of :mod:`flowbus.exit_codes`, with no traceback unless ``-vv`` asks for it.
"""

from __future__ import annotations

import logging
import os
import traceback
from typing import Any

import click

from flowbus.exit_codes import EXIT_CODES_HELP, exit_code_for
from flowbus.lazy_exports import import_named

#: name -> ("module:attribute", one-line help shown without importing the module)
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "webhooks": (
        "flowbus.consumer.webhooks.cli:webhooks",
        "Webhook subscriptions, deliveries and the SSRF URL check.",
    ),
    "listener": (
        "flowbus.consumer.webhooks.cli:listener",
        "Mistral-style listeners: webhooks for one execution or task.",
    ),
    "dev": ("flowbus.dev.cli:dev", "Run a local Kafka broker and schema registry."),
    "demo": ("flowbus.dev.demo:demo", "Show events travelling through a real broker."),
    "produce": ("flowbus.producer.cli:produce", "Validate an event and send it to Kafka."),
    "outbox": (
        "flowbus.producer.outbox.cli:outbox",
        "The transactional outbox: migrate, relay to Kafka, status.",
    ),
    "consume": ("flowbus.consumer.cli:consume", "Run a worker that re-sends events here."),
    "reset-offsets": (
        "flowbus.consumer.offset_reset_cli:reset_offsets",
        "Move a consumer group's offsets on a topic.",
    ),
    "tail": ("flowbus.consumer.tail_cli:tail", "Show a topic's events decoded, as they arrive."),
    "doctor": ("flowbus.doctor:doctor", "Check the broker, registry, subjects and settings."),
    "dlq": (
        "flowbus.consumer.dead_letter_cli:dlq",
        "List, show and replay dead-lettered messages.",
    ),
    "signals": ("flowbus.signals_cli:signals", "List the defined signals and show one."),
    "schemas": ("flowbus.schemas_cli:schemas", "Generate, check, compare, register Avro schemas."),
}


#: Old command names that still run, unlisted: old name -> its name in LAZY_COMMANDS.
HIDDEN_ALIASES: dict[str, str] = {"replay": "reset-offsets"}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd_name = HIDDEN_ALIASES.get(cmd_name, cmd_name)
        if cmd_name in LAZY_COMMANDS:
            target, _ = LAZY_COMMANDS[cmd_name]
            command = import_named(target)
            if not isinstance(command, click.Command):
                raise TypeError(f"{target} is not a click command")
            return command
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.exceptions.ClickException:
            raise
        except Exception as exc:
            code = exit_code_for(exc)
            if code is None:  # not an error flowbus knows: a bug, shown with its traceback
                raise
            if ctx.params.get("verbose", 0) >= 2:
                click.echo("".join(traceback.format_exception(exc)), err=True, nl=False)
            click.echo(f"Error: {exc}", err=True)
            raise click.exceptions.Exit(code) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, LAZY_COMMANDS[name][1]) for name in sorted(LAZY_COMMANDS)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, epilog=EXIT_CODES_HELP)
@click.option(
    "-v", "--verbose", count=True, help="More log output (-vv: debug, and error tracebacks)."
)
@click.version_option(package_name="flowbus")
def main(verbose: int) -> None:
    """flowbus: workflow signals over Kafka."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(
        level=os.environ.get("FLOWBUS_LOG_LEVEL", logging.getLevelName(level)),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
