"""Section 6, memory: RSS of a producer and of a consumer over many events.

Each side runs in a process of its own (``python bench_memory.py produce|consume ...``),
so that its RSS is its own. The producer builds every event when it sends it (as an
application does; nothing is kept) and calls ``send_event`` with forwarding to a fresh
topic as fast as it can, then flushes. The consumer is a
:class:`~flowbus.consumer.worker.Worker` with a no-op receiver reading those events.
VmRSS (from ``/proc/self/status``) is sampled every 5 % of the events. "Flat" compares
RSS at 10 %, 50 % and 100 %: growth from 10 % to 100 % under 5 % of the 10 % figure and
under 10 MiB. The first 10 % is left out of the comparison on purpose: it holds the
one-time growth (imports done, librdkafka buffers, allocator arenas warmed up).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_common import Target, create_topic, rate, rss_mib, unique_name
from workload import EVENT_TYPE, SIGNAL, event_data

SAMPLES = 20
FLAT_GROWTH_FRACTION = 0.05
FLAT_GROWTH_MIB = 10.0


def _sample_points(count: int) -> set[int]:
    return {count * i // SAMPLES for i in range(1, SAMPLES + 1)}


def produce(target: Target, topic: str, count: int) -> dict[str, Any]:
    from flowbus.producer.event_producer import EventProducer
    from flowbus.producer.forwarding import start_forwarding

    producer = EventProducer(settings=target.settings(), install_exit_handlers=False)
    forwarder = start_forwarding(producer, {EVENT_TYPE: [{"topic": topic}]})
    points = _sample_points(count)
    samples: list[tuple[int, float]] = [(0, rss_mib())]
    now = datetime.now(UTC)
    start = time.perf_counter()
    for index in range(1, count + 1):
        SIGNAL.send_event(**event_data(index, now))
        if index in points:
            samples.append((index, rss_mib()))
    left = producer.flush(120)
    elapsed = time.perf_counter() - start
    samples.append((count, rss_mib()))  # after the flush: nothing in flight any more
    forwarder.stop()
    producer.close()
    if left or producer.stats.delivered != count:
        raise RuntimeError(f"memory producer: {producer.stats}, {left} undelivered")
    return {"events_per_s": rate(count, elapsed), "samples": samples}


def consume(target: Target, topic: str, count: int) -> dict[str, Any]:
    from flowbus.consumer.worker import Worker

    points = _sample_points(count)
    samples: list[tuple[int, float]] = [(0, rss_mib())]
    received = 0

    def receiver(sender: object, **kwargs: Any) -> None:
        nonlocal received
        received += 1
        if received in points:
            samples.append((received, rss_mib()))

    SIGNAL.connect(receiver)
    worker = Worker([topic], unique_name("memory"), settings=target.settings())
    start = time.perf_counter()
    worker.run(max_messages=count, install_signal_handlers=False)
    elapsed = time.perf_counter() - start
    if received != count:
        raise RuntimeError(f"memory consumer: {received} of {count} received")
    return {"events_per_s": rate(count, elapsed), "samples": samples}


def _at(samples: list[list[float]], count: int, fraction: float) -> float:
    wanted = count * fraction
    return min(samples, key=lambda sample: abs(sample[0] - wanted))[1]


def summarize(result: dict[str, Any], count: int) -> dict[str, Any]:
    samples = result["samples"]
    at_10, at_50 = _at(samples, count, 0.1), _at(samples, count, 0.5)
    at_100 = samples[-1][1]  # the last sample: all events handled (and, producing, flushed)
    growth = at_100 - at_10
    return {
        "events_per_s": round(result["events_per_s"], 1),
        "rss_mib_start": round(samples[0][1], 1),
        "rss_mib_10pct": round(at_10, 1),
        "rss_mib_50pct": round(at_50, 1),
        "rss_mib_100pct": round(at_100, 1),
        "growth_10_to_100_mib": round(growth, 1),
        "flat": growth < FLAT_GROWTH_MIB and growth < FLAT_GROWTH_FRACTION * at_10,
        "samples": [[n, round(mib, 1)] for n, mib in samples],
    }


def _run_side(target: Target, mode: str, topic: str, count: int) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), mode, *target.args()]
    command += ["--topic", topic, "--events", str(count)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"memory {mode} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return summarize(json.loads(proc.stdout.strip().splitlines()[-1]), count)


def run(target: Target, count: int) -> dict[str, Any]:
    """Producer then consumer over ``count`` events, each in its own process."""
    topic = create_topic(target, "memory")
    producer = _run_side(target, "produce", topic, count)
    consumer = _run_side(target, "consume", topic, count)
    return {
        "events": count,
        "producer": producer,
        "consumer": consumer,
        "flat": producer["flat"] and consumer["flat"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="memory: one side in its own process")
    parser.add_argument("mode", choices=["produce", "consume"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--registry-url", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--events", type=int, required=True)
    args = parser.parse_args()
    target = Target(args.bootstrap, args.registry_url)
    side = produce if args.mode == "produce" else consume
    print(json.dumps(side(target, args.topic, args.events)))


if __name__ == "__main__":
    main()
