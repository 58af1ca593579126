"""Section 4, end-to-end latency: ``send_event`` here to the receiver on the other side.

The producing side (this process) calls ``SIGNAL.send_event`` at a fixed rate from one
thread, with forwarding to a fresh 1-partition topic; the flowbus producer's defaults stay
(``linger.ms=5`` included). The consuming side is a separate process (run as
``python bench_latency.py consume ...``): a :class:`~flowbus.consumer.worker.Worker` whose
receiver records ``now - metadata.time`` for each event. ``metadata.time`` is set inside
``send_event``, so the figure covers validation, encoding, batching, the broker, the fetch,
decoding and the re-send. A separate process is what a deployment has, and on two cores
it keeps the two Python sides from sharing one interpreter lock.

Phases, told apart by a ``phase`` key in the event's ``context``: warm-up (until the
consumer has its partition and has seen an event, plus one second at the first rate), then
each fixed rate in turn, then a ``stop`` event. The pacing is absolute (event i is due at
t0 + i / rate): a late sender catches up rather than drifting, and the achieved rate is
reported next to the target.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_common import Target, create_topic, percentile, unique_name
from workload import EVENT_TYPE, SIGNAL, build_events

from flowbus.producer.event_producer import EventProducer
from flowbus.producer.forwarding import start_forwarding

POOL_SIZE = 5000  # distinct events cycled through (building millions would cost memory)
READY_TIMEOUT_S = 90.0
RESULT_TIMEOUT_S = 120.0


# --- the producing side (this process) ------------------------------------------------------


def _with_phase(pool: list[dict[str, Any]], phase: str) -> list[dict[str, Any]]:
    return [{**data, "context": {**data["context"], "phase": phase}} for data in pool]


def _paced(pool: list[dict[str, Any]], per_s: float, seconds: float) -> tuple[int, float]:
    """Send at ``per_s`` for ``seconds``; returns (events sent, seconds it took)."""
    count = int(per_s * seconds)
    send_event = SIGNAL.send_event
    start = time.perf_counter()
    for index in range(count):
        delay = start + index / per_s - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        send_event(**pool[index % len(pool)])
    return count, time.perf_counter() - start


class ConsumerProcess:
    """The consuming side: a subprocess printing ``ready`` and, at the end, ``result {...}``."""

    def __init__(self, target: Target, topic: str) -> None:
        command = [sys.executable, str(Path(__file__).resolve()), "consume", *target.args()]
        command += ["--topic", topic, "--group", unique_name("e2e")]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        self.ready = threading.Event()
        self.result: dict[str, Any] | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.strip() == "ready":
                self.ready.set()
            elif line.startswith("result "):
                self.result = json.loads(line[len("result ") :])

    def finish(self) -> dict[str, Any]:
        try:
            self.process.wait(timeout=RESULT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=5)
        if self.result is None:
            raise RuntimeError(f"e2e consumer gave no result (exit {self.process.returncode})")
        return self.result

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def run(target: Target, rates: dict[str, float], seconds: float) -> dict[str, Any]:
    """Latency percentiles at each rate (``{"1k": 1000.0, ...}``) held ``seconds`` each."""
    topic = create_topic(target, "e2e")
    pool = build_events(POOL_SIZE)
    producer = EventProducer(settings=target.settings(), install_exit_handlers=False)
    forwarder = start_forwarding(producer, {EVENT_TYPE: [{"topic": topic}]})
    consumer = ConsumerProcess(target, topic)
    sent: dict[str, dict[str, float]] = {}
    try:
        warm_up = _with_phase(pool[:100], "warmup")
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not consumer.ready.wait(0.02):
            if time.monotonic() > deadline or consumer.process.poll() is not None:
                raise RuntimeError("the e2e consumer did not start receiving")
            SIGNAL.send_event(**warm_up[0])
        _paced(warm_up, next(iter(rates.values())), 1.0)
        for phase, per_s in rates.items():
            time.sleep(1.0)  # let the previous phase drain
            count, took = _paced(_with_phase(pool, phase), per_s, seconds)
            sent[phase] = {"target_per_s": per_s, "sent": count, "achieved_per_s": count / took}
        time.sleep(1.0)
        SIGNAL.send_event(**_with_phase(pool[:1], "stop")[0])
        producer.flush(30)
        received = consumer.finish()
    finally:
        consumer.kill()
        forwarder.stop()
        producer.close()
    result: dict[str, Any] = {"seconds_per_rate": seconds, "topic": topic}
    for phase, figures in sent.items():
        got = received.get(phase, {})
        if got.get("count") != figures["sent"]:
            raise RuntimeError(f"e2e {phase}: sent {figures['sent']}, received {got.get('count')}")
        result[phase] = {
            "target_per_s": figures["target_per_s"],
            "achieved_per_s": round(figures["achieved_per_s"], 1),
            **got,
        }
    return result


# --- the consuming side (a subprocess) ------------------------------------------------------


def consume(target: Target, topic: str, group: str) -> None:
    from flowbus.consumer.worker import Worker

    latencies: dict[str, list[float]] = {}
    worker = Worker([topic], group, settings=target.settings())

    def receiver(sender: object, *, metadata: Any, context: Any, **data: Any) -> None:
        elapsed_ms = (datetime.now(UTC) - metadata.time).total_seconds() * 1000.0
        phase = context["phase"]
        if phase == "stop":
            worker.stop()
            return
        if not latencies:
            print("ready", flush=True)
        latencies.setdefault(phase, []).append(elapsed_ms)

    SIGNAL.connect(receiver)
    worker.run(install_signal_handlers=False)
    summary = {}
    for phase, values in latencies.items():
        values.sort()
        summary[phase] = {
            "count": len(values),
            **{
                f"p{p}_ms": round(percentile(values, p / 100), 2)
                for p in (50, 95, 99)  # nearest rank
            },
            "max_ms": round(values[-1], 2),
        }
    print("result " + json.dumps(summary), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="e2e latency: the consuming side")
    parser.add_argument("mode", choices=["consume"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--registry-url", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    args = parser.parse_args()
    consume(Target(args.bootstrap, args.registry_url), args.topic, args.group)


if __name__ == "__main__":
    main()
