"""``flowbus dev``: run a local Kafka broker and schema registry for development and tests."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from flowbus.dev import devstack
from flowbus.exit_codes import ExitCode
from flowbus.json_output import echo_json, json_option
from flowbus.settings import get_settings


def _stack() -> devstack.LocalStack:
    settings = get_settings()
    return devstack.LocalStack(settings.state_dir, settings.cache_dir)


def _fail(exc: Exception) -> None:
    # The stack cannot run here as asked (a port taken, no Java, no Docker engine...):
    # the options or the machine need fixing first.
    click.echo(f"flowbus dev: {exc}", err=True)
    sys.exit(ExitCode.BAD_INPUT)


_compose_option = click.option(
    "--docker",
    "compose_file",
    flag_value="docker-compose.yml",
    type=click.Path(path_type=Path),
    help="Use docker-compose.yml (needs a running Docker engine) instead of local JVMs.",
)


@click.group()
def dev() -> None:
    """Run a local Kafka broker and schema registry (no Docker needed).

    eval "$(flowbus dev up)" starts both and exports KAFKA_BOOTSTRAP_SERVERS and
    SCHEMA_REGISTRY_URL for every later flowbus command.
    """


@dev.command()
def fetch() -> None:
    """Download Kafka and the registry from Maven Central into the cache (once)."""
    try:
        artifacts = devstack.fetch_artifacts(get_settings().cache_dir)
    except devstack.DevStackError as exc:
        _fail(exc)
    click.echo(f"kafka: {artifacts.kafka_classpath}", err=True)
    click.echo(f"registry: {artifacts.registry_jar}", err=True)


@dev.command()
@click.option("--kafka-port", type=int, default=0, help="Broker port (default: a free one).")
@click.option("--registry-port", type=int, default=0, help="Registry port (default: a free one).")
@click.option("--timeout", type=float, default=devstack.READY_TIMEOUT_S, show_default=True)
@_compose_option
def up(kafka_port: int, registry_port: int, timeout: float, compose_file: Path | None) -> None:
    """Start what of the stack is not running (never deleting data); print lines to `eval`."""
    try:
        if compose_file:
            devstack.compose(compose_file, "up", "-d", "--wait")
            bootstrap, registry = devstack.COMPOSE_BOOTSTRAP, devstack.COMPOSE_REGISTRY_URL
        else:
            started = time.monotonic()
            stack = _stack()
            before = stack.info()
            info = stack.up(kafka_port=kafka_port, registry_port=registry_port, timeout=timeout)
            bootstrap, registry = info.bootstrap_servers, info.schema_registry_url
            kafka = _fate("Kafka", info.kafka_version, info.kafka, before.kafka if before else None)
            registry_fate = _fate(
                "Apicurio Registry",
                info.registry_version,
                info.registry,
                before.registry if before else None,
            )
            click.echo(
                f"# {kafka}, {registry_fate}; ready in {time.monotonic() - started:.1f}s",
                err=True,
            )
    except devstack.DevStackError as exc:
        _fail(exc)
    click.echo(f"export KAFKA_BOOTSTRAP_SERVERS={bootstrap}")
    click.echo(f"export SCHEMA_REGISTRY_URL={registry}")


def _fate(
    name: str,
    version: str,
    process: devstack.ProcessInfo,
    before: devstack.ProcessInfo | None,
) -> str:
    """What `up` did with one server: started it, or found it running."""
    if before is None:
        return f"{name} {version} started (pid {process.pid}, port {process.port})"
    if before.pid == process.pid:
        return f"{name} {version} already running (pid {process.pid}, port {process.port})"
    return f"{name} {version} restarted on its data (pid {process.pid}, port {process.port})"


@dev.command()
def stop() -> None:
    """Stop the stack's processes, keeping its data and ports for the next `up`."""
    stack = _stack()
    try:
        stopped = stack.stop()
    except devstack.DevStackError as exc:
        _fail(exc)
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running", err=True)


@dev.command()
@_compose_option
def down(compose_file: Path | None) -> None:
    """Stop exactly the processes `up` started and delete the stack's data."""
    try:
        if compose_file:
            devstack.compose(compose_file, "down", "-v")
            return
        stack = _stack()
        stopped = stack.down()
    except devstack.DevStackError as exc:
        _fail(exc)
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running", err=True)
    if leftover := stack.running_pids():
        _fail(devstack.DevStackError(f"processes of the stack still running: {leftover}"))


@dev.command()
@json_option('One JSON object: {"kafka": {"address", "up"}, "registry": {"address", "up"}}.')
def status(as_json: bool) -> None:
    """Exit 0 only when the broker and the registry both answer."""
    settings = get_settings()
    stack = _stack()
    info = stack.info()
    if info is not None:
        health = stack.health()
        bootstrap, registry = info.bootstrap_servers, info.schema_registry_url
    elif settings.kafka_bootstrap_servers and settings.schema_registry_url:
        bootstrap, registry = settings.kafka_bootstrap_servers, settings.schema_registry_url
        health = {
            "kafka": devstack.kafka_answers(bootstrap),
            "registry": devstack.registry_answers(registry),
        }
    else:
        click.echo('no stack: run `eval "$(flowbus dev up)"`', err=True)
        sys.exit(ExitCode.FAILURE)
    if as_json:
        echo_json(
            {
                "kafka": {"address": bootstrap, "up": health["kafka"]},
                "registry": {"address": registry, "up": health["registry"]},
            }
        )
    else:
        click.echo(f"kafka     {bootstrap:45} {'up' if health['kafka'] else 'DOWN'}")
        click.echo(f"registry  {registry:45} {'up' if health['registry'] else 'DOWN'}")
    sys.exit(ExitCode.SUCCESS if all(health.values()) else ExitCode.FAILURE)


@dev.command()
def env() -> None:
    """Print the shell lines for the running stack."""
    info = _stack().info()
    if info is None:
        click.echo('no stack: run `eval "$(flowbus dev up)"`', err=True)
        sys.exit(ExitCode.FAILURE)
    for line in info.env_lines():
        click.echo(line)


@dev.command()
@click.argument("component", type=click.Choice(["kafka", "registry", "all"]), default="all")
@click.option("-n", "--lines", type=int, default=40, show_default=True)
def logs(component: str, lines: int) -> None:
    """Show the last log lines of the broker and/or the registry."""
    state_dir = get_settings().state_dir
    for name in ("kafka", "registry") if component == "all" else (component,):
        path = state_dir / f"{name}.log"
        click.echo(f"==> {path} <==")
        click.echo(devstack.tail_log(path, lines) if path.exists() else "(no log yet)")
