"""Section 5, the peer: the Open edX event bus on the same broker, registry and event shape.

Drives ``peer_openedx/`` (see its README): ``setup_peer_venv.py`` builds a separate virtualenv
from PyPI (cached under flowbus's cache dir, rebuilt only when its pinned requirements
change), then ``bench_openedx.py --mode both`` runs the peer's producer and consumer in
that venv and prints one JSON object. With several rounds (a fresh topic each), the rates
reported are the medians of the rounds, as for flowbus's own sections; every round's report
is kept under ``rounds``, and the reason of any attempt that failed under
``failed_attempts``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
from pathlib import Path
from typing import Any

from bench_common import Target, peer_python, run_peer

PEER_DIR = Path(__file__).resolve().parent / "peer_openedx"
# The peer's own watchdog stops it after --timeout and hard-exits 30 s later.
HARD_STOP_GRACE_S = 30.0


RATES = ("producer_events_per_s", "consumer_events_per_s", "consumer_committed_events_per_s")


def run(
    target: Target, venv_dir: Path, count: int, timeout: float, rounds: int = 1
) -> dict[str, Any]:
    """The peer's producer and consumer over ``count`` events, ``rounds`` times: the median
    rates, and every round's JSON report."""
    python = peer_python(PEER_DIR, venv_dir)
    reports: list[dict[str, Any]] = []
    failures: list[str] = []
    for _ in range(rounds):
        # A round that does not end cleanly is run again once, and its failure is kept: with
        # Apicurio, the peer's deserializer sometimes waits for ever on a schema-association
        # lookup (confluent-kafka's default subject strategy), until the round's timeout.
        for attempt in range(2):
            try:
                report = _one_round(python, target, count, timeout)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                failure = f"{type(exc).__name__}: {exc}"
            else:
                if report.get("ok"):
                    reports.append(report)
                    break
                failure = f"not ok (exit {report['exit_status']}): {json.dumps(report)[:2000]}"
            failures.append(failure)
            if attempt:
                # Its rates would not describe a full, clean run: no ratio is made from them.
                raise RuntimeError(f"peer round failed twice; last: {failure}")
    # Every round kept is clean, so the last one's "ok" and exit status speak for all.
    summary = {key: value for key, value in reports[-1].items() if key not in RATES}
    for rate in RATES:
        values = [report[rate] for report in reports if report.get(rate) is not None]
        summary[rate] = round(statistics.median(values), 1) if values else None
    summary["rounds"] = reports
    summary["failed_attempts"] = failures
    return summary


def _one_round(python: Path, target: Target, count: int, timeout: float) -> dict[str, Any]:
    command = [str(python), str(PEER_DIR / "bench_openedx.py"), *target.args()]
    command += ["--events", str(count), "--mode", "both", "--timeout", str(timeout)]
    return run_peer(command, timeout + HARD_STOP_GRACE_S + 30)
