"""``flowbus reset-offsets``: move a consumer group's committed offsets on a topic, then exit.

A reset re-delivers messages (moving back) or skips them (moving forward); "replay" is
the dead letters' word (``flowbus dlq replay``). ``flowbus replay`` still runs this
command: a hidden alias of the name it had first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from flowbus.json_output import echo_json, json_option
from flowbus.settings import get_settings

from .cli_params import (
    PartitionOffset,
    broker_timeout_option,
    iso_time_option,
    partition_offsets_option,
)
from .offset_reset import (
    ConsumerGroupOffsets,
    OffsetResetPlan,
    OffsetResetTarget,
    ToEarliest,
    ToLatest,
    ToOffsets,
    ToTime,
)


def _target(
    to_time: datetime | None,
    to_earliest: bool,
    to_latest: bool,
    to_offset: tuple[PartitionOffset, ...],
) -> OffsetResetTarget:
    chosen = [
        name
        for name, given in (
            ("--to-time", to_time is not None),
            ("--to-earliest", to_earliest),
            ("--to-latest", to_latest),
            ("--to-offset", bool(to_offset)),
        )
        if given
    ]
    if len(chosen) != 1:
        found = ", ".join(chosen) if chosen else "none"
        raise click.UsageError(
            f"give exactly one of --to-time, --to-earliest, --to-latest, --to-offset (got: {found})"
        )
    if to_time is not None:
        return ToTime(to_time)
    if to_earliest:
        return ToEarliest()
    if to_latest:
        return ToLatest()
    offsets: dict[int, int] = {}
    for position in to_offset:
        assert position.partition is not None  # the type requires P:O
        if offsets.get(position.partition, position.offset) != position.offset:
            raise click.BadParameter(
                f"partition {position.partition} given twice with different offsets",
                param_hint="--to-offset",
            )
        offsets[position.partition] = position.offset
    return ToOffsets(offsets)


def _show(plan: OffsetResetPlan) -> None:
    click.echo(
        f"Offset reset plan for group '{plan.group}' on topic '{plan.topic}' to {plan.target}:"
    )
    header = ("partition", "committed", "new", "end", "effect")
    rows = [header] + [
        (
            str(m.partition),
            "none" if m.current is None else str(m.current),
            str(m.new),
            str(m.high),
            m.describe(),
        )
        for m in plan.moves
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  " + "  ".join([*cells, row[-1]]))
    click.echo(
        f"Total: {plan.redelivered} message(s) re-delivered, {plan.skipped} skipped, "
        f"{len(plan.changes)} of {len(plan.moves)} partition(s) change."
    )


@click.command("reset-offsets")
@click.option("--group", required=True, help="The consumer group whose offsets move.")
@click.option(
    "--topic", required=True, help="The topic, without FLOWBUS_TOPIC_PREFIX (it is prepended)."
)
@click.option(
    "--to-time",
    metavar="ISO-TIME",
    callback=iso_time_option,
    help="First record at or after this ISO 8601 time (UTC if no offset); "
    "a time after the last record means the end.",
)
@click.option("--to-earliest", is_flag=True, help="The earliest offset still on the broker.")
@click.option("--to-latest", is_flag=True, help="The end: skip everything not consumed yet.")
@click.option(
    "--to-offset",
    metavar="P:O",
    callback=partition_offsets_option,
    multiple=True,
    help="PARTITION:OFFSET; repeat for more partitions, the others stay where they are.",
)
@click.option("--dry-run", is_flag=True, help="Print the plan, change nothing.")
@json_option(
    "One JSON object: the plan per partition, and how many partitions were committed "
    "(null for --dry-run)."
)
@broker_timeout_option
def reset_offsets(
    group: str,
    topic: str,
    to_time: datetime | None,
    to_earliest: bool,
    to_latest: bool,
    to_offset: tuple[PartitionOffset, ...],
    dry_run: bool,
    as_json: bool,
    timeout: float,
) -> None:
    """Move GROUP's committed offsets on TOPIC, so its workers re-consume or skip messages.

    Prints the plan per partition (committed offset -> new offset, and how many messages
    that re-delivers or skips), then commits it. The group's workers must be stopped
    first: the command refuses while the group has active members. Start the workers
    again afterwards; they continue from the new offsets.

    \b
    Exit status (the table of `flowbus --help`):
      0  offsets committed (or nothing to change, or --dry-run)
      1  the broker is unreachable or failed
      2  bad arguments or configuration: unknown topic or partition, offset out of range, ...
      3  refused: the group has active members
    """
    target = _target(to_time, to_earliest, to_latest, to_offset)
    settings = get_settings()
    full_topic = ConsumerGroupOffsets.topic_name(topic, settings)
    offsets = ConsumerGroupOffsets.from_settings(settings, timeout=timeout)
    plan = offsets.plan(group, full_topic, target)
    if not as_json:
        _show(plan)
    if dry_run:
        if as_json:
            echo_json(_plan_json(plan, None))
            return
        if plan.active_members:
            click.echo(
                f"Note: the group has {len(plan.active_members)} active member(s) "
                f"({', '.join(plan.active_members)}); a real run would be refused."
            )
        click.echo("Dry run: nothing changed.")
        return
    changed = offsets.commit(plan)  # refused (exit 3) while the group has active members
    if as_json:
        echo_json(_plan_json(plan, len(changed)))
    elif changed:
        click.echo(f"Committed new offsets for {len(changed)} partition(s).")
    else:
        click.echo("Nothing to change.")


def _plan_json(plan: OffsetResetPlan, committed: int | None) -> dict[str, Any]:
    """The plan as ``--json`` prints it; ``committed``: partitions moved (None: dry run)."""
    return {
        "group": plan.group,
        "topic": plan.topic,
        "target": str(plan.target),
        "partitions": [
            {
                "partition": move.partition,
                "earliest": move.low,
                "end": move.high,
                "committed": move.current,
                "new": move.new,
                "redelivered": move.redelivered,
                "skipped": move.skipped,
                "effect": move.describe(),
            }
            for move in plan.moves
        ],
        "redelivered": plan.redelivered,
        "skipped": plan.skipped,
        "changes": len(plan.changes),
        "active_members": list(plan.active_members),
        "dry_run": committed is None,
        "committed": committed,
    }
