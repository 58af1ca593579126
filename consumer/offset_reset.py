"""Moving a consumer group's committed offsets on one topic: plan first, then commit.

A plan says, per partition, where the group is (its committed offset), where it will be,
and how many messages that re-delivers (moving back) or skips (moving forward).
Committing is refused while the group has active members: a running consumer would
overwrite the new offsets with its next commit (the broker refuses the change anyway,
with ``UNKNOWN_MEMBER_ID``). The check is repeated right before committing.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any, TypeVar

from confluent_kafka import (
    OFFSET_INVALID,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

# Its defining module: confluent_kafka.admin does not list OffsetSpec in __all__ (mypy).
from confluent_kafka.admin._listoffsets import OffsetSpec

from flowbus.broker import operator_client_config
from flowbus.errors import (
    ConsumerGroupActiveError,
    InvalidResetTargetError,
    OffsetResetError,
)
from flowbus.settings import FlowbusSettings, get_settings

from .kafka_clients import topic_partitions

log = logging.getLogger(__name__)

T = TypeVar("T")


# --- targets -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ToTime:
    """The first offset whose record timestamp is at or after ``when`` (else the end)."""

    when: datetime

    def __post_init__(self) -> None:
        if self.when.tzinfo is None:
            raise InvalidResetTargetError(f"reset time {self.when} has no UTC offset")

    def __str__(self) -> str:
        return f"time {self.when.astimezone(UTC).isoformat().replace('+00:00', 'Z')}"


@dataclasses.dataclass(frozen=True)
class ToEarliest:
    """The earliest offset still on the broker."""

    def __str__(self) -> str:
        return "earliest"


@dataclasses.dataclass(frozen=True)
class ToLatest:
    """The end of each partition: only messages written from now on are consumed."""

    def __str__(self) -> str:
        return "latest"


@dataclasses.dataclass(frozen=True)
class ToOffsets:
    """Explicit offsets for some partitions (partition -> offset); others stay put."""

    offsets: Mapping[int, int]

    def __post_init__(self) -> None:
        if not self.offsets:
            raise InvalidResetTargetError("no partition offsets given")

    def __str__(self) -> str:
        return "offsets " + ", ".join(f"{p}:{o}" for p, o in sorted(self.offsets.items()))


OffsetResetTarget = ToTime | ToEarliest | ToLatest | ToOffsets


# --- plans -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PartitionMove:
    """One partition's move. ``low``/``high``: earliest and end offsets on the broker."""

    partition: int
    low: int
    high: int
    current: int | None  # committed offset; None when the group has none here
    new: int

    @property
    def changed(self) -> bool:
        return self.current != self.new

    @property
    def redelivered(self) -> int:
        """Messages consumed already that the group will receive again."""
        if self.current is None:
            return 0
        return max(0, min(self.current, self.high) - max(self.new, self.low))

    @property
    def skipped(self) -> int:
        """Messages not consumed yet that the group will never receive."""
        if self.current is None:
            return 0
        return max(0, min(self.new, self.high) - max(self.current, self.low))

    @property
    def pending(self) -> int:
        """Messages the group has to consume from the new offset to the current end."""
        return max(0, self.high - max(self.new, self.low))

    def describe(self) -> str:
        if self.current is None:
            return f"no committed offset yet; {self.pending} message(s) to consume"
        if self.redelivered:
            return f"re-delivers {self.redelivered} message(s)"
        if self.skipped:
            return f"skips {self.skipped} message(s)"
        return "unchanged" if not self.changed else "no message re-delivered or skipped"


@dataclasses.dataclass(frozen=True)
class OffsetResetPlan:
    """The moves for one group on one topic, and who is still consuming."""

    group: str
    topic: str
    target: OffsetResetTarget
    moves: tuple[PartitionMove, ...]
    active_members: tuple[str, ...]

    @property
    def changes(self) -> tuple[PartitionMove, ...]:
        return tuple(move for move in self.moves if move.changed)

    @property
    def redelivered(self) -> int:
        return sum(move.redelivered for move in self.moves)

    @property
    def skipped(self) -> int:
        return sum(move.skipped for move in self.moves)


def resolve_offset(
    target: OffsetResetTarget, partition: int, low: int, high: int, by_time: int | None = None
) -> int:
    """The new offset of one partition. ``by_time``: the broker's answer for ToTime, where
    a negative offset means no record at or after the time (so: the end)."""
    match target:
        case ToEarliest():
            return low
        case ToLatest():
            return high
        case ToTime():
            return high if by_time is None or by_time < 0 else by_time
        case ToOffsets(offsets=offsets):
            offset = offsets[partition]
            if not low <= offset <= high:
                raise InvalidResetTargetError(
                    f"offset {offset} is outside partition {partition}'s range "
                    f"[{low}, {high}] (earliest on the broker, end)"
                )
            return offset


# --- the admin side ------------------------------------------------------------------------


class ConsumerGroupOffsets:
    """Reads and moves a consumer group's committed offsets through the Kafka admin API."""

    def __init__(
        self, admin: AdminClient, *, timeout: float = 30.0, config: Mapping[str, Any] = {}
    ) -> None:
        self.admin = admin
        self.timeout = timeout
        #: The admin client's configuration: names the broker when it does not answer.
        self.config = config

    @classmethod
    def from_settings(
        cls, settings: FlowbusSettings | None = None, *, timeout: float = 30.0
    ) -> ConsumerGroupOffsets:
        config = operator_client_config(settings or get_settings())
        return cls(AdminClient(config), timeout=timeout, config=config)

    @staticmethod
    def topic_name(topic: str, settings: FlowbusSettings | None = None) -> str:
        """The topic as on the broker: the settings' ``topic_prefix`` first (as the producer)."""
        return f"{(settings or get_settings()).topic_prefix}{topic}"

    def _result(self, future: Future[T], what: str) -> T:
        try:
            return future.result(timeout=self.timeout)
        except KafkaException as exc:
            raise OffsetResetError(f"{what} failed: {exc.args[0] if exc.args else exc}") from exc
        except TimeoutError as exc:
            raise OffsetResetError(
                f"{what} got no answer from the broker within {self.timeout:.0f}s"
            ) from exc

    def partitions(self, topic: str) -> list[int]:
        return topic_partitions(self.admin, topic, self.timeout, OffsetResetError, self.config)

    def _list_offsets(self, topic: str, specs: Mapping[int, OffsetSpec]) -> dict[int, int]:
        request = {TopicPartition(topic, p): spec for p, spec in specs.items()}
        futures = self.admin.list_offsets(request, request_timeout=self.timeout)
        found: dict[int, int] = {}
        for tp, future in futures.items():
            info: Any = self._result(future, f"listing offsets of {topic}[{tp.partition}]")
            found[tp.partition] = int(info.offset)
        return found

    def watermarks(self, topic: str, partitions: list[int]) -> dict[int, tuple[int, int]]:
        """partition -> (earliest offset on the broker, end offset)."""
        earliest: OffsetSpec = OffsetSpec.earliest()  # type: ignore[no-untyped-call]
        latest: OffsetSpec = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        low = self._list_offsets(topic, dict.fromkeys(partitions, earliest))
        high = self._list_offsets(topic, dict.fromkeys(partitions, latest))
        return {p: (low[p], high[p]) for p in partitions}

    def offsets_for_time(self, topic: str, partitions: list[int], when: datetime) -> dict[int, int]:
        """partition -> first offset with a timestamp at or after ``when`` (-1: none)."""
        millis = int(when.timestamp() * 1000)
        return self._list_offsets(
            topic, dict.fromkeys(partitions, OffsetSpec.for_timestamp(millis))
        )

    def committed(self, group: str, topic: str, partitions: list[int]) -> dict[int, int | None]:
        request = ConsumerGroupTopicPartitions(
            group, [TopicPartition(topic, p) for p in partitions]
        )
        futures = self.admin.list_consumer_group_offsets([request], request_timeout=self.timeout)
        result: Any = self._result(futures[group], f"reading committed offsets of group '{group}'")
        found: dict[int, int | None] = {}
        for tp in result.topic_partitions:
            if tp.error is not None:
                raise OffsetResetError(
                    f"reading the committed offset of group '{group}' on "
                    f"{topic}[{tp.partition}] failed: {tp.error}"
                )
            found[tp.partition] = None if tp.offset == OFFSET_INVALID else int(tp.offset)
        return found

    def active_members(self, group: str) -> tuple[str, ...]:
        """``client_id@host`` of each member of the group now (empty when none)."""
        futures = self.admin.describe_consumer_groups([group], request_timeout=self.timeout)
        try:
            description: Any = futures[group].result(timeout=self.timeout)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.code() == KafkaError.GROUP_ID_NOT_FOUND:
                return ()
            raise OffsetResetError(f"describing group '{group}' failed: {exc}") from exc
        except TimeoutError as exc:
            raise OffsetResetError(
                f"describing group '{group}' got no answer within {self.timeout:.0f}s"
            ) from exc
        return tuple(f"{m.client_id}@{m.host}" for m in description.members)

    def plan(self, group: str, topic: str, target: OffsetResetTarget) -> OffsetResetPlan:
        """What moving ``group`` on ``topic`` (the name on the broker) to ``target`` does."""
        available = self.partitions(topic)
        if isinstance(target, ToOffsets):
            missing = sorted(set(target.offsets) - set(available))
            if missing:
                raise InvalidResetTargetError(
                    f"topic '{topic}' has no partition {', '.join(map(str, missing))} "
                    f"(it has {len(available)}: 0..{len(available) - 1})"
                )
            partitions = sorted(target.offsets)
        else:
            partitions = available
        marks = self.watermarks(topic, partitions)
        by_time = (
            self.offsets_for_time(topic, partitions, target.when)
            if isinstance(target, ToTime)
            else {}
        )
        committed = self.committed(group, topic, partitions)
        moves = tuple(
            PartitionMove(
                partition=p,
                low=marks[p][0],
                high=marks[p][1],
                current=committed.get(p),
                new=resolve_offset(target, p, *marks[p], by_time=by_time.get(p)),
            )
            for p in partitions
        )
        return OffsetResetPlan(group, topic, target, moves, self.active_members(group))

    def commit(self, plan: OffsetResetPlan) -> tuple[PartitionMove, ...]:
        """Commit the plan's changed offsets; returns them. Refuses while members are active."""
        members = self.active_members(plan.group)
        if members:
            raise ConsumerGroupActiveError(plan.group, members)
        changes = plan.changes
        if not changes:
            return ()
        request = ConsumerGroupTopicPartitions(
            plan.group, [TopicPartition(plan.topic, m.partition, m.new) for m in changes]
        )
        futures = self.admin.alter_consumer_group_offsets([request], request_timeout=self.timeout)
        result: Any = self._result(
            futures[plan.group], f"committing offsets of group '{plan.group}'"
        )
        for tp in result.topic_partitions:
            if tp.error is None:
                continue
            if tp.error.code() in (KafkaError.UNKNOWN_MEMBER_ID, KafkaError.REBALANCE_IN_PROGRESS):
                raise ConsumerGroupActiveError(plan.group, self.active_members(plan.group))
            raise OffsetResetError(
                f"committing offset {tp.offset} of group '{plan.group}' on "
                f"{plan.topic}[{tp.partition}] failed: {tp.error}"
            )
        log.info(
            "moved group %s on %s to %s: %s",
            plan.group,
            plan.topic,
            plan.target,
            ", ".join(f"{m.partition}:{m.current}->{m.new}" for m in changes),
        )
        return changes
