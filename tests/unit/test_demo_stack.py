"""`flowbus demo` without a configured broker: which local stack it uses, and what it leaves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flowbus.dev import demo, devstack
from flowbus.settings import get_settings


class FakeStack:
    """The local stack's interface, recording what the demo asks of it."""

    def __init__(self, existing: bool, healthy: bool) -> None:
        self.existing, self.healthy = existing, healthy
        self.calls: list[str] = []

    def __call__(self, state_dir: Path, cache_dir: Path) -> FakeStack:
        return self

    def info(self) -> Any:
        return object() if self.existing else None

    def health(self) -> dict[str, bool]:
        return {"kafka": True, "registry": self.healthy}

    def up(self) -> Any:
        self.calls.append("up")
        return type("Info", (), {
            "kafka_version": "4.1.1", "registry_version": "3.3.3",
            "bootstrap_servers": "127.0.0.1:1", "schema_registry_url": "http://127.0.0.1:2",
        })  # fmt: skip

    def down(self) -> list[str]:
        self.calls.append("down")
        return []


@pytest.fixture(autouse=True)
def no_configured_broker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("SCHEMA_REGISTRY_URL", raising=False)
    monkeypatch.setenv("FLOWBUS_STATE_DIR", str(tmp_path))
    get_settings.cache_clear()


@pytest.mark.parametrize(
    ("existing", "healthy", "said", "calls"),
    [
        (False, False, "starting the local Kafka broker", ["up", "down"]),
        (True, True, "reusing the running local stack", ["up"]),
        # Half of it down: started where it is not running, never removed afterwards.
        (True, False, "starting what is not running of the local stack", ["up"]),
    ],
)
def test_the_demo_removes_only_a_stack_it_created(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    existing: bool,
    healthy: bool,
    said: str,
    calls: list[str],
) -> None:
    stack = FakeStack(existing, healthy)
    monkeypatch.setattr(devstack, "LocalStack", stack)
    with demo.demo_stack(keep=False) as (bootstrap, _):
        assert bootstrap == "127.0.0.1:1"
    assert stack.calls == calls
    assert said in capsys.readouterr().out
