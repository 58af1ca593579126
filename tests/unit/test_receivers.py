"""The @on decorator, connect helper and receiver modules."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowbus import WorkflowSignal, on
from flowbus.errors import ConfigurationError
from flowbus.receivers import connect, import_receiver_modules
from flowbus.settings import get_settings
from flowbus.testing import isolated_receivers


def new_signal() -> WorkflowSignal:
    return WorkflowSignal(f"org.flowbus.test.r{uuid.uuid4().hex[:12]}.happened.v1", {"x": int})


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    with isolated_receivers():
        yield


def test_on_connects_and_returns_the_function_unchanged() -> None:
    signal = new_signal()
    seen: list[int] = []

    def handle(sender: Any, x: int, **kwargs: Any) -> int:
        seen.append(x)
        return x * 2

    decorated = on(signal)(handle)
    assert decorated is handle
    assert signal.send_event(x=21) == [(handle, 42)]
    assert seen == [21]


def test_on_accepts_a_list_of_signals() -> None:
    first, second = new_signal(), new_signal()
    seen: list[str] = []

    @on([first, second])
    def handle(sender: Any, signal: WorkflowSignal, **kwargs: Any) -> None:
        seen.append(signal.event_type)

    first.send_event(x=1)
    second.send_event(x=2)
    assert seen == [first.event_type, second.event_type]


def test_on_with_sender_filters() -> None:
    signal = new_signal()
    seen: list[object] = []

    @on(signal, sender="post_complete_work_item")
    def handle(sender: Any, **kwargs: Any) -> None:
        seen.append(sender)

    signal.send_event(x=1, sender="post_complete_work_item")
    signal.send_event(x=1, sender="pre_complete_work_item")
    signal.send_event(x=1)
    assert seen == ["post_complete_work_item"]


def test_on_rejects_things_that_are_not_signals() -> None:
    with pytest.raises(TypeError, match="expected a WorkflowSignal"):
        on(["org.flowbus.test.thing.happened.v1"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="no signal"):
        on([])


def test_connect_helper_connects_to_several_signals() -> None:
    first, second = new_signal(), new_signal()
    calls: list[int] = []

    def handle(sender: Any, x: int, **kwargs: Any) -> None:
        calls.append(x)

    connect([first, second], handle)
    first.send_event(x=1)
    second.send_event(x=2)
    assert calls == [1, 2]


@pytest.fixture
def module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("flowbus_test_receivers_"):
            del sys.modules[name]


def write_module(directory: Path, body: str) -> str:
    name = f"flowbus_test_receivers_{uuid.uuid4().hex[:8]}"
    (directory / f"{name}.py").write_text(textwrap.dedent(body))
    return name


def test_import_receiver_modules_connects_their_receivers(module_dir: Path) -> None:
    signal = new_signal()
    name = write_module(
        module_dir,
        f"""
        from flowbus import WorkflowSignal, on

        seen = []

        @on(WorkflowSignal.get_signal_by_type("{signal.event_type}"))
        def handle(sender, x, **kwargs):
            seen.append(x)
        """,
    )
    [module] = import_receiver_modules([name])
    signal.send_event(x=5)
    assert module.seen == [5]


def test_receiver_modules_are_found_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [entry for entry in sys.path if entry not in ("", ".")])
    package = tmp_path / f"flowbus_test_receivers_{uuid.uuid4().hex[:8]}"
    package.mkdir()
    (package / "receivers.py").write_text("LOADED = True\n")
    try:
        [module] = import_receiver_modules([f"{package.name}.receivers"])
        assert module.LOADED
    finally:
        for name in [name for name in sys.modules if name.startswith(package.name)]:
            del sys.modules[name]


def test_import_receiver_modules_defaults_to_settings(
    module_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = write_module(module_dir, "LOADED = True\n")
    monkeypatch.setenv("FLOWBUS_RECEIVER_MODULES", f'["{name}"]')
    get_settings.cache_clear()
    try:
        modules = import_receiver_modules()
    finally:
        get_settings.cache_clear()
    assert [m.__name__ for m in modules] == [name]
    assert modules[0].LOADED is True


def test_missing_receiver_module_stops_with_a_clear_message() -> None:
    with pytest.raises(
        ConfigurationError,
        match="could not import receiver module 'no_such_receivers_module': No module named",
    ):
        import_receiver_modules(["no_such_receivers_module"])


def test_error_inside_receiver_module_stops_with_a_clear_message(module_dir: Path) -> None:
    name = write_module(module_dir, "raise RuntimeError('bad receiver setup')\n")
    with pytest.raises(
        ConfigurationError, match=f"could not import receiver module '{name}': bad receiver setup"
    ) as caught:
        import_receiver_modules([name])
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_no_receiver_modules_is_fine() -> None:
    assert import_receiver_modules([]) == []
