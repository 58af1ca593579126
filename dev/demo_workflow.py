"""The demo's workflow: a simulated Caluma service on one side, a worker on the other.

The service walks a few cases through their lifecycle with the catalog's signals; the
producer forwards every event to one topic, keyed by case. A consumer worker reads the
topic and re-sends each signal with the original metadata; its receivers print what
arrived. One poison message shows the dead-letter path. Like all of :mod:`flowbus.dev`,
it sits above both sides and may import them.
"""

from __future__ import annotations

import dataclasses
import logging
import textwrap
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from flowbus.catalog import caluma
from flowbus.catalog.models import (
    CaseSnapshot,
    CaseStatus,
    UserInfo,
    WorkItemSnapshot,
    WorkItemStatus,
)
from flowbus.metadata import EventMetadata
from flowbus.signals import WorkflowSignal

SERVICE = "demo.WorkflowService"
SIGNALS = (
    caluma.CASE_POST_CREATE,
    caluma.WORK_ITEM_POST_CREATE,
    caluma.WORK_ITEM_POST_COMPLETE,
    caluma.CASE_POST_COMPLETE,
)
TASKS = ("submit", "review", "decide")
#: Where the demo's own Kafka clients log (as flowbus's do), instead of librdkafka's own
#: ``%6|...`` lines on stderr in the middle of the story.
LIBRDKAFKA_LOG = logging.getLogger("flowbus.librdkafka")


@dataclasses.dataclass
class Ledger:
    """What the service sent and what the worker received, by event id."""

    sent: dict[str, EventMetadata] = dataclasses.field(default_factory=dict)
    received: dict[str, EventMetadata] = dataclasses.field(default_factory=dict)
    order_by_case: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    received_by_case: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


def _short(value: object) -> str:
    return str(value)[:8]


def _case_of(data: dict[str, Any]) -> str:
    return str(data["case"].id if "case" in data else data["work_item"].case_id)


def _describe(signal: WorkflowSignal, data: dict[str, Any]) -> str:
    action = signal.event_type.removeprefix("org.flowbus.caluma.").removesuffix(".v1")
    task = f" task={data['work_item'].task_slug}" if "work_item" in data else ""
    return f"{action:<25} case={_short(_case_of(data))}{task}"


def lifecycle(case_id: uuid.UUID, now: datetime) -> list[tuple[WorkflowSignal, dict[str, Any]]]:
    """The events Caluma emits for one case, in Caluma's order."""
    user = UserInfo(username="alice", groups=["case-workers"])
    case = CaseSnapshot(
        id=case_id, family_id=case_id, workflow_slug="building-permit",
        status=CaseStatus.RUNNING, created_at=now, modified_at=now,
    )  # fmt: skip
    events: list[tuple[WorkflowSignal, dict[str, Any]]] = [
        (caluma.CASE_POST_CREATE, {"case": case, "user": user, "context": {}})
    ]
    for task in TASKS:
        item = WorkItemSnapshot(
            id=uuid.uuid4(), case_id=case_id, task_slug=task, status=WorkItemStatus.READY,
            name={"en": task.title()}, addressed_groups=["case-workers"],
            deadline=now + timedelta(days=3), created_at=now, modified_at=now,
        )  # fmt: skip
        done = item.model_copy(update={"status": WorkItemStatus.COMPLETED, "closed_at": now})
        events.append(
            (caluma.WORK_ITEM_POST_CREATE, {"work_item": item, "user": user, "context": {}})
        )
        events.append(
            (caluma.WORK_ITEM_POST_COMPLETE, {"work_item": done, "user": user, "context": {}})
        )
    closed = case.model_copy(update={"status": CaseStatus.COMPLETED, "closed_at": now})
    events.append((caluma.CASE_POST_COMPLETE, {"case": closed, "user": user, "context": {}}))
    return events


def run_workflow_demo(cases: int = 3) -> None:
    """Service → Kafka → worker, then a poison message → dead-letter topic."""
    # The sides install as flowbus.producer/consumer, a rename type checkers do not follow.
    from flowbus.consumer.dead_letter import read_dead_letter_headers
    from flowbus.consumer.worker import Worker
    from flowbus.producer.event_producer import EventProducer
    from flowbus.producer.forwarding import start_forwarding

    run = uuid.uuid4().hex[:8]
    topic = f"flowbus-demo-workflow-{run}"
    ledger = Ledger()

    def on_event(
        sender: object, *, signal: WorkflowSignal, metadata: EventMetadata,
        from_event_bus: bool = False, **data: Any,
    ) -> None:  # fmt: skip
        case = _case_of(data)
        with ledger.lock:
            if from_event_bus:
                ledger.received[str(metadata.id)] = metadata
                ledger.received_by_case.setdefault(case, []).append(str(metadata.id))
                same = ledger.sent.get(str(metadata.id)) == metadata
                click.echo(
                    f"  [worker]  {_describe(signal, data)} id={_short(metadata.id)} "
                    f"from={sender} metadata {'identical' if same else 'DIFFERENT'}"
                )
            else:
                ledger.sent[str(metadata.id)] = metadata
                ledger.order_by_case.setdefault(case, []).append(str(metadata.id))

    for signal in SIGNALS:
        signal.connect(on_event)
    producer = EventProducer(install_exit_handlers=False)
    config = {s.event_type: [{"topic": topic}] for s in SIGNALS}
    forwarder = start_forwarding(producer, config)
    worker = Worker([topic], f"flowbus-demo-{run}", poll_timeout=0.2)
    thread = threading.Thread(target=worker.run, kwargs={"install_signal_handlers": False})
    try:
        click.echo(f"\n[service] walking {cases} cases through their lifecycle -> topic {topic}")
        now = datetime.now(UTC)
        runs = [lifecycle(uuid.uuid4(), now) for _ in range(cases)]
        for step in range(max(map(len, runs))):  # interleave the cases, as a busy service would
            for events in runs:
                if step < len(events):
                    signal, data = events[step]
                    signal.send_event(sender=SERVICE, **data)
                    click.echo(f"  [service] {_describe(signal, data)}")
        producer.flush(30)
        click.echo(f"[service] {len(ledger.sent)} events forwarded, keyed by case id")

        _send_poison(producer.config["bootstrap.servers"], producer.topic_name(topic))
        click.echo(
            "\n[worker]  consuming as a separate consumer group; receivers print what arrives"
        )
        thread.start()
        deadline = time.monotonic() + 60
        while worker.stats.handled < len(ledger.sent) + 1 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        worker.stop()
        if thread.is_alive():
            thread.join(30)
        forwarder.disconnect()
        producer.close()
        for signal in SIGNALS:
            signal.disconnect(on_event)

    in_order = all(ledger.received_by_case.get(c) == ids for c, ids in ledger.order_by_case.items())
    identical = all(ledger.received.get(i) == m for i, m in ledger.sent.items())
    click.echo(
        f"[worker]  re-sent {len(ledger.received)}/{len(ledger.sent)} events; metadata identical: "
        f"{'yes' if identical else 'NO'}; each case in order: {'yes' if in_order else 'NO'}"
    )
    for letter in _read_topic(f"{topic}.dlq", producer.config["bootstrap.servers"]):
        info = read_dead_letter_headers(letter.headers())
        click.echo(
            f"[dlq]     {letter.topic()}@{letter.offset()} <- {info['original-topic']}"
            f"[{info['original-partition']}]@{info['original-offset']}: {info['reason']} "
            f"({info['error-type'].rsplit('.', 1)[-1]})"
        )
        # Wrapped, never cut: the reason is what a reader needs whole.
        for line in textwrap.wrap(
            info["error-message"], width=88, break_long_words=False, break_on_hyphens=False
        ):
            click.echo(f"          {line}")
    if len(ledger.received) != len(ledger.sent) or not identical or not in_order:
        raise click.ClickException("the workflow demo did not see every event arrive intact")


def _send_poison(bootstrap: str, topic: str) -> None:
    """A record whose headers are right but whose value is not Avro at all."""
    from confluent_kafka import Producer

    from flowbus import cloudevents

    metadata = caluma.WORK_ITEM_POST_COMPLETE.generate_signal_metadata()
    raw = Producer({"bootstrap.servers": bootstrap}, logger=LIBRDKAFKA_LOG)
    raw.produce(
        topic,
        # No framing header at all: undecodable whatever schemas the registry holds (a
        # Confluent header naming an id could meet a real schema in a long-lived registry).
        value=b"this is not Avro",
        headers=cloudevents.to_headers(metadata, sender="demo.Poison"),
    )
    raw.flush(30)
    click.echo(
        f"[poison]  one record with valid headers and a garbage value (id={_short(metadata.id)})"
    )


def _read_topic(topic: str, bootstrap: str, timeout: float = 10.0) -> list[Any]:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"flowbus-demo-reader-{uuid.uuid4().hex}",
         "auto.offset.reset": "earliest", "enable.auto.commit": False},
        logger=LIBRDKAFKA_LOG,
    )  # fmt: skip
    consumer.subscribe([topic])
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not records:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                records.append(message)
    finally:
        consumer.close()
    return records


def run_webhooks_demo(bootstrap: str, registry_url: str) -> None:
    """One event through Kafka to a local HTTP receiver, signed and verified."""
    from flowbus.consumer.webhooks.demo import run_webhook_demo
    from flowbus.producer.event_producer import EventProducer

    def publish(topic: str) -> None:
        now = datetime.now(UTC)
        signal, data = lifecycle(uuid.uuid4(), now)[2]  # a work item completed
        validated = signal.validate_data(**data)
        with EventProducer(synchronous=True, install_exit_handlers=False) as producer:
            producer.send(
                signal,
                signal.generate_signal_metadata(),
                validated,
                topic=topic,
                key=signal.resolve_key(validated),
                sender=SERVICE,
            )

    click.echo("\n[webhooks] a subscriber on a local HTTP receiver, fed from Kafka")
    if not run_webhook_demo(
        click.echo, bootstrap=bootstrap, registry_url=registry_url, publish=publish
    ):
        raise click.ClickException("the webhook did not arrive verified")
