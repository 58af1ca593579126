"""The webhook store, on SQLite and on a real PostgreSQL (``postgres_url``, see
``tests/support/throwaway_postgres.py``)."""

from __future__ import annotations

import contextlib
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flowbus.consumer.webhooks.models import (
    Attempt,
    AttemptOutcome,
    DeliveryStatus,
    Subscription,
)
from flowbus.consumer.webhooks.store import WebhookStore, default_database_url, redact_database_url
from flowbus.errors import (
    DeliveryNotFoundError,
    SubscriptionNotFoundError,
    WebhookError,
    WebhookStoreError,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'webhooks.sqlite3'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[WebhookStore]:
    with WebhookStore.open(store_url) as opened:
        yield opened


def subscription(**overrides: object) -> Subscription:
    values: dict[str, object] = {
        "event_pattern": "org.flowbus.caluma.*",
        "url": "https://hooks.example/in",
        "filters": {"work_item.task_slug": ["review-*", "approve"]},
        "headers": {"X-Team": "permits"},
        "description": "permits team",
        "now": T0,
    }
    values.update(overrides)
    return Subscription.create(**values)  # type: ignore[arg-type]


def attempt(delivery_id: str, number: int, outcome: AttemptOutcome, code: int | None) -> Attempt:
    return Attempt(delivery_id, number, T0, 12.5, code, outcome, None if code == 200 else "boom")


# -- subscriptions ---------------------------------------------------------------------


def test_subscription_round_trip(store: WebhookStore) -> None:
    sub = store.add_subscription(subscription())
    loaded = store.get_subscription(sub.id)
    assert loaded == sub
    assert store.list_subscriptions() == [sub]


def test_enable_disable_and_filtered_listing(store: WebhookStore) -> None:
    first = store.add_subscription(subscription())
    second = store.add_subscription(subscription(enabled=False))
    assert [s.id for s in store.list_subscriptions(enabled=True)] == [first.id]
    assert store.set_enabled(second.id, True).enabled is True
    assert store.set_enabled(first.id, False).enabled is False
    assert [s.id for s in store.list_subscriptions(enabled=True)] == [second.id]


def test_secret_rotation_is_stored(store: WebhookStore) -> None:
    sub = store.add_subscription(subscription())
    new = "whsec_" + "A" * 32
    updated = store.set_secrets(sub.id, [new, sub.secrets[0]])
    assert store.get_subscription(sub.id).secrets == (new, sub.secrets[0]) == updated.secrets


def test_unknown_subscription_ids_raise(store: WebhookStore) -> None:
    for call in (
        lambda: store.get_subscription("sub_missing"),
        lambda: store.set_enabled("sub_missing", True),
        lambda: store.remove_subscription("sub_missing"),
    ):
        with pytest.raises(SubscriptionNotFoundError, match="sub_missing"):
            call()


def test_remove_deletes_deliveries_and_attempts(store: WebhookStore) -> None:
    sub = store.add_subscription(subscription())
    (delivery,) = store.create_deliveries(
        event_id="e1", event_type="t", body=b"{}", subscription_ids=[sub.id], now=T0
    )
    assert store.claim(delivery, now=T0, lease_until=T0 + timedelta(seconds=30))
    store.record_attempt(
        attempt(delivery.id, 1, AttemptOutcome.DELIVERED, 200),
        status=DeliveryStatus.DELIVERED,
        next_attempt_at=None,
    )
    store.remove_subscription(sub.id)
    with pytest.raises(DeliveryNotFoundError):
        store.get_delivery(delivery.id)
    assert store.list_attempts(delivery.id) == []


# -- deliveries ------------------------------------------------------------------------


def test_deliveries_are_created_once_per_subscription_and_event(store: WebhookStore) -> None:
    a = store.add_subscription(subscription())
    b = store.add_subscription(subscription())
    body = '{"data":{"name":"Zoë"}}'.encode()
    created = store.create_deliveries(
        event_id="e1", event_type="t.v1", body=body, subscription_ids=[a.id, b.id], now=T0
    )
    assert {d.subscription_id for d in created} == {a.id, b.id}
    assert all(d.status is DeliveryStatus.PENDING and d.next_attempt_at == T0 for d in created)
    again = store.create_deliveries(
        event_id="e1", event_type="t.v1", body=body, subscription_ids=[a.id, b.id], now=T0
    )
    assert again == []
    assert store.get_delivery(created[0].id).body == body
    assert len(store.list_deliveries()) == 2


def test_due_deliveries_respect_time_enabled_flag_and_exclusions(store: WebhookStore) -> None:
    a = store.add_subscription(subscription())
    b = store.add_subscription(subscription())
    (da,) = store.create_deliveries(
        event_id="e1", event_type="t", body=b"{}", subscription_ids=[a.id], now=T0
    )
    (db,) = store.create_deliveries(
        event_id="e2", event_type="t", body=b"{}", subscription_ids=[b.id],
        now=T0 + timedelta(seconds=5),
    )  # fmt: skip
    assert store.due_deliveries(now=T0 - timedelta(seconds=1)) == []
    assert [d.id for d in store.due_deliveries(now=T0)] == [da.id]
    assert [d.id for d in store.due_deliveries(now=T0 + timedelta(seconds=5))] == [da.id, db.id]
    assert [
        d.id
        for d in store.due_deliveries(now=T0 + timedelta(seconds=5), exclude_subscriptions=[a.id])
    ] == [db.id]
    store.set_enabled(a.id, False)
    assert [d.id for d in store.due_deliveries(now=T0 + timedelta(seconds=5))] == [db.id]
    assert store.next_due_at() == T0 + timedelta(seconds=5)


def test_claim_is_exclusive_and_leases_until_expiry(store: WebhookStore) -> None:
    sub = store.add_subscription(subscription())
    (delivery,) = store.create_deliveries(
        event_id="e1", event_type="t", body=b"{}", subscription_ids=[sub.id], now=T0
    )
    lease_end = T0 + timedelta(seconds=60)
    assert store.claim(delivery, now=T0, lease_until=lease_end) is True
    assert store.claim(delivery, now=T0, lease_until=lease_end) is False  # a second worker
    assert store.due_deliveries(now=T0 + timedelta(seconds=59)) == []
    # the claiming worker died: after the lease the delivery is due again
    (again,) = store.due_deliveries(now=lease_end)
    assert again.id == delivery.id
    assert store.claim(again, now=lease_end, lease_until=lease_end + timedelta(seconds=60))


def test_a_claim_marks_the_attempt_in_flight_until_it_is_recorded(store: WebhookStore) -> None:
    sub = store.add_subscription(subscription())
    (delivery,) = store.create_deliveries(
        event_id="e1", event_type="t", body=b"{}", subscription_ids=[sub.id], now=T0
    )
    assert delivery.claimed_until is None and not delivery.in_flight(T0)
    lease_end = T0 + timedelta(seconds=60)
    assert store.claim(delivery, now=T0, lease_until=lease_end)
    claimed = store.get_delivery(delivery.id)
    assert claimed.claimed_until == lease_end
    assert claimed.in_flight(T0 + timedelta(seconds=59))
    assert not claimed.in_flight(lease_end)  # the lease is over: a worker died
    retry_at = T0 + timedelta(seconds=10)
    recorded = store.record_attempt(
        attempt(delivery.id, 1, AttemptOutcome.HTTP_ERROR, 503),
        status=DeliveryStatus.PENDING,
        next_attempt_at=retry_at,
    )
    assert recorded is not None
    assert recorded.claimed_until is None and not recorded.in_flight(T0)
    assert recorded.next_attempt_at == retry_at


def test_attempts_move_the_delivery_through_retries_to_failure_and_redrive(
    store: WebhookStore,
) -> None:
    sub = store.add_subscription(subscription())
    (delivery,) = store.create_deliveries(
        event_id="e1", event_type="t", body=b"{}", subscription_ids=[sub.id], now=T0
    )
    retry_at = T0 + timedelta(seconds=10)
    first = store.record_attempt(
        attempt(delivery.id, 1, AttemptOutcome.HTTP_ERROR, 500),
        status=DeliveryStatus.PENDING,
        next_attempt_at=retry_at,
    )
    assert first is not None
    assert (first.status, first.attempts, first.next_attempt_at) == (
        DeliveryStatus.PENDING, 1, retry_at,
    )  # fmt: skip
    assert (first.last_status_code, first.last_error) == (500, "boom")
    # the same attempt number again (a worker whose lease expired) is not recorded twice
    assert (
        store.record_attempt(
            attempt(delivery.id, 1, AttemptOutcome.TIMEOUT, None),
            status=DeliveryStatus.PENDING,
            next_attempt_at=retry_at,
        )
        is None
    )
    failed = store.record_attempt(
        attempt(delivery.id, 2, AttemptOutcome.TIMEOUT, None),
        status=DeliveryStatus.FAILED,
        next_attempt_at=None,
    )
    assert failed is not None and failed.status is DeliveryStatus.FAILED
    assert [(a.number, a.outcome, a.status_code) for a in store.list_attempts(delivery.id)] == [
        (1, AttemptOutcome.HTTP_ERROR, 500),
        (2, AttemptOutcome.TIMEOUT, None),
    ]
    assert store.list_deliveries(status=DeliveryStatus.FAILED)[0].id == delivery.id
    assert store.count_deliveries(sub.id)[DeliveryStatus.FAILED] == 1

    redriven = store.redrive(delivery.id, now=T0 + timedelta(minutes=5))
    assert redriven.status is DeliveryStatus.PENDING
    assert (redriven.attempts, redriven.round_start, redriven.attempts_in_round) == (2, 2, 0)
    assert redriven.next_attempt_at == T0 + timedelta(minutes=5)
    with pytest.raises(WebhookError, match="only failed or blocked"):
        store.redrive(delivery.id)
    with pytest.raises(DeliveryNotFoundError):
        store.redrive("msg_missing")


def test_redrive_all_takes_failed_and_blocked_of_one_subscription(store: WebhookStore) -> None:
    a = store.add_subscription(subscription())
    b = store.add_subscription(subscription())
    rows = store.create_deliveries(
        event_id="e1", event_type="t", body=b"{}", subscription_ids=[a.id, b.id], now=T0
    )
    for row, status in zip(rows, (DeliveryStatus.BLOCKED, DeliveryStatus.FAILED), strict=True):
        store.record_attempt(
            attempt(row.id, 1, AttemptOutcome.BLOCKED, None), status=status, next_attempt_at=None
        )
    assert store.redrive_all(subscription_id=a.id) == 1
    assert store.count_deliveries(a.id)[DeliveryStatus.PENDING] == 1
    assert store.count_deliveries(b.id)[DeliveryStatus.FAILED] == 1
    assert store.redrive_all() == 1


def test_count_pending_counts_every_subscriptions_pending_deliveries(
    store: WebhookStore,
) -> None:
    a = store.add_subscription(subscription())
    b = store.add_subscription(subscription(enabled=False))
    assert store.count_pending() == 0
    rows = store.create_deliveries(
        event_id="e1", event_type="t", body=b"{}", subscription_ids=[a.id, b.id], now=T0
    )
    store.create_deliveries(
        event_id="e2", event_type="t", body=b"{}", subscription_ids=[a.id], now=T0
    )
    assert store.count_pending() == 3
    store.record_attempt(
        attempt(rows[0].id, 1, AttemptOutcome.DELIVERED, 200),
        status=DeliveryStatus.DELIVERED,
        next_attempt_at=None,
    )
    assert store.count_pending() == 2 == store.count_deliveries()[DeliveryStatus.PENDING]


def test_state_survives_reopening(store_url: str) -> None:
    with WebhookStore.open(store_url) as first:
        sub = first.add_subscription(subscription())
        (delivery,) = first.create_deliveries(
            event_id="e1", event_type="t", body=b"{}", subscription_ids=[sub.id], now=T0
        )
    with WebhookStore.open(store_url) as second:
        assert second.get_subscription(sub.id) == sub
        assert second.get_delivery(delivery.id).status is DeliveryStatus.PENDING


# -- URLs and files --------------------------------------------------------------------


def test_opening_without_create_refuses_a_database_without_the_tables(store_url: str) -> None:
    with pytest.raises(WebhookStoreError, match="nothing was created"):
        WebhookStore.open(store_url, create=False)
    if store_url.startswith("sqlite"):
        assert not Path(store_url.removeprefix("sqlite:///")).parent.exists()
    WebhookStore.open(store_url).close()  # creating is explicit
    with WebhookStore.open(store_url, create=False) as existing:
        assert existing.list_subscriptions() == []


def test_a_version_1_database_gains_the_claim_column(tmp_path: Path) -> None:
    """A database from before ``claimed_until``: opening it migrates, its rows intact."""
    import sqlite3

    path = tmp_path / "v1.sqlite3"
    url = f"sqlite:///{path}"
    with WebhookStore.open(url) as first:
        sub = first.add_subscription(subscription())
    with contextlib.closing(sqlite3.connect(path)) as conn:  # back to version 1
        conn.execute("ALTER TABLE webhook_deliveries DROP COLUMN claimed_until")
        conn.execute("UPDATE webhook_schema_version SET version = 1")
        conn.execute(
            "INSERT INTO webhook_deliveries (id, subscription_id, event_id, event_type, body,"
            " status, attempts, round_start, next_attempt_at, created_at, updated_at)"
            " VALUES ('dlv_old', ?, 'e1', 't', '{}', 'pending', 0, 0, 0, 0, 0)",
            (sub.id,),
        )
        conn.commit()
    with WebhookStore.open(url, create=False) as migrated:
        old = migrated.get_delivery("dlv_old")
        assert old.claimed_until is None and old.status is DeliveryStatus.PENDING
        assert migrated.claim(old, now=T0, lease_until=T0 + timedelta(seconds=5))
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT version FROM webhook_schema_version").fetchall() == [(2,)]


def test_sqlite_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "new-dir" / "hooks.sqlite3"
    WebhookStore.open(f"sqlite:///{path}").close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_default_url_is_a_file_under_the_state_dir(tmp_path: Path) -> None:
    from flowbus.settings import FlowbusSettings

    settings = FlowbusSettings(state_dir=tmp_path)
    assert default_database_url(settings) == f"sqlite:///{tmp_path / 'webhooks.sqlite3'}"
    configured = FlowbusSettings(webhooks_database_url="postgresql://db/hooks")
    assert default_database_url(configured) == "postgresql://db/hooks"


@pytest.mark.parametrize(
    "url", ["mysql://db/x", "sqlite:relative.db", "sqlite://", "/just/a/path.sqlite3"]
)
def test_unsupported_urls_are_store_errors(url: str) -> None:
    with pytest.raises(WebhookStoreError):
        WebhookStore.open(url)


def test_passwords_never_appear_in_messages() -> None:
    url = "postgresql://hooks:s3cret@127.0.0.1:1/hooks"
    assert redact_database_url(url) == "postgresql://hooks:***@127.0.0.1:1/hooks"
    with pytest.raises(WebhookStoreError) as caught:
        WebhookStore.open(url)
    assert "s3cret" not in str(caught.value)
    assert "***" in str(caught.value)
