"""Subprocess of the SIGTERM test: queue events in an asynchronous producer, then wait.

Usage: ``python queue_then_wait.py BOOTSTRAP TOPIC COUNT``. Sends COUNT Caluma
work-item-completed events (registry-free framing) with ``linger.ms`` at two minutes, so
none leaves librdkafka's queue on its own; prints one JSON line ``{"queued": [event ids]}``
and sleeps. Only the producer's exit handlers (installed by ``EventProducer``) deliver them.
Exits with status 3 if no signal arrives within five minutes.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from datetime import UTC, datetime

from flowbus.catalog import caluma
from flowbus.catalog.models import UserInfo, WorkItemSnapshot, WorkItemStatus
from flowbus.producer.event_producer import EventProducer
from flowbus.settings import FlowbusSettings

LINGER_MS = 120_000  # below message.timeout.ms (300 000), as librdkafka requires


def main(bootstrap: str, topic: str, count: int) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    settings = FlowbusSettings(
        kafka_bootstrap_servers=bootstrap, schema_registry_url=None, service_name="sigterm-test"
    )
    producer = EventProducer(settings=settings, kafka_config={"linger.ms": LINGER_MS})
    signal = caluma.WORK_ITEM_POST_COMPLETE
    case_id = uuid.uuid4()
    now = datetime.now(UTC)
    queued = []
    for index in range(count):
        data = signal.validate_data(
            work_item=WorkItemSnapshot(
                id=uuid.uuid4(),
                case_id=case_id,
                task_slug=f"review-{index}",
                status=WorkItemStatus.COMPLETED,
                assigned_users=["alice"],
                created_at=now,
                modified_at=now,
                closed_at=now,
                closed_by_user="alice",
            ),
            user=UserInfo(username="alice", groups=["reviewers"]),
            context={"index": index},
        )
        metadata = signal.generate_signal_metadata()
        producer.send(signal, metadata, data, topic=topic, key=str(case_id), sender="caluma")
        queued.append(str(metadata.id))
    print(json.dumps({"queued": queued}), flush=True)
    time.sleep(300)
    return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
