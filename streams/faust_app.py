"""The distributed projection pipeline: a Faust app.

Topology (all topics have the events topic's partition count):

    photostream.events --route--> photostream.events.projection.<name>.v<version>  (one per projector)
                                      |  keyed by projector.key(event)
                                      v
                                  project_<name> agents --> Cassandra read models

* `route` reads the log and forwards each event to the topic of every projector that
  handles it, keyed by what that projector's writes must be serialized by (a post's
  likes by post, followers by followee, ...). One lane (partition) is consumed by one
  worker at a time, so one count is never updated by two workers at once: counts stay
  exact without counter columns or lightweight transactions.
* After every batch `route` sends a watermark to every lane of every projection topic:
  "source partition p is forwarded up to offset o". A projection agent that reaches a
  watermark has applied everything before it in that lane, and records the checkpoint
  (`<name>#<lane>`, p) = o in Cassandra. A consistency token (p, o) is reached for a
  projection when every lane's checkpoint for p is at least o (api.wiring.Backend).
* Delivery is at least once: the router forwards and awaits the acks before its batch
  is acknowledged, so a crash re-forwards; projectors are idempotent, so a repeat changes
  nothing. Faust's exactly-once mode is not used.
* Within a batch the events of different keys are applied concurrently (threads: the
  Cassandra adapter is synchronous), the events of one key in order.
* A projector that fails on an event is retried, then the event is parked in
  `dead_letters` and the lane goes on. An unreachable Cassandra is not a poison event:
  the agent waits and retries the same batch until it answers, skipping nothing.
"""
from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit

import faust
import orjson

from domain.events import Event, EventDecodeError, UnknownEvent, decode_event, format_time, utc_now
from observability.metrics import EVENTS_SKIPPED
from projections.projector import Projector
from projections.store import Checkpoint, DeadLetter, ReadStore, ReadStoreUnavailable
from streams.lanes import lane_name

log = logging.getLogger("photostream.worker")

WATERMARK = b"#"  # first byte of a watermark message; event bodies are JSON objects ("{")
ROUTE_BATCH, ROUTE_WITHIN = 1000, 0.05
PROJECT_BATCH, PROJECT_WITHIN = 1000, 0.05
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


def encode_watermark(reached: dict[int, tuple[int, str | None]]) -> bytes:
    """{source partition: (offset forwarded up to, occurred_at of that event)}."""
    return WATERMARK + orjson.dumps({str(p): [o, t] for p, (o, t) in reached.items()})


def decode_watermark(value: bytes) -> dict[int, tuple[int, str | None]]:
    return {int(p): (int(o), t) for p, (o, t) in orjson.loads(value[1:]).items()}


class LaneApplier:
    """Applies one projector's batches to the read store (runs in worker threads)."""

    def __init__(self, projector: Projector, store: ReadStore, pool: ThreadPoolExecutor) -> None:
        self.projector = projector
        self.store = store
        self.pool = pool

    async def apply_batch(self, messages: Sequence[Any]) -> int:
        """Apply events grouped by key (keys concurrently, each key in order), then record
        the watermarks seen. Returns how many events were applied."""
        by_key: dict[bytes, list[Any]] = defaultdict(list)
        watermarks: dict[tuple[int, int], tuple[int, str | None]] = {}
        for message in messages:
            value: bytes = message.value
            if value[:1] == WATERMARK:
                for source, mark in decode_watermark(value).items():
                    key = (message.partition, source)
                    if mark[0] > watermarks.get(key, (-1, None))[0]:
                        watermarks[key] = mark
            else:
                by_key[message.key or b""].append(message)
        loop = asyncio.get_running_loop()
        await _until_store_answers(
            lambda: asyncio.gather(*(loop.run_in_executor(self.pool, self._apply_in_order, group) for group in by_key.values()))
        )
        if watermarks:
            checkpoints = [
                Checkpoint(lane_name(self.projector.name, lane), source, offset, event_time)
                for (lane, source), (offset, event_time) in watermarks.items()
            ]
            await _until_store_answers(lambda: loop.run_in_executor(self.pool, self.store.save_checkpoints, checkpoints))
        return sum(len(g) for g in by_key.values())

    def _apply_in_order(self, messages: list[Any]) -> None:
        for message in messages:
            self._apply_one(message)

    def _apply_one(self, message: Any) -> None:
        try:
            event = decode_event(message.value)
        except EventDecodeError as exc:
            self._park(message, None, exc)
            return
        error: Exception | None = None
        for attempt in range(RETRIES):
            try:
                self.store.apply(self.projector.project(event, self.store))
                return
            except ReadStoreUnavailable:
                raise  # not the event's fault: the whole batch waits and retries
            except Exception as exc:  # a poison event must not stop the lane
                error = exc
                time.sleep(0.05 * (attempt + 1))
        self._park(message, event, error)

    def _park(self, message: Any, event: Event | None, error: Exception | None) -> None:
        log.error("projection %s parks event at %s/%s: %s", self.projector.name, message.partition, message.offset, error)
        self.store.add_dead_letter(
            DeadLetter(
                projection=self.projector.name,
                partition=message.partition,
                position=message.offset,
                event_id=event.event_id if event else "",
                event_type=event.type if event else "?",
                error="".join(traceback.format_exception_only(error)).strip() if error else "undecodable",
                body=message.value,
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


def create_app(
    topology: KafkaTopology,
    projectors: list[Projector],
    store: ReadStore,
    *,
    datadir: str,
    threads: int = 16,
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
            retention=timedelta(days=7),  # copies of the log, rebuilt from it when needed
            value_serializer="raw",
            key_serializer="raw",
        )
        for p in projectors
    }
    pool = ThreadPoolExecutor(threads, thread_name_prefix="project")

    @app.agent(source, name="route")
    async def route(stream: faust.StreamT) -> None:
        async for events in stream.take_events(ROUTE_BATCH, within=ROUTE_WITHIN):
            await forward(events)

    async def forward(events: Sequence[Any]) -> None:
        pending = []
        reached: dict[int, tuple[int, str | None]] = {}
        for ev in events:
            message = ev.message
            try:
                event = decode_event(message.value)
            except EventDecodeError:
                event = None  # every projection parks it as a dead letter
            if event is not None and isinstance(event.data, UnknownEvent):
                EVENTS_SKIPPED.inc(type=event.type)  # written by newer code: no lane wants it
            if message.offset > reached.get(message.partition, (-1, None))[0]:
                reached[message.partition] = (message.offset, format_time(event.occurred_at) if event else None)
            for p in projectors:
                if event is None or p.handles(event):
                    key = p.key(event).encode() if event is not None else b""
                    pending.append(await lanes[p.name].send(key=key, value=message.value))
        mark = encode_watermark(reached)
        for p in projectors:
            for lane in range(topology.partitions):
                pending.append(await lanes[p.name].send(value=mark, partition=lane))
        # The batch is acknowledged (its offsets committable) only once Kafka has every copy.
        await asyncio.gather(*pending)

    for projector in projectors:
        applier = LaneApplier(projector, store, pool)

        async def project(stream: faust.StreamT, applier: LaneApplier = applier) -> None:
            async for events in stream.take_events(PROJECT_BATCH, within=PROJECT_WITHIN):
                await applier.apply_batch([e.message for e in events])

        app.agent(lanes[projector.name], name=f"project_{projector.name}")(project)
    return app
