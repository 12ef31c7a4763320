"""The distributed projection pipeline: a Faust app.

Topology (all topics have the events topic's partition count):

    photostream.events --route--> photostream.events.projection.<name>.v<version>  (one per projector)
                                      |  keyed by projector.key(event)
                                      v
                                  project_<name> agents --> Cassandra read models

* `route` reads the log in batches and forwards each event to the lane of every
  projector that handles it, the lane chosen by what that projector's writes must be
  serialized by (a post's likes by post, followers by followee, ...). One lane
  (partition) is consumed by one worker at a time, so one count is never updated by two
  workers at once: counts stay exact without counter columns or lightweight transactions.
* A router batch becomes one *bundle* per projection and lane: that lane's events of the
  batch, in log order, then the watermark "source partition p is forwarded up to offset
  o" (every lane gets the watermark, with or without events). A projection agent that
  reaches a watermark has applied everything before it in that lane, and records the
  checkpoint (`<name>#<lane>`, p) = o in Cassandra. A consistency token (p, o) is reached
  for a projection when every lane's checkpoint for p is at least o (api.wiring.Backend).
  Bundling makes Faust's per-message cost a per-batch cost.
* Delivery is at least once: the router forwards and awaits the acks before its batch
  is acknowledged, so a crash re-forwards; a batch interrupted by a shutdown is not
  committed either (committed_only_when_done); projectors are idempotent, so a repeat
  changes nothing. Faust's exactly-once mode is not used.
* A lane batch is planned as a whole (projections.batch: the reads of all its events in
  a few concurrent rounds, each key's events in order over the writes of the ones
  before) and written in a few concurrent rounds (ReadStore.apply_groups: each key's
  writes in order, consecutive events merged into LOGGED batches).
* A projector that fails on an event is parked in `dead_letters` and the lane goes on
  without that event's writes. An unreachable Cassandra is not a poison event:
  the agent waits and retries the same batch until it answers, skipping nothing.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import time
import traceback
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Awaitable, Callable, Optional, Sequence

import faust
import orjson

from aiokafka.partitioner import murmur2

from domain.events import Event, EventDecodeError, UnknownEvent, decode_event, encode_event, event_from_plain, format_time, utc_now
from observability.metrics import EVENTS_SKIPPED
from projections.batch import plan_batch
from projections.projector import Projector
from projections.store import Checkpoint, DeadLetter, ReadStore, ReadStoreUnavailable
from streams.kafka_topics import ensure_topics
from streams.lanes import lane_name

log = logging.getLogger("photostream.worker")

WATERMARK = b"#"  # a bare watermark message (written by earlier versions; still read)
BUNDLE = b"B"  # a bundle: one lane's events of one router batch, then its watermark
BUNDLE_BYTES = 256 * 1024  # well under Kafka's 1 MB message limit; bigger bundles are split
ROUTE_BATCH, ROUTE_WITHIN = 2000, 0.05
PROJECT_BATCH, PROJECT_WITHIN = 100, 0.05  # messages (bundles) per lane batch
RETRIES = 3


def projection_topic(source: str, projector: Projector) -> str:
    """Lanes are named after their events topic, so deployments never share them."""
    return f"{source}.projection.{projector.name}.v{projector.version}"


@dataclass(frozen=True)
class KafkaTopology:
    brokers: str  # faust broker URL, e.g. "kafka://127.0.0.1:9092"
    topic: str
    partitions: int
    replication: int

    @staticmethod
    def from_url(url: str) -> KafkaTopology:
        """`kafka://host:port[,host:port]?topic=...&partitions=...&replication=...`"""
        from streams.kafka_event_store import parse_kafka_url  # the one parser of kafka URLs

        parsed = parse_kafka_url(url)
        return KafkaTopology(
            "kafka://" + ";".join(parsed.bootstrap_servers.split(",")),
            parsed.topic,
            parsed.partitions,
            parsed.replication,
        )


Marks = dict[int, tuple[int, Optional[str]]]  # source partition -> (offset forwarded up to, its occurred_at)


def lane_of(key: bytes, lanes: int) -> int:
    """Kafka's default partitioner (murmur2), so a key keeps the lane that keyed sends
    by earlier versions gave it. On the router's hot path: once per event and projector."""
    return (murmur2(key) & 0x7FFFFFFF) % lanes


def encode_watermark(reached: Marks) -> bytes:
    return WATERMARK + orjson.dumps({str(p): [o, t] for p, (o, t) in reached.items()})


def _plain_marks(marks: dict[str, Any]) -> Marks:
    return {int(p): (int(o), t) for p, (o, t) in marks.items()}


def encode_bundles(entries: Sequence[tuple[bytes, int, int, bytes, bool]], reached: Marks | None) -> list[bytes]:
    """One lane's share of a router batch: (key, source partition, offset, event JSON,
    whether it decoded) entries in log order, then the watermark (in the last bundle).
    Event bodies are embedded as they are (orjson.Fragment), not parsed and re-encoded;
    a body that is not an event travels base64-encoded, to be parked as it was."""
    bundles: list[bytes] = []
    chunk: list[Any] = []
    size = 0
    for key, partition, offset, body, decoded in entries:
        if chunk and size + len(body) > BUNDLE_BYTES:
            bundles.append(BUNDLE + orjson.dumps({"e": chunk}))
            chunk, size = [], 0
        embedded = orjson.Fragment(body) if decoded else None
        chunk.append([key.decode(), partition, offset, embedded] + ([] if decoded else [base64.b64encode(body).decode()]))
        size += len(body) * (1 if decoded else 2) + len(key) + 32
    doc: dict[str, Any] = {"e": chunk}
    if reached:
        doc["w"] = {str(p): [o, t] for p, (o, t) in reached.items()}
    bundles.append(BUNDLE + orjson.dumps(doc))
    return bundles


@dataclass
class LaneEntry:
    """One event as a lane carries it."""

    key: str
    partition: int  # where it sits in the events topic (dead letters point there)
    offset: int
    event: Event | None  # None: undecodable
    error: str | None = None
    body: bytes = b""


def decode_lane_message(value: bytes, lane_partition: int, lane_offset: int, key: bytes | None) -> tuple[list[LaneEntry], Marks]:
    """The events and the watermark one lane message carries (bundles, and the single
    event or bare watermark messages of earlier versions)."""
    if value[:1] == WATERMARK:
        return [], _plain_marks(orjson.loads(value[1:]))
    if value[:1] != BUNDLE:
        return [_entry((key or b"").decode(), lane_partition, lane_offset, value)], {}
    doc = orjson.loads(value[1:])
    entries = []
    for entry_key, partition, offset, body, *raw in doc.get("e", ()):
        if raw:  # the router could not decode it either
            entries.append(_entry(entry_key, partition, offset, base64.b64decode(raw[0])))
            continue
        try:
            event = event_from_plain(body)
        except EventDecodeError as exc:
            entries.append(LaneEntry(entry_key, partition, offset, None, str(exc), orjson.dumps(body)))
            continue
        entries.append(LaneEntry(entry_key, partition, offset, event))
    return entries, _plain_marks(doc.get("w", {}))


def _entry(key: str, partition: int, offset: int, body: bytes) -> LaneEntry:
    try:
        return LaneEntry(key, partition, offset, decode_event(body), body=body)
    except EventDecodeError as exc:
        return LaneEntry(key, partition, offset, None, str(exc), body)


class LaneApplier:
    """Applies one projector's lane batches to the read store.

    A batch's events are grouped by key and planned together (projections.batch: a
    few concurrent read rounds for the whole batch), then written in a few concurrent
    rounds (ReadStore.apply_groups), then the watermarks seen become checkpoints. The
    whole batch runs in one pool thread: the store adapter is synchronous."""

    def __init__(self, projector: Projector, store: ReadStore, pool: ThreadPoolExecutor) -> None:
        self.projector = projector
        self.store = store
        self.pool = pool

    async def apply_batch(self, messages: Sequence[Any]) -> int:
        """Apply the events of lane messages, then record their watermarks. Returns how
        many events were applied."""
        by_key: dict[str, list[LaneEntry]] = defaultdict(list)
        watermarks: dict[tuple[int, int], tuple[int, str | None]] = {}
        for message in messages:
            entries, marks = decode_lane_message(message.value, message.partition, message.offset, message.key)
            for entry in entries:
                by_key[entry.key].append(entry)
            for source, mark in marks.items():
                lane_source = (message.partition, source)
                if mark[0] > watermarks.get(lane_source, (-1, None))[0]:
                    watermarks[lane_source] = mark
        groups = list(by_key.values())
        checkpoints = [
            Checkpoint(lane_name(self.projector.name, lane), source, offset, event_time)
            for (lane, source), (offset, event_time) in watermarks.items()
        ]
        loop = asyncio.get_running_loop()
        await _until_store_answers(lambda: loop.run_in_executor(self.pool, self._apply, groups, checkpoints))
        return sum(len(g) for g in groups)

    def _apply(self, groups: list[list[LaneEntry]], checkpoints: list[Checkpoint]) -> None:
        decoded: list[list[tuple[Event, LaneEntry]]] = []
        for group in groups:
            for entry in group:
                if entry.event is None:
                    self._park(entry, entry.error or "undecodable")
            handled = [(e.event, e) for e in group if e.event is not None and self.projector.handles(e.event)]
            if handled:
                decoded.append(handled)
        try:
            plans = plan_batch(self.projector, decoded, self.store)
            for group_plan in plans:
                for plan in group_plan:
                    if plan.error is not None:
                        self._park(plan.source, plan.error)
            self.store.apply_groups([[p.writes for p in group_plan if p.error is None] for group_plan in plans])
        except ReadStoreUnavailable:
            raise  # not the events' fault: the batch waits and is retried whole
        except Exception:
            # Cassandra refused something (a value too big, a key it cannot bind): find
            # the event at fault by going one event at a time, as the batch would have.
            log.exception("projection %s: batch failed; applying its events one by one", self.projector.name)
            for group in decoded:
                for event, entry in group:
                    self._apply_alone(event, entry)
        if checkpoints:
            self.store.save_checkpoints(checkpoints)

    def _apply_alone(self, event: Event, entry: LaneEntry) -> None:
        error: str | None = None
        for attempt in range(RETRIES):
            try:
                (plan,) = plan_batch(self.projector, [[(event, entry)]], self.store)[0]
                if plan.error is None:
                    self.store.apply(plan.writes)
                    return
                error = plan.error
                break
            except ReadStoreUnavailable:
                raise
            except Exception as exc:  # a poison event must not stop the lane
                error = "".join(traceback.format_exception_only(exc)).strip()
                time.sleep(0.05 * (attempt + 1))
        self._park(entry, error or "failed")

    def _park(self, entry: LaneEntry, error: str) -> None:
        event = entry.event
        log.error("projection %s parks event at %s/%s: %s", self.projector.name, entry.partition, entry.offset, error)
        self.store.add_dead_letter(
            DeadLetter(
                projection=self.projector.name,
                partition=entry.partition,
                position=entry.offset,
                event_id=event.event_id if event else "",
                event_type=event.type if event else "?",
                error=error,
                body=entry.body or (encode_event(event) if event else b""),
                failed_at=format_time(utc_now()),
            )
        )


async def _until_store_answers(attempt: Callable[[], Any]) -> Any:
    """Retry while the read store is unreachable: pause, never skip."""
    delay = 0.5
    while True:
        try:
            return await attempt()
        except ReadStoreUnavailable as exc:
            log.warning("read store unavailable (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)


async def committed_only_when_done(events: Sequence[Any], work: Awaitable[Any]) -> None:
    """Run a `take_events` batch's work; only then may its offsets be committed.

    `take_events` acks its batch in a `finally`, so also when the work is interrupted: a
    SIGTERM cancels the agents mid-batch and Faust, on its way out, commits every acked
    offset. The batch would then count as done without having been forwarded or applied,
    and a restarted worker would never see it (its lanes' checkpoints would stand still,
    or later watermarks would step over the hole). One more reference on each message,
    released only after the work, keeps an interrupted batch uncommitted: the next worker
    gets it again, and idempotent projectors make the repeat harmless."""
    for event in events:
        event.message.incref()
    await work
    for event in events:
        event.ack()  # ours; take_events' own ack, on its next step, is the last one


LANE_RETENTION = timedelta(days=7)  # copies of the log, rebuilt from it when needed


async def create_lane_topics(topology: KafkaTopology, projectors: Sequence[Projector]) -> None:
    """Create every projection's lane topic before the worker joins its group.

    Faust would create them itself while starting, but a consumer group assigns only the
    topics that exist when it rebalances: a lane created a moment too late is left out
    of the assignment until the next metadata refresh (minutes), and its projection
    stands still meanwhile. Idempotent: existing topics are left as they are."""
    from aiokafka.admin import NewTopic

    bootstrap = ",".join(topology.brokers.removeprefix("kafka://").split(";"))
    configs = {"retention.ms": str(int(LANE_RETENTION.total_seconds() * 1000))}
    topics = [NewTopic(projection_topic(topology.topic, p), topology.partitions, topology.replication, topic_configs=configs) for p in projectors]
    await ensure_topics(bootstrap, topics, client_id="photostream-worker-admin", timeout=30)


def create_app(
    topology: KafkaTopology,
    projectors: list[Projector],
    store: ReadStore,
    *,
    datadir: str,
    threads: int | None = None,
) -> faust.App:
    # One consumer group per events topic: workers of one deployment share the work;
    # another topic (another deployment, a test) never joins their group.
    app = faust.App(
        f"photostream-projections-{topology.topic}",
        datadir=datadir,
        broker=topology.brokers,
        value_serializer="raw",
        key_serializer="raw",
        topic_partitions=topology.partitions,
        topic_replication_factor=topology.replication,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        web_enabled=False,
        store="memory://",
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        stream_wait_empty=False,
    )
    source = app.topic(topology.topic, value_serializer="raw", key_serializer="raw")
    lanes = {
        p.name: app.topic(
            projection_topic(topology.topic, p),
            partitions=topology.partitions,
            replicas=topology.replication,
            internal=True,
            retention=LANE_RETENTION,
            value_serializer="raw",
            key_serializer="raw",
        )
        for p in projectors
    }
    pool = ThreadPoolExecutor(threads or len(projectors), thread_name_prefix="project")

    @app.agent(source, name="route")
    async def route(stream: faust.StreamT) -> None:
        async for events in stream.take_events(ROUTE_BATCH, within=ROUTE_WITHIN):
            await committed_only_when_done(events, forward(events))

    async def forward(events: Sequence[Any]) -> None:
        # One bundle per projection and lane (more if big) carries that lane's share of
        # the batch and the batch's watermark: a few messages per batch, not one per
        # event and projection, so Faust's per-message cost is paid per bundle.
        shares: dict[tuple[str, int], list[tuple[bytes, int, int, bytes]]] = defaultdict(list)
        reached: Marks = {}
        for ev in events:
            message = ev.message
            try:
                event: Event | None = decode_event(message.value)
            except EventDecodeError:
                event = None  # every projection parks it as a dead letter
            if event is not None and isinstance(event.data, UnknownEvent):
                EVENTS_SKIPPED.inc(type=event.type)  # written by newer code: no lane wants it
            if message.offset > reached.get(message.partition, (-1, None))[0]:
                reached[message.partition] = (message.offset, format_time(event.occurred_at) if event else None)
            for p in projectors:
                if event is None or p.handles(event):
                    key = p.key(event).encode() if event is not None else b""
                    shares[(p.name, lane_of(key, topology.partitions))].append(
                        (key, message.partition, message.offset, message.value, event is not None)
                    )
        # Lanes with events first: each send costs the event loop about half a
        # millisecond, and a quiet batch (one post) has a watermark for every lane of
        # every projection (~200 sends); the post's own copies should not wait behind them.
        pending = []
        busy = [(p, lane) for p in projectors for lane in range(topology.partitions) if (p.name, lane) in shares]
        quiet = [(p, lane) for p in projectors for lane in range(topology.partitions) if (p.name, lane) not in shares]
        for p, lane in busy + quiet:
            for bundle in encode_bundles(shares.get((p.name, lane), ()), reached):
                pending.append(await lanes[p.name].send(value=bundle, partition=lane))
        # The batch is acknowledged (its offsets committable) only once Kafka has every copy.
        await asyncio.gather(*pending)

    for projector in projectors:
        applier = LaneApplier(projector, store, pool)

        async def project(stream: faust.StreamT, applier: LaneApplier = applier) -> None:
            async for events in stream.take_events(PROJECT_BATCH, within=PROJECT_WITHIN):
                await committed_only_when_done(events, applier.apply_batch([e.message for e in events]))

        app.agent(lanes[projector.name], name=f"project_{projector.name}")(project)
    return app
