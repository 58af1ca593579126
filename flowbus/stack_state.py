"""The local dev stack's state file, as ``flowbus dev up`` records it.

It lives in the core so that ``flowbus doctor`` can name the local broker's version
without importing the dev tooling (:mod:`flowbus.dev.devstack` writes it).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path


@dataclasses.dataclass
class ProcessInfo:
    """One server process the stack started."""

    name: str
    pid: int
    port: int
    log: str


@dataclasses.dataclass
class StackInfo:
    """What ``flowbus dev up`` started; persisted as ``stack.json`` in the state dir."""

    bootstrap_servers: str
    schema_registry_url: str
    kafka: ProcessInfo
    registry: ProcessInfo
    kafka_version: str
    registry_version: str
    started_at: float

    def env_lines(self) -> list[str]:
        """Shell lines that point every later flowbus command at this stack."""
        return [
            f"export KAFKA_BOOTSTRAP_SERVERS={self.bootstrap_servers}",
            f"export SCHEMA_REGISTRY_URL={self.schema_registry_url}",
        ]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> StackInfo:
        raw = json.loads(text)
        raw["kafka"] = ProcessInfo(**raw["kafka"])
        raw["registry"] = ProcessInfo(**raw["registry"])
        return cls(**raw)


def state_file(state_dir: Path) -> Path:
    """Where the stack started for ``state_dir`` is recorded."""
    return state_dir / "stack.json"


def read_stack_info(path: Path) -> StackInfo | None:
    """The stack recorded in ``path``, or None when there is none.

    Raises ValueError when the file is not a stack record."""
    try:
        return StackInfo.from_json(path.read_text())
    except FileNotFoundError:
        return None
    except (TypeError, KeyError) as exc:
        raise ValueError(str(exc)) from exc
