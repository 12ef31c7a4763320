"""The distributed event store: Kafka is the log, a small Cassandra index guards writes.

    KafkaEventStore.from_urls(
        "kafka://host:9092[,host:9092]?topic=photostream.events&partitions=12&replication=1",
        "cassandra://host:9042/photostream",
    )

The log
-------
One topic (default `photostream.events`, 12 partitions, replication 1), created when
missing with infinite retention (`retention.ms=-1`, `retention.bytes=-1`): the log is the
source of truth and every read model is rebuilt from offset 0. Records are keyed by the
event's stream and sent to partition murmur2(stream) % partitions (the Java client's
choice), so one aggregate stays in order in one partition. An append's events travel as
ONE record batch, which Kafka appends atomically: a reader never sees half an append.
Headers carry `event_id` and `stream_version`. The producer uses `acks=all` with
idempotence, so a retried request is not duplicated by the broker. `append` returns only
after Kafka acknowledged the batch; a position is (partition, offset).

On 3 brokers: `replication=3` in the URL and `min.insync.replicas=2` (broker default or
topic config, left to the cluster here) with `unclean.leader.election.enable=false`, so an
acknowledged append sits on two brokers and one broker may fail without losing it.

The stream index (Cassandra, the read store's cluster and keyspace)
------------------------------------------------------------------
Kafka cannot answer "every event of stream X", nor refuse a stale expected version or a
taken username. These tables do, with lightweight transactions (Paxos):

* `event_streams (stream, version) -> event_id, body, partition, offset, published, ...`
  plus the static column `head` (the stream's version). An append is ONE conditional
  batch on the stream's partition: `UPDATE head = v+n IF head = v` and the rows v+1..v+n.
  The compare-and-set on `head` (rather than `IF NOT EXISTS` per row) is what lets a
  failed append be undone safely: its rows are deleted only `IF head = v+n`, i.e. only
  if nobody appended on top of them; versions therefore never have gaps. A lost race
  answers ConcurrencyError; with ANY_VERSION the store re-reads the head and retries.
* `unique_claims ((namespace, value)) -> owner, stream, event_id, claimed_at, confirmed`:
  `INSERT ... IF NOT EXISTS`. Someone else's value answers UniqueViolation and every
  claim this append took is released (`DELETE ... IF owner = ? AND event_id = ?`). After
  the rows are in, the claim is confirmed (`IF owner = ?`). A claim left unconfirmed by
  a writer that died before its rows were written is taken over once it is older than
  `claim_stale_seconds` and its event is provably absent; confirm and take-over are
  both Paxos on the claim row, so exactly one of them wins.
* `event_ids (event_id) -> stream, version`: idempotent append. It is written before the
  stream batch and always verified against the stream row, so an append whose event ids
  were appended before answers with their stored positions and appends nothing, also
  after a crash between the batch and the produce, and also when two copies of one
  append race (the loser finds its own events among the rows that beat it).

The order of an append
----------------------
claims (LWT) -> event_ids -> stream rows (LWT, published=false) -> [confirm claims] ->
produce one batch, await acks -> mark the rows published with their offsets.
Before any of it, the connection to the partition's leader is checked: with the broker
known down, an append is refused at once and nothing is written anywhere.

If the batch definitely never reached Kafka (no metadata, not queued), the append is
undone: rows deleted, claims released, EventStoreUnavailable. If Kafka did not answer in
`produce_timeout` the outcome is UNKNOWN: aiokafka's idempotent producer keeps retrying
the batch and may still write it, so deleting the rows would let an event reach the
read models that the write side forgot (a username owned twice). Those rows therefore
stay in the outbox (the caller still gets EventStoreUnavailable; a background task
marks them published if the batch lands later).

The stream rows double as an outbox: rows with `published = false` (a storage-attached
index, so finding them does not scan the table) older than a bound are re-produced by
`republish_unpublished`, called from `start()` and every `sweep_seconds` after. A
republished event may reach Kafka twice, or after later events of its stream; readers
tolerate both because every event carries its event_id and `stream_version` header, and
projectors are idempotent.

Reads for tools
---------------
`read(partition, after, limit)` and `head()` use a group-less consumer (assign + seek):
they never join a consumer group, so they never steal partitions from the workers.

Failure mapping
---------------
Every aiokafka KafkaError and every Cassandra NoHostAvailable / OperationTimedOut /
Unavailable / timeouts surfaces as EventStoreUnavailable (the API answers 503 with
Retry-After). The producer never waits forever: requests time out after 10 s and an
append waits at most `produce_timeout` (12 s) for its acknowledgement.

Blocking is avoided: cassandra-driver ResponseFutures are bridged to asyncio futures with
loop.call_soon_threadsafe, not a thread per call.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Awaitable, Iterator, Sequence
from urllib.parse import parse_qs, urlsplit

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import NewTopic
from aiokafka.errors import InvalidProducerEpoch, KafkaError, OutOfOrderSequenceNumber, UnknownProducerId
from aiokafka.partitioner import murmur2
from cassandra import (
    ConsistencyLevel,
    CoordinationFailure,
    OperationTimedOut,
    ReadTimeout,
    Unavailable,
    WriteTimeout,
)
from cassandra.cluster import Cluster, NoHostAvailable, ResponseFuture, Session
from cassandra.connection import ConnectionException
from cassandra.query import BatchStatement, BatchType, PreparedStatement

from domain.events import Event, Recorded, decode_event, encode_event
from projections.cassandra_session import CassandraUrl, open_session, parse_cassandra_url
from streams.event_store import (
    ANY_VERSION,
    Append,
    AppendResult,
    ConcurrencyError,
    EventStoreError,
    EventStoreUnavailable,
    UniqueClaim,
    UniqueViolation,
    check_append,
    check_appends,
    gather_bounded,
)
from streams.kafka_topics import TopicSetupError, ensure_topics

log = logging.getLogger("photostream.events")

DEFAULT_TOPIC = "photostream.events"
DEFAULT_PARTITIONS = 12
DEFAULT_REPLICATION = 1
REQUEST_TIMEOUT_MS = 10_000  # one Kafka request; aiokafka has no delivery.timeout.ms
PRODUCE_TIMEOUT = 12.0  # how long an append waits for Kafka's acknowledgement
# The outbox sweep. An append whose acknowledgement was lost in a Kafka outage is durable
# in the stream index, and a client retrying it is told "done" (a follow answers
# "already following"), so the sweep is what makes it visible: often, so that it shows
# seconds after Kafka is back, not minutes. A sweep with nothing to do is one indexed
# query.
SWEEP_SECONDS = 5.0
PING_TIMEOUT = 5.0
READ_TIMEOUT = 15.0
MAX_APPEND_BYTES = 900_000  # one record batch; the broker's default limit is 1 MiB
ANY_VERSION_ATTEMPTS = 64
BULK_IN_FLIGHT = 128  # index requests of a bulk load at once
BULK_BATCH_BYTES = 32 * 1024  # well under Cassandra's batch_size_fail_threshold (50 KiB)
POISONED_PRODUCER = (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch)
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    KafkaError,
    NoHostAvailable,
    OperationTimedOut,
    Unavailable,
    WriteTimeout,
    ReadTimeout,
    CoordinationFailure,
    ConnectionException,
    TimeoutError,
)

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS {ks}.event_streams (
        stream       text,
        version      int,
        head         int static,
        event_id     text,
        body         blob,
        partition    int,
        offset       bigint,
        published    boolean,
        append_first int,
        append_last  int,
        claims       frozen<list<tuple<text, text, text>>>,
        appended_at  timestamp,
        PRIMARY KEY (stream, version)
    ) WITH CLUSTERING ORDER BY (version ASC)""",
    # The outbox: only rows still waiting for Kafka are `published = false`.
    "CREATE INDEX IF NOT EXISTS event_streams_unpublished ON {ks}.event_streams (published) USING 'sai'",
    """CREATE TABLE IF NOT EXISTS {ks}.event_ids (
        event_id text PRIMARY KEY,
        stream   text,
        version  int
    )""",
    """CREATE TABLE IF NOT EXISTS {ks}.unique_claims (
        namespace  text,
        value      text,
        owner      text,
        stream     text,
        event_id   text,
        claimed_at timestamp,
        confirmed  boolean,
        PRIMARY KEY ((namespace, value))
    )""",
)

STATEMENTS = {
    "head": "SELECT head FROM {ks}.event_streams WHERE stream = ? LIMIT 1",
    "stream": "SELECT * FROM {ks}.event_streams WHERE stream = ?",
    "stream_after": "SELECT * FROM {ks}.event_streams WHERE stream = ? AND version > ?",
    "row": "SELECT * FROM {ks}.event_streams WHERE stream = ? AND version = ?",
    "cas_head": "UPDATE {ks}.event_streams SET head = ? WHERE stream = ? IF head = ?",
    "insert_row": (
        "INSERT INTO {ks}.event_streams (stream, version, event_id, body, partition, published,"
        " append_first, append_last, claims, appended_at) VALUES (?, ?, ?, ?, ?, false, ?, ?, ?, ?)"
    ),
    # Bulk loads (append_many): the stream's rows and head without compare-and-set.
    "bulk_row": (
        "INSERT INTO {ks}.event_streams (stream, version, head, event_id, body, partition, published,"
        " append_first, append_last, claims, appended_at) VALUES (?, ?, ?, ?, ?, ?, false, ?, ?, ?, ?)"
    ),
    "bulk_claim": (
        "INSERT INTO {ks}.unique_claims (namespace, value, owner, stream, event_id, claimed_at, confirmed)"
        " VALUES (?, ?, ?, ?, ?, ?, true)"
    ),
    "delete_row": "DELETE FROM {ks}.event_streams WHERE stream = ? AND version = ? IF event_id = ?",
    "mark": "UPDATE {ks}.event_streams SET published = true, offset = ? WHERE stream = ? AND version = ?",
    "mark_if": "UPDATE {ks}.event_streams SET published = true, offset = ? WHERE stream = ? AND version = ? IF event_id = ?",
    "unpublished": "SELECT * FROM {ks}.event_streams WHERE published = false",
    "pointer": "SELECT stream, version FROM {ks}.event_ids WHERE event_id = ?",
    "set_pointer": "INSERT INTO {ks}.event_ids (event_id, stream, version) VALUES (?, ?, ?)",
    "claim": (
        "INSERT INTO {ks}.unique_claims (namespace, value, owner, stream, event_id, claimed_at)"
        " VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS"
    ),
    "take_over": (
        "UPDATE {ks}.unique_claims SET owner = ?, stream = ?, event_id = ?, claimed_at = ?"
        " WHERE namespace = ? AND value = ? IF owner = ? AND event_id = ? AND confirmed = null"
    ),
    "confirm": (
        "UPDATE {ks}.unique_claims SET confirmed = true, stream = ?, event_id = ?"
        " WHERE namespace = ? AND value = ? IF owner = ?"
    ),
    "release": "DELETE FROM {ks}.unique_claims WHERE namespace = ? AND value = ? IF owner = ? AND event_id = ?",
    "lookup": "SELECT * FROM {ks}.unique_claims WHERE namespace = ? AND value = ?",
}
SERIAL_READS = {"stream_after", "row"}  # reads that must see in-flight Paxos rounds settled


# ----- URLs --------------------------------------------------------------------------


@dataclass(frozen=True)
class KafkaUrl:
    bootstrap_servers: str  # "host:port,host:port"
    topic: str = DEFAULT_TOPIC
    partitions: int = DEFAULT_PARTITIONS
    replication: int = DEFAULT_REPLICATION


def parse_kafka_url(url: str) -> KafkaUrl:
    """`kafka://host:port[,host:port]?topic=...&partitions=...&replication=...`"""
    parts = urlsplit(url)
    if parts.scheme != "kafka":
        raise ValueError(f"not a kafka URL: {url!r} (expected kafka://host:9092)")
    servers = []
    for item in (parts.netloc or "").split(","):
        if not item:
            continue
        host, _, port = item.partition(":")
        if not host or (port and not (port.isdigit() and 0 < int(port) < 65536)):
            raise ValueError(f"{url!r}: {item!r} is not host:port")
        servers.append(f"{host}:{port or 9092}")
    if not servers:
        raise ValueError(f"{url!r}: name at least one broker, e.g. kafka://127.0.0.1:9092")
    query = parse_qs(parts.query)
    unknown = set(query) - {"topic", "partitions", "replication"}
    if unknown:
        raise ValueError(f"{url!r}: unknown option(s) {', '.join(sorted(unknown))}")
    topic = query.get("topic", [DEFAULT_TOPIC])[0]
    if not topic or len(topic) > 249 or not all(c.isalnum() or c in "._-" for c in topic):
        raise ValueError(f"{url!r}: a topic is 1-249 of a-z, A-Z, 0-9, '.', '_' and '-'")
    return KafkaUrl(
        ",".join(servers),
        topic,
        _positive(url, "partitions", query.get("partitions", [str(DEFAULT_PARTITIONS)])[0]),
        _positive(url, "replication", query.get("replication", [str(DEFAULT_REPLICATION)])[0]),
    )


def _positive(url: str, name: str, text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{url!r}: {name} must be a positive whole number")
    return int(text)


def partition_for(stream: str, partitions: int) -> int:
    """The partition of a stream: the Java client's murmur2 rule for keyed records, so any
    producer keying by stream agrees with this store."""
    return (murmur2(stream.encode()) & 0x7FFFFFFF) % partitions


# ----- failure mapping ---------------------------------------------------------------


@contextlib.contextmanager
def unavailable_as_port_error(what: str) -> Iterator[None]:
    """Kafka / Cassandra outages become EventStoreUnavailable (503, Retry-After)."""
    try:
        yield
    except EventStoreError:
        raise
    except UNAVAILABLE_ERRORS as exc:
        raise EventStoreUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc


# ----- Cassandra, without blocking the event loop -----------------------------------


def _settle(future: asyncio.Future[list[Any]], rows: list[Any] | None, error: BaseException | None) -> None:
    if future.done():  # the awaiting task was cancelled meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(rows or [])


class AsyncCql:
    """cassandra-driver's ResponseFuture as an awaitable; every page is collected."""

    def __init__(self, session: Session, keyspace: str) -> None:
        self.session = session
        self.keyspace = keyspace  # named in every statement: `USE` + prepared is an anti-pattern
        self.prepared: dict[str, PreparedStatement] = {}

    def execute(self, statement: Any, params: Sequence[Any] | None = None) -> Awaitable[list[Any]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        rows: list[Any] = []
        response: ResponseFuture = self.session.execute_async(statement, params)

        def on_page(page: list[Any] | None) -> None:
            # Runs on the driver's thread: an exception here would be swallowed there and
            # leave the awaiting task hanging, so every outcome settles the future.
            try:
                rows.extend(page or ())  # DDL and plain writes answer None
                if response.has_more_pages:
                    response.start_fetching_next_page()  # the same callbacks fire for it
                    return
            except BaseException as exc:  # noqa: BLE001
                loop.call_soon_threadsafe(_settle, future, None, exc)
                return
            loop.call_soon_threadsafe(_settle, future, rows, None)

        def on_error(exc: BaseException) -> None:
            loop.call_soon_threadsafe(_settle, future, None, exc)

        response.add_callbacks(on_page, on_error)
        return future

    def run(self, name: str, *params: Any) -> Awaitable[list[Any]]:
        return self.execute(self.prepared[name], params)

    def prepare_all(self) -> None:
        """Blocking: called once from start() in a worker thread."""
        for name, text in STATEMENTS.items():
            statement = self.session.prepare(text.format(ks=self.keyspace))
            if name in SERIAL_READS:
                statement.consistency_level = ConsistencyLevel.LOCAL_SERIAL
            self.prepared[name] = statement


def applied(rows: list[Any]) -> bool:
    """The `[applied]` column of a lightweight transaction's answer (always first)."""
    return bool(rows and rows[0][0])


def utc(moment: datetime | None) -> datetime | None:
    """The driver hands timestamps back naive (in UTC)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=timezone.utc)


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def head_value(version: int) -> int | None:
    """`head` is null for a stream without events (so `IF head = null` matches a new one)."""
    return version or None


# ----- rows ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamRow:
    """One event in the stream index: the write side's copy and the outbox entry."""

    stream: str
    version: int
    event_id: str
    body: bytes
    partition: int
    first: int  # the versions of the append this row belongs to (it is published whole)
    last: int
    claims: tuple[UniqueClaim, ...] = ()
    offset: int | None = None
    published: bool = False
    appended_at: datetime | None = None

    @staticmethod
    def from_cql(row: Any) -> StreamRow:
        return StreamRow(
            stream=row.stream,
            version=row.version,
            event_id=row.event_id,
            body=bytes(row.body),
            partition=row.partition,
            first=row.append_first if row.append_first is not None else row.version,
            last=row.append_last if row.append_last is not None else row.version,
            claims=tuple(UniqueClaim(*c) for c in row.claims or ()),
            offset=row.offset,
            published=bool(row.published),
            appended_at=utc(row.appended_at),
        )

    @property
    def position(self) -> tuple[int, int]:
        return (self.partition, self.offset if self.offset is not None else -1)


def real_rows(rows: list[Any]) -> list[StreamRow]:
    """Skip what is not an event: the static-only row of an emptied stream, and a row of
    which only a late `mark` survived its deletion (it has no event_id)."""
    return [StreamRow.from_cql(r) for r in rows if r.version is not None and r.event_id is not None]


@dataclass(frozen=True)
class ClaimTaken:
    claim: UniqueClaim
    new: bool  # taken by this append (so released if the append fails)
    confirmed: bool  # already confirmed before this append


@dataclass
class Reservation:
    """What an append has written to the index before producing."""

    rows: list[StreamRow]
    claims: list[ClaimTaken] = field(default_factory=list)


class _Done(Exception):
    """Internal: these events turned out to be appended already (idempotent re-append)."""

    def __init__(self, result: AppendResult) -> None:
        self.result = result


# ----- the store ---------------------------------------------------------------------


class KafkaEventStore:
    def __init__(
        self,
        kafka: KafkaUrl,
        index: CassandraUrl,
        *,
        produce_timeout: float = PRODUCE_TIMEOUT,
        claim_stale_seconds: float = 60.0,
        sweep_seconds: float | None = SWEEP_SECONDS,
    ) -> None:
        self.kafka = kafka
        self.index = index
        self.topic = kafka.topic
        self.partitions = kafka.partitions
        self.produce_timeout = produce_timeout
        self.claim_stale_seconds = claim_stale_seconds
        self.sweep_seconds = sweep_seconds
        self._cluster: Cluster | None = None
        self._cql: AsyncCql | None = None
        self._producer: AIOKafkaProducer | None = None
        self._reader: AIOKafkaConsumer | None = None
        self._index_lock = asyncio.Lock()
        self._kafka_lock = asyncio.Lock()
        self._reader_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    @classmethod
    def from_urls(cls, kafka_url: str, stream_index_url: str, **options: Any) -> KafkaEventStore:
        return cls(parse_kafka_url(kafka_url), parse_cassandra_url(stream_index_url), **options)

    # ----- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Create the index tables and the topic if missing, start the producer, publish
        what a crashed writer left in the outbox, and keep sweeping it."""
        await self._index()
        try:
            with unavailable_as_port_error("Kafka"):
                await self._kafka()
        except EventStoreUnavailable as exc:
            # Serve anyway: /readyz says Kafka is down and commands answer 503 until it is back.
            log.warning("Kafka not reachable at start: %s", exc)
        try:
            await self.republish_unpublished()
        except EventStoreUnavailable as exc:
            log.warning("outbox not swept at start: %s", exc)
        if self.sweep_seconds:
            self._spawn(self._sweep_forever(self.sweep_seconds))

    async def migrate(self) -> None:
        """Create the stream index schema (idempotent)."""
        cql = await self._index()
        await self._create_schema(cql)

    async def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._reader is not None:
            # aiokafka's fetch task can swallow the cancellation stop() sends it and never
            # finish; wait() (unlike wait_for) gives up without awaiting that cancellation.
            stopping = asyncio.ensure_future(self._reader.stop())
            await asyncio.wait({stopping}, timeout=5)
            if not stopping.done():
                log.warning("Kafka reader did not stop within 5 s; leaving it behind")
            self._reader = None
        if self._producer is not None:
            await self._stop_producer(self._producer)
            self._producer = None
        if self._cluster is not None:
            await asyncio.to_thread(self._cluster.shutdown)
            self._cluster, self._cql = None, None

    async def _index(self) -> AsyncCql:
        if self._cql is not None:
            return self._cql
        async with self._index_lock:
            if self._cql is None:
                with unavailable_as_port_error("Cassandra"):
                    cluster, session = await asyncio.to_thread(open_session, self.index)
                    cql = AsyncCql(session, self.index.keyspace)
                    try:
                        await self._create_schema(cql)
                        await asyncio.to_thread(cql.prepare_all)
                    except BaseException:
                        await asyncio.to_thread(cluster.shutdown)
                        raise
                self._cluster, self._cql = cluster, cql
        return self._cql

    @staticmethod
    async def _create_schema(cql: AsyncCql) -> None:
        for statement in SCHEMA:
            await cql.execute(statement.format(ks=cql.keyspace))

    async def _kafka(self) -> AIOKafkaProducer:
        """The started producer; created on first need, so a store whose broker was down
        at start recovers by itself once the broker answers."""
        if self._producer is not None:
            return self._producer
        async with self._kafka_lock:
            if self._producer is None:
                await self._ensure_topic()
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.kafka.bootstrap_servers,
                    client_id="photostream-event-store",
                    acks="all",
                    enable_idempotence=True,
                    request_timeout_ms=REQUEST_TIMEOUT_MS,
                    max_batch_size=MAX_APPEND_BYTES + 64_000,
                    max_request_size=MAX_APPEND_BYTES + 100_000,
                    linger_ms=0,
                )
                try:
                    await asyncio.wait_for(producer.start(), REQUEST_TIMEOUT_MS / 1000)
                except BaseException:
                    await self._stop_producer(producer)
                    raise
                self._producer = producer
        return self._producer

    async def _ensure_topic(self) -> None:
        topic = NewTopic(
            self.topic,
            self.kafka.partitions,
            self.kafka.replication,
            topic_configs={"retention.ms": "-1", "retention.bytes": "-1"},
        )
        try:
            counts = await ensure_topics(
                self.kafka.bootstrap_servers,
                [topic],
                client_id="photostream-event-store-admin",
                timeout=REQUEST_TIMEOUT_MS / 1000,
            )
        except TopicSetupError as exc:
            raise EventStoreUnavailable(str(exc)) from exc
        actual = counts[self.topic]
        if actual != self.partitions:
            # The topic decides: streams must hash over the partitions that exist.
            log.warning("topic %s has %d partitions, not %d: using %d", self.topic, actual, self.partitions, actual)
            self.partitions = actual

    @staticmethod
    async def _stop_producer(producer: AIOKafkaProducer) -> None:
        """stop() flushes, which with the broker gone would wait forever: bound it. What
        is left unsent stays in the outbox."""
        try:
            await asyncio.wait_for(producer.stop(), REQUEST_TIMEOUT_MS / 1000)
        except Exception as exc:  # noqa: BLE001 - closing must not fail the caller
            log.warning("Kafka producer did not stop cleanly: %s", exc)
            sender = getattr(getattr(producer, "_sender", None), "sender_task", None)
            if sender is not None:
                sender.cancel()
            with contextlib.suppress(Exception):
                await producer.client.close()

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _sweep_forever(self, every: float) -> None:
        while not self._closed:
            await asyncio.sleep(every)
            try:
                await self.republish_unpublished()
            except EventStoreUnavailable as exc:
                log.warning("outbox sweep skipped: %s", exc)
            except Exception:  # noqa: BLE001 - the sweeper must outlive one bad sweep
                log.exception("outbox sweep failed")

    # ----- append ---------------------------------------------------------------------

    async def append(
        self,
        stream: str,
        events: Sequence[Event],
        *,
        expected_version: int = ANY_VERSION,
        claims: Sequence[UniqueClaim] = (),
    ) -> AppendResult:
        events = tuple(events)
        check_append(stream, events)
        with unavailable_as_port_error("append"):
            cql = await self._index()
            producer = await self._kafka()
            await self._leader_reachable(producer, partition_for(stream, self.partitions))
            try:
                reservation = await self._reserve(cql, stream, events, expected_version, tuple(claims))
            except _Done as done:
                return done.result
            return await self._publish_reserved(cql, producer, reservation)

    async def append_many(self, appends: Sequence[Append]) -> None:
        """Bulk load, in the order of a single append but without its Paxos rounds (no
        other writer is expected): read every stream's head and claim and check them
        all; write the claims (confirmed), event ids and stream rows (unpublished, so
        the outbox sweeper republishes them if this load dies before Kafka has them);
        produce every partition's events as full record batches (an append never split);
        mark the rows published."""
        appends = list(appends)
        for a in appends:
            check_append(a.stream, a.events)
        with unavailable_as_port_error("append_many"):
            cql = await self._index()
            producer = await self._kafka()
            streams = list(dict.fromkeys(a.stream for a in appends))
            keys = list(dict.fromkeys((c.namespace, c.value) for a in appends for c in a.claims))
            heads = dict(zip(streams, await gather_bounded([lambda s=s: self._head(cql, s) for s in streams], BULK_IN_FLIGHT)))
            holders = await gather_bounded([lambda k=k: cql.run("lookup", *k) for k in keys], BULK_IN_FLIGHT)
            owners = {k: rows[0].owner for k, rows in zip(keys, holders) if rows}
            rows_of: dict[str, list[StreamRow]] = {}
            appends_by_partition: dict[int, list[list[StreamRow]]] = {}
            claimed: list[tuple[UniqueClaim, StreamRow]] = []
            for a, head in zip(appends, check_appends(appends, heads, owners)):
                partition = partition_for(a.stream, self.partitions)
                last = head + len(a.events)
                rows = [
                    StreamRow(a.stream, head + i, e.event_id, encode_event(e), partition, head + 1, last, tuple(a.claims) if i == 1 else ())
                    for i, e in enumerate(a.events, start=1)
                ]
                if sum(len(r.body) + len(a.stream) + 128 for r in rows) > MAX_APPEND_BYTES:
                    raise EventStoreError(f"an append is at most {MAX_APPEND_BYTES} bytes")
                claimed += [(c, rows[0]) for c in a.claims]
                rows_of.setdefault(a.stream, []).extend(rows)
                appends_by_partition.setdefault(partition, []).append(rows)
            now = now_utc()
            await gather_bounded(
                [lambda c=c, r=r: cql.run("bulk_claim", c.namespace, c.value, c.owner, r.stream, r.event_id, now) for c, r in claimed]
                + [lambda r=r: cql.run("set_pointer", r.event_id, r.stream, r.version) for rows in rows_of.values() for r in rows],
                BULK_IN_FLIGHT,
            )
            await gather_bounded([lambda b=b: cql.execute(b) for rows in rows_of.values() for b in self._bulk_rows(cql, rows, now)], BULK_IN_FLIGHT)
            sent = await asyncio.gather(*(self._produce_all(producer, p, groups) for p, groups in appends_by_partition.items()))
            marked: dict[str, list[StreamRow]] = {}
            for row in (r for batch in sent for r in batch):
                marked.setdefault(row.stream, []).append(row)
            await gather_bounded([lambda rows=rows: self._mark(cql, rows) for rows in marked.values()], BULK_IN_FLIGHT)

    @staticmethod
    def _bulk_rows(cql: AsyncCql, rows: list[StreamRow], appended_at: datetime) -> list[BatchStatement]:
        """One stream's rows, each with the stream's final head, as UNLOGGED batches (one
        partition: one mutation each) kept under Cassandra's batch size limit."""
        head = rows[-1].version
        batches: list[BatchStatement] = []
        size = BULK_BATCH_BYTES
        for r in rows:
            if size + len(r.body) > BULK_BATCH_BYTES:
                batches.append(BatchStatement(batch_type=BatchType.UNLOGGED))
                size = 0
            size += len(r.body)
            claims = [(c.namespace, c.value, c.owner) for c in r.claims] or None
            batches[-1].add(
                cql.prepared["bulk_row"],
                (r.stream, r.version, head, r.event_id, r.body, r.partition, r.first, r.last, claims, appended_at),
            )
        return batches

    async def _produce_all(self, producer: AIOKafkaProducer, partition: int, appends: list[list[StreamRow]]) -> list[StreamRow]:
        """One partition's appends as record batches of up to MAX_APPEND_BYTES (the size
        rule of `append`, so an append always fits whole), in order; the rows with offsets."""
        groups: list[list[StreamRow]] = [[]]
        size = 0
        for rows in appends:
            need = sum(len(r.body) + len(r.stream) + 128 for r in rows)
            if size + need > MAX_APPEND_BYTES and groups[-1]:
                groups.append([])
                size = 0
            groups[-1].extend(rows)
            size += need
        pending = [(await self._send(producer, rows), rows) for rows in groups if rows]
        out: list[StreamRow] = []
        for future, rows in pending:
            metadata = await self._acked(producer, future)
            out += [replace(r, offset=metadata.offset + i, published=True) for i, r in enumerate(rows)]
        return out

    async def _leader_reachable(self, producer: AIOKafkaProducer, partition: int) -> None:
        """Refuse at once, before writing anything, when the partition's leader cannot be
        reached: a batch queued for a dead broker would only end in an unknown outcome."""
        client = producer.client
        leader = client.cluster.leader_for_partition(TopicPartition(self.topic, partition))
        if leader is None or leader < 0:
            return  # unknown leader: send_batch waits for metadata, and a timeout there is clean
        if not await asyncio.wait_for(client.ready(leader), PING_TIMEOUT):
            client.force_metadata_update()  # the leader may have moved
            raise EventStoreUnavailable(f"Kafka broker {leader} (leader of partition {partition}) is not reachable")

    async def _reserve(
        self,
        cql: AsyncCql,
        stream: str,
        events: tuple[Event, ...],
        expected: int,
        claims: tuple[UniqueClaim, ...],
    ) -> Reservation:
        """Everything of an append before Kafka: claims, event ids, the stream rows and the
        claims' confirmation. Raises _Done for an append that happened before."""
        # The head is read BEFORE looking the event ids up: if a copy of this append
        # committed before this read, its event_ids (written before its batch) are seen.
        head = await self._head(cql, stream) if expected == ANY_VERSION or claims else expected
        found = await self._find_appended(cql, events)
        if found is not None:
            raise _Done(found)
        if claims and expected != ANY_VERSION and head != expected:
            raise ConcurrencyError(stream, expected, head)  # checked before claims, as embedded
        bodies = [encode_event(e) for e in events]
        if sum(len(b) + len(stream) + 128 for b in bodies) > MAX_APPEND_BYTES:
            raise EventStoreError(f"an append is at most {MAX_APPEND_BYTES} bytes")
        taken = await self._take_claims(cql, claims, stream, events[0].event_id)
        try:
            rows = await self._insert_rows(cql, stream, events, bodies, expected, head, claims)
        except ConcurrencyError:  # refused for sure: give the claims back
            await self._release(cql, taken, events[0].event_id)
            raise
        # (_Done is not a refusal: a copy of this append won, holding the same claims.)
        reservation = Reservation(rows, taken)
        if claims:
            await self._confirm_or_undo(cql, reservation)
        return reservation

    async def _insert_rows(
        self,
        cql: AsyncCql,
        stream: str,
        events: tuple[Event, ...],
        bodies: list[bytes],
        expected: int,
        head: int,
        claims: tuple[UniqueClaim, ...],
    ) -> list[StreamRow]:
        partition = partition_for(stream, self.partitions)
        for _ in range(ANY_VERSION_ATTEMPTS):
            last = head + len(events)
            rows = [
                StreamRow(stream, head + i, e.event_id, body, partition, head + 1, last, claims if i == 1 else ())
                for i, (e, body) in enumerate(zip(events, bodies), start=1)
            ]
            await asyncio.gather(*(cql.run("set_pointer", r.event_id, stream, r.version) for r in rows))
            won, current = await self._cas_rows(cql, rows, head)
            if won:
                return rows
            # Lost the race. To a copy of this very append? Then that copy is the answer.
            found = await self._find_in_stream(cql, stream, head, events)
            if found is not None:
                raise _Done(found)
            if expected != ANY_VERSION:
                raise ConcurrencyError(stream, expected, current)
            head = current
        raise ConcurrencyError(stream, expected, head)

    async def _cas_rows(self, cql: AsyncCql, rows: list[StreamRow], head: int) -> tuple[bool, int]:
        """One Paxos round: head moves from `head` to the last row's version and the rows
        appear, or nothing happens and the current head comes back."""
        batch = BatchStatement(batch_type=BatchType.LOGGED)
        stream = rows[0].stream
        batch.add(cql.prepared["cas_head"], (head_value(rows[-1].version), stream, head_value(head)))
        appended_at = now_utc()
        for r in rows:
            claims = [(c.namespace, c.value, c.owner) for c in r.claims] or None
            batch.add(
                cql.prepared["insert_row"],
                (stream, r.version, r.event_id, r.body, r.partition, r.first, r.last, claims, appended_at),
            )
        answer = await cql.execute(batch)
        if applied(answer):
            return True, rows[-1].version
        return False, getattr(answer[0], "head", None) or 0

    async def _head(self, cql: AsyncCql, stream: str) -> int:
        rows = await cql.run("head", stream)
        return (rows[0].head or 0) if rows else 0

    # ----- idempotent re-append -------------------------------------------------------

    async def _find_appended(self, cql: AsyncCql, events: tuple[Event, ...]) -> AppendResult | None:
        """Stored positions of events appended before (event_ids, verified on the row)."""
        pointers = await asyncio.gather(*(cql.run("pointer", e.event_id) for e in events))
        hits = [(e, p[0]) for e, p in zip(events, pointers) if p]
        if not hits:
            return None
        checks = await asyncio.gather(*(cql.run("row", p.stream, p.version) for _, p in hits))
        rows = [
            row
            for (event, _), found in zip(hits, checks)
            for row in real_rows(found)
            if row.event_id == event.event_id
        ]
        return await self._answer_from(cql, events, rows)

    async def _find_in_stream(
        self, cql: AsyncCql, stream: str, after: int, events: tuple[Event, ...]
    ) -> AppendResult | None:
        ids = {e.event_id for e in events}
        rows = [r for r in real_rows(await cql.run("stream_after", stream, after)) if r.event_id in ids]
        if rows:  # the copy that won wrote its own pointers; make sure they are right
            await asyncio.gather(*(cql.run("set_pointer", r.event_id, r.stream, r.version) for r in rows))
        return await self._answer_from(cql, events, rows)

    async def _answer_from(
        self, cql: AsyncCql, events: tuple[Event, ...], rows: list[StreamRow]
    ) -> AppendResult | None:
        if not rows:
            return None
        if len(rows) != len(events):
            raise EventStoreError("some of these events were appended before, some not")
        by_id = {r.event_id: r for r in rows}
        ordered = [by_id[e.event_id] for e in events]
        if any(not r.published for r in ordered):
            ordered = await self._await_published(cql, ordered)
        return AppendResult(tuple(r.position for r in ordered))

    async def _await_published(self, cql: AsyncCql, rows: list[StreamRow]) -> list[StreamRow]:
        """A re-append of events still in the outbox: give their writer produce_timeout to
        finish, then publish them here (a possible duplicate in Kafka is harmless)."""
        deadline = time.monotonic() + self.produce_timeout
        pause = 0.02
        while time.monotonic() < deadline:
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)
            rows = await self._reload(cql, rows) or _withdrawn()
            if all(r.published for r in rows):
                return rows
        producer = await self._kafka()
        for append in _group_by_append(rows):
            await self._republish_append(cql, producer, append)
        return await self._reload(cql, rows) or _withdrawn()

    @staticmethod
    async def _reload(cql: AsyncCql, rows: list[StreamRow]) -> list[StreamRow] | None:
        """The rows as stored now; None when their writer withdrew them meanwhile."""
        fresh = await asyncio.gather(*(cql.run("row", r.stream, r.version) for r in rows))
        reloaded = [next(iter(real_rows(f)), None) for f in fresh]
        if any(n is None or n.event_id != r.event_id for n, r in zip(reloaded, rows)):
            return None
        return [n for n in reloaded if n is not None]

    # ----- claims ---------------------------------------------------------------------

    async def _take_claims(
        self, cql: AsyncCql, claims: tuple[UniqueClaim, ...], stream: str, event_id: str
    ) -> list[ClaimTaken]:
        results = await asyncio.gather(
            *(self._take_claim(cql, c, stream, event_id) for c in claims), return_exceptions=True
        )
        taken = [r for r in results if isinstance(r, ClaimTaken)]
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await self._release(cql, taken, event_id)
            raise next((e for e in errors if isinstance(e, UniqueViolation)), errors[0])
        return taken

    async def _take_claim(self, cql: AsyncCql, claim: UniqueClaim, stream: str, event_id: str) -> ClaimTaken:
        answer = await cql.run("claim", claim.namespace, claim.value, claim.owner, stream, event_id, now_utc())
        if applied(answer):
            return ClaimTaken(claim, new=True, confirmed=False)
        holder = answer[0]
        if holder.owner == claim.owner:
            return ClaimTaken(claim, new=False, confirmed=bool(holder.confirmed))
        if await self._abandoned(cql, holder):
            taken = await cql.run(
                "take_over",
                claim.owner, stream, event_id, now_utc(),
                claim.namespace, claim.value, holder.owner, holder.event_id,
            )  # fmt: skip
            if applied(taken):
                log.info("took over abandoned claim %s %r from %s", claim.namespace, claim.value, holder.owner)
                return ClaimTaken(claim, new=True, confirmed=False)
        raise UniqueViolation(claim.namespace, claim.value, holder.owner)

    async def _abandoned(self, cql: AsyncCql, holder: Any) -> bool:
        """A claim whose writer died before its events reached the stream index."""
        if holder.confirmed:
            return False
        claimed_at = utc(holder.claimed_at)
        if claimed_at is not None and (now_utc() - claimed_at).total_seconds() < self.claim_stale_seconds:
            return False  # probably a sign-up in flight
        return not await self._event_exists(cql, holder.event_id)

    async def _event_exists(self, cql: AsyncCql, event_id: str | None) -> bool:
        if event_id is None:
            return False
        pointer = await cql.run("pointer", event_id)
        if not pointer:
            return False  # event_ids are written before the stream rows
        rows = real_rows(await cql.run("row", pointer[0].stream, pointer[0].version))
        return bool(rows) and rows[0].event_id == event_id

    async def _confirm_or_undo(self, cql: AsyncCql, reservation: Reservation) -> None:
        """Confirm the claims now that the rows are in; a claim taken over meanwhile (we were
        stalled past claim_stale_seconds) means this append must not happen."""
        lost = await self._confirm(cql, reservation.rows[0], reservation.claims)
        if lost is None:
            return
        claim, owner = lost
        if await self._undo(cql, reservation.rows):
            await self._release(cql, reservation.claims, reservation.rows[0].event_id)
            raise UniqueViolation(claim.namespace, claim.value, owner or "")
        log.error("claim %s %r was taken over but stream %s moved on: publishing anyway",
                  claim.namespace, claim.value, reservation.rows[0].stream)  # fmt: skip

    async def _confirm(
        self, cql: AsyncCql, first: StreamRow, claims: Sequence[ClaimTaken]
    ) -> tuple[UniqueClaim, str | None] | None:
        """Confirm every claim; the first one found lost (and its owner now), if any."""
        pending = [t.claim for t in claims if not t.confirmed]
        answers = await asyncio.gather(
            *(cql.run("confirm", first.stream, first.event_id, c.namespace, c.value, c.owner) for c in pending)
        )
        return next(((c, getattr(a[0], "owner", None)) for c, a in zip(pending, answers) if not applied(a)), None)

    async def _release(self, cql: AsyncCql, claims: Sequence[ClaimTaken], event_id: str) -> None:
        """Best effort: a claim that cannot be released now is taken over once stale."""
        fresh = [t.claim for t in claims if t.new]
        results = await asyncio.gather(
            *(cql.run("release", c.namespace, c.value, c.owner, event_id) for c in fresh), return_exceptions=True
        )
        for claim, result in zip(fresh, results):
            if isinstance(result, BaseException):
                log.warning("claim %s %r not released: %s", claim.namespace, claim.value, result)

    # ----- produce ----------------------------------------------------------------------

    async def _publish_reserved(
        self, cql: AsyncCql, producer: AIOKafkaProducer, reservation: Reservation
    ) -> AppendResult:
        rows = reservation.rows
        try:
            pending = await self._send(producer, rows)
        except Exception as exc:  # never reached Kafka: undo the whole append
            await self._withdraw(cql, reservation)
            if isinstance(exc, EventStoreError):
                raise
            raise EventStoreUnavailable(f"Kafka refused the append: {type(exc).__name__}: {exc}") from exc
        try:
            metadata = await self._acked(producer, pending)
        except (TimeoutError, KafkaError) as exc:
            return await self._unacknowledged(cql, reservation, pending, exc)
        positioned = [replace(r, offset=metadata.offset + i, published=True) for i, r in enumerate(rows)]
        try:
            await self._mark(cql, positioned)
        except Exception as exc:  # noqa: BLE001 - Kafka has it: the append succeeded
            log.warning("appended but not marked published (the sweeper will republish): %s", exc)
        return AppendResult(tuple(r.position for r in positioned))

    def _discard_if_poisoned(self, producer: AIOKafkaProducer, exc: BaseException) -> None:
        """After a broker restart the idempotent producer's sequence numbers may no
        longer match the broker's (OutOfOrderSequenceNumber on every later batch, found
        by tests/test_faults.py): drop it, so the next send starts a new producer id.
        _send and _acked call this, so appends, bulk appends and the outbox sweep all
        recover (the sweep alone once kept failing with the old producer)."""
        if isinstance(exc, POISONED_PRODUCER) and self._producer is producer:
            log.warning("Kafka producer reset after %s", type(exc).__name__)
            self._producer = None
            self._spawn(self._stop_producer(producer))

    async def _send(self, producer: AIOKafkaProducer, rows: list[StreamRow]) -> asyncio.Future[Any]:
        """Queue the rows as one record batch. Raising here means nothing was queued.
        The ack is the returned future's (await it with _acked)."""
        batch = producer.create_batch()
        for row in rows:
            headers = [
                ("event_id", row.event_id.encode()),
                ("stream_version", str(row.version).encode()),
            ]
            if batch.append(key=row.stream.encode(), value=row.body, timestamp=None, headers=headers) is None:
                raise EventStoreError(f"an append is at most {MAX_APPEND_BYTES} bytes")
        batch.close()
        # Cancelling send_batch before it queued is safe: the batch is then never sent.
        try:
            return await asyncio.wait_for(
                producer.send_batch(batch, self.topic, partition=rows[0].partition), self.produce_timeout
            )
        except BaseException as exc:
            self._discard_if_poisoned(producer, exc)
            raise

    async def _acked(self, producer: AIOKafkaProducer, pending: asyncio.Future[Any]) -> Any:
        """Kafka's acknowledgement (RecordMetadata) of a queued batch, waited for at most
        produce_timeout; the wait is shielded, so a late ack still reaches whoever else
        holds `pending`."""
        try:
            return await asyncio.wait_for(asyncio.shield(pending), self.produce_timeout)
        except BaseException as exc:
            self._discard_if_poisoned(producer, exc)
            raise

    async def _unacknowledged(
        self, cql: AsyncCql, reservation: Reservation, pending: asyncio.Future[Any], exc: BaseException
    ) -> AppendResult:
        """Kafka may or may not have the batch: keep the rows in the outbox and say so."""
        if not pending.done():
            self._spawn(self._mark_when_acknowledged(pending, reservation.rows))
        elif isinstance(exc, KafkaError) and not exc.retriable:
            # The broker refused the batch outright (nothing written): undo instead.
            await self._withdraw(cql, reservation)
            raise EventStoreUnavailable(f"Kafka refused the append: {type(exc).__name__}: {exc}") from exc
        raise EventStoreUnavailable(
            "Kafka did not acknowledge the append in time; it stays in the outbox and is "
            f"published when Kafka answers ({type(exc).__name__}: {exc})"
        ) from exc

    async def _mark_when_acknowledged(self, pending: asyncio.Future[Any], rows: list[StreamRow]) -> None:
        try:
            metadata = await pending
            cql = await self._index()
            await self._mark(cql, [replace(r, offset=metadata.offset + i) for i, r in enumerate(rows)])
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the sweeper republishes what is left
            log.warning("late acknowledgement not recorded: %s", exc)

    async def _withdraw(self, cql: AsyncCql, reservation: Reservation) -> None:
        """Undo an append that never reached Kafka: rows, then claims. If the rows cannot be
        undone (someone appended on top, or Cassandra is gone) they stay in the outbox and
        will be published, so their claims stay too."""
        try:
            undone = await self._undo(cql, reservation.rows)
        except Exception as exc:  # noqa: BLE001
            log.warning("append not withdrawn, left in the outbox: %s", exc)
            return
        if undone:
            await self._release(cql, reservation.claims, reservation.rows[0].event_id)

    async def _undo(self, cql: AsyncCql, rows: list[StreamRow]) -> bool:
        """Delete an append's rows, only if they are still the stream's newest."""
        batch = BatchStatement(batch_type=BatchType.LOGGED)
        stream = rows[0].stream
        batch.add(cql.prepared["cas_head"], (head_value(rows[0].version - 1), stream, head_value(rows[-1].version)))
        for r in rows:
            batch.add(cql.prepared["delete_row"], (stream, r.version, r.event_id))
        return applied(await cql.execute(batch))

    async def _mark(self, cql: AsyncCql, rows: list[StreamRow]) -> None:
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)  # one partition: one mutation
        for r in rows:
            batch.add(cql.prepared["mark"], (r.offset, r.stream, r.version))
        await cql.execute(batch)

    # ----- the outbox -------------------------------------------------------------------

    async def republish_unpublished(self, older_than_seconds: float | None = None) -> int:
        """Produce again the appends whose rows were written but never marked published
        (a writer crashed between its Paxos round and Kafka's ack, or Kafka never acked).
        Rows younger than `older_than_seconds` (default: produce_timeout, how long their
        writer still waits for the ack) are left to their writer; republishing one anyway
        would only add a harmless duplicate. Returns how many events were republished."""
        with unavailable_as_port_error("republish"):
            cql = await self._index()
            age = self.produce_timeout if older_than_seconds is None else older_than_seconds
            cutoff = now_utc().timestamp() - age
            rows = [
                r
                for r in real_rows(await cql.run("unpublished"))
                if not r.published and (r.appended_at is None or r.appended_at.timestamp() <= cutoff)
            ]
            if not rows:
                return 0
            producer = await self._kafka()
            count = 0
            for append in _group_by_append(rows):
                count += await self._republish_append(cql, producer, append)
            return count

    async def outbox_size(self) -> int:
        """How many events wait in the outbox (written, not yet acknowledged by Kafka)."""
        with unavailable_as_port_error("outbox"):
            cql = await self._index()
            return sum(1 for r in real_rows(await cql.run("unpublished")) if not r.published)

    async def _republish_append(self, cql: AsyncCql, producer: AIOKafkaProducer, rows: list[StreamRow]) -> int:
        current = await self._reload(cql, rows)
        if current is None:
            return 0  # withdrawn by its writer meanwhile
        rows = current
        if all(r.offset is not None for r in rows):  # produced, only the flag was lost
            await self._mark_if(cql, rows)
            return 0
        if rows[0].claims and await self._claims_lost(cql, rows):
            return 0
        await asyncio.gather(*(cql.run("set_pointer", r.event_id, r.stream, r.version) for r in rows))
        metadata = await self._acked(producer, await self._send(producer, rows))
        await self._mark_if(cql, [replace(r, offset=metadata.offset + i) for i, r in enumerate(rows)])
        log.info("republished %d event(s) of %s from the outbox", len(rows), rows[0].stream)
        return len(rows)

    async def _claims_lost(self, cql: AsyncCql, rows: list[StreamRow]) -> bool:
        """Confirm a crashed append's claims; if one was taken over, withdraw the append."""
        claims = [ClaimTaken(c, new=True, confirmed=False) for c in rows[0].claims]
        lost = await self._confirm(cql, rows[0], claims)
        if lost is None:
            return False
        if await self._undo(cql, rows):
            await self._release(cql, claims, rows[0].event_id)
            log.warning("withdrew unpublished append to %s: claim %r was taken over", rows[0].stream, lost[0].value)
            return True
        return False

    async def _mark_if(self, cql: AsyncCql, rows: list[StreamRow]) -> None:
        """Conditional mark: never resurrect a row that its writer deleted meanwhile."""
        batch = BatchStatement(batch_type=BatchType.LOGGED)
        for r in rows:
            batch.add(cql.prepared["mark_if"], (r.offset, r.stream, r.version, r.event_id))
        await cql.execute(batch)

    # ----- reads ------------------------------------------------------------------------

    async def read_stream(self, stream: str) -> list[Recorded]:
        with unavailable_as_port_error("read_stream"):
            cql = await self._index()
            rows = real_rows(await cql.run("stream", stream))
        return [Recorded(decode_event(r.body), *r.position, r.version) for r in rows]

    async def lookup_unique(self, namespace: str, value: str) -> str | None:
        with unavailable_as_port_error("lookup_unique"):
            cql = await self._index()
            rows = await cql.run("lookup", namespace, value)
            if not rows:
                return None
            holder = rows[0]
            return None if await self._abandoned(cql, holder) else holder.owner

    async def read(self, partition: int, after: int, limit: int) -> list[Recorded]:
        if not 0 <= partition < self.partitions:
            raise ValueError(f"partition {partition} is not one of 0..{self.partitions - 1}")
        if limit <= 0:
            return []
        with unavailable_as_port_error("read"):
            async with self._reader_lock:
                consumer = await self._consumer()
                try:
                    return await asyncio.wait_for(self._read_from(consumer, partition, after, limit), READ_TIMEOUT)
                finally:
                    consumer.unsubscribe()  # no background fetching between tool calls

    async def _read_from(self, consumer: AIOKafkaConsumer, partition: int, after: int, limit: int) -> list[Recorded]:
        tp = TopicPartition(self.topic, partition)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        if after + 1 >= end:
            return []
        consumer.seek(tp, max(after + 1, 0))
        out: list[Recorded] = []
        while len(out) < limit and await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=500, max_records=limit - len(out))
            out.extend(_recorded(message) for message in batch.get(tp, ()))
        return out

    async def head(self) -> dict[int, int]:
        with unavailable_as_port_error("head"):
            async with self._reader_lock:
                consumer = await self._consumer()
                tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
                ends = await asyncio.wait_for(consumer.end_offsets(tps), READ_TIMEOUT)
        return {tp.partition: offset - 1 for tp, offset in sorted(ends.items(), key=lambda kv: kv[0].partition)}

    async def _consumer(self) -> AIOKafkaConsumer:
        """One group-less consumer for tools: assign + seek, never a group join."""
        if self._reader is None:
            await self._kafka()  # the topic exists and the partition count is known
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.kafka.bootstrap_servers,
                client_id="photostream-event-store-reader",
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                request_timeout_ms=REQUEST_TIMEOUT_MS,
                fetch_max_wait_ms=50,  # a long poll at the log's end would delay the next seek
            )
            try:
                await asyncio.wait_for(consumer.start(), REQUEST_TIMEOUT_MS / 1000)
            except BaseException:
                with contextlib.suppress(Exception):
                    await consumer.stop()
                raise
            self._reader = consumer
        return self._reader

    async def ping(self) -> None:
        with unavailable_as_port_error("ping"):
            producer = await self._kafka()
            await asyncio.wait_for(producer.client.fetch_all_metadata(), PING_TIMEOUT)
            cql = await self._index()
            await asyncio.wait_for(cql.execute("SELECT now() FROM system.local"), PING_TIMEOUT)


# ----- helpers ---------------------------------------------------------------------------


def _withdrawn() -> list[StreamRow]:
    raise EventStoreUnavailable("an event being re-appended was withdrawn meanwhile; retry")


def _group_by_append(rows: list[StreamRow]) -> list[list[StreamRow]]:
    """Rows grouped by the append that wrote them, each stream's appends in order."""
    groups: dict[tuple[str, int], list[StreamRow]] = {}
    for row in sorted(rows, key=lambda r: (r.stream, r.version)):
        groups.setdefault((row.stream, row.first), []).append(row)
    return list(groups.values())


def _recorded(message: Any) -> Recorded:
    headers = dict(message.headers or ())
    version = headers.get("stream_version", b"0")
    return Recorded(decode_event(message.value), message.partition, message.offset, int(version or 0))
