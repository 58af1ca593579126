"""``flowbus webhooks ...`` and ``flowbus listener add ...``: subscriptions and deliveries."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

from flowbus.errors import BlockedURLError, InvalidSubscriptionError, URLResolutionError
from flowbus.exit_codes import ExitCode
from flowbus.json_output import echo_json

from ..cli_params import metrics_options
from .matching import filters_to_json
from .models import Attempt, Delivery, DeliveryRetryPolicy, DeliveryStatus, Subscription, utc_now
from .signing import generate_secret
from .ssrf import SSRFPolicy, check_url
from .store import WebhookStore, default_database_url

if TYPE_CHECKING:
    from .delivery import DeliveryEngine

__all__ = ["listener", "webhooks"]

F = TypeVar("F", bound=Callable[..., Any])

MISTRAL_WORKFLOW_PATTERN = "org.flowbus.mistral.workflow_execution.*"
MISTRAL_TASK_PATTERN = "org.flowbus.mistral.task_execution.*"


@contextmanager
def _store(ctx: click.Context, *, create: bool = False) -> Iterator[WebhookStore]:
    """The webhook store; only commands that add subscriptions ``create`` a database."""
    store = WebhookStore.open(ctx.find_root().meta.get("flowbus.webhooks.database"), create=create)
    try:
        yield store
    finally:
        store.close()


def _time(value: datetime | None) -> str:
    return "-" if value is None else value.isoformat(timespec="seconds")


def _echo_json(value: Any) -> None:
    echo_json(value, indent=2)


def subscription_dict(sub: Subscription, *, show_secret: bool = False) -> dict[str, Any]:
    """A subscription as JSON; secrets only when asked for."""
    data: dict[str, Any] = {
        "id": sub.id,
        "description": sub.description,
        "event_pattern": sub.event_pattern.text,
        "filters": filters_to_json(sub.filters),
        "url": sub.url,
        "method": sub.method,
        "headers": dict(sub.headers),
        "enabled": sub.enabled,
        "timeout": sub.timeout,
        "retry": {
            "max_attempts": sub.retry.max_attempts,
            "initial_backoff": sub.retry.initial_backoff,
            "max_backoff": sub.retry.max_backoff,
        },
        "created_at": _time(sub.created_at),
        "updated_at": _time(sub.updated_at),
    }
    if show_secret:
        data["secrets"] = list(sub.secrets)
    else:
        data["secrets"] = f"<{len(sub.secrets)} hidden; --show-secret prints them>"
    return data


def delivery_dict(delivery: Delivery, now: datetime | None = None) -> dict[str, Any]:
    """A delivery as JSON (without its body).

    While an attempt runs, ``in_flight`` names it (number, start, lease end) and
    ``next_attempt_at`` is null: the lease end is not a scheduled attempt.
    """
    in_flight = delivery.in_flight(now or utc_now())
    return {
        "id": delivery.id,
        "subscription_id": delivery.subscription_id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "status": delivery.status.value,
        "attempts": delivery.attempts,
        "in_flight": {
            "attempt": delivery.attempts + 1,
            "since": _time(delivery.updated_at),
            "lease_until": _time(delivery.claimed_until),
        }
        if in_flight
        else None,
        "next_attempt_at": _time(delivery.next_attempt_at)
        if delivery.status is DeliveryStatus.PENDING and not in_flight
        else None,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "created_at": _time(delivery.created_at),
        "updated_at": _time(delivery.updated_at),
    }


def attempt_dict(attempt: Attempt) -> dict[str, Any]:
    """One attempt log entry as JSON."""
    return {
        "number": attempt.number,
        "started_at": _time(attempt.started_at),
        "outcome": attempt.outcome.value,
        "status_code": attempt.status_code,
        "latency_ms": None if attempt.latency_ms is None else round(attempt.latency_ms, 1),
        "error": attempt.error,
    }


def _parse_filters(pairs: Sequence[str], raw_json: str | None) -> dict[str, Any]:
    filters: dict[str, Any] = {}
    if raw_json:
        try:
            loaded = json.loads(raw_json)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--filters-json") from None
        if not isinstance(loaded, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--filters-json")
        filters.update(loaded)
    for pair in pairs:
        key, sep, pattern = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=PATTERN", param_hint="--filter")
        existing = filters.get(key)
        if existing is None:
            filters[key] = pattern
        else:
            filters[key] = [*([existing] if isinstance(existing, str) else existing), pattern]
    return filters


def _parse_headers(values: Sequence[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            raise click.BadParameter(f"{value!r} is not 'Name: value'", param_hint="--header")
        headers[name.strip()] = content.strip()
    return headers


def _delivery_options(func: F) -> F:
    """Options shared by ``webhooks add`` and ``listener add``."""
    options = [
        click.option("--method", default="POST", show_default=True, help="POST, PUT or PATCH."),
        click.option(
            "--header", "headers", multiple=True, metavar="'NAME: VALUE'", help="Extra header."
        ),
        click.option(
            "--secret", help="Signing secret (whsec_<base64>); default: a new random one."
        ),
        click.option(
            "--timeout", type=float, default=10.0, show_default=True, help="Seconds per attempt."
        ),
        click.option("--max-attempts", type=int, default=10, show_default=True),
        click.option(
            "--initial-backoff",
            type=float,
            default=10.0,
            show_default=True,
            help="Seconds before the first retry; doubles each time.",
        ),
        click.option(
            "--max-backoff",
            type=float,
            default=3600.0,
            show_default=True,
            help="Longest wait between attempts (seconds).",
        ),
        click.option("--disabled", is_flag=True, help="Create it disabled."),
        click.option(
            "--no-check", is_flag=True, help="Register even if the URL is blocked right now."
        ),
        click.option("--json", "as_json", is_flag=True, help="Print JSON."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _check_before_adding(url: str, no_check: bool) -> None:
    if no_check:
        return
    try:
        check_url(url, SSRFPolicy.from_settings())
    except BlockedURLError as exc:
        raise InvalidSubscriptionError(
            "url",
            f"{exc} (the delivery worker would refuse it; fix the URL or the allowlist, or "
            "pass --no-check to register it anyway)",
        ) from exc
    except URLResolutionError as exc:
        click.echo(f"warning: {exc}; registering anyway", err=True)


def _create_and_print(
    ctx: click.Context, subscriptions: Sequence[Subscription], as_json: bool
) -> None:
    with _store(ctx, create=True) as store:
        for sub in subscriptions:
            store.add_subscription(sub)
    if as_json:
        payload = [subscription_dict(s, show_secret=True) for s in subscriptions]
        _echo_json(payload[0] if len(payload) == 1 else payload)
        return
    for sub in subscriptions:
        state = "enabled" if sub.enabled else "disabled"
        click.echo(f"{sub.id}  {sub.event_pattern.text}  -> {sub.method} {sub.url} ({state})")
    click.echo(f"secret: {subscriptions[0].secrets[0]}")
    click.echo("  (verify the webhook-signature header with it; `show --show-secret` repeats it)")


def _build(
    *,
    event_pattern: str,
    url: str,
    filters: Mapping[str, Any],
    method: str,
    headers: Sequence[str],
    secret: str | None,
    timeout: float,
    max_attempts: int,
    initial_backoff: float,
    max_backoff: float,
    disabled: bool,
    description: str,
) -> Subscription:
    return Subscription.create(
        event_pattern=event_pattern,
        url=url,
        filters=filters,
        method=method,
        headers=_parse_headers(headers),
        secret=secret,
        enabled=not disabled,
        timeout=timeout,
        retry=DeliveryRetryPolicy(
            max_attempts=max_attempts,
            initial_backoff=initial_backoff,
            max_backoff=max_backoff,
        ),
        description=description,
    )


# -- flowbus webhooks ------------------------------------------------------------------


@click.group()
@click.option(
    "--database",
    metavar="URL",
    help="sqlite:///<path> or postgresql://...; default: FLOWBUS_WEBHOOKS_DATABASE_URL, "
    "else <state dir>/webhooks.sqlite3.",
)
@click.pass_context
def webhooks(ctx: click.Context, database: str | None) -> None:
    """Webhook subscriptions, deliveries and the SSRF URL check."""
    if database:
        ctx.find_root().meta["flowbus.webhooks.database"] = database


@webhooks.command("add")
@click.option(
    "--event",
    "event_pattern",
    required=True,
    help="Event type glob, e.g. 'org.flowbus.caluma.work_item.*' or '*.completed.v1'.",
)
@click.option("--url", required=True, help="Where to send matching events (http or https).")
@click.option(
    "--filter",
    "filter_pairs",
    multiple=True,
    metavar="KEY=PATTERN",
    help="Property filter: data path ('work_item.task_slug=review-*') or '$attribute' "
    "('$source=flowbus/*'). Repeat a key for alternatives.",
)
@click.option("--filters-json", help='Filters as a JSON object: {"resource.type": "itemsvc.*"}.')
@click.option("--description", default="", help="Free text shown by list/show.")
@_delivery_options
@click.pass_context
def add(
    ctx: click.Context,
    event_pattern: str,
    url: str,
    filter_pairs: tuple[str, ...],
    filters_json: str | None,
    description: str,
    method: str,
    headers: tuple[str, ...],
    secret: str | None,
    timeout: float,
    max_attempts: int,
    initial_backoff: float,
    max_backoff: float,
    disabled: bool,
    no_check: bool,
    as_json: bool,
) -> None:
    """Subscribe URL to the events matching a pattern (and filters)."""
    subscription = _build(
        event_pattern=event_pattern,
        url=url,
        filters=_parse_filters(filter_pairs, filters_json),
        method=method,
        headers=headers,
        secret=secret,
        timeout=timeout,
        max_attempts=max_attempts,
        initial_backoff=initial_backoff,
        max_backoff=max_backoff,
        disabled=disabled,
        description=description,
    )
    _check_before_adding(url, no_check)
    _create_and_print(ctx, [subscription], as_json)


@webhooks.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """List subscriptions."""
    with _store(ctx) as store:
        subscriptions = store.list_subscriptions()
    if as_json:
        _echo_json([subscription_dict(s) for s in subscriptions])
        return
    if not subscriptions:
        click.echo("no webhook subscriptions")
        return
    for sub in subscriptions:
        state = "enabled " if sub.enabled else "disabled"
        filters = f" {json.dumps(filters_to_json(sub.filters))}" if sub.filters else ""
        click.echo(
            f"{sub.id}  {state}  {sub.event_pattern.text}{filters}  -> {sub.method} {sub.url}"
        )


@webhooks.command()
@click.argument("subscription_id")
@click.option("--show-secret", is_flag=True, help="Include the signing secrets.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def show(ctx: click.Context, subscription_id: str, show_secret: bool, as_json: bool) -> None:
    """Show one subscription and how its deliveries stand."""
    with _store(ctx) as store:
        sub = store.get_subscription(subscription_id)
        counts = store.count_deliveries(subscription_id)
    data = subscription_dict(sub, show_secret=show_secret)
    data["deliveries"] = {status.value: n for status, n in counts.items()}
    if as_json:
        _echo_json(data)
        return
    for key, value in data.items():
        shown = value if isinstance(value, str) else json.dumps(value)
        click.echo(f"{key + ':':<15} {shown}")


def _set_enabled(ctx: click.Context, subscription_id: str, enabled: bool) -> None:
    with _store(ctx) as store:
        store.set_enabled(subscription_id, enabled)
    click.echo(f"{subscription_id} {'enabled' if enabled else 'disabled'}")


@webhooks.command()
@click.argument("subscription_id")
@click.pass_context
def disable(ctx: click.Context, subscription_id: str) -> None:
    """Stop delivering to a subscription (its pending deliveries wait)."""
    _set_enabled(ctx, subscription_id, False)


@webhooks.command()
@click.argument("subscription_id")
@click.pass_context
def enable(ctx: click.Context, subscription_id: str) -> None:
    """Resume delivering to a subscription."""
    _set_enabled(ctx, subscription_id, True)


@webhooks.command()
@click.argument("subscription_id")
@click.pass_context
def remove(ctx: click.Context, subscription_id: str) -> None:
    """Delete a subscription with its deliveries and attempt log."""
    with _store(ctx) as store:
        store.remove_subscription(subscription_id)
    click.echo(f"{subscription_id} removed")


@webhooks.command("rotate-secret")
@click.argument("subscription_id")
@click.option("--secret", help="The new secret (whsec_<base64>); default: a new random one.")
@click.option(
    "--finish",
    is_flag=True,
    help="End a rotation: keep only the current secret (sign with one secret again).",
)
@click.pass_context
def rotate_secret(
    ctx: click.Context, subscription_id: str, secret: str | None, finish: bool
) -> None:
    """Start signing with a new secret; the old one keeps signing until --finish."""
    with _store(ctx) as store:
        sub = store.get_subscription(subscription_id)
        if finish:
            store.set_secrets(subscription_id, sub.secrets[:1])
            click.echo(f"{subscription_id}: signing with the current secret only")
            return
        new = secret or generate_secret()
        store.set_secrets(subscription_id, [new, sub.secrets[0]])
    click.echo(f"secret: {new}")
    click.echo("  (signed with the new and the previous secret until `rotate-secret --finish`)")


@webhooks.group(invoke_without_command=True)
@click.pass_context
def deliveries(ctx: click.Context) -> None:
    """Delivery log: list (default), show one with its attempts, re-drive failed ones."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_deliveries)


@deliveries.command("list")
@click.option("--subscription", "subscription_id", help="Only this subscription's.")
@click.option(
    "--status", type=click.Choice([s.value for s in DeliveryStatus]), help="Only this status."
)
@click.option("--event", "event_id", help="Only this event id's.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def list_deliveries(
    ctx: click.Context,
    subscription_id: str | None = None,
    status: str | None = None,
    event_id: str | None = None,
    limit: int = 50,
    as_json: bool = False,
) -> None:
    """List deliveries, newest first."""
    with _store(ctx) as store:
        rows = store.list_deliveries(
            subscription_id=subscription_id,
            status=DeliveryStatus(status) if status else None,
            event_id=event_id,
            limit=limit,
        )
    if as_json:
        _echo_json([delivery_dict(d) for d in rows])
        return
    if not rows:
        click.echo("no deliveries")
        return
    now = utc_now()
    for d in rows:
        failed = d.last_error and d.status is not DeliveryStatus.DELIVERED
        error = f"  {d.last_error}" if failed else ""
        click.echo(
            f"{d.id}  {_status_text(d, now):<9}  attempts {d.attempts}  {d.subscription_id}  "
            f"{d.event_type} {d.event_id}{_schedule_text(d, now)}{error}"
        )


def _status_text(delivery: Delivery, now: datetime) -> str:
    return "in flight" if delivery.in_flight(now) else delivery.status.value


def _schedule_text(delivery: Delivery, now: datetime) -> str:
    """When the next attempt comes, or since when the current one runs."""
    if delivery.in_flight(now):
        return (
            f"  attempt {delivery.attempts + 1} since {_time(delivery.updated_at)} "
            f"(lease until {_time(delivery.claimed_until)})"
        )
    if delivery.status is DeliveryStatus.PENDING:
        return f"  next {_time(delivery.next_attempt_at)}"
    return ""


@deliveries.command("show")
@click.argument("delivery_id")
@click.option("--body", "show_body", is_flag=True, help="Also print the CloudEvent body.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def show_delivery(ctx: click.Context, delivery_id: str, show_body: bool, as_json: bool) -> None:
    """Show one delivery and its attempt log."""
    with _store(ctx) as store:
        delivery = store.get_delivery(delivery_id)
        attempts = store.list_attempts(delivery_id)
    data = delivery_dict(delivery)
    if not as_json:
        data["status"] = _status_text(delivery, utc_now())
    data["attempt_log"] = [attempt_dict(a) for a in attempts]
    if show_body:
        data["body"] = json.loads(delivery.body)
    if as_json:
        _echo_json(data)
        return
    for key, value in data.items():
        if key in ("attempt_log", "body"):
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in value.items())
        click.echo(f"{key + ':':<18} {'-' if value is None else value}")
    for a in attempts:
        code = f" HTTP {a.status_code}" if a.status_code is not None else ""
        latency = f" {a.latency_ms:.0f} ms" if a.latency_ms is not None else ""
        error = f"  {a.error}" if a.error else ""
        click.echo(f"  #{a.number} {_time(a.started_at)} {a.outcome.value}{code}{latency}{error}")
    if show_body:
        _echo_json(data["body"])


@deliveries.command("redrive")
@click.argument("delivery_ids", nargs=-1)
@click.option("--all-failed", is_flag=True, help="Every failed or blocked delivery.")
@click.option("--subscription", "subscription_id", help="With --all-failed: only this one's.")
@click.pass_context
def redrive(
    ctx: click.Context, delivery_ids: tuple[str, ...], all_failed: bool, subscription_id: str | None
) -> None:
    """Send failed or blocked deliveries again (a running worker picks them up)."""
    if bool(delivery_ids) == all_failed:
        raise click.UsageError("give delivery ids or --all-failed (not both)")
    if subscription_id and not all_failed:
        raise click.UsageError("--subscription goes with --all-failed")
    with _store(ctx) as store:
        if all_failed:
            if subscription_id:
                store.get_subscription(subscription_id)
            count = store.redrive_all(subscription_id=subscription_id)
            click.echo(f"{count} deliveries pending again")
            return
        for delivery_id in delivery_ids:
            store.redrive(delivery_id)
            click.echo(f"{delivery_id} pending again")


@webhooks.command("check-url")
@click.argument("url")
def check_url_command(url: str) -> None:
    """Print 'allowed' or 'blocked: <reason>' (exit 0 / 1): the worker's own check."""
    policy = SSRFPolicy.from_settings()
    try:
        check_url(url, policy)
    except (BlockedURLError, URLResolutionError) as exc:
        reason = exc.reason if isinstance(exc, BlockedURLError) else str(exc)
        click.echo(f"blocked: {reason}")
        raise SystemExit(ExitCode.FAILURE) from None
    click.echo("allowed")


@webhooks.command()
@click.option(
    "--topic", "topics", multiple=True, required=True, help="Topic to consume (repeatable)."
)
@click.option(
    "--group", required=True, help="Consumer group id; workers sharing it split the partitions."
)
@click.option(
    "--dlq-suffix",
    default=None,
    help="Dead-letter topic suffix for events whose deliveries cannot even be stored.",
)
@metrics_options
@click.pass_context
def serve(
    ctx: click.Context,
    topics: tuple[str, ...],
    group: str,
    dlq_suffix: str | None,
    metrics_port: int | None,
    health_timeout: float,
) -> None:
    """Run the delivery worker: consume topics, deliver matching events to subscribers.

    Each consumed event is matched against the enabled subscriptions and its deliveries are
    stored before the offset is; attempts, retries and re-drives run alongside. Exits 0
    after SIGTERM/SIGINT (attempts in flight finish, pending retries stay in the database;
    a second signal abandons the attempts to their leases), 2 when the configuration is
    invalid, 1 when the broker does not answer at start (a broker lost later pauses the
    worker, it does not end it).
    """
    from flowbus.settings import get_settings

    from ..dead_letter import DEFAULT_SUFFIX
    from ..metrics import WorkerMetrics
    from ..worker import Worker
    from .delivery import DeliveryEngine
    from .forwarder import WebhookForwarder
    from .metrics import DeliveryMetrics

    settings = get_settings()
    # Only webhooks receive events in this process, whatever FLOWBUS_RECEIVER_MODULES says.
    worker_settings = settings.model_copy(update={"receiver_modules": []})
    store = WebhookStore.open(ctx.find_root().meta.get("flowbus.webhooks.database"))
    metrics = None if metrics_port is None else WorkerMetrics()
    delivery_metrics = None if metrics is None else DeliveryMetrics(metrics.registry)
    engine = DeliveryEngine.from_settings(store, settings, metrics=delivery_metrics)
    worker = Worker(
        topics,
        group,
        settings=worker_settings,
        dead_letter_suffix=dlq_suffix or DEFAULT_SUFFIX,
        metrics=metrics,
    )
    if metrics is not None and metrics_port is not None:  # once every metric is there
        metrics.serve(metrics_port, health_timeout=health_timeout)
    forwarder = WebhookForwarder(engine)
    engine.start()
    forwarder.connect()
    try:
        # The first SIGTERM/SIGINT stops the worker, also one right after the line below.
        with worker.stopped_by_signals():
            click.echo(
                f"delivering webhooks for {', '.join(worker.topics)} as group {group} "
                f"(database {store.display_url})",
                err=True,
            )
            stats = worker.run(install_signal_handlers=False)
    finally:
        forwarder.disconnect()
        # A signal once the worker returned (while attempts finish) abandons them.
        abandon = threading.Event()
        previous = {
            signum: signal.signal(signum, lambda *_: abandon.set())
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        _finish_attempts(engine, abandon)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        engine.stop()
        if metrics is not None:
            metrics.close()
        store.close()
    click.echo(
        f"stopped: {stats.handled} events handled, {stats.dead_lettered} dead-lettered",
        err=True,
    )


def _finish_attempts(engine: DeliveryEngine, abandon: threading.Event) -> None:
    """Let the attempts in flight finish, saying which and until when; ``abandon`` (a
    second signal) exits at once, leaving them to their leases."""
    running = engine.stop_dispatching()
    if not running:
        return
    latest = max(a.times_out_at for a in running)
    click.echo(
        f"waiting for {len(running)} webhook attempt(s) in flight (their timeouts end "
        f"them by about {_time(latest)}); SIGTERM/SIGINT again abandons them:",
        err=True,
    )
    for attempt in running:
        click.echo(
            f"  delivery {attempt.delivery_id} (event {attempt.event_id}, subscription "
            f"{attempt.subscription_id}) since {_time(attempt.started_at)}, "
            f"times out {_time(attempt.times_out_at)}",
            err=True,
        )
    while not engine.wait_for_attempts(timeout=0.2):
        if abandon.is_set():
            left = engine.attempts_in_flight()
            until = max(a.lease_until for a in left) if left else latest
            click.echo(
                f"abandoned {len(left)} webhook attempt(s): each delivery stays pending and "
                f"its lease makes it due again for the next worker (by {_time(until)})",
                err=True,
            )
            sys.stdout.flush()
            sys.stderr.flush()
            # Their threads block in HTTP calls that cannot be interrupted, and the
            # interpreter would join them at exit: leave without waiting. The offsets are
            # committed and every delivery is in the database.
            os._exit(0)


@webhooks.command()
def demo() -> None:
    """Deliver one signed webhook to a throwaway local receiver and print it."""
    from .demo import run_webhook_demo

    if not run_webhook_demo(click.echo):
        raise SystemExit(ExitCode.FAILURE)


@webhooks.command("database-url")
@click.pass_context
def database_url(ctx: click.Context) -> None:
    """Print the webhook database URL in use (password hidden)."""
    from .store import redact_database_url

    url = ctx.find_root().meta.get("flowbus.webhooks.database") or default_database_url()
    click.echo(redact_database_url(url))


# -- flowbus listener ------------------------------------------------------------------


@click.group()
def listener() -> None:
    """Mistral-style listeners: webhooks for one execution's or one task's events."""


@listener.command("add")
@click.argument("kind", type=click.Choice(["execution", "task"]))
@click.argument("target_id", metavar="ID")
@click.argument("url")
@click.option(
    "--event",
    "event_names",
    multiple=True,
    metavar="NAME",
    help="Only these Mistral events (WORKFLOW_SUCCEEDED, TASK_FAILED, ...); default: all.",
)
@click.option(
    "--database",
    metavar="URL",
    help="Webhook database URL (as for `flowbus webhooks --database`).",
)
@_delivery_options
@click.pass_context
def listener_add(
    ctx: click.Context,
    kind: str,
    target_id: str,
    url: str,
    event_names: tuple[str, ...],
    database: str | None,
    method: str,
    headers: tuple[str, ...],
    secret: str | None,
    timeout: float,
    max_attempts: int,
    initial_backoff: float,
    max_backoff: float,
    disabled: bool,
    no_check: bool,
    as_json: bool,
) -> None:
    """Send one workflow execution's (or task's) events to URL.

    An execution listener gets the execution's own events and those of its tasks (two
    subscriptions sharing one secret); a task listener gets that task's events.
    """
    from flowbus.catalog.mistral import MISTRAL_EVENTS

    if database:
        ctx.find_root().meta["flowbus.webhooks.database"] = database
    if any(c in target_id for c in "*?"):
        raise click.BadParameter("must not contain '*' or '?'", param_hint="ID")
    unknown = [n for n in event_names if n.upper() not in MISTRAL_EVENTS]
    if unknown:
        known = ", ".join(MISTRAL_EVENTS)
        raise click.BadParameter(
            f"unknown {', '.join(unknown)} (known: {known})", param_hint="--event"
        )
    wanted = [MISTRAL_EVENTS[n.upper()].event_type for n in event_names]
    workflow_types = [t for t in wanted if ".workflow_execution." in t]
    task_types = [t for t in wanted if ".task_execution." in t]

    plans: list[tuple[str, dict[str, Any]]] = []
    if kind == "execution":
        if not wanted or workflow_types:
            plans.append((MISTRAL_WORKFLOW_PATTERN, {"execution.id": target_id}))
            if workflow_types:
                plans[-1][1]["$type"] = workflow_types
        if not wanted or task_types:
            plans.append((MISTRAL_TASK_PATTERN, {"task.workflow_execution_id": target_id}))
            if task_types:
                plans[-1][1]["$type"] = task_types
    else:
        if workflow_types:
            raise click.BadParameter("a task listener gets task events only", param_hint="--event")
        plans.append((MISTRAL_TASK_PATTERN, {"task.id": target_id}))
        if task_types:
            plans[-1][1]["$type"] = task_types

    shared_secret = secret or generate_secret()
    subscriptions = [
        _build(
            event_pattern=pattern,
            url=url,
            filters=filters,
            method=method,
            headers=headers,
            secret=shared_secret,
            timeout=timeout,
            max_attempts=max_attempts,
            initial_backoff=initial_backoff,
            max_backoff=max_backoff,
            disabled=disabled,
            description=f"Mistral listener: {kind} {target_id}",
        )
        for pattern, filters in plans
    ]
    _check_before_adding(url, no_check)
    _create_and_print(ctx, subscriptions, as_json)
