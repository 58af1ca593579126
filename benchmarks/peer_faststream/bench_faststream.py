"""Peer benchmark: FastStream (faststream[confluent]) consuming flowbus's keyed workload.

Run inside the peer venv made by ``../setup_peer_venv.py`` (NOT flowbus's venv):

    python benchmarks/peer_faststream/bench_faststream.py --bootstrap 127.0.0.1:19092 \\
        --registry-url http://127.0.0.1:18081/apis/ccompat/v7 --topic <prepared topic> \\
        --positions <positions.json> --concurrency 1 8 32

The topic is prepared by ``bench_concurrency.py`` (flowbus's producer), which also writes
where each (key, sequence number) sits in it (``--positions``). For each
concurrency, a fresh ``KafkaBroker`` (access log off: ``logger=None``) subscribes a fresh
group with ``max_workers=N`` and ``AckPolicy.ACK_FIRST`` (the only policy FastStream allows
with ``max_workers > 1``; used at 1 too, so the three runs commit alike). A custom decoder
reads the Confluent-framed Avro value with fastavro (writer schema fetched from the
registry by id, once). The handler is ``async def`` and awaits ``asyncio.sleep`` for the
handler time, as FastStream's own ``max_workers`` examples do; around that sleep it tells
``concurrency_checks.KeyTracker`` (shared with the flowbus side) the event's key (the
payload's ``work_item.case_id``) and its sequence number (``context["seq"]``).

With ``--stop-after M`` the broker is stopped (``broker.stop()``, FastStream's own
shutdown) once M events have finished, and the committed offsets are compared with the
events that were handled: committed but never handled means lost to the group.

Prints one JSON object on stdout; exit status 0 only if every run handled all N events (M
with ``--stop-after``).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import fastavro
from faststream.confluent import KafkaBroker
from faststream.middlewares import AckPolicy

# concurrency_checks.py and peer_support.py, shared with the flowbus side / the other peers.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from concurrency_checks import KeyTracker, offsets, read_positions
from peer_support import versions

CONFLUENT_HEADER_SIZE = 5
VERSIONED_PACKAGES = (
    "faststream",
    "confluent-kafka",
    "fastavro",
    "fast-depends",
    "anyio",
    "pydantic",
)


class AvroDecoder:
    """FastStream decoder: Confluent framing (magic byte, schema id) + fastavro."""

    def __init__(self, registry_url: str) -> None:
        self.registry_url = registry_url.rstrip("/")
        self.schemas: dict[int, Any] = {}

    def schema(self, schema_id: int) -> Any:
        parsed = self.schemas.get(schema_id)
        if parsed is None:
            url = f"{self.registry_url}/schemas/ids/{schema_id}"
            with urllib.request.urlopen(url, timeout=30) as response:
                text = json.load(response)["schema"]
            parsed = self.schemas[schema_id] = fastavro.parse_schema(json.loads(text))
        return parsed

    async def __call__(self, message: Any) -> Any:
        value: bytes = message.body
        if value[0] != 0:
            raise ValueError("not a Confluent-framed value")
        schema = self.schema(int.from_bytes(value[1:CONFLUENT_HEADER_SIZE], "big"))
        return fastavro.schemaless_reader(io.BytesIO(value[CONFLUENT_HEADER_SIZE:]), schema, None)


async def one_run(args: argparse.Namespace, workers: int, decoder: AvroDecoder) -> dict[str, Any]:
    tracker = KeyTracker(read_positions(args.positions), stop_after=args.stop_after)
    group = f"bench-faststream-{workers}-{uuid.uuid4().hex[:10]}"
    delay = args.handler_ms / 1000
    broker = KafkaBroker(args.bootstrap, logger=None)

    @broker.subscriber(
        args.topic,
        group_id=group,
        auto_offset_reset="earliest",
        max_workers=workers,
        ack_policy=AckPolicy.ACK_FIRST,
        decoder=decoder,
    )
    async def handle(event: dict[str, Any]) -> None:
        key, seq = str(event["work_item"]["case_id"]), json.loads(event["context"])["seq"]
        tracker.start(key, seq)
        try:
            await asyncio.sleep(delay)
        finally:
            tracker.finish(key, seq)

    started_at = time.perf_counter()
    deadline = started_at + args.timeout
    await broker.start()
    try:
        while not tracker.done.is_set() and time.perf_counter() < deadline:
            await asyncio.sleep(0.005)
    finally:
        await broker.stop()
    return {
        "concurrency": workers,
        "group": group,
        "stop_after": args.stop_after,
        **tracker.summary(started_at),
        "offsets": offsets(args.bootstrap, group, args.topic, tracker),
        "timed_out": not tracker.done.is_set(),
    }


async def run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    decoder = AvroDecoder(args.registry_url)
    return [await one_run(args, workers, decoder) for workers in args.concurrency]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    parser.add_argument("--registry-url", required=True, help="Confluent-compatible registry")
    parser.add_argument("--topic", required=True, help="the topic bench_concurrency.py filled")
    parser.add_argument(
        "--positions", type=Path, required=True, help="(key, seq) -> (partition, offset) JSON"
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--handler-ms", type=float, default=20.0, help="handler sleep (ms)")
    parser.add_argument("--timeout", type=float, default=300.0, help="per run (s)")
    parser.add_argument(
        "--stop-after", type=int, help="stop the broker once this many events have finished"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs = asyncio.run(run_all(args))
    ok = all(run["finished"] >= (args.stop_after or run["events"]) for run in runs)
    ok = ok and not any(run["timed_out"] for run in runs)
    report = {
        "ok": ok,
        "topic": args.topic,
        "handler": f"async def, await asyncio.sleep({args.handler_ms / 1000:g})",
        "ack_policy": "ACK_FIRST",
        "versions": versions(VERSIONED_PACKAGES),
        "runs": runs,
    }
    print(json.dumps(report, indent=2, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
