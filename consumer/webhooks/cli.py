"""``flowbus webhooks ...`` and ``flowbus listener add ...``: subscriptions and deliveries.

The commands parse their options and call: the store (:mod:`.store`), the output
(:mod:`.output`), the Mistral listeners (:mod:`.mistral`) and the worker (:mod:`.serve`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import click

from flowbus.errors import BlockedURLError, InvalidSubscriptionError, URLResolutionError
from flowbus.exit_codes import ExitCode
from flowbus.json_output import json_option

from ..cli_params import metrics_options
from .mistral import (
    ListenerError,
    ListenerKind,
    listener_description,
    listener_subscriptions,
)
from .models import DeliveryRetryPolicy, DeliveryStatus, Subscription, utc_now
from .output import (
    added_lines,
    attempt_dict,
    delivery_dict,
    delivery_lines,
    delivery_list_line,
    print_json,
    status_text,
    subscription_dict,
    subscription_list_line,
    subscription_show_lines,
)
from .signing import generate_secret
from .ssrf import SSRFPolicy, check_url
from .store import WebhookStore, default_database_url

__all__ = ["listener", "webhooks"]

_DATABASE_KEY = "flowbus.webhooks.database"


def _database_url(ctx: click.Context) -> str | None:
    """The ``--database`` given (to ``webhooks`` or ``listener add``), if any."""
    url: str | None = ctx.find_root().meta.get(_DATABASE_KEY)
    return url


@contextmanager
def _store(ctx: click.Context, *, create: bool = False) -> Iterator[WebhookStore]:
    """The webhook store; only commands that add subscriptions ``create`` a database."""
    store = WebhookStore.open(_database_url(ctx), create=create)
    try:
        yield store
    finally:
        store.close()


_json_option = json_option("Print JSON.")


def _echo_lines(lines: Iterable[str]) -> None:
    for line in lines:
        click.echo(line)


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


@dataclasses.dataclass(frozen=True)
class _Adding:
    """The options ``webhooks add`` and ``listener add`` share: how to deliver, and output."""

    method: str
    headers: tuple[str, ...]
    secret: str | None
    timeout: float
    max_attempts: int
    initial_backoff: float
    max_backoff: float
    disabled: bool
    no_check: bool
    as_json: bool

    def subscription(
        self,
        *,
        event_pattern: str,
        url: str,
        filters: Mapping[str, Any],
        description: str,
        secret: str | None,
    ) -> Subscription:
        return Subscription.create(
            event_pattern=event_pattern,
            url=url,
            filters=filters,
            method=self.method,
            headers=_parse_headers(self.headers),
            secret=secret,
            enabled=not self.disabled,
            timeout=self.timeout,
            retry=DeliveryRetryPolicy(
                max_attempts=self.max_attempts,
                initial_backoff=self.initial_backoff,
                max_backoff=self.max_backoff,
            ),
            description=description,
        )


_ADDING_FIELDS = tuple(field.name for field in dataclasses.fields(_Adding))


def _adding_options(func: Callable[..., None]) -> Callable[..., None]:
    """The options of :class:`_Adding`, given to the command as one ``adding`` argument."""

    @functools.wraps(func)
    def command(*args: Any, **kwargs: Any) -> None:
        adding = _Adding(**{name: kwargs.pop(name) for name in _ADDING_FIELDS})
        func(*args, adding=adding, **kwargs)

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
        _json_option,
    ]
    decorated: Callable[..., None] = command
    for option in reversed(options):
        decorated = option(decorated)
    return decorated


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


def _add(
    ctx: click.Context, adding: _Adding, url: str, subscriptions: Sequence[Subscription]
) -> None:
    """Check the URL, store the subscriptions (all to ``url``) and print them."""
    _check_before_adding(url, adding.no_check)
    with _store(ctx, create=True) as store:
        for sub in subscriptions:
            store.add_subscription(sub)
    if adding.as_json:
        payload = [subscription_dict(s, show_secret=True) for s in subscriptions]
        print_json(payload[0] if len(payload) == 1 else payload)
        return
    _echo_lines(added_lines(subscriptions))


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
        ctx.find_root().meta[_DATABASE_KEY] = database


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
@_adding_options
@click.pass_context
def add(
    ctx: click.Context,
    event_pattern: str,
    url: str,
    filter_pairs: tuple[str, ...],
    filters_json: str | None,
    description: str,
    adding: _Adding,
) -> None:
    """Subscribe URL to the events matching a pattern (and filters)."""
    subscription = adding.subscription(
        event_pattern=event_pattern,
        url=url,
        filters=_parse_filters(filter_pairs, filters_json),
        description=description,
        secret=adding.secret,
    )
    _add(ctx, adding, url, [subscription])


@webhooks.command("list")
@_json_option
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """List subscriptions."""
    with _store(ctx) as store:
        subscriptions = store.list_subscriptions()
    if as_json:
        print_json([subscription_dict(s) for s in subscriptions])
        return
    if not subscriptions:
        click.echo("no webhook subscriptions")
        return
    _echo_lines(subscription_list_line(sub) for sub in subscriptions)


@webhooks.command()
@click.argument("subscription_id")
@click.option("--show-secret", is_flag=True, help="Include the signing secrets.")
@_json_option
@click.pass_context
def show(ctx: click.Context, subscription_id: str, show_secret: bool, as_json: bool) -> None:
    """Show one subscription and how its deliveries stand."""
    with _store(ctx) as store:
        sub = store.get_subscription(subscription_id)
        counts = store.count_deliveries(subscription_id)
    data = subscription_dict(sub, show_secret=show_secret)
    data["deliveries"] = {status.value: n for status, n in counts.items()}
    if as_json:
        print_json(data)
        return
    _echo_lines(subscription_show_lines(data))


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
@_json_option
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
        print_json([delivery_dict(d) for d in rows])
        return
    if not rows:
        click.echo("no deliveries")
        return
    now = utc_now()
    _echo_lines(delivery_list_line(d, now) for d in rows)


@deliveries.command("show")
@click.argument("delivery_id")
@click.option("--body", "show_body", is_flag=True, help="Also print the CloudEvent body.")
@_json_option
@click.pass_context
def show_delivery(ctx: click.Context, delivery_id: str, show_body: bool, as_json: bool) -> None:
    """Show one delivery and its attempt log."""
    with _store(ctx) as store:
        delivery = store.get_delivery(delivery_id)
        attempts = store.list_attempts(delivery_id)
    data = delivery_dict(delivery)
    if not as_json:
        data["status"] = status_text(delivery, utc_now())
    data["attempt_log"] = [attempt_dict(a) for a in attempts]
    if show_body:
        data["body"] = json.loads(delivery.body)
    if as_json:
        print_json(data)
        return
    _echo_lines(delivery_lines(data, attempts))
    if show_body:
        print_json(data["body"])


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
    from .serve import serve as run

    run(
        database_url=_database_url(ctx),
        topics=topics,
        group=group,
        dlq_suffix=dlq_suffix,
        metrics_port=metrics_port,
        health_timeout=health_timeout,
        say=functools.partial(click.echo, err=True),
    )


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

    url = _database_url(ctx) or default_database_url()
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
@_adding_options
@click.pass_context
def listener_add(
    ctx: click.Context,
    kind: str,
    target_id: str,
    url: str,
    event_names: tuple[str, ...],
    database: str | None,
    adding: _Adding,
) -> None:
    """Send one workflow execution's (or task's) events to URL.

    An execution listener gets the execution's own events and those of its tasks (two
    subscriptions sharing one secret); a task listener gets that task's events.
    """
    if database:
        ctx.find_root().meta[_DATABASE_KEY] = database
    listener_kind: ListenerKind = "execution" if kind == "execution" else "task"
    try:
        plans = listener_subscriptions(listener_kind, target_id, event_names)
    except ListenerError as exc:
        raise click.BadParameter(str(exc), param_hint=exc.param) from None
    shared_secret = adding.secret or generate_secret()
    subscriptions = [
        adding.subscription(
            event_pattern=pattern,
            url=url,
            filters=filters,
            description=listener_description(listener_kind, target_id),
            secret=shared_secret,
        )
        for pattern, filters in plans
    ]
    _add(ctx, adding, url, subscriptions)
