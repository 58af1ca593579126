"""`flowbus demo` (what `make demo` runs) against the test stack, in its own process so that
whatever librdkafka writes straight to stderr is seen too."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any


def test_demo_tells_its_story_without_stray_log_lines(kafka_stack: Any) -> None:
    env = {**kafka_stack.env, "FLOWBUS_SCHEMA_AUTO_REGISTER": "true"}
    for name in ("FLOWBUS_LOG_LEVEL", "FLOWBUS_TOPIC_PREFIX"):
        env.pop(name, None)
    run = subprocess.run(
        [sys.executable, "-m", "flowbus", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=os.path.dirname(__file__),
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    lines = output.splitlines()
    assert [line for line in lines if line.startswith("%")] == []  # librdkafka's own lines
    assert [line for line in lines if "WARNING" in line or " ERROR " in line] == []

    assert re.search(r"^\[pipes\] flowbus-demo-pipes-\w+\[0\]@0: .* -> \{'greeting'", output, re.M)
    assert "[service] 24 events forwarded, keyed by case id" in lines
    assert sum(line.startswith("  [worker]  ") for line in lines) == 24
    assert (
        "[worker]  re-sent 24/24 events; metadata identical: yes; each case in order: yes" in lines
    )
    (dlq,) = [i for i, line in enumerate(lines) if line.startswith("[dlq]")]
    assert lines[dlq].endswith(": undecodable (WrongMagicByteError)")
    reason = []
    for line in lines[dlq + 1 :]:
        if not line.startswith("          "):
            break
        reason.append(line.strip())
    # The whole reason, wrapped at word boundaries: nothing is cut off.
    assert " ".join(reason) == (
        "message value starts with 74 68: neither the Confluent wire format (00) nor Avro "
        "single-object encoding (c3 01)"
    )
    assert "  signature: verified with the subscription's secret" in lines
    assert re.search(
        r"^\[webhooks\] delivery msg_\w+: delivered after 1 attempt\(s\)$", output, re.M
    )
