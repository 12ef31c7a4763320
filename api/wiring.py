"""The composition root: turns Settings into the stores, runner and command context."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from commands.context import Argon2Hasher, CommandContext, PasswordHasher
from domain.events import parse_time, utc_now
from domain.ids import IdGenerator
from media.store import MediaStore, open_media_store
from projections.post_cache import PostCache
from projections.projector import Projector
from projections.registry import ProjectionSettings, all_projectors
from projections.store import ReadStore
from streams.event_store import ConsistencyToken, EventStore
from streams.lanes import lane_name

from api.auth import TokenSigner, load_or_create_secret
from api.settings import Settings

log = logging.getLogger("photostream")
CHECKPOINT_TTL = 0.002
T = TypeVar("T")


@dataclass(frozen=True)
class ProjectionProgress:
    name: str
    version: int
    position: int  # events applied
    lag_events: int
    lag_seconds: float | None  # age of the oldest applied-up-to event while behind
    status: str  # live | catching up | stopped


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

    def reached(self, token: ConsistencyToken) -> bool:
        """Whether every projection has applied everything up to the token."""
        done = self._checkpoint_snapshot()
        if not self.projectors:
            return True
        names = (
            [p.name for p in self.projectors]
            if self.lanes is None
            else [lane_name(p.name, lane) for p in self.projectors for lane in range(self.lanes)]
        )
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
        for projector in self.projectors:
            applied = lag = 0
            oldest: str | None = None
            for partition, last in head.items():
                marks = [done.get((name, partition)) for name in self._checkpoint_names(projector.name)]
                reached = min((m.position if m else -1) for m in marks)
                if self.lanes is None:  # embedded positions count from 1
                    applied += max(reached, 0)
                    lag += max(last - max(reached, 0), 0)
                else:  # Kafka offsets count from 0
                    applied += reached + 1
                    lag += max(last - reached, 0)
                times = [m.event_time for m in marks if m is not None and m.event_time]
                if times and (oldest is None or min(times) < oldest):
                    oldest = min(times)
            seconds = 0.0
            if lag:
                seconds = (now - parse_time(oldest)).total_seconds() if oldest else float("nan")
            stopped = self.runner is not None and self.runner.error is not None
            report.append(
                ProjectionProgress(
                    name=projector.name,
                    version=projector.version,
                    position=applied,
                    lag_events=lag,
                    lag_seconds=round(max(seconds, 0.0), 3) if seconds == seconds else None,
                    status="stopped" if stopped else ("live" if lag == 0 else "catching up"),
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

    async def wait_for(self, token: ConsistencyToken, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.001
        while True:
            if await self.query(lambda _views: self.reached(token)):
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
        events=events,
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


def projection_settings(settings: Settings) -> ProjectionSettings:
    return ProjectionSettings(
        timeline_max=settings.timeline_max,
        celebrity_threshold=settings.celebrity_threshold,
        celebrity_demote=round(settings.celebrity_threshold * (1 - settings.celebrity_hysteresis)),
        pull_sources=settings.celebrity_sources,
        inactive_days=settings.inactive_days,
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
        views = SqliteReadStore.from_url(settings.read_store)
        views.ensure_tables(t for p in projectors for t in p.tables)
        runner = EmbeddedRunner(events, views, projectors) if run_projections else None
        return events, views, runner, False
    if settings.event_store.startswith("kafka:") and settings.read_store.startswith("cassandra:"):
        from projections.cassandra_store import CassandraReadStore
        from streams.kafka_event_store import KafkaEventStore

        kafka_events = KafkaEventStore.from_urls(settings.event_store, settings.read_store)
        cassandra_views = CassandraReadStore.from_url(settings.read_store)
        cassandra_views.ensure_tables(t for p in projectors for t in p.tables)
        return kafka_events, cassandra_views, None, True
    raise ValueError(
        "the distributed backends need PHOTOSTREAM_EVENT_STORE=kafka://... together with "
        "PHOTOSTREAM_READ_STORE=cassandra://...; mixing an embedded store with a distributed one is not supported"
    )
