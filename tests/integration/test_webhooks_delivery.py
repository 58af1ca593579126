"""The delivery engine against real local HTTP(S) receivers (loopback, allowlisted).

The receivers are stdlib HTTP servers on 127.0.0.1 in threads; the engine posts to them
over real sockets. Events are handed to ``DeliveryEngine.submit`` the way the consumer
worker does once it has decoded a Kafka message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_http_event
from prometheus_client.parser import text_string_to_metric_families

from flowbus.consumer.webhooks import (
    AttemptOutcome,
    DeliveryEngine,
    DeliveryStatus,
    EngineLimits,
    SSRFPolicy,
    Subscription,
    WebhookEvent,
    WebhookHTTPClient,
    WebhookStore,
)
from flowbus.consumer.webhooks import (
    DeliveryRetryPolicy as RetryPolicy,
)
from flowbus.consumer.webhooks.ssrf import check_url
from flowbus.dev.devstack import free_port
from flowbus.errors import BlockedURLError, URLResolutionError

FAST_RETRY = RetryPolicy(max_attempts=5, initial_backoff=0.05, max_backoff=0.2)
GUARD = 20.0  # seconds a test waits for something before failing (never an assertion)


# -- receivers ------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Hang:
    """Keep the request open until ``release`` is set, then answer ``status``."""

    release: threading.Event
    status: int = 200


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    connection: tuple[str, int]


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class Receiver:
    """A real HTTP server on 127.0.0.1 answering requests from a plan (then ``default``)."""

    def __init__(
        self,
        plan: Sequence[Reply | Hang] = (),
        default: Reply | Hang = Reply(200),
        tls: ssl.SSLContext | None = None,
        bind: str = "127.0.0.1",
    ) -> None:
        self.plan = list(plan)
        self.default = default
        self.requests: list[Received] = []
        self.sni_names: list[str | None] = []
        self._lock = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive

            def do_POST(self) -> None:
                receiver._handle(self)

            do_PUT = do_PATCH = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server_class = _IPv6Server if ":" in bind else ThreadingHTTPServer
        self.server = server_class((bind, 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            tls.sni_callback = self._record_sni
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def _record_sni(self, sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        self.sni_names.append(name)

    def url(self, path: str = "/hook", host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("content-length", "0")))
        with self._lock:
            behaviour = self.plan.pop(0) if self.plan else self.default
            self.requests.append(
                Received(
                    handler.command,
                    handler.path,
                    {k.lower(): v for k, v in handler.headers.items()},
                    body,
                    handler.client_address[:2],
                )
            )
            self._lock.notify_all()
        if isinstance(behaviour, Hang):
            behaviour.release.wait(GUARD * 3)
            status, headers = behaviour.status, {}
        else:
            status, headers = behaviour.status, behaviour.headers
        try:
            handler.send_response(status)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.send_header("content-length", "2")
            handler.end_headers()
            handler.wfile.write(b"ok")
        except OSError:
            pass  # the client gave up (timeout): nothing to answer

    def wait_for_requests(self, count: int) -> list[Received]:
        with self._lock:
            if not self._lock.wait_for(lambda: len(self.requests) >= count, GUARD):
                pytest.fail(f"receiver got {len(self.requests)} requests, expected {count}")
            return list(self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []
    releases: list[threading.Event] = []

    def make(*args: Any, **kwargs: Any) -> Receiver:
        receiver = Receiver(*args, **kwargs)
        made.append(receiver)
        for behaviour in [*receiver.plan, receiver.default]:
            if isinstance(behaviour, Hang):
                releases.append(behaviour.release)
        return receiver

    yield make
    for release in releases:
        release.set()
    for receiver in made:
        receiver.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[WebhookStore]:
    with WebhookStore.open(f"sqlite:///{tmp_path / 'webhooks.sqlite3'}") as opened:
        yield opened


def loopback_policy(*receivers: Receiver) -> SSRFPolicy:
    return SSRFPolicy.from_allowlist(["127.0.0.1/32"], ports=[r.port for r in receivers])


def event(
    type_: str = "org.flowbus.caluma.work_item.post_complete.v1", **data: Any
) -> WebhookEvent:
    return WebhookEvent(
        id=str(uuid.uuid4()),
        type=type_,
        source="flowbus/caluma/app",
        time=datetime.now(UTC),
        data=data or {"work_item": {"task_slug": "review-permit"}},
        sourcehost="test-host",
        sourcelib="0.1.0",
    )


def add(store: WebhookStore, url: str, pattern: str = "*", **kwargs: Any) -> Subscription:
    kwargs.setdefault("retry", FAST_RETRY)
    return store.add_subscription(Subscription.create(event_pattern=pattern, url=url, **kwargs))


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + GUARD
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def wait_for_status(store: WebhookStore, delivery_id: str, *statuses: DeliveryStatus) -> None:
    wait_until(
        lambda: store.get_delivery(delivery_id).status in statuses,
        f"delivery {delivery_id} to become {'/'.join(s.value for s in statuses)}",
    )


def settle(store: WebhookStore) -> None:
    """Wait until no delivery is pending any more."""
    wait_until(
        lambda: store.count_deliveries()[DeliveryStatus.PENDING] == 0, "all deliveries to settle"
    )


# -- an independent implementation of Standard Webhooks verification -----------------


def standard_webhooks_verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Written from the spec, sharing no code with flowbus's signing module."""
    assert secret.startswith("whsec_")
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id, timestamp = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > 300:
        return False
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    for entry in headers["webhook-signature"].split():
        version, _, signature = entry.partition(",")
        if version == "v1" and hmac.compare_digest(signature.encode(), expected):
            return True
    return False


# -- matching ---------------------------------------------------------------------------


def test_pattern_and_property_filtering(
    store: WebhookStore, receivers: Callable[..., Receiver]
) -> None:
    reviews, completions, items, disabled = (receivers() for _ in range(4))
    sub_reviews = add(
        store,
        reviews.url(),
        "org.flowbus.caluma.work_item.*",
        filters={"work_item.task_slug": "review-*"},
    )
    sub_completions = add(store, completions.url(), "*.post_complete.v1")
    sub_items = add(
        store,
        items.url(),
        "org.flowbus.workflow_service.*",
        filters={"resource.type": "itemsvc.*", "$source": "flowbus/caluma/*"},
    )
    add(store, disabled.url(), "*", enabled=False)
    events = {
        "review-completed": event(work_item={"task_slug": "review-permit"}),
        "submit-completed": event(work_item={"task_slug": "submit-form"}),
        "review-created": event(
            "org.flowbus.caluma.work_item.post_create.v1", work_item={"task_slug": "review-x"}
        ),
        "item-resource": event(
            "org.flowbus.workflow_service.resource.created.v1",
            resource={"type": "itemsvc.document", "id": "r1"},
        ),
        "other-resource": event(
            "org.flowbus.workflow_service.resource.created.v1",
            resource={"type": "billing.invoice", "id": "r2"},
        ),
    }
    engine = DeliveryEngine(store, policy=loopback_policy(reviews, completions, items, disabled))
    with engine:
        created = {name: engine.submit(e) for name, e in events.items()}
        settle(store)

    expected = {
        sub_reviews.id: {"review-completed", "review-created"},
        sub_completions.id: {"review-completed", "submit-completed"},
        sub_items.id: {"item-resource"},
    }
    assert {
        name: {d.subscription_id for d in deliveries} for name, deliveries in created.items()
    } == {name: {sid for sid, names in expected.items() if name in names} for name in events}

    def received_names(receiver: Receiver) -> set[str]:
        ids = {json.loads(r.body)["id"] for r in receiver.requests}
        return {name for name, e in events.items() if e.id in ids}

    assert received_names(reviews) == expected[sub_reviews.id]
    assert received_names(completions) == expected[sub_completions.id]
    assert received_names(items) == expected[sub_items.id]
    assert disabled.requests == []


def test_engine_from_settings_uses_the_configured_store_and_allowlist(
    receivers: Callable[..., Receiver], tmp_path: Path
) -> None:
    from flowbus.settings import FlowbusSettings

    receiver = receivers()
    url = f"sqlite:///{tmp_path / 'configured.sqlite3'}"
    settings = FlowbusSettings(
        webhooks_database_url=url,
        webhooks_ssrf_allowlist=["127.0.0.1/32"],
        webhooks_allowed_ports=[receiver.port],
        webhooks_max_per_subscription=1,
    )
    with WebhookStore.open(url) as admin:
        add(admin, receiver.url())
    with DeliveryEngine.from_settings(settings=settings) as engine:
        (delivery,) = engine.submit(event())
        wait_until(lambda: len(receiver.requests) == 1, "the delivery")
    with WebhookStore.open(url) as admin:
        wait_for_status(admin, delivery.id, DeliveryStatus.DELIVERED)


def test_forwarder_turns_re_sent_signals_into_webhooks(
    store: WebhookStore, receivers: Callable[..., Receiver]
) -> None:
    """What the consumer worker does with each message: re-send it to local receivers."""
    from flowbus.catalog.caluma import WORK_ITEM_POST_CANCEL, WORK_ITEM_POST_COMPLETE
    from flowbus.catalog.models import UserInfo, WorkItemSnapshot, WorkItemStatus
    from flowbus.consumer.webhooks import WebhookForwarder
    from flowbus.testing import isolated_receivers

    receiver = receivers()
    add(
        store,
        receiver.url(),
        "org.flowbus.caluma.work_item.*",
        filters={"work_item.task_slug": "review-*", "$sender": "caluma.*"},
    )
    now = datetime.now(UTC)
    item = WorkItemSnapshot(
        id=uuid.uuid4(), case_id=uuid.uuid4(), task_slug="review-permit",
        status=WorkItemStatus.COMPLETED, created_at=now, modified_at=now,
    )  # fmt: skip
    metadata = WORK_ITEM_POST_COMPLETE.generate_signal_metadata()
    with isolated_receivers(), DeliveryEngine(store, policy=loopback_policy(receiver)) as engine:
        WebhookForwarder(engine).connect([WORK_ITEM_POST_COMPLETE, WORK_ITEM_POST_CANCEL])
        WORK_ITEM_POST_COMPLETE.send_event_with_custom_metadata(
            metadata,
            send_robust=False,
            sender="caluma.WorkItem",
            work_item=item,
            user=UserInfo(username="alice"),
            context={"source": "test"},
        )
        (delivery,) = store.list_deliveries()
        wait_for_status(store, delivery.id, DeliveryStatus.DELIVERED)
    body = json.loads(receiver.requests[0].body)
    assert body["id"] == str(metadata.id)
    assert body["type"] == "org.flowbus.caluma.work_item.post_complete.v1"
    assert body["sender"] == "caluma.WorkItem"
    assert body["partitionkey"] == str(item.case_id)
    assert body["data"]["work_item"]["id"] == str(item.id)
    assert body["data"]["work_item"]["status"] == "completed"
    assert body["data"]["user"]["username"] == "alice"


def test_resubmitting_an_event_does_not_deliver_it_twice(
    store: WebhookStore, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers()
    add(store, receiver.url())
    same = event()
    with DeliveryEngine(store, policy=loopback_policy(receiver)) as engine:
        first = engine.submit(same)
        again = engine.submit(same)  # e.g. the consumer re-read the message after a crash
        settle(store)
    assert len(first) == 1 and again == []
    assert len(receiver.requests) == 1


# -- what is sent -------------------------------------------------------------------------


def test_signed_cloudevent_verifies_with_an_independent_implementation(
    store: WebhookStore, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers()
    sub = add(store, receiver.url("/in?token=abc"), headers={"X-Team": "permits"})
    sent = event(work_item={"task_slug": "review-permit", "note": "Zoë ✓"})
    with DeliveryEngine(store, policy=loopback_policy(receiver)) as engine:
        (delivery,) = engine.submit(sent)
        wait_for_status(store, delivery.id, DeliveryStatus.DELIVERED)

    (request,) = receiver.requests
    assert request.method == "POST"
    assert request.path == "/in?token=abc"
    assert request.headers["content-type"] == "application/cloudevents+json"
    assert request.headers["host"] == f"127.0.0.1:{receiver.port}"
    assert request.headers["x-team"] == "permits"
    assert request.headers["user-agent"].startswith("flowbus-webhooks/")
    assert request.headers["webhook-id"] == delivery.id
    assert standard_webhooks_verify(sub.secrets[0], request.headers, request.body)
    assert not standard_webhooks_verify(sub.secrets[0], request.headers, request.body + b" ")
    parsed = from_http_event(HTTPMessage(headers=request.headers, body=request.body))
    assert parsed.get_id() == sent.id
    assert parsed.get_type() == sent.type
    assert parsed.get_data() == {"work_item": {"task_slug": "review-permit", "note": "Zoë ✓"}}


def test_during_rotation_both_secrets_verify(
    store: WebhookStore, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers()
    sub = add(store, receiver.url())
    new_secret = "whsec_" + base64.b64encode(b"n" * 32).decode()
    store.set_secrets(sub.id, [new_secret, sub.secrets[0]])
    with DeliveryEngine(store, policy=loopback_policy(receiver)) as engine:
        (delivery,) = engine.submit(event())
        wait_for_status(store, delivery.id, DeliveryStatus.DELIVERED)
    (request,) = receiver.requests
    assert len(request.headers["webhook-signature"].split()) == 2
    assert standard_webhooks_verify(new_secret, request.headers, request.body)
    assert standard_webhooks_verify(sub.secrets[0], request.headers, request.body)


# -- retries ---------------------------------------------------------------------------


def test_retries_after_server_errors_until_delivered(
    store: WebhookStore, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers(plan=[Reply(500), Reply(503), Reply(200)])
    add(store, receiver.url())
    with DeliveryEngine(store, policy=loopback_policy(receiver)) as engine:
        (delivery,) = engine.submit(event())
        wait_for_status(store, delivery.id, DeliveryStatus.DELIVERED)

    log = store.list_attempts(delivery.id)
    assert [(a.number, a.outcome, a.status_code) for a in log] == [
        (1, AttemptOutcome.HTTP_ERROR, 500),
        (2, AttemptOutcome.HTTP_ERROR, 503),
        (3, AttemptOutcome.DELIVERED, 200),
    ]
    assert all(a.latency_ms is not None and a.latency_ms >= 0 for a in log)
    assert [a.error for a in log] == ["HTTP 500", "HTTP 503", None]
    # every attempt is the same message: same id, same body
    assert {r.headers["webhook-id"] for r in receiver.requests} == {delivery.id}
    assert len({r.body for r in receiver.requests}) == 1
    assert store.get_delivery(delivery.id).attempts == 3


def test_retries_after_a_timeout(store: WebhookStore, receivers: Callable[..., Receiver]) -> None:
    receiver = receivers(plan=[Hang(threading.Event())], default=Reply(204))
    add(store, receiver.url(), timeout=0.5)
    with DeliveryEngine(store, policy=loopback_policy(receiver)) as engine:
        (delivery,) = engine.submit(event())
        wait_for_status(store, delivery.id, DeliveryStatus.DELIVERED)
    log = store.list_attempts(delivery.id)
    assert [(a.outcome, a.status_code) for a in log] == [
        (AttemptOutcome.TIMEOUT, None),
        (AttemptOutcome.DELIVERED, 204),
    ]
    assert log[0].error is not None and "timed out" in log[0].error


def test_connection_refused_is_retried(
    store: WebhookStore, receivers: Callable[..., Receiver]
) -> None:
    gone = receivers()
    gone.close()  # nothing listens on its port any more
    sub = add(store, gone.url(), retry=RetryPolicy(max_attempts=2, initial_backoff=0.05))
    with DeliveryEngine(store, policy=loopback_policy(gone)) as engine:
        (delivery,) = engine.submit(event())
        wait_for_status(store, delivery.id, DeliveryStatus.FAILED)
    log = store.list_attempts(delivery.id)
    assert [a.outcome for a in log] == [AttemptOutcome.NETWORK_ERROR] * sub.retry.max_attempts


def test_exhausted_deliveries_fail_and_can_be_redriven(
    store: WebhookStore, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers(plan=[Reply(500), Reply(502)], default=Reply(200))
    add(store, receiver.url(), retry=RetryPolicy(max_attempts=2, initial_backoff=0.05))
    with DeliveryEngine(store, policy=loopback_policy(receiver)) as engine:
        (delivery,) = engine.submit(event())
        wait_for_status(store, delivery.id, DeliveryStatus.FAILED)
        failed = store.get_delivery(delivery.id)
        assert (failed.attempts, failed.last_status_code) == (2, 502)
        assert len(receiver.requests) == 2

        engine.redrive(delivery.id)
        wait_for_status(store, delivery.id, DeliveryStatus.DELIVERED)
    assert [a.status_code for a in store.list_attempts(delivery.id)] == [500, 502, 200]


def test_client_errors_and_redirects_are_not_retried_or_followed(
    store: WebhookStore, receivers: Callable[..., Receiver]
) -> None:
    elsewhere = receivers()
    rejecting = receivers(default=Reply(400))
    redirecting = receivers(default=Reply(307, {"location": elsewhere.url()}))
    add(store, rejecting.url())
    add(store, redirecting.url())
    policy = loopback_policy(elsewhere, rejecting, redirecting)
    with DeliveryEngine(store, policy=policy) as engine:
        deliveries = engine.submit(event())
        settle(store)
    outcomes = sorted(
        (store.get_delivery(d.id).status, store.get_delivery(d.id).last_error) for d in deliveries
    )
    assert outcomes == [
        (DeliveryStatus.FAILED, "HTTP 307 (not retried)"),
        (DeliveryStatus.FAILED, "HTTP 400 (not retried)"),
    ]
    assert len(rejecting.requests) == len(redirecting.requests) == 1
    assert elsewhere.requests == []


def first_retry_wait(store: WebhookStore, receiver: Receiver, retry: RetryPolicy) -> float:
    """Seconds between the first attempt's record and the retry it scheduled."""
    add(store, receiver.url(), retry=retry)
    with DeliveryEngine(store, policy=loopback_policy(receiver)) as engine:
        (delivery,) = engine.submit(event())
        wait_until(lambda: store.get_delivery(delivery.id).attempts == 1, "the first attempt")
    pending = store.get_delivery(delivery.id)
    assert pending.status is DeliveryStatus.PENDING
    assert pending.next_attempt_at is not None
    return (pending.next_attempt_at - pending.updated_at).total_seconds()


def test_retry_after_is_honoured_up_to_the_maximum_backoff(
    store: WebhookStore, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers(plan=[Reply(429, {"retry-after": "3600"})])
    wait = first_retry_wait(store, receiver, RetryPolicy(initial_backoff=0.05, max_backoff=120.0))
    assert 100 <= wait <= 121  # the receiver's hour, capped at max_backoff (120 s)


def test_a_shorter_retry_after_never_shortens_the_backoff(
    store: WebhookStore, receivers: Callable[..., Receiver]
) -> None:
    """``Retry-After`` is a minimum wait: asking for 1 s after a 503 leaves the first
    retry's backoff (60 s, +-20 % jitter) in place."""
    receiver = receivers(plan=[Reply(503, {"retry-after": "1"})])
    wait = first_retry_wait(store, receiver, RetryPolicy(initial_backoff=60.0, max_backoff=600.0))
    assert 47 <= wait <= 73


# -- restarts --------------------------------------------------------------------------


def test_pending_retries_survive_a_worker_restart(
    store: WebhookStore, receivers: Callable[..., Receiver], tmp_path: Path
) -> None:
    failing = Reply(500)
    receiver = receivers(default=failing)
    add(store, receiver.url(), retry=RetryPolicy(max_attempts=10, initial_backoff=0.2))
    first = DeliveryEngine(store, policy=loopback_policy(receiver))
    with first:
        (delivery,) = first.submit(event())
        wait_until(lambda: store.get_delivery(delivery.id).attempts >= 1, "a first attempt")
    # the first worker is gone; its retry is scheduled in the database
    stopped = store.get_delivery(delivery.id)
    assert stopped.status is DeliveryStatus.PENDING
    assert stopped.next_attempt_at is not None
    attempts_before = stopped.attempts
    assert len(receiver.requests) == attempts_before

    receiver.default = Reply(200)
    with WebhookStore.open(store.url) as reopened:
        second = DeliveryEngine(reopened, policy=loopback_policy(receiver))
        with second:  # nothing is submitted again: the retry comes from the store
            wait_for_status(reopened, delivery.id, DeliveryStatus.DELIVERED)
        log = reopened.list_attempts(delivery.id)
    assert [a.outcome for a in log] == [AttemptOutcome.HTTP_ERROR] * attempts_before + [
        AttemptOutcome.DELIVERED
    ]
    assert {r.headers["webhook-id"] for r in receiver.requests} == {delivery.id}


def test_a_long_retry_schedule_is_kept_across_restarts(
    store: WebhookStore, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers(plan=[Reply(503)])
    hour = RetryPolicy(max_attempts=3, initial_backoff=3600.0, max_backoff=3600.0, jitter=0.0)
    add(store, receiver.url(), retry=hour)
    with DeliveryEngine(store, policy=loopback_policy(receiver)) as first:
        (delivery,) = first.submit(event())
        wait_until(lambda: store.get_delivery(delivery.id).attempts == 1, "the first attempt")
    scheduled = store.get_delivery(delivery.id).next_attempt_at
    assert scheduled is not None

    # A restarted worker an hour later (its clock says so) finds the retry due and sends it.
    later = DeliveryEngine(
        store,
        policy=loopback_policy(receiver),
        clock=lambda: datetime.now(UTC) + timedelta(hours=1, seconds=1),
    )
    with later:
        wait_for_status(store, delivery.id, DeliveryStatus.DELIVERED)
    assert len(receiver.requests) == 2


# -- isolation between subscribers -----------------------------------------------------


def test_a_dead_subscriber_does_not_delay_a_live_one(
    store: WebhookStore, receivers: Callable[..., Receiver]
) -> None:
    release = threading.Event()
    dead = receivers(default=Hang(release))
    live = receivers()
    dead_sub = add(store, dead.url(), timeout=60.0)
    live_sub = add(store, live.url())
    limits = EngineLimits(max_concurrency=4, max_per_subscription=2)
    with DeliveryEngine(store, policy=loopback_policy(dead, live), limits=limits) as engine:
        for _ in range(6):
            engine.submit(event())
        wait_until(
            lambda: store.count_deliveries(live_sub.id)[DeliveryStatus.DELIVERED] == 6,
            "all live deliveries",
        )
        # every live delivery is done while the dead subscriber still holds its first two
        # requests open and the rest of its deliveries wait their turn
        assert len(dead.requests) == 2
        dead_rows = store.list_deliveries(subscription_id=dead_sub.id)
        assert [d.status for d in dead_rows] == [DeliveryStatus.PENDING] * 6
        assert all(d.attempts == 0 for d in dead_rows)
        assert len(live.requests) == 6
        release.set()
        settle(store)
    assert store.count_deliveries(dead_sub.id)[DeliveryStatus.DELIVERED] == 6


# -- SSRF at delivery time ---------------------------------------------------------------


def test_blocked_targets_are_recorded_with_the_reason(
    store: WebhookStore, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers()
    private = add(store, "http://10.0.0.7/hook")
    metadata = add(store, "http://metadata.internal.test/latest")
    not_allowlisted = add(store, receiver.url())
    dns = {"metadata.internal.test": ["169.254.169.254"]}

    def resolver(host: str, port: int) -> list[str]:
        if host not in dns:
            raise URLResolutionError(host, "unknown in this test")
        return dns[host]

    # the engine's policy does not allowlist loopback here
    with DeliveryEngine(store, policy=SSRFPolicy(), resolver=resolver) as engine:
        engine.submit(event())
        settle(store)
    reasons = {}
    for sub in (private, metadata, not_allowlisted):
        (delivery,) = store.list_deliveries(subscription_id=sub.id)
        assert delivery.status is DeliveryStatus.BLOCKED
        (entry,) = store.list_attempts(delivery.id)
        assert entry.outcome is AttemptOutcome.BLOCKED
        reasons[sub.id] = entry.error or ""
    assert "private (RFC 1918)" in reasons[private.id]
    assert "link-local" in reasons[metadata.id]
    assert f"port {receiver.port} is not allowed" in reasons[not_allowlisted.id]
    assert receiver.requests == []


def test_each_attempt_resolves_once_and_connects_to_the_checked_address(
    store: WebhookStore, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers()
    add(store, receiver.url(host="hooks.rebind.test"))
    answers = [["127.0.0.1"], ["10.0.0.1"]]  # the second answer "rebinds" to a private address
    calls: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return answers[min(len(calls), len(answers)) - 1]

    policy = loopback_policy(receiver)
    with DeliveryEngine(store, policy=policy, resolver=resolver) as engine:
        (first,) = engine.submit(event())
        wait_for_status(store, first.id, DeliveryStatus.DELIVERED)
        assert calls == ["hooks.rebind.test"]  # one lookup; the system resolver never ran
        (second,) = engine.submit(event())
        wait_for_status(store, second.id, DeliveryStatus.BLOCKED)
    assert "resolves to 10.0.0.1" in (store.get_delivery(second.id).last_error or "")
    (request,) = receiver.requests  # only the first reached the receiver
    assert request.headers["host"] == f"hooks.rebind.test:{receiver.port}"


def test_the_client_refuses_connections_without_a_checked_address() -> None:
    with WebhookHTTPClient() as client:
        transport = client._transport
        with pytest.raises(BlockedURLError, match="without a checked address"):
            transport.handle_request(httpx.Request("POST", "http://127.0.0.1:9/", content=b""))


def test_the_client_connects_to_the_pinned_address_not_the_url_host(
    receivers: Callable[..., Receiver],
) -> None:
    receiver = receivers()
    # the name does not resolve anywhere; only the pin says where it is
    target = check_url(
        receiver.url(host="pinned.invalid"),
        loopback_policy(receiver),
        lambda host, port: ["127.0.0.1"],
    )
    with WebhookHTTPClient() as client:
        result = client.send(target, method="POST", headers={}, body=b"{}", timeout=5)
    assert result.status_code == 200
    assert receiver.requests[0].headers["host"] == f"pinned.invalid:{receiver.port}"


def test_ipv6_literal_targets_are_pinned_too(receivers: Callable[..., Receiver]) -> None:
    try:
        receiver = receivers(bind="::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    policy = SSRFPolicy.from_allowlist(["::1/128"], ports=[receiver.port])
    target = check_url(f"http://[::1]:{receiver.port}/v6", policy)
    with WebhookHTTPClient() as client:
        result = client.send(target, method="POST", headers={}, body=b"{}", timeout=5)
    assert result.status_code == 200
    assert receiver.requests[0].headers["host"] == f"[::1]:{receiver.port}"


def test_connections_are_kept_alive_and_reused(receivers: Callable[..., Receiver]) -> None:
    receiver = receivers()
    target = check_url(receiver.url(), loopback_policy(receiver))
    with WebhookHTTPClient() as client:
        for _ in range(3):
            client.send(target, method="POST", headers={}, body=b"{}", timeout=5)
    assert len({r.connection for r in receiver.requests}) == 1


# -- TLS ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TLSFiles:
    ca: Path
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """A test CA and a server certificate for ``hooks.tls.test`` signed by it."""
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca_key_usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "flowbus test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(ca_key_usage, critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hooks.tls.test")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("hooks.tls.test")]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    files = TLSFiles(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


def tls_receiver(make: Callable[..., Receiver], files: TLSFiles) -> Receiver:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.cert, files.key)
    return make(tls=context)


def test_https_delivery_uses_the_host_name_for_sni_host_and_verification(
    store: WebhookStore, receivers: Callable[..., Receiver], tls_files: TLSFiles
) -> None:
    receiver = tls_receiver(receivers, tls_files)
    good = add(store, receiver.url(host="hooks.tls.test", scheme="https"))
    wrong_name = add(
        store,
        receiver.url(host="other.tls.test", scheme="https"),
        retry=RetryPolicy(max_attempts=1),
    )
    resolver = {"hooks.tls.test": ["127.0.0.1"], "other.tls.test": ["127.0.0.1"]}
    client = WebhookHTTPClient(extra_ca_bundle=tls_files.ca)
    engine = DeliveryEngine(
        store,
        policy=loopback_policy(receiver),
        client=client,
        resolver=lambda host, port: resolver[host],
    )
    with engine, client:
        engine.submit(event())
        settle(store)
    (delivered,) = store.list_deliveries(subscription_id=good.id)
    assert delivered.status is DeliveryStatus.DELIVERED
    (failed,) = store.list_deliveries(subscription_id=wrong_name.id)
    assert failed.status is DeliveryStatus.FAILED
    assert "CERTIFICATE_VERIFY_FAILED" in (failed.last_error or "")
    (request,) = receiver.requests
    assert request.headers["host"] == f"hooks.tls.test:{receiver.port}"
    assert "hooks.tls.test" in receiver.sni_names
    assert "other.tls.test" in receiver.sni_names  # it was asked, and refused by verification


def test_an_untrusted_certificate_is_refused(
    store: WebhookStore, receivers: Callable[..., Receiver], tls_files: TLSFiles
) -> None:
    receiver = tls_receiver(receivers, tls_files)
    add(
        store,
        receiver.url(host="hooks.tls.test", scheme="https"),
        retry=RetryPolicy(max_attempts=1),
    )
    engine = DeliveryEngine(  # the default client trusts only the public CAs
        store,
        policy=loopback_policy(receiver),
        resolver=lambda host, port: ["127.0.0.1"],
    )
    with engine:
        (delivery,) = engine.submit(event())
        wait_for_status(store, delivery.id, DeliveryStatus.FAILED)
    (entry,) = store.list_attempts(delivery.id)
    assert entry.outcome is AttemptOutcome.NETWORK_ERROR
    assert "CERTIFICATE_VERIFY_FAILED" in (entry.error or "")
    assert receiver.requests == []


# -- fed from the real broker ------------------------------------------------------------


@pytest.mark.usefixtures("flowbus_env")
def test_events_consumed_from_the_broker_reach_matching_subscribers(
    store: WebhookStore,
    receivers: Callable[..., Receiver],
    unique_topic: Callable[..., str],
    unique_group: str,
) -> None:
    """Producer -> Kafka -> consumer worker -> forwarder -> engine -> HTTP receivers."""
    from flowbus.catalog.caluma import WORK_ITEM_POST_COMPLETE
    from flowbus.catalog.models import UserInfo, WorkItemSnapshot, WorkItemStatus
    from flowbus.consumer.webhooks import WebhookForwarder
    from flowbus.consumer.worker import Worker
    from flowbus.producer.event_producer import EventProducer
    from flowbus.testing import isolated_receivers

    topic = unique_topic(partitions=2)
    reviews = receivers(plan=[Reply(500)])  # the first attempt fails: retried from the store
    everything = receivers()
    review_sub = add(
        store,
        reviews.url(),
        "org.flowbus.caluma.work_item.*",
        filters={"work_item.task_slug": "review-*"},
    )
    all_sub = add(store, everything.url(), "*.post_complete.v1")

    def work_item_data(task: str) -> dict[str, Any]:
        now = datetime.now(UTC)
        item = WorkItemSnapshot(
            id=uuid.uuid4(), case_id=uuid.uuid4(), task_slug=task,
            status=WorkItemStatus.COMPLETED, created_at=now, modified_at=now,
        )  # fmt: skip
        return WORK_ITEM_POST_COMPLETE.validate_data(
            work_item=item, user=UserInfo(username="alice"), context={}
        )

    sent = {}
    with EventProducer(synchronous=True, install_exit_handlers=False) as producer:
        for task in ("review-permit", "sign-contract"):
            data = work_item_data(task)
            metadata = WORK_ITEM_POST_COMPLETE.generate_signal_metadata()
            producer.send(
                WORK_ITEM_POST_COMPLETE,
                metadata,
                data,
                topic=topic,
                key=WORK_ITEM_POST_COMPLETE.resolve_key(data),
                sender="caluma.WorkItem",
            )
            sent[task] = str(metadata.id)

    policy = loopback_policy(reviews, everything)
    with isolated_receivers(), DeliveryEngine(store, policy=policy) as engine:
        WebhookForwarder(engine).connect([WORK_ITEM_POST_COMPLETE])
        worker = Worker([topic], unique_group, poll_timeout=0.2)
        thread = threading.Thread(
            target=worker.run, kwargs={"install_signal_handlers": False}, daemon=True
        )
        thread.start()
        try:
            wait_until(
                lambda: store.count_deliveries()[DeliveryStatus.DELIVERED] == 3,
                "three deliveries from two consumed events",
            )
        finally:
            worker.stop()
            thread.join(60)
    assert not thread.is_alive()

    def received_ids(receiver: Receiver) -> list[str]:
        return [json.loads(r.body)["id"] for r in receiver.requests]

    assert received_ids(reviews) == [sent["review-permit"]] * 2  # a 500, then delivered
    assert sorted(received_ids(everything)) == sorted(sent.values())
    for request in [*reviews.requests, *everything.requests]:
        sub = review_sub if request in reviews.requests else all_sub
        assert standard_webhooks_verify(sub.secrets[0], request.headers, request.body)


def publish_work_item(kafka_stack: Any, topic: str) -> str:
    """Produce one ``work_item.post_complete`` event to ``topic``; returns its id."""
    from flowbus.catalog.caluma import WORK_ITEM_POST_COMPLETE
    from flowbus.catalog.models import UserInfo, WorkItemSnapshot, WorkItemStatus
    from flowbus.producer.event_producer import EventProducer
    from flowbus.settings import FlowbusSettings

    settings = FlowbusSettings(
        kafka_bootstrap_servers=kafka_stack.bootstrap_servers,
        schema_registry_url=kafka_stack.schema_registry_url,
        schema_auto_register=True,
    )
    now = datetime.now(UTC)
    data = WORK_ITEM_POST_COMPLETE.validate_data(
        work_item=WorkItemSnapshot(
            id=uuid.uuid4(), case_id=uuid.uuid4(), task_slug="review",
            status=WorkItemStatus.COMPLETED, created_at=now, modified_at=now,
        ),
        user=UserInfo(username="alice"),
        context={},
    )  # fmt: skip
    metadata = WORK_ITEM_POST_COMPLETE.generate_signal_metadata()
    with EventProducer(
        settings=settings, synchronous=True, install_exit_handlers=False
    ) as producer:
        producer.send(WORK_ITEM_POST_COMPLETE, metadata, data, topic=topic)
    return str(metadata.id)


def subscribed_database(tmp_path: Path, receiver: Receiver) -> str:
    """A new SQLite webhook database subscribing ``receiver`` to every work-item event."""
    database = f"sqlite:///{tmp_path / 'serve.sqlite3'}"
    with WebhookStore.open(database) as admin:
        add(admin, receiver.url(), "org.flowbus.caluma.work_item.*")
    return database


def start_serve(
    kafka_stack: Any, database: str, receiver: Receiver, topic: str, group: str, *args: str
) -> subprocess.Popen[bytes]:
    """``flowbus webhooks serve`` in its own process, allowed to reach ``receiver`` only."""
    env = {
        **kafka_stack.env,
        "FLOWBUS_SCHEMA_AUTO_REGISTER": "true",
        "FLOWBUS_WEBHOOKS_DATABASE_URL": database,
        "FLOWBUS_WEBHOOKS_SSRF_ALLOWLIST": '["127.0.0.1/32"]',
        "FLOWBUS_WEBHOOKS_ALLOWED_PORTS": f"[{receiver.port}]",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "flowbus", "webhooks", "serve", "--topic", topic,
         "--group", group, *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def stop_serve(process: subprocess.Popen[bytes]) -> bytes:
    """SIGTERM, then its stderr once it exited."""
    process.send_signal(signal.SIGTERM)
    return process.communicate(timeout=60)[1]


def test_webhooks_serve_delivers_consumed_events_and_stops_cleanly(
    kafka_stack: Any,
    receivers: Callable[..., Receiver],
    unique_topic: Callable[..., str],
    unique_group: str,
    tmp_path: Path,
) -> None:
    """The real command: ``flowbus webhooks serve`` in its own process, stopped by SIGTERM."""
    topic = unique_topic()
    receiver = receivers()
    database = subscribed_database(tmp_path, receiver)
    process = start_serve(kafka_stack, database, receiver, topic, unique_group)
    try:
        event_id = publish_work_item(kafka_stack, topic)
        receiver.wait_for_requests(1)
    finally:
        stderr = stop_serve(process)
    assert process.returncode == 0, stderr.decode()
    assert json.loads(receiver.requests[0].body)["id"] == event_id
    assert b"stopped: 1 events handled" in stderr
    with WebhookStore.open(database) as admin:
        (delivery,) = admin.list_deliveries()
        assert delivery.status is DeliveryStatus.DELIVERED
    assert os.environ.get("FLOWBUS_WEBHOOKS_DATABASE_URL") != database  # the test's env only


def test_webhooks_serve_says_what_it_waits_for_and_a_second_signal_abandons_it(
    kafka_stack: Any,
    receivers: Callable[..., Receiver],
    unique_topic: Callable[..., str],
    unique_group: str,
    tmp_path: Path,
) -> None:
    """An attempt hangs: `deliveries` shows it in flight; SIGTERM makes serve name it and
    its deadline; a second SIGTERM exits at once, the delivery left to its lease."""
    from click.testing import CliRunner

    from flowbus.cli import main

    topic = unique_topic()
    receiver = receivers(default=Hang(threading.Event()))
    database = f"sqlite:///{tmp_path / 'serve.sqlite3'}"
    with WebhookStore.open(database) as admin:
        sub = add(admin, receiver.url(), "org.flowbus.caluma.work_item.*", timeout=30.0)
    process = start_serve(kafka_stack, database, receiver, topic, unique_group)
    lines: list[str] = []
    assert process.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(r.decode() for r in process.stderr))
    reader.start()
    try:
        event_id = publish_work_item(kafka_stack, topic)
        receiver.wait_for_requests(1)  # the attempt now hangs
        shown = CliRunner().invoke(main, ["webhooks", "--database", database, "deliveries"])
        (listed,) = shown.output.splitlines()
        assert " in flight  attempts 0 " in listed and event_id in listed
        process.send_signal(signal.SIGTERM)
        wait_until(lambda: any("waiting for 1 webhook attempt" in x for x in lines), "the notice")
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(10)
    stderr = "".join(lines)
    assert process.returncode == 0, stderr
    with WebhookStore.open(database, create=False) as admin:
        (delivery,) = admin.list_deliveries()
        attempts = admin.list_attempts(delivery.id)
    assert f"  delivery {delivery.id} (event {event_id}, subscription {sub.id}) since " in stderr
    assert "SIGTERM/SIGINT again abandons them" in stderr
    assert "abandoned 1 webhook attempt(s): each delivery stays pending and its lease" in stderr
    assert delivery.status is DeliveryStatus.PENDING and attempts == []
    assert delivery.claimed_until is not None and delivery.claimed_until > datetime.now(UTC)
    assert delivery.next_attempt_at == delivery.claimed_until  # due again when the lease ends


def scrape(client: httpx.Client, url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get(url + "/metrics")
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_webhooks_serve_metrics_and_health(
    kafka_stack: Any,
    receivers: Callable[..., Receiver],
    unique_topic: Callable[..., str],
    unique_group: str,
    tmp_path: Path,
) -> None:
    """``serve --metrics-port``: the worker's and the engine's metrics on one /metrics."""
    from flowbus.catalog.caluma import WORK_ITEM_POST_COMPLETE

    topic = unique_topic()
    receiver = receivers(plan=[Reply(503)])  # one retry, then delivered
    database = subscribed_database(tmp_path, receiver)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_serve(
        kafka_stack, database, receiver, topic, unique_group,
        "--metrics-port", str(port), "--health-timeout", "30",
    )  # fmt: skip
    delivered = ("flowbus_webhooks_attempts_total", (("outcome", "delivered"),))
    try:
        with httpx.Client(trust_env=False, timeout=10) as client:

            def answers() -> bool:
                if process.poll() is not None:
                    pytest.fail(f"serve exited with {process.returncode}")
                try:
                    return client.get(url + "/healthz").status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(answers, "/healthz to answer 200")
            before = scrape(client, url)
            publish_work_item(kafka_stack, topic)
            receiver.wait_for_requests(2)
            wait_until(lambda: scrape(client, url)[delivered] == 1, "the delivery to be counted")
            after = scrape(client, url)
            health = client.get(url + "/healthz")
    finally:
        stderr = stop_serve(process)
    assert process.returncode == 0, stderr.decode()

    assert before[delivered] == 0
    assert before[("flowbus_webhooks_deliveries_pending", ())] == 0
    event_type = (("event_type", WORK_ITEM_POST_COMPLETE.event_type),)
    assert after[("flowbus_consumer_events_consumed_total", event_type)] == 1
    assert after[("flowbus_consumer_events_resent_total", event_type)] == 1
    assert after[("flowbus_webhooks_deliveries_queued_total", ())] == 1
    assert after[("flowbus_webhooks_attempts_total", (("outcome", "http_error"),))] == 1
    assert after[("flowbus_webhooks_retries_scheduled_total", ())] == 1
    assert after[("flowbus_webhooks_deliveries_finished_total", (("status", "delivered"),))] == 1
    assert after[("flowbus_webhooks_deliveries_finished_total", (("status", "failed"),))] == 0
    assert after[("flowbus_webhooks_attempt_duration_seconds_count", ())] == 2
    assert after[("flowbus_webhooks_deliveries_pending", ())] == 0
    assert after[("flowbus_webhooks_attempts_in_flight", ())] == 0
    assert 0 <= after[("flowbus_consumer_last_poll_age_seconds", ())] < 30
    assert (health.status_code, health.text) == (200, "ok\n")


# -- the demo ------------------------------------------------------------------------------


def test_webhooks_demo_command_delivers_and_prints_the_webhook() -> None:
    from click.testing import CliRunner

    from flowbus.cli import main

    result = CliRunner().invoke(main, ["webhooks", "demo"])
    assert result.exit_code == 0, result.output
    assert "signature: verified with the subscription's secret" in result.output
    assert '"type": "org.flowbus.caluma.work_item.post_complete.v1"' in result.output
    assert "delivered after 1 attempt(s)" in result.output


def test_webhooks_demo_through_kafka(kafka_stack: Any) -> None:
    from flowbus.consumer.webhooks.demo import run_webhook_demo

    published: list[str] = []

    def publish(topic: str) -> None:
        published.append(publish_work_item(kafka_stack, topic))

    lines: list[str] = []
    ok = run_webhook_demo(
        lines.append,
        bootstrap=kafka_stack.bootstrap_servers,
        registry_url=kafka_stack.schema_registry_url,
        publish=publish,
    )
    output = "\n".join(lines)
    assert ok, output
    assert f'"id": "{published[0]}"' in output
    assert "a consumer worker" in output
