"""The markdown table of one benchmark run (printed, and kept as results/latest.md)."""

from __future__ import annotations

from typing import Any


def _n(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value >= 100:
        return f"{value:,.0f}{unit}"
    return f"{value:,}{unit}" if isinstance(value, int) else f"{value:,.2f}{unit}"


def _ratio(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _met(value: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "-"}[value]


def _outbox_rows(section: dict[str, Any]) -> list[tuple[str, ...]]:
    """Per store: the write in the transaction (µs/event), then the relay's rate."""
    rows: list[tuple[str, ...]] = []
    direct = section["direct_events_per_s"]["median"]
    for store in section["stores"]:
        s = section[store]
        rows.append(
            (
                f"outbox write in the transaction, {store} (µs/event)",
                _n(s["write_us_per_event"]),
                f"direct produce {_n(s['direct_us_per_event'])}",
                _ratio(s["write_cost_vs_direct"]),
                "-",
                "-",
            )
        )
        relay = s["relay_events_per_s"]["median"]
        rows.append(
            (
                f"outbox relay, {store} (ev/s)",
                _n(relay),
                f"direct produce {_n(direct)}",
                _ratio(s["relay_vs_direct"]),
                ">= 5,000 ev/s",
                _met(s["relay_target_5000_met"]),
            )
        )
    return rows


def _concurrency_rows(section: dict[str, Any]) -> list[tuple[str, str, str, str, str, str]]:
    """Per level: the rates, then the per-key checks; then the offsets after the runs."""
    rows = []
    shape = f"{section['events']:,} events, {section['keys']} keys, {section['handler_ms']:g} ms"

    def checks(run: dict[str, Any]) -> str:
        return (
            f"{run['keys_in_flight_twice']} / {run['order_violations']}"
            f" / {run['finished_out_of_order']}"
        )

    for level in section["concurrency"]:
        ours, theirs = section["flowbus"][str(level)], section["faststream"][str(level)]
        rows.append(
            (
                f"concurrency {level}, {shape} handler (ev/s)",
                _n(ours["events_per_s"]),
                f"FastStream {_n(theirs['events_per_s'])}",
                _ratio(section["flowbus_vs_faststream"][str(level)]),
                "-",
                "-",
            )
        )
        rows.append(
            (
                f"concurrency {level}: keys in flight twice / begun / finished out of order",
                checks(ours),
                f"FastStream {checks(theirs)}",
                "-",
                "-",
                "-",
            )
        )

    def at_end(runs: dict[str, Any]) -> str:
        return "yes" if all(r["offsets"]["committed_equals_end"] for r in runs.values()) else "no"

    rows.append(
        (
            "concurrency: committed offsets = end offsets after every run",
            at_end(section["flowbus"]),
            f"FastStream {at_end(section['faststream'])}",
            "-",
            "-",
            "-",
        )
    )
    stopped = section.get("stopped_halfway")
    if stopped:

        def stop(run: dict[str, Any]) -> str:
            o = run["offsets"]
            return f"{o['committed_not_handled']} / {o['handled_not_committed']}"

        rows.append(
            (
                f"concurrency {stopped['concurrency']}, stopped after {stopped['stop_after']:,}:"
                " committed not handled / handled not committed",
                stop(stopped["flowbus"]),
                f"FastStream {stop(stopped['faststream'])}",
                "-",
                "-",
                "-",
            )
        )
    return rows


def markdown(doc: dict[str, Any]) -> str:
    sections = doc["sections"]
    met = doc["targets_met"]
    rows: list[tuple[str, str, str, str, str, str]] = []

    codec = sections.get("codec")
    if codec:
        for framing, label in (("confluent", "Confluent"), ("single_object", "single-object")):
            c = codec[framing]
            for op in ("encode", "decode"):
                rows.append(
                    (
                        f"codec {op}, {label} framing (ev/s)",
                        _n(c[f"flowbus_{op}_events_per_s"]),
                        f"fastavro {_n(c[f'fastavro_{op}_events_per_s'])}",
                        _ratio(c[f"{op}_vs_fastavro"]),
                        "-",
                        "-",
                    )
                )
    producer = sections.get("producer")
    if producer:
        rows.append(
            (
                "producer pipeline (ev/s)",
                _n(producer["flowbus_events_per_s"]),
                f"raw confluent-kafka {_n(producer['raw_events_per_s'])}",
                _ratio(doc["producer_vs_raw"]),
                ">= 0.6x",
                _met(met["producer_vs_raw >= 0.6"]),
            )
        )
        if producer.get("handwritten_events_per_s"):
            rows.append(
                (
                    "producer vs hand-written fastavro + produce (ev/s)",
                    _n(producer["flowbus_events_per_s"]),
                    f"hand-written {_n(producer['handwritten_events_per_s'])}",
                    _ratio(doc["producer_vs_handwritten"]),
                    ">= 1.0x",
                    _met(met["producer_vs_handwritten >= 1.0"]),
                )
            )
        interleaved = producer.get("interleaved")
        if interleaved:
            last = interleaved[-1]
            rows.append(
                (
                    "the same, taking turns by blocks (ev/s, last run)",
                    _n(last["flowbus_events_per_s"]),
                    f"hand-written {_n(last['handwritten_events_per_s'])}",
                    _ratio(doc["producer_vs_handwritten_interleaved"]),
                    ">= 1.0x",
                    _met(met["producer_vs_handwritten_interleaved >= 1.0"]),
                )
            )
        if producer.get("handwritten_json_beforehand_events_per_s"):
            rows.append(
                (
                    "hand-written with its JSON text made beforehand, rounds / by blocks",
                    _n(producer["flowbus_events_per_s"]),
                    f"hand-written {_n(producer['handwritten_json_beforehand_events_per_s'])}",
                    f"{_ratio(doc['producer_vs_handwritten_json_beforehand'])} / "
                    f"{_ratio(doc['producer_vs_handwritten_json_beforehand_interleaved'])}",
                    "-",
                    "-",
                )
            )
    consumer = sections.get("consumer")
    if consumer:
        rows.append(
            (
                "consumer pipeline (ev/s)",
                _n(consumer["flowbus_events_per_s"]),
                f"raw consume + fastavro {_n(consumer['raw_events_per_s'])}",
                _ratio(doc["consumer_vs_raw"]),
                ">= 0.5x",
                _met(met["consumer_vs_raw >= 0.5"]),
            )
        )
    peer = sections.get("peer")
    if peer:
        rows.append(
            (
                "producer vs Open edX (ev/s)",
                _n(producer["flowbus_events_per_s"]) if producer else "-",
                f"Open edX {_n(peer.get('producer_events_per_s'))}",
                _ratio(doc["producer_vs_openedx"]),
                ">= 5x",
                _met(met["producer_vs_openedx >= 5"]),
            )
        )
        rows.append(
            (
                "consumer vs Open edX, loop rate (ev/s)",
                _n(consumer["flowbus_events_per_s"]) if consumer else "-",
                f"Open edX {_n(peer.get('consumer_events_per_s'))}",
                _ratio(doc["consumer_vs_openedx"]),
                ">= 5x",
                _met(met["consumer_vs_openedx >= 5"]),
            )
        )
        rows.append(
            (
                "consumer vs Open edX, committed rate (ev/s)",
                _n(consumer["flowbus_events_per_s"]) if consumer else "-",
                f"Open edX {_n(peer.get('consumer_committed_events_per_s'))}",
                _ratio(doc["consumer_vs_openedx_committed"]),
                "-",
                "-",
            )
        )
    e2e = sections.get("e2e")
    if e2e:
        for phase in ("1k", "5k"):
            figures = e2e.get(phase)
            if not figures:
                continue
            rows.append(
                (
                    f"e2e latency at {phase}/s, p50 / p95 / p99 (ms)",
                    f"{figures['p50_ms']} / {figures['p95_ms']} / {figures['p99_ms']}",
                    f"achieved {_n(figures['achieved_per_s'])} ev/s",
                    "-",
                    "p99 < 50 ms" if phase == "1k" else "-",
                    _met(met["e2e_p99_ms_1k < 50"]) if phase == "1k" else "-",
                )
            )
    memory = sections.get("memory")
    if memory:
        for side in ("producer", "consumer"):
            m = memory[side]
            rows.append(
                (
                    f"{side} RSS at 10 / 50 / 100 % of {memory['events']:,} events (MiB)",
                    f"{m['rss_mib_10pct']} / {m['rss_mib_50pct']} / {m['rss_mib_100pct']}",
                    f"{_n(m['events_per_s'])} ev/s",
                    f"{m['growth_10_to_100_mib']:+} MiB",
                    "flat",
                    _met(m["flat"]),
                )
            )
    concurrency = sections.get("concurrency")
    if concurrency:
        rows.extend(_concurrency_rows(concurrency))
    outbox = sections.get("outbox")
    if outbox:
        rows.extend(_outbox_rows(outbox))

    header = (
        "| measure | flowbus | baseline | ratio | target | met |\n"
        "| --- | --- | --- | --- | --- | --- |\n"
    )
    body = "".join(f"| {' | '.join(row)} |\n" for row in rows)
    m = doc["machine"]
    footer = (
        f"\n{doc['mode']} run, `{doc['command']}`, {doc['started_at']}, {doc['wall_s']} s; "
        f"{m['nproc']} cores ({m['cpu_model']}), {m['mem_total']}, Python {m['python']}, "
        f"Kafka {m['kafka']}, librdkafka {m['librdkafka']}; "
        f"load average {m['loadavg_start']} at start.\n"
    )
    if doc["errors"]:
        footer += "\nFailed sections: " + "; ".join(f"{k}: {v}" for k, v in doc["errors"].items())
        footer += "\n"
    return header + body + footer
