"""Reading the log for analysts and tools: one reader for both event stores.

    from streams.log_reader import read_events
    for recorded in read_events(types={"PostCreated"}, since="2026-11-01T00:00:00Z"):
        print(recorded.position, recorded.event.data)

The CLI (`photostream events tail|export|replay`, `projections rebuild|verify`) reads
through the same `LogReader`. On SQLite the filters run in SQL; on Kafka the reader is a
plain consumer that *assigns* partitions and seeks: it joins no consumer group, so it
never takes lanes away from the projection workers, and commits nothing.

Positions: SQLite has one partition whose positions count from 1; Kafka positions are
per-partition offsets counting from 0. `from_position`/`to_position` bound the position
in every partition (both inclusive).
"""
from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Awaitable, Callable, Iterable, Iterator, TypeVar

import orjson

from domain.events import EventDecodeError, Recorded, decode_event, format_time, parse_time

T = TypeVar("T")
FOLLOW_POLL = 0.2


@dataclass(frozen=True)
class RawRecord:
    partition: int
    position: int
    body: bytes


@dataclass(frozen=True)
class EventFilter:
    """What to read. Empty sets mean every type/stream; times bound occurred_at
    (since inclusive, until exclusive); positions are inclusive."""

    types: frozenset[str] = frozenset()
    streams: frozenset[str] = frozenset()
    since: datetime | None = None
    until: datetime | None = None
    from_position: int | None = None
    to_position: int | None = None

    @staticmethod
    def build(
        types: Iterable[str] = (),
        streams: Iterable[str] = (),
        since: str | datetime | None = None,
        until: str | datetime | None = None,
        from_position: int | None = None,
        to_position: int | None = None,
    ) -> EventFilter:
        """Checks its input: a bad time or range is a ValueError saying which."""

        def moment(name: str, value: str | datetime | None) -> datetime | None:
            if value is None or isinstance(value, datetime):
                if isinstance(value, datetime) and value.tzinfo is None:
                    raise ValueError(f"{name} needs a timezone (e.g. 2026-11-21T14:00:00Z)")
                return value
            try:
                return parse_time(value)
            except ValueError:
                raise ValueError(f"{name} {value!r} is not an RFC 3339 time with a timezone (e.g. 2026-11-21T14:00:00Z)") from None

        start, end = moment("since", since), moment("until", until)
        if start and end and start >= end:
            raise ValueError("since must be earlier than until")
        for name, value in (("from_position", from_position), ("to_position", to_position)):
            if value is not None and value < 0:
                raise ValueError(f"{name} must be 0 or more")
        if from_position is not None and to_position is not None and from_position > to_position:
            raise ValueError("from_position must not be greater than to_position")
        return EventFilter(frozenset(types), frozenset(streams), start, end, from_position, to_position)

    def matches(self, recorded: Recorded) -> bool:
        event = recorded.event
        if self.types and event.type not in self.types:
            return False
        if self.streams and event.stream not in self.streams:
            return False
        if self.since and event.occurred_at < self.since:
            return False
        if self.until and event.occurred_at >= self.until:
            return False
        return True


class _Loop:
    """A private event loop on its own thread, so that a plain (synchronous) generator
    can drive aiokafka, even inside a notebook whose own loop is already running."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="log-reader", daemon=True)
        self.thread.start()

    def run(self, coroutine: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()  # type: ignore[arg-type]

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


class LogReader:
    """Reads the events topic or the SQLite log, as raw bodies or decoded events."""

    partitions: int
    url: str

    @staticmethod
    def open(url: str | None = None) -> LogReader:
        """The log named by `url` (sqlite:///... or kafka://...), by default the one the
        environment configures (PHOTOSTREAM_EVENT_STORE, as `photostream serve` uses)."""
        if url is None:
            from api.settings import Settings

            url = Settings().event_store
        if url.startswith("sqlite:"):
            return SqliteLogReader(url)
        if url.startswith("kafka:"):
            return KafkaLogReader(url)
        raise ValueError(f"not an event store URL: {url!r} (sqlite:///path or kafka://host:port?topic=...)")

    def __enter__(self) -> LogReader:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def close(self) -> None: ...

    def head(self) -> dict[int, int]:
        """The newest position of each partition (-1 or 0 when empty, as the store says)."""
        raise NotImplementedError

    def size(self, where: EventFilter | None = None) -> int | None:
        """How many events a read will look at (for progress bars), when cheap to know."""
        raise NotImplementedError

    def raw(
        self, where: EventFilter = EventFilter(), *, upto: dict[int, int] | None = None, after: dict[int, int] | None = None
    ) -> Iterator[RawRecord]:
        """Undecoded records up to `upto` (default: the head when the read starts) and
        past `after` (partition -> last position already read), each partition in order.
        Only position bounds (and on SQLite every bound) apply here."""
        raise NotImplementedError

    def follow(self, where: EventFilter = EventFilter(), *, from_head: bool = True) -> Iterator[RawRecord]:
        """New records as they are appended, forever (`events tail`)."""
        raise NotImplementedError

    def events(self, where: EventFilter = EventFilter(), *, upto: dict[int, int] | None = None) -> Iterator[Recorded]:
        """Decoded events (old versions upcast) matching the filter. Undecodable bodies are
        skipped here; `undecodable` counts them."""
        return self._decoded(self.raw(where, upto=upto), where)

    def _decoded(self, records: Iterable[RawRecord], where: EventFilter) -> Iterator[Recorded]:
        for raw in records:
            try:
                event = decode_event(raw.body)
            except EventDecodeError:
                self.undecodable += 1
                continue
            recorded = Recorded(event, raw.partition, raw.position)
            if where.matches(recorded):
                yield recorded

    undecodable: int = 0


class SqliteLogReader(LogReader):
    def __init__(self, url: str) -> None:
        from streams.sqlite_event_store import connect, sqlite_path

        self.url = url
        path = sqlite_path(url)
        if not path.exists():
            raise FileNotFoundError(f"no event log at {path}")
        self.partitions = 1
        self.conn = connect(path)
        self.undecodable = 0

    def close(self) -> None:
        self.conn.close()

    def head(self) -> dict[int, int]:
        (position,) = self.conn.execute("SELECT COALESCE(MAX(position), 0) FROM events").fetchone()
        return {0: int(position)}

    def _where(self, where: EventFilter, after: int, upto: int) -> tuple[str, list[Any]]:
        sql, args = ["position > ?", "position <= ?"], [after, upto]
        if where.types:
            sql.append(f"type IN ({','.join('?' * len(where.types))})")
            args += sorted(where.types)
        if where.streams:
            sql.append(f"stream IN ({','.join('?' * len(where.streams))})")
            args += sorted(where.streams)
        # occurred_at is stored in the one wire format (UTC, milliseconds, Z): text order is time order.
        if where.since:
            sql.append("occurred_at >= ?")
            args.append(format_time(where.since))
        if where.until:
            sql.append("occurred_at < ?")
            args.append(format_time(where.until))
        return " AND ".join(sql), args

    def _bounds(self, where: EventFilter, upto: dict[int, int] | None, already: dict[int, int] | None = None) -> tuple[int, int]:
        after = max((where.from_position or 1) - 1, 0, (already or {}).get(0, 0))
        end = (upto or self.head())[0]
        if where.to_position is not None:
            end = min(end, where.to_position)
        return after, end

    def size(self, where: EventFilter | None = None) -> int | None:
        where = where or EventFilter()
        after, end = self._bounds(where, None)
        sql, args = self._where(where, after, end)
        (count,) = self.conn.execute(f"SELECT COUNT(*) FROM events WHERE {sql}", args).fetchone()
        return int(count)

    def raw(
        self, where: EventFilter = EventFilter(), *, upto: dict[int, int] | None = None, after: dict[int, int] | None = None, batch: int = 5000
    ) -> Iterator[RawRecord]:
        after_position, end = self._bounds(where, upto, after)
        yield from self._raw(where, after_position, end, batch)

    def _raw(self, where: EventFilter, after: int, end: int, batch: int) -> Iterator[RawRecord]:
        while True:
            sql, args = self._where(where, after, end)
            rows = self.conn.execute(
                f"SELECT position, body FROM events WHERE {sql} ORDER BY position LIMIT {batch}", args
            ).fetchall()
            if not rows:
                return
            for position, body in rows:
                yield RawRecord(0, position, body)
            after = rows[-1][0]

    def follow(self, where: EventFilter = EventFilter(), *, from_head: bool = True) -> Iterator[RawRecord]:
        after = self.head()[0] if from_head else max((where.from_position or 1) - 1, 0)
        while True:
            end = self.head()[0]
            if end > after:
                for record in self.raw(EventFilter.build(where.types, where.streams, from_position=after + 1), upto={0: end}):
                    yield record
                after = end
            else:
                time.sleep(FOLLOW_POLL)


class KafkaLogReader(LogReader):
    def __init__(self, url: str) -> None:
        from streams.kafka_event_store import parse_kafka_url

        self.url = url
        self.kafka = parse_kafka_url(url)
        self.topic = self.kafka.topic
        self.undecodable = 0
        self._loop = _Loop()
        try:
            self._consumer = self._loop.run(self._start())
        except BaseException:
            self._loop.close()
            raise
        self.partitions = len(self._tps)

    async def _start(self) -> Any:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.kafka.bootstrap_servers,
            client_id="photostream-log-reader",
            group_id=None,  # no group: assign + seek, never a rebalance of the workers
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await consumer.start()
        try:
            partitions = consumer.partitions_for_topic(self.topic)
            if not partitions:
                await consumer._client.force_metadata_update()  # noqa: SLF001 - a fresh client knows no topics yet
                partitions = consumer.partitions_for_topic(self.topic)
            if not partitions:
                raise FileNotFoundError(f"Kafka has no topic {self.topic!r}")
        except BaseException:
            await consumer.stop()
            raise
        self._tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        return consumer

    def close(self) -> None:
        try:
            self._loop.run(self._consumer.stop())
        finally:
            self._loop.close()

    def head(self) -> dict[int, int]:
        ends = self._loop.run(self._consumer.end_offsets(self._tps))
        return {tp.partition: ends[tp] - 1 for tp in self._tps}

    def _starts(self) -> dict[int, int]:
        begins = self._loop.run(self._consumer.beginning_offsets(self._tps))
        return {tp.partition: begins[tp] for tp in self._tps}

    def _ranges(self, where: EventFilter, upto: dict[int, int] | None, after: dict[int, int] | None = None) -> dict[int, tuple[int, int]]:
        """partition -> (first offset to read, last offset to read), empty ranges left out."""
        head = upto if upto is not None else self.head()
        starts = self._starts()
        ranges = {}
        for p, last in head.items():
            first = max(starts.get(p, 0), where.from_position or 0, (after or {}).get(p, -1) + 1)
            if where.to_position is not None:
                last = min(last, where.to_position)
            if first <= last:
                ranges[p] = (first, last)
        return ranges

    def size(self, where: EventFilter | None = None) -> int | None:
        where = where or EventFilter()
        return sum(last - first + 1 for first, last in self._ranges(where, None).values())

    def raw(
        self, where: EventFilter = EventFilter(), *, upto: dict[int, int] | None = None, after: dict[int, int] | None = None, batch: int = 5000
    ) -> Iterator[RawRecord]:
        ranges = self._ranges(where, upto, after)
        if not ranges:
            return
        tps = {tp.partition: tp for tp in self._tps}

        async def position() -> None:
            self._consumer.assign([tps[p] for p in ranges])
            for p, (first, _) in ranges.items():
                self._consumer.seek(tps[p], first)

        self._loop.run(position())
        remaining = dict(ranges)
        try:
            while remaining:
                fetched = self._loop.run(self._consumer.getmany(timeout_ms=1000, max_records=batch))
                for tp, messages in fetched.items():
                    span = remaining.get(tp.partition)
                    if span is None:
                        continue
                    last = span[1]
                    for message in messages:
                        if message.offset > last:
                            break
                        yield RawRecord(tp.partition, message.offset, message.value)
                    if messages and messages[-1].offset >= last:
                        remaining.pop(tp.partition, None)
                        self._loop.run(_pause(self._consumer, tp))
                # Offsets may have gaps (transaction markers): a partition is also done
                # once the consumer's position is past its last offset.
                for partition, (_, last) in list(remaining.items()):
                    if self._loop.run(self._consumer.position(tps[partition])) > last:
                        remaining.pop(partition)
                        self._loop.run(_pause(self._consumer, tps[partition]))
        finally:
            self._loop.run(_unassign(self._consumer))

    def follow(self, where: EventFilter = EventFilter(), *, from_head: bool = True) -> Iterator[RawRecord]:
        start = self.head() if from_head else {p: max((where.from_position or 0) - 1, -1) for p in range(self.partitions)}

        async def position() -> None:
            self._consumer.assign(self._tps)
            for tp in self._tps:
                self._consumer.seek(tp, start[tp.partition] + 1)

        self._loop.run(position())
        try:
            while True:
                fetched = self._loop.run(self._consumer.getmany(timeout_ms=int(FOLLOW_POLL * 1000), max_records=1000))
                for tp, messages in sorted(fetched.items(), key=lambda kv: kv[0].partition):
                    for message in messages:
                        yield RawRecord(tp.partition, message.offset, message.value)
        finally:
            self._loop.run(_unassign(self._consumer))


async def _pause(consumer: Any, tp: Any) -> None:
    consumer.pause(tp)


async def _unassign(consumer: Any) -> None:
    consumer.unsubscribe()


def read_events(
    url: str | None = None,
    *,
    types: Iterable[str] = (),
    streams: Iterable[str] = (),
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    from_position: int | None = None,
    to_position: int | None = None,
) -> Iterator[Recorded]:
    """Every event of the log (up to its head when the read starts) that matches, decoded
    and upcast, each partition in order: `for recorded in read_events(): ...`.
    `url` defaults to PHOTOSTREAM_EVENT_STORE (or the embedded ./data/events.db)."""
    where = EventFilter.build(types, streams, since, until, from_position, to_position)
    with LogReader.open(url) as reader:
        yield from reader.events(where)


ENVELOPE_TEXT = ("event_id", "stream", "occurred_at", "correlation_id")


def export_rows(reader: LogReader, where: EventFilter = EventFilter()) -> Iterator[dict[str, Any]]:
    """Rows for analysts, fast: the envelope and the data as stored, old versions upcast
    (UPCASTERS) and secret fields redacted, without building the typed payloads (what
    `events export` writes; 2-3x the rate of decoding every event). Bodies without a
    well-formed envelope are counted in reader.undecodable and left out."""
    from domain.events import EVENT_TYPES, UPCASTERS

    since = format_time(where.since) if where.since else None
    until = format_time(where.until) if where.until else None
    for raw in reader.raw(where):
        try:
            doc = orjson.loads(raw.body)
            kind, version, data = doc["type"], doc["version"], doc["data"]
            if not (isinstance(kind, str) and isinstance(version, int) and isinstance(data, dict)):
                raise ValueError("malformed envelope")
            if not all(isinstance(doc.get(name), str) for name in ENVELOPE_TEXT):
                raise ValueError("malformed envelope")
            occurred = format_time(parse_time(doc["occurred_at"]))  # one format, for filters and columns
            cls = EVENT_TYPES.get(kind)
            if cls is not None:
                while version < cls.VERSION:
                    data, version = UPCASTERS[(kind, version)](data), version + 1
                for name in cls.SECRET_FIELDS:
                    if name in data:
                        data[name] = "[redacted]"
        except (ValueError, KeyError, TypeError):
            reader.undecodable += 1
            continue
        if (where.types and kind not in where.types) or (where.streams and doc["stream"] not in where.streams):
            continue
        if (since and occurred < since) or (until and occurred >= until):
            continue
        yield {
            "event_id": doc["event_id"],
            "type": kind,
            "version": version,
            "stream": doc["stream"],
            "partition": raw.partition,
            "position": raw.position,
            "occurred_at": occurred,
            "actor": doc.get("actor"),
            "correlation_id": doc["correlation_id"],
            "causation_id": doc.get("causation_id"),
            "data": orjson.dumps(data).decode(),
        }


def event_row(recorded: Recorded) -> dict[str, Any]:
    """One decoded event as an analyst sees it: the envelope, where it sits in the log,
    and its data with secret fields redacted (`events tail`)."""
    from domain.events import event_to_dict

    doc = event_to_dict(recorded.event, redact=True)
    doc["partition"] = recorded.partition
    doc["position"] = recorded.position
    return doc


Progress = Callable[[int], None]
