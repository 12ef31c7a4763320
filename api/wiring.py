"""The composition root: turns Settings into the stores, runner and command context."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, TypeVar

from commands.context import Argon2Hasher, CommandContext, PasswordHasher
from domain.events import parse_time, utc_now
from domain.ids import IdGenerator
from media.store import MediaStore, open_media_store
from projections.post_cache import PostCache
from projections.projector import Projector
from projections.registry import ProjectionSettings, all_projectors
from projections.store import ReadStore
from projections.versions import VersionedStore
from streams.event_store import ConsistencyToken, EventStore
from streams.lanes import lane_name

from observability.metrics import EVENTS_APPENDED

from api.auth import TokenSigner, load_or_create_secret
from api.settings import Settings

log = logging.getLogger("photostream")
events_log = logging.getLogger("photostream.events")
CHECKPOINT_TTL = 0.002
T = TypeVar("T")


@dataclass(frozen=True)
class ProjectionProgress:
    name: str
    version: int
    position: int  # events applied
    lag_events: int
    lag_seconds: float | None  # age of the oldest applied-up-to event while behind
    status: str  # live | catching up | stopped | rebuilding | switching
    building: int | None = None  # the version a rebuild is building beside this one
    # partition -> (applied up to, lag in events): for /metrics and `projections status`
    partitions: dict[int, tuple[int, int]] = field(default_factory=dict)


@dataclass
class Backend:
    settings: Settings
    events: EventStore
    views: ReadStore
    media: MediaStore
    projectors: list[Projector]
    commands: CommandContext
    signer: TokenSigner
    runner: Any = None  # the embedded runner, when this process projects
    # Distributed: each projection's checkpoints are kept per lane (partition of its
    # topic, see streams.faust_app); a token is reached when every lane has reached it.
    lanes: int | None = None
    # Blocking read stores (Cassandra) are queried from a thread; SQLite answers in
    # microseconds, so the event loop calls it directly.
    query_in_thread: bool = False
    # Hydration's per-process LRU of post contents, stats and authors (the feed).
    post_cache: PostCache = field(default_factory=PostCache, repr=False)
    # Readers whose timeline rebuild this process asked for, and when (monotonic).
    _rebuilds_asked: dict[int, float] = field(default_factory=dict, repr=False)
    _started: bool = field(default=False, repr=False)
    # Waiting requests share one snapshot of the checkpoints, refreshed at most every
    # CHECKPOINT_TTL seconds, instead of each reading the whole table on every poll.
    _checkpoints: tuple[float, dict[tuple[str, int], int]] = field(default=(0.0, {}), repr=False)

    async def query(self, fn: Callable[..., T], *args: Any) -> T:
        if self.query_in_thread:
            return await asyncio.to_thread(fn, self.views, *args)
        return fn(self.views, *args)

    def should_ask_rebuild(self, reader: int, every: float = 5.0) -> bool:
        """At most one rebuild request per reader per `every` seconds from this process:
        until the projection has rebuilt the timeline, each read would ask again."""
        now = time.monotonic()
        if now - self._rebuilds_asked.get(reader, float("-inf")) < every:
            return False
        if len(self._rebuilds_asked) > 10_000:
            self._rebuilds_asked = {r: t for r, t in self._rebuilds_asked.items() if now - t < every}
        self._rebuilds_asked[reader] = now
        return True

    def reached(self, token: ConsistencyToken, projections: Iterable[str] | None = None) -> bool:
        """Whether every projection (or the named ones) has applied everything up to the token."""
        done = self._checkpoint_snapshot()
        if not self.projectors:
            return True
        chosen = [p.name for p in self.projectors] if projections is None else list(projections)
        names = chosen if self.lanes is None else [lane_name(n, lane) for n in chosen for lane in range(self.lanes)]
        return all(done.get((name, partition), -1) >= position for name in names for partition, position in token.positions.items())

    def _checkpoint_names(self, projection: str) -> list[str]:
        return [projection] if self.lanes is None else [lane_name(projection, lane) for lane in range(self.lanes)]

    async def progress(self) -> list[ProjectionProgress]:
        """How far each projection has got and how far behind the log it is."""
        head = await self.events.head()
        checkpoints = await self.query(lambda views: views.load_checkpoints())
        done = {(c.projection, c.partition): c for c in checkpoints}
        now = utc_now()
        report = []
        states = await self.query(lambda views: views.states(fresh=True)) if hasattr(self.views, "states") else {}
        for projector in self.projectors:
            applied = lag = 0
            oldest: str | None = None
            per_partition: dict[int, tuple[int, int]] = {}
            for partition, last in head.items():
                marks = [done.get((name, partition)) for name in self._checkpoint_names(projector.name)]
                reached = min((m.position if m else -1) for m in marks)
                if self.lanes is None:  # embedded positions count from 1
                    behind = max(last - max(reached, 0), 0)
                    applied += max(reached, 0)
                else:  # Kafka offsets count from 0
                    behind = max(last - reached, 0)
                    applied += reached + 1
                lag += behind
                per_partition[partition] = (reached, behind)
                times = [m.event_time for m in marks if m is not None and m.event_time]
                if times and (oldest is None or min(times) < oldest):
                    oldest = min(times)
            seconds = 0.0
            if lag:
                seconds = (now - parse_time(oldest)).total_seconds() if oldest else float("nan")
            stopped = self.runner is not None and self.runner.error is not None
            version = states.get(projector.name)
            status = "stopped" if stopped else ("live" if lag == 0 else "catching up")
            if version is not None and version.state != "live" and not stopped:
                status = "switching" if version.state == "switching" else "rebuilding"
            report.append(
                ProjectionProgress(
                    name=projector.name,
                    version=version.active if version is not None else 1,
                    position=applied,
                    lag_events=lag,
                    lag_seconds=round(max(seconds, 0.0), 3) if seconds == seconds else None,
                    status=status,
                    building=version.building if version is not None else None,
                    partitions=per_partition,
                )
            )
        return report

    def _checkpoint_snapshot(self) -> dict[tuple[str, int], int]:
        taken, snapshot = self._checkpoints
        now = time.monotonic()
        if now - taken > CHECKPOINT_TTL:
            snapshot = {(c.projection, c.partition): c.position for c in self.views.load_checkpoints()}
            self._checkpoints = (now, snapshot)
        return snapshot

    async def wait_for(self, token: ConsistencyToken, timeout: float, projections: Iterable[str] | None = None) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.001
        while True:
            if await self.query(lambda _views: self.reached(token, projections)):
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(min(delay, max(deadline - loop.time(), 0)))
            delay = min(delay * 2, 0.02)

    async def start(self) -> None:
        if self._started:
            return
        starter = getattr(self.events, "start", None)
        if starter is not None:  # the Kafka store connects its producer and index here
            await starter()
        if self.runner is not None:
            self.runner.start()
        self._started = True

    async def close(self) -> None:
        if self.runner is not None:
            await asyncio.to_thread(self.runner.stop)
        await self.events.close()
        self.views.close()


def open_backend(
    settings: Settings, *, hasher: PasswordHasher | None = None, run_projections: bool = True, bulk: bool = False
) -> Backend:
    """Build the backend the settings name. Embedded: SQLite log and views, local media,
    and (when run_projections) the in-process projection runner. bulk=True (seeding)
    trades the per-command fsync for speed; the caller flushes at the end."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    projectors = all_projectors(projection_settings(settings))
    if settings.feed_read == "naive":  # the baseline keeps no timelines at all
        projectors = [p for p in projectors if p.name != "home_timeline"]
    events, views, runner, threaded = _open_stores(settings, projectors, run_projections, bulk)
    media = open_media_store(settings.media_store)
    commands = CommandContext(
        events=CountingEvents(events),
        ids=IdGenerator(settings.worker_id),
        hasher=hasher or Argon2Hasher(),
        media=media,
        max_upload_bytes=settings.max_upload_bytes,
        max_upload_pixels=settings.max_upload_pixels,
    )
    signer = TokenSigner(
        load_or_create_secret(settings.data_dir, settings.secret_key), settings.token_ttl_days * 86400
    )
    lanes = None if settings.embedded else _partitions(settings.event_store)
    return Backend(
        settings=settings,
        events=events,
        views=views,
        media=media,
        projectors=projectors,
        commands=commands,
        signer=signer,
        runner=runner,
        lanes=lanes,
        query_in_thread=threaded,
    )


class CountingEvents:
    """The event store as commands see it: each append is counted by event type
    (photostream_events_appended_total) and logged with its correlation id."""

    def __init__(self, inner: EventStore) -> None:
        self.inner = inner

    async def append(self, stream: str, events: Any, **kwargs: Any) -> Any:
        result = await self.inner.append(stream, events, **kwargs)
        for event in events:
            EVENTS_APPENDED.inc(type=event.type)
        events_log.info(
            "appended %s to %s",
            ", ".join(e.type for e in events),
            stream,
            extra={
                "correlation_id": events[0].correlation_id,
                "event_ids": [e.event_id for e in events],
                "positions": [list(p) for p in result.positions],
            },
        )
        return result

    async def append_many(self, appends: Any) -> None:
        await self.inner.append_many(appends)
        for append in appends:
            for event in append.events:
                EVENTS_APPENDED.inc(type=event.type)
        events_log.info("appended %d events to %d streams in bulk", sum(len(a.events) for a in appends), len(appends))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def projection_settings(settings: Settings) -> ProjectionSettings:
    return ProjectionSettings(
        timeline_max=settings.timeline_max,
        celebrity_threshold=settings.celebrity_threshold,
        celebrity_demote=round(settings.celebrity_threshold * (1 - settings.celebrity_hysteresis)),
        pull_sources=settings.celebrity_sources,
        inactive_days=settings.inactive_days,
        notification_group_hours=settings.notification_group_hours,
    )


def _partitions(kafka_url: str) -> int:
    from streams.faust_app import KafkaTopology

    return KafkaTopology.from_url(kafka_url).partitions


def _open_stores(settings: Settings, projectors: list[Projector], run_projections: bool, bulk: bool) -> tuple[Any, Any, Any, bool]:
    if settings.event_store.startswith("sqlite:") and settings.read_store.startswith("sqlite:"):
        from projections.sqlite_store import SqliteReadStore
        from streams.embedded_runner import EmbeddedRunner
        from streams.sqlite_event_store import SqliteEventStore

        events = SqliteEventStore.from_url(settings.event_store, durable=not bulk)
        store = SqliteReadStore.from_url(settings.read_store)
        views = VersionedStore(store, projectors)
        views.ensure_tables(t for p in projectors for t in p.tables)
        # The runner has its own view of the registry, reloaded inside each of its
        # transactions (never from a query thread's stale read).
        runner = EmbeddedRunner(events, VersionedStore(store, projectors, ttl=None), projectors) if run_projections else None
        return events, views, runner, False
    if settings.event_store.startswith("kafka:") and settings.read_store.startswith("cassandra:"):
        from projections.cassandra_store import CassandraReadStore
        from streams.kafka_event_store import KafkaEventStore

        # A bulk load marks its rows published only after a whole chunk is produced, which
        # can take longer than the sweep's age bound: its own sweep would re-send them.
        quiet = {"sweep_seconds": None} if bulk else {}
        kafka_events = KafkaEventStore.from_urls(settings.event_store, settings.read_store, **quiet)
        cassandra_views = VersionedStore(CassandraReadStore.from_url(settings.read_store), projectors)
        cassandra_views.ensure_tables(t for p in projectors for t in p.tables)
        return kafka_events, cassandra_views, None, True
    raise ValueError(
        "the distributed backends need PHOTOSTREAM_EVENT_STORE=kafka://... together with "
        "PHOTOSTREAM_READ_STORE=cassandra://...; mixing an embedded store with a distributed one is not supported"
    )
