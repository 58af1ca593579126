"""Subscription validation and the retry schedule."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from flowbus.backoff import Backoff
from flowbus.consumer.webhooks.models import DeliveryRetryPolicy as RetryPolicy
from flowbus.consumer.webhooks.models import Subscription
from flowbus.errors import InvalidSubscriptionError, InvalidWebhookSecretError


def test_create_fills_id_secret_and_defaults() -> None:
    sub = Subscription.create(event_pattern="org.flowbus.*", url="https://hooks.example/x")
    assert sub.id.startswith("sub_")
    assert len(sub.secrets) == 1 and sub.secrets[0].startswith("whsec_")
    assert (sub.method, sub.enabled, sub.timeout) == ("POST", True, 10.0)
    assert sub.retry == RetryPolicy()
    assert "whsec_" not in repr(sub)  # secrets stay out of reprs (and so out of logs)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"url": "ftp://hooks.example/"}, "url"),
        ({"url": "hooks.example/path"}, "url"),
        ({"url": "https://user:pw@hooks.example/"}, "url"),
        ({"url": "https://hooks.example/a b"}, "url"),
        ({"method": "GET"}, "method"),
        ({"method": "DELETE"}, "method"),
        ({"headers": {"Content-Type": "text/plain"}}, "headers"),
        ({"headers": {"webhook-signature": "v1,forged"}}, "headers"),
        ({"headers": {"Host": "elsewhere"}}, "headers"),
        ({"headers": {"Bad Name": "x"}}, "headers"),
        ({"headers": {"X-Ok": "line\r\nInjected: yes"}}, "headers"),
        ({"headers": {"X-A": "1", "x-a": "2"}}, "headers"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": 500}, "timeout"),
        ({"event_pattern": "bad pattern"}, "event pattern"),
        ({"filters": {"$unknown": "x"}}, "filter"),
        ({"secret": "plain-text"}, "secret"),
    ],
)
def test_create_names_the_invalid_field(kwargs: dict[str, object], field: str) -> None:
    values: dict[str, object] = {"event_pattern": "*", "url": "https://hooks.example/"}
    values.update(kwargs)
    with pytest.raises(InvalidSubscriptionError) as caught:
        Subscription.create(**values)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_invalid_secret_error_is_a_subscription_error() -> None:
    with pytest.raises(InvalidWebhookSecretError):
        Subscription.create(event_pattern="*", url="https://h.example/", secret="whsec_!!")


def test_method_is_normalised() -> None:
    assert Subscription.create(
        event_pattern="*", url="https://h.example/", method="put"
    ).method == ("PUT")


def test_backoff_doubles_up_to_the_maximum_without_jitter() -> None:
    policy = RetryPolicy(max_attempts=10, initial_backoff=2.0, max_backoff=30.0, jitter=0.0)
    assert [policy.backoff(n) for n in range(1, 7)] == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_jitter_spreads_delays_within_bounds_and_never_past_the_maximum() -> None:
    policy = RetryPolicy(initial_backoff=10.0, max_backoff=25.0, jitter=0.2)
    rng = random.Random(1234)
    first = [policy.backoff(1, rng) for _ in range(200)]
    assert all(8.0 <= d <= 12.0 for d in first)
    assert len(set(first)) > 100  # actually random, not a constant
    capped = [policy.backoff(5, rng) for _ in range(200)]
    assert all(20.0 <= d <= 25.0 for d in capped)


def test_delays_come_from_the_project_backoff_doubling_with_the_policys_fields() -> None:
    policy = RetryPolicy(max_attempts=3, initial_backoff=5.0, max_backoff=60.0, jitter=0.3)
    assert policy.schedule == Backoff(initial=5.0, maximum=60.0, multiplier=2.0, jitter=0.3)
    assert [policy.backoff(n, random.Random(n)) for n in range(1, 8)] == [
        policy.schedule.delay(n, random.Random(n)) for n in range(1, 8)
    ]
    assert replace(policy, max_backoff=90.0).schedule.maximum == 90.0
    assert policy == RetryPolicy(max_attempts=3, initial_backoff=5.0, max_backoff=60.0, jitter=0.3)
    assert "schedule" not in repr(policy)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"max_attempts": 101},
        {"initial_backoff": 0},
        {"initial_backoff": 10.0, "max_backoff": 5.0},
        {"jitter": 1.5},
    ],
)
def test_bad_retry_policies_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidSubscriptionError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
