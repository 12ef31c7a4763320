"""Export the log to Parquet: rows and per-type counts checked against the log, the rate
(events/s) beside the rate of reading the raw log with the same reader.

    python bench/export.py                         # 1,000,000 events, SQLite log
    python bench/export.py --events 200000         # smaller
    python bench/export.py --backend kafka         # a fresh topic on the local stack (deleted after)

It writes a synthetic log first (a realistic mix of event types, real envelopes and
payloads, not timed), then times: (1) reading every raw record (bytes) through
streams.log_reader, (2) the same read with every event decoded (upcast, type-checked),
(3) `photostream events export --format parquet` (export_events: decode, redact, write
zstd Parquet). The Parquet file is read back with pyarrow and its row count and counts
by type must equal the log's. Results go to bench/results/export-<date>.{md,json}.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from domain.events import (  # noqa: E402
    AccountRegistered,
    CommentAdded,
    Followed,
    ImageVariant,
    Liked,
    MediaRef,
    MediaStored,
    PostCreated,
    encode_event,
    new_event,
)
from streams.log_reader import EventFilter, LogReader  # noqa: E402

MIX = [("AccountRegistered", 1), ("Followed", 30), ("MediaStored", 15), ("PostCreated", 15), ("Liked", 30), ("CommentAdded", 9)]


def synthetic_events(count: int, seed: int = 7):
    """(stream, encoded body, type) of a plausible log: ids are numbers as strings."""
    rng = random.Random(seed)
    names, weights = zip(*MIX)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    accounts = max(count // 100, 10)
    next_id = 10**17
    for i in range(count):
        kind = rng.choices(names, weights)[0]
        next_id += rng.randint(1, 1000)
        a, b = str(10**17 + rng.randrange(accounts)), str(10**17 + rng.randrange(accounts))
        media = MediaRef(str(next_id), "image/jpeg", 1080, 1080, {v: ImageVariant(f"{next_id}/{v}-abcdef0123456789.jpg", "image/jpeg", w, w) for v, w in (("thumb", 150), ("small", 320), ("large", 1080))})
        if kind == "AccountRegistered":
            data, stream = AccountRegistered(a, f"user{i}", f"User {i}", "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"), f"account-{a}"
        elif kind == "Followed":
            data, stream = Followed(a, b, str(next_id)), f"follow-{a}-{b}"
        elif kind == "MediaStored":
            data, stream = MediaStored(str(next_id), a, media), f"media-{next_id}"
        elif kind == "PostCreated":
            data, stream = PostCreated(str(next_id), a, f"photo {i} #bench", (media,), ("bench",), ()), f"post-{next_id}"
        elif kind == "Liked":
            data, stream = Liked(str(next_id - 7), a, b, str(next_id)), f"like-{next_id - 7}-{a}"
        else:
            data, stream = CommentAdded(str(next_id), str(next_id - 3), a, b, "nice one"), f"comment-{next_id}"
        event = new_event(data, stream=stream, actor=a, occurred_at=start + timedelta(milliseconds=i * 10))
        yield stream, encode_event(event), kind, event


def write_sqlite(path: Path, count: int) -> Counter[str]:
    from domain.events import format_time
    from streams.sqlite_event_store import SqliteEventStore

    store = SqliteEventStore(path, durable=False)
    types: Counter[str] = Counter()
    conn = store._writer  # noqa: SLF001 - a bulk load for the bench, one transaction a chunk
    rows = []
    versions: Counter[str] = Counter()
    for stream, body, kind, event in synthetic_events(count):
        versions[stream] += 1
        types[kind] += 1
        rows.append((event.event_id, stream, versions[stream], kind, format_time(event.occurred_at), body))
        if len(rows) >= 50_000:
            conn.executemany("INSERT INTO events (event_id, stream, stream_version, type, occurred_at, body) VALUES (?, ?, ?, ?, ?, ?)", rows)
            rows.clear()
    if rows:
        conn.executemany("INSERT INTO events (event_id, stream, stream_version, type, occurred_at, body) VALUES (?, ?, ?, ?, ?, ?)", rows)
    store.flush()
    asyncio.run(store.close())
    return types


async def write_kafka(bootstrap: str, topic: str, partitions: int, count: int) -> Counter[str]:
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, partitions, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=512 * 1024, compression_type=None)
    await producer.start()
    types: Counter[str] = Counter()
    try:
        pending = []
        for stream, body, kind, _ in synthetic_events(count):
            types[kind] += 1
            pending.append(await producer.send(topic, body, key=stream.encode()))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return types


async def delete_topic(bootstrap: str, topic: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()


def timed(label: str, fn):
    started = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - started
    print(f"{label}: {seconds:.1f} s", flush=True)
    return result, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "kafka"], default="sqlite")
    parser.add_argument("--kafka", default="127.0.0.1:9092", help="bootstrap servers (--backend kafka)")
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--runs", type=int, default=3, help="timed repetitions (the log is written once); medians are reported")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    import pyarrow.parquet as pq

    from api.ops_cli import export_events

    folder = Path(tempfile.mkdtemp(prefix="bench-export-"))
    topic = f"bench.export.{uuid.uuid4().hex[:8]}"
    try:
        if args.backend == "sqlite":
            url = f"sqlite:///{folder / 'events.db'}"
            types, write_s = timed(f"writing {args.events:,} events (not part of the figures)", lambda: write_sqlite(folder / "events.db", args.events))
        else:
            url = f"kafka://{args.kafka}?topic={topic}&partitions={args.partitions}"
            types, write_s = timed(f"producing {args.events:,} events (not part of the figures)", lambda: asyncio.run(write_kafka(args.kafka, topic, args.partitions, args.events)))
        raw_runs: list[float] = []
        decoded_runs: list[float] = []
        export_runs: list[float] = []
        output = folder / "events.parquet"
        with LogReader.open(url) as reader:
            for run in range(1, args.runs + 1):  # interleaved, so that a noisy minute hits all three
                print(f"run {run}/{args.runs}", flush=True)
                raw_count, seconds = timed("raw read", lambda: sum(1 for _ in reader.raw()))
                raw_runs.append(seconds)
                decoded_count, seconds = timed("decoded read", lambda: sum(1 for _ in reader.events(EventFilter())))
                decoded_runs.append(seconds)
                summary, seconds = timed("parquet export", lambda: export_events(reader, EventFilter(), "parquet", output))
                export_runs.append(seconds)
        raw_s, decoded_s, export_s = (statistics.median(r) for r in (raw_runs, decoded_runs, export_runs))
        table = pq.read_table(output, columns=["type"])
        parquet_types = Counter(table.column("type").to_pylist())
        checks = {
            "raw read saw every event": raw_count == args.events,
            "decoded read saw every event": decoded_count == args.events,
            "parquet rows == log": table.num_rows == args.events,
            "parquet counts by type == log": parquet_types == types,
        }
        figures = {
            "backend": args.backend,
            "events": args.events,
            "raw_read_events_per_s": round(raw_count / raw_s),
            "decoded_read_events_per_s": round(decoded_count / decoded_s),
            "parquet_export_events_per_s": round(summary.rows / export_s),
            "parquet_export_seconds": round(export_s, 1),
            "runs": args.runs,
            "seconds_per_run": {"raw": raw_runs, "decoded": decoded_runs, "export": export_runs},
            "export_to_raw_ratio": round(raw_s / export_s, 3),
            "command": "python bench/export.py " + " ".join(sys.argv[1:]),
            "parquet_bytes": output.stat().st_size,
            "log_write_seconds": round(write_s, 1),
            "by_type": dict(sorted(types.items())),
            "checks": checks,
            "load_average_at_start": os.getloadavg(),
            "cpu_count": os.cpu_count(),
        }
        print(json.dumps(figures, indent=2))
        args.results.mkdir(parents=True, exist_ok=True)
        stem = args.results / f"export-{args.backend}-{date.today().isoformat()}"
        stem.with_suffix(".json").write_text(json.dumps(figures, indent=2) + "\n")
        stem.with_suffix(".md").write_text(
            f"# Parquet export of {args.events:,} events ({args.backend} log)\n\n"
            f"Command: `{figures['command']}`. Medians of {args.runs} runs over one log.\n\n"
            f"| read | events/s |\n|---|---:|\n"
            f"| raw log (bytes, streams.log_reader) | {figures['raw_read_events_per_s']:,} |\n"
            f"| decoded events (upcast, type-checked) | {figures['decoded_read_events_per_s']:,} |\n"
            f"| **Parquet export** (envelope + upcast + redact, zstd Parquet) | **{figures['parquet_export_events_per_s']:,}** |\n\n"
            f"Export: {export_s:.1f} s ({figures['export_to_raw_ratio']:.2f} of the raw read's rate), "
            f"{output.stat().st_size / 1e6:.1f} MB. Checks: "
            + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in checks.items())
            + f".\n\nBox: {os.cpu_count()} cores, load average at start {figures['load_average_at_start'][0]:.1f} (shared).\n"
        )
        if not all(checks.values()):
            raise SystemExit(f"a check failed: {checks}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if args.backend == "kafka":
            asyncio.run(delete_topic(args.kafka, topic))


if __name__ == "__main__":
    main()
