"""The live stream's delivery: which connected account hears of which event, and when.

Each API process holds its own WebSocket connections in a LiveHub and learns of events
itself, never through another process's memory:

* embedded: the projection runner calls the hub after each committed batch;
* distributed: a LiveTail consumes the events topic from its end with a group-less
  Kafka consumer (it joins no consumer group, so it takes no lane from the projection
  workers) and hands each batch to the hub once the projections it presents from have
  reached it (checkpoints, as read-your-writes waits do).

The hub reads what it pushes from the read models, so a frame shows exactly what a
GET would, and a reconnecting client's resume (from the read models) and the live
frames are the same data. Each connection has a bounded queue: a client that does not
keep up is dropped, never allowed to grow the process's memory.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable

import orjson

from domain.events import (
    CommentAdded,
    ConversationRead,
    Event,
    Followed,
    FollowRequested,
    Liked,
    MessageSent,
    NotificationsRead,
    PostCreated,
    PostEdited,
    decode_event,
    EventDecodeError,
)
from domain.ids import EPOCH_MS, SEQUENCE_BITS, WORKER_BITS
from projections import notifications as notif
from projections.following import FOLLOWING
from projections.queries import home_feed, post_by_id
from projections.store import ReadView
from streams.event_store import ConsistencyToken

from api import live_views
from api.presenters import post_json

log = logging.getLogger("photostream.live")

FOLLOWER_BATCH = 500  # connected readers checked per read when a post arrives
RESUME_MARGIN_MS = 5_000  # ids come from many processes' clocks: resume a little early
RESUME_POSTS = 50


def now_id() -> int:
    return int(time.time() * 1000 - EPOCH_MS) << (WORKER_BITS + SEQUENCE_BITS)


def margin_before(last_id: int) -> int:
    return max(last_id - (RESUME_MARGIN_MS << (WORKER_BITS + SEQUENCE_BITS)), 0)


class SlowClient(Exception):
    pass


@dataclass(eq=False)
class Connection:
    """One WebSocket: a bounded queue of encoded frames its writer drains."""

    account_id: int
    queue_max: int
    queue: asyncio.Queue[bytes] = field(init=False)
    dropped: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(self.queue_max)

    def offer(self, frame: bytes) -> None:
        if self.dropped.is_set():
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.dropped.set()  # the writer sees it and closes the socket


async def until_first_ends(*coroutines: Awaitable[Any]) -> None:
    """Run a socket's writer, reader and drop watch side by side until one of them ends
    (or raises: a disconnect), then cancel and wait for the others."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task


def frame(kind: str, item_id: str | int | None, **body: Any) -> bytes:
    return orjson.dumps({"type": kind, "id": str(item_id) if item_id is not None else None, **body})


@dataclass
class Delivery:
    """Frames to push once `projections` have reached the event."""

    projections: tuple[str, ...]
    build: Callable[[ReadView], list[tuple[int, bytes]]]  # -> [(account, frame)]


class LiveHub:
    def __init__(self, backend: Any, *, queue_max: int = 256) -> None:
        self.backend = backend
        self.queue_max = queue_max
        self.connections: dict[int, set[Connection]] = {}
        self.window_ms = int(backend.settings.notification_group_hours * 3600 * 1000)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._work: asyncio.Queue[tuple[list[Event], ConsistencyToken | None]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self.delivered = 0

    # ----- connections -----------------------------------------------------------------

    def connect(self, account_id: int) -> Connection:
        conn = Connection(account_id, self.queue_max)
        self.connections.setdefault(account_id, set()).add(conn)
        return conn

    def disconnect(self, conn: Connection) -> None:
        held = self.connections.get(conn.account_id)
        if held is not None:
            held.discard(conn)
            if not held:
                del self.connections[conn.account_id]

    def online(self, account_id: int) -> bool:
        return account_id in self.connections

    def push(self, account_id: int, data: bytes) -> None:
        for conn in list(self.connections.get(account_id, ())):
            conn.offer(data)
            self.delivered += 1

    # ----- the work queue: events in, frames out, in order ------------------------------

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._work = asyncio.Queue()
        self._worker = asyncio.create_task(self._run(), name="live-hub")

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._worker

    def publish_threadsafe(self, events: list[Event]) -> None:
        """From the embedded runner's thread: the read models have these events."""
        if self.loop is not None and self._work is not None and self.connections:
            self.loop.call_soon_threadsafe(self._work.put_nowait, (events, None))

    def publish(self, events: list[Event], token: ConsistencyToken | None) -> None:
        """Events whose frames must wait until the projections reach token."""
        if self._work is not None:
            self._work.put_nowait((events, token))

    async def _run(self) -> None:
        assert self._work is not None
        while True:
            events, token = await self._work.get()
            try:
                await self.deliver(events, token)
            except Exception:
                log.exception("live delivery failed for a batch of %d events", len(events))

    async def deliver(self, events: list[Event], token: ConsistencyToken | None) -> None:
        deliveries = [d for e in events for d in self.deliveries(e)]
        if not deliveries:
            return
        if token is not None:
            wanted = sorted({p for d in deliveries for p in d.projections})
            if not await self.backend.wait_for(token, 30.0, wanted):
                log.warning("live: projections %s did not reach %s in 30 s; pushing what they have", wanted, token)
        frames = await self.backend.query(lambda view: [f for d in deliveries for f in d.build(view)])
        for account, data in frames:
            self.push(account, data)

    # ----- who hears of what ------------------------------------------------------------

    def deliveries(self, event: Event) -> list[Delivery]:
        e = event.data
        out: list[Delivery] = []
        if isinstance(e, Liked) and e.account_id != e.post_author_id and self.online(int(e.post_author_id)):
            out.append(Delivery(("notifications",), lambda v, e=e: self._like_frame(v, e)))
        elif isinstance(e, CommentAdded):
            told = [int(e.post_author_id)] if e.author_id != e.post_author_id else []
            told += [int(m) for m in e.mentions if m not in (e.author_id, e.post_author_id)]
            out += self._notification(told, int(e.comment_id))
        elif isinstance(e, Followed):
            out += self._notification([int(e.followee_id)], int(e.follow_id))
        elif isinstance(e, FollowRequested):
            out += self._notification([int(e.followee_id)], int(e.request_id))
        elif isinstance(e, (PostCreated, PostEdited)):
            out += self._notification([int(m) for m in e.mentions if m != e.author_id], int(e.post_id))
            if isinstance(e, PostCreated):
                out.append(Delivery(("posts", "accounts", "following"), lambda v, e=e: self._post_frames(v, e)))
        elif isinstance(e, MessageSent):
            people = [a for a in (int(e.sender_id), int(e.recipient_id)) if self.online(a)]
            if people:
                out.append(Delivery(("conversations",), lambda v, e=e, people=people: self._message_frames(v, e, people)))
        elif isinstance(e, (NotificationsRead, ConversationRead)):
            account = int(e.account_id if isinstance(e, NotificationsRead) else e.reader_id)
            if self.online(account):
                names = ("notifications",) if isinstance(e, NotificationsRead) else ("conversations",)
                out.append(Delivery(names, lambda v, a=account: [(a, self._unread_frame(v, a))]))
        return out

    def _notification(self, recipients: Iterable[int], notification_id: int) -> list[Delivery]:
        online = [r for r in dict.fromkeys(recipients) if self.online(r)]
        if not online:
            return []
        return [Delivery(("notifications",), lambda v: [f for r in online for f in self._notification_frames(v, r, notification_id)])]

    def _notification_frames(self, view: ReadView, recipient: int, notification_id: int) -> list[tuple[int, bytes]]:
        found = live_views.notification(view, recipient, notification_id)
        if found is None:
            return []  # taken back already, or silenced
        return [
            (recipient, frame("notification", found["activity_id"], notification=found)),
            (recipient, self._unread_frame(view, recipient)),
        ]

    def _like_frame(self, view: ReadView, e: Liked) -> list[tuple[int, bytes]]:
        group = notif.like_group_of(view, int(e.post_id), int(e.like_id), self.window_ms)
        if group is None:
            return []
        return self._notification_frames(view, group["recipient_id"], group["notification_id"])

    def _unread_frame(self, view: ReadView, account: int) -> bytes:
        return frame("unread", None, counts=live_views.unread_counts(view, account, self.window_ms))

    def _message_frames(self, view: ReadView, e: MessageSent, people: list[int]) -> list[tuple[int, bytes]]:
        found = live_views.message(view, e.conversation_id, int(e.message_id))
        if found is None:
            return []
        if notif.silenced(view, int(e.recipient_id), int(e.sender_id), mutes=False):
            people = [a for a in people if a == int(e.sender_id)]
        out = [(a, frame("message", e.message_id, message=found)) for a in people]
        if int(e.recipient_id) in people:
            out.append((int(e.recipient_id), self._unread_frame(view, int(e.recipient_id))))
        return out

    def _post_frames(self, view: ReadView, e: PostCreated) -> list[tuple[int, bytes]]:
        """A new post, to the author's followers connected to THIS process: the connected
        readers are checked against the follow index in batches, so a post by an account
        with millions of followers costs a few reads here, not one push per follower."""
        author = int(e.author_id)
        readers = [a for a in self.connections if a != author]
        following: list[int] = []
        for start in range(0, len(readers), FOLLOWER_BATCH):
            chunk = readers[start : start + FOLLOWER_BATCH]
            rows = view.get_many(FOLLOWING.index, [{FOLLOWING.owner: r, FOLLOWING.other: author} for r in chunk])
            following += [r for r, row in zip(chunk, rows) if row is not None]
        following = [r for r in following if not notif.silenced(view, r, author)]
        if not following:
            return []
        post = post_by_id(view, int(e.post_id), None)
        if post is None:
            return []
        data = frame("post", e.post_id, post=post_json(post))
        return [(r, data) for r in following]

    # ----- resume -------------------------------------------------------------------------

    def resume_frames(self, view: ReadView, account: int, last_id: int) -> list[bytes]:
        """What a client that saw everything up to last_id missed, from the read models,
        oldest first. It starts a little before last_id (ids from several clocks), so a
        client may see an item again: it keeps the ids it has shown."""
        since = margin_before(last_id)
        items: list[tuple[int, bytes]] = []
        for n in live_views.notifications_since(view, account, since, self.window_ms):
            items.append((int(n["activity_id"]), frame("notification", n["activity_id"], notification=n)))
        for m in live_views.messages_since(view, account, since):
            items.append((int(m["id"]), frame("message", m["id"], message=m)))
        # The feed as the reader would read it (mutes and visibility applied).
        for p in home_feed(view, account, None, RESUME_POSTS).items:
            if p.id > since:
                items.append((p.id, frame("post", p.id, post=post_json(p))))
        items.sort(key=lambda item: item[0])
        return [data for _, data in items] + [self._unread_frame(view, account)]


# ----- distributed: tail the events topic ---------------------------------------------------


class LiveTail:
    """Consumes the events topic from its end, group-less (assign, never subscribe), and
    publishes each batch to the hub with the token the projections must reach first."""

    def __init__(self, hub: LiveHub, kafka_url: str) -> None:
        from streams.kafka_event_store import parse_kafka_url

        self.hub = hub
        self.kafka = parse_kafka_url(kafka_url)
        self._task: asyncio.Task[None] | None = None
        self.consumer: Any = None

    async def start(self, timeout: float = 15.0) -> None:
        """Position at the topic's end before the API serves, so that an event appended
        after a client connected is never behind where the tail starts."""
        try:
            self.consumer = await asyncio.wait_for(self._connect(), timeout)
        except Exception as exc:  # Kafka away: serve anyway, the tail keeps trying
            log.warning("live tail could not start yet (%s); retrying in the background", exc)
        self._task = asyncio.create_task(self._run(), name="live-tail")

    async def _connect(self) -> Any:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.kafka.bootstrap_servers,
            client_id="photostream-live-tail",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            fetch_max_wait_ms=20,
        )
        await consumer.start()
        try:
            partitions = consumer.partitions_for_topic(self.kafka.topic) or set()
            if not partitions:
                await consumer._client.force_metadata_update()  # the topic may be new
                partitions = consumer.partitions_for_topic(self.kafka.topic) or set(range(self.kafka.partitions))
            tps = [TopicPartition(self.kafka.topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_end(*tps)
            for tp in tps:  # pin "the end" now, before anything is appended
                await consumer.position(tp)
        except BaseException:
            with contextlib.suppress(Exception):
                await consumer.stop()
            raise
        return consumer

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                if self.consumer is None:
                    self.consumer = await self._connect()
                    delay = 0.5
                batches = await self.consumer.getmany(timeout_ms=500, max_records=500)
                events: list[Event] = []
                positions: dict[int, int] = {}
                for tp, messages in batches.items():
                    for message in messages:
                        positions[tp.partition] = max(positions.get(tp.partition, -1), message.offset)
                        try:
                            events.append(decode_event(message.value))
                        except EventDecodeError:
                            continue
                if events and self.hub.connections:
                    self.hub.publish(events, ConsistencyToken(positions))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Kafka away: retry, the stream resumes from read models
                log.warning("live tail: %s; retrying in %.1fs", exc, delay)
                await self._stop_consumer()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)

    async def _stop_consumer(self) -> None:
        consumer, self.consumer = self.consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(consumer.stop(), 5)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._stop_consumer()


async def start_live(backend: Any) -> tuple[LiveHub, Callable[[], Awaitable[None]]]:
    """The hub for this process and its source; returns (hub, close)."""
    hub = LiveHub(backend, queue_max=backend.settings.stream_queue_max)
    await hub.start()
    tail: LiveTail | None = None
    if backend.runner is not None:
        backend.runner.listeners.append(hub.publish_threadsafe)
    elif backend.settings.event_store.startswith("kafka:"):
        tail = LiveTail(hub, backend.settings.event_store)
        await tail.start()

    async def close() -> None:
        if backend.runner is not None and hub.publish_threadsafe in backend.runner.listeners:
            backend.runner.listeners.remove(hub.publish_threadsafe)
        if tail is not None:
            await tail.close()
        await hub.close()

    return hub, close
