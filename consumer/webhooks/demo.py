"""The webhooks demo: deliver one signed webhook to a local receiver and print it.

Everything is throwaway: a SQLite store in a temporary directory, a receiver on 127.0.0.1
(allowlisted for the demo only) and one subscription to Caluma work item events.

Two ways to feed it:

* ``flowbus webhooks demo``: the event is handed to the delivery engine directly;
* ``run_webhook_demo(echo, bootstrap=..., registry_url=..., publish=...)``: the event travels
  through Kafka - ``publish(topic)`` sends one Caluma work item event to a fresh topic (the
  producer side lives outside ``flowbus.consumer``), and a consumer worker in this process
  feeds it to the engine, exactly as ``flowbus webhooks serve`` does.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from flowbus.errors import ConfigurationError, WebhookSignatureError

from .delivery import DeliveryEngine, EngineLimits
from .event import WebhookEvent
from .forwarder import WebhookForwarder
from .models import DeliveryStatus, Subscription
from .signing import verify
from .ssrf import SSRFPolicy
from .store import WebhookStore

__all__ = ["DEMO_EVENT_PATTERN", "run_webhook_demo"]

#: What the demo subscription listens to; ``publish`` must send one of these.
DEMO_EVENT_PATTERN = "org.flowbus.caluma.work_item.*"

Echo = Callable[[str], Any]


class _Received:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.arrived = threading.Event()


def _receiver(received: _Received) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            received.requests.append((self.command, self.path, headers, body))
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()
            received.arrived.set()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    return server


def run_webhook_demo(
    echo: Echo = print,
    *,
    bootstrap: str | None = None,
    registry_url: str | None = None,
    publish: Callable[[str], Any] | None = None,
    timeout: float = 60.0,
) -> bool:
    """Run the demo, printing as it goes; ``True`` if the webhook arrived and verified.

    Give ``bootstrap``, ``registry_url`` and ``publish`` together to go through Kafka.
    """
    through_kafka = publish is not None
    if through_kafka and not (bootstrap and registry_url):
        raise ConfigurationError("the Kafka-fed webhooks demo needs bootstrap and registry_url")
    received = _Received()
    server = _receiver(received)
    port = int(server.server_address[1])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with tempfile.TemporaryDirectory(prefix="flowbus-webhooks-demo-") as tmp:
            store = WebhookStore.open(f"sqlite:///{Path(tmp) / 'webhooks.sqlite3'}")
            try:
                return _run(echo, store, received, port, bootstrap, registry_url, publish, timeout)
            finally:
                store.close()
    finally:
        server.shutdown()
        server.server_close()


def _run(
    echo: Echo,
    store: WebhookStore,
    received: _Received,
    port: int,
    bootstrap: str | None,
    registry_url: str | None,
    publish: Callable[[str], Any] | None,
    timeout: float,
) -> bool:
    url = f"http://127.0.0.1:{port}/hooks/caluma"
    subscription = store.add_subscription(
        Subscription.create(event_pattern=DEMO_EVENT_PATTERN, url=url, description="demo")
    )
    echo(f"[webhooks] receiver listening on 127.0.0.1:{port} (allowlisted for this demo)")
    echo(f"[webhooks] subscription {subscription.id}: {DEMO_EVENT_PATTERN} -> POST {url}")
    policy = SSRFPolicy.from_allowlist(["127.0.0.1/32"], ports=[port])
    engine = DeliveryEngine(store, policy=policy, limits=EngineLimits(poll_interval=0.2))
    with engine:
        if publish is None:
            event = _direct_event()
            engine.submit(event)
            echo(f"[webhooks] event {event.id} ({event.type}) handed to the delivery engine")
        else:
            assert bootstrap and registry_url
            _through_kafka(echo, engine, bootstrap, registry_url, publish, received, timeout)
        if not received.arrived.wait(timeout):
            echo("[webhooks] the webhook did not arrive in time")
            return False
        (delivery,) = store.list_deliveries()
        for _ in range(int(timeout * 10)):
            if store.get_delivery(delivery.id).status is not DeliveryStatus.PENDING:
                break
            threading.Event().wait(0.1)
    return _print_received(echo, store, subscription, received, delivery.id)


def _direct_event() -> WebhookEvent:
    return WebhookEvent(
        id=str(uuid.uuid4()),
        type="org.flowbus.caluma.work_item.post_complete.v1",
        source="flowbus/demo/app",
        time=datetime.now(UTC),
        data={
            "work_item": {
                "id": str(uuid.uuid4()),
                "task_slug": "review-permit",
                "status": "completed",
            }
        },
        sourcehost="demo-host",
        sourcelib="0.1.0",
    )


def _through_kafka(
    echo: Echo,
    engine: DeliveryEngine,
    bootstrap: str,
    registry_url: str,
    publish: Callable[[str], Any],
    received: _Received,
    timeout: float,
) -> None:
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic

    from flowbus.avro.serializer import EventDeserializer
    from flowbus.settings import FlowbusSettings

    from ..worker import Worker

    name = f"flowbus-demo-webhooks-{uuid.uuid4().hex[:8]}"
    settings = FlowbusSettings(
        kafka_bootstrap_servers=bootstrap,
        schema_registry_url=registry_url,
        receiver_modules=[],
    )
    topic = f"{settings.topic_prefix}{name}"
    admin = AdminClient(  # kept alive until the topic exists
        {"bootstrap.servers": bootstrap}, logger=logging.getLogger("flowbus.librdkafka")
    )
    admin.create_topics([NewTopic(topic, 1)])[topic].result(30)
    # The worker's default deserializer reads the global settings; this one uses the demo's.
    deserializer = EventDeserializer.from_settings(settings)
    worker = Worker([name], name, settings=settings, deserializer=deserializer, poll_timeout=0.2)
    forwarder = WebhookForwarder(engine).connect()
    thread = threading.Thread(
        target=worker.run, kwargs={"install_signal_handlers": False}, daemon=True
    )
    thread.start()
    try:
        publish(name)
        echo(f"[webhooks] event published to {topic}; a consumer worker (group {name}) feeds it")
        received.arrived.wait(timeout)
    finally:
        worker.stop()
        thread.join(timeout)
        forwarder.disconnect()


def _print_received(
    echo: Echo,
    store: WebhookStore,
    subscription: Subscription,
    received: _Received,
    delivery_id: str,
) -> bool:
    method, path, headers, body = received.requests[0]
    echo(f"[webhooks] the receiver got {method} {path}")
    for name in ("content-type", "webhook-id", "webhook-timestamp", "webhook-signature"):
        echo(f"  {name}: {headers.get(name, '-')}")
    try:
        verify(subscription.secrets[0], headers, body)
        echo("  signature: verified with the subscription's secret")
        verified = True
    except WebhookSignatureError as exc:
        echo(f"  signature: {exc}")
        verified = False
    for line in json.dumps(json.loads(body), indent=2).splitlines():
        echo(f"  {line}")
    final = store.get_delivery(delivery_id)
    echo(f"[webhooks] delivery {final.id}: {final.status.value} after {final.attempts} attempt(s)")
    for attempt in store.list_attempts(delivery_id):
        echo(
            f"  #{attempt.number} {attempt.outcome.value} HTTP {attempt.status_code} "
            f"in {attempt.latency_ms or 0:.0f} ms"
        )
    return verified and final.status is DeliveryStatus.DELIVERED
