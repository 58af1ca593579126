"""What the peer benchmarks (``peer_*/bench_*.py``) share. They run in their own venvs,
without flowbus, and import this file from the directory above them: it imports nothing
outside the standard library at module level."""

from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Iterable


def versions(packages: Iterable[str]) -> dict[str, str]:
    """Installed versions of ``packages``, librdkafka's and Python's."""
    import confluent_kafka  # every peer talks to Kafka through it

    found = {name: importlib.metadata.version(name) for name in packages}
    found["librdkafka"] = confluent_kafka.libversion()[0]
    found["python"] = platform.python_version()
    return found
