"""The event store port: what commands, runners and tools need of the log.

Adapters: streams.sqlite_event_store (embedded) and streams.kafka_event_store.
"""
from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Protocol, Sequence, TypeVar

from domain.events import Event, Recorded

ANY_VERSION = -1  # append without an expected-version check
T = TypeVar("T")


class EventStoreError(Exception):
    """Base of what the event store refuses."""


class ConcurrencyError(EventStoreError):
    """The stream moved on since the command read it: re-read and decide again."""

    def __init__(self, stream: str, expected: int, actual: int) -> None:
        super().__init__(f"stream {stream} is at version {actual}, expected {expected}")
        self.stream, self.expected, self.actual = stream, expected, actual


class UniqueViolation(EventStoreError):
    """A value that must be unique (a username) is already claimed by someone else."""

    def __init__(self, namespace: str, value: str, owner: str) -> None:
        super().__init__(f"{namespace} {value!r} is already taken")
        self.namespace, self.value, self.owner = namespace, value, owner


class EventStoreUnavailable(EventStoreError):
    """The log cannot be reached: nothing was appended; the caller may retry later."""


@dataclass(frozen=True)
class UniqueClaim:
    """Reserve `value` in `namespace` for `owner`, atomically with an append."""

    namespace: str
    value: str
    owner: str


@dataclass(frozen=True)
class Append:
    """One append as `EventStore.append` takes it, for `append_many`."""

    stream: str
    events: tuple[Event, ...]
    expected_version: int = ANY_VERSION
    claims: tuple[UniqueClaim, ...] = ()


@dataclass(frozen=True)
class ConsistencyToken:
    """Where in the log a write landed: partition -> position of its last event there."""

    positions: dict[int, int]

    def encode(self) -> str:
        text = ".".join(f"{p}-{o}" for p, o in sorted(self.positions.items())) or "-"
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @staticmethod
    def decode(token: str) -> ConsistencyToken:
        try:
            padded = token + "=" * (-len(token) % 4)
            text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
            if text == "-":
                return ConsistencyToken({})  # issued when the log was empty
            positions: dict[int, int] = {}
            for part in text.split("."):
                partition, offset = part.split("-")
                positions[int(partition)] = int(offset)
            if not positions or any(p < 0 or o < 0 for p, o in positions.items()):
                raise ValueError
            return ConsistencyToken(positions)
        except (ValueError, UnicodeError) as exc:
            raise ValueError("X-Consistency-Token is not a token this server issued") from exc

    @staticmethod
    def at_head(head: dict[int, int]) -> ConsistencyToken:
        """The token of everything in the log now (empty partitions are left out: there
        is nothing in them to wait for)."""
        return ConsistencyToken({p: o for p, o in head.items() if o >= 0})

    def merge(self, other: ConsistencyToken) -> ConsistencyToken:
        merged = dict(self.positions)
        for p, o in other.positions.items():
            merged[p] = max(o, merged.get(p, -1))
        return ConsistencyToken(merged)


@dataclass(frozen=True)
class AppendResult:
    positions: tuple[tuple[int, int], ...]  # (partition, position) of each appended event

    @property
    def token(self) -> ConsistencyToken:
        merged: dict[int, int] = {}
        for partition, position in self.positions:
            merged[partition] = max(position, merged.get(partition, -1))
        return ConsistencyToken(merged)


class EventStore(Protocol):
    """An append-only log of events, partitioned, keyed by stream (aggregate id)."""

    partitions: int

    async def append(
        self,
        stream: str,
        events: Sequence[Event],
        *,
        expected_version: int = ANY_VERSION,
        claims: Sequence[UniqueClaim] = (),
    ) -> AppendResult:
        """Durably append events to one stream. Idempotent per event_id."""

    async def append_many(self, appends: Sequence[Append]) -> None:
        """Bulk loads (seeding): the appends, in order, each as `append` would write it
        (stream versions, expected versions and claims checked, also against earlier
        appends of the same call), far faster. Every check is made before anything is
        written, so a call refused by a check writes nothing. Unlike `append`: not
        idempotent per event_id (give it new events only), and without compare-and-set,
        so not for a log others write at the same time."""

    async def read_stream(self, stream: str) -> list[Recorded]:
        """Every event of one stream, in order (write-side loading)."""

    async def lookup_unique(self, namespace: str, value: str) -> str | None:
        """The owner of a claimed unique value, if any."""

    async def read(self, partition: int, after: int, limit: int) -> list[Recorded]:
        """Events of one partition with position > after, in order."""

    async def head(self) -> dict[int, int]:
        """The position of the newest event of each partition (-1 when empty)."""

    async def ping(self) -> None:
        """Raise EventStoreUnavailable when the log cannot be reached."""

    async def close(self) -> None: ...


# ----- shared by the adapters ----------------------------------------------------------


def check_append(stream: str, events: Sequence[Event]) -> None:
    """What every append must be: events, all of the stream appended to."""
    if not events:
        raise EventStoreError("nothing to append")
    if any(e.stream != stream for e in events):
        raise EventStoreError(f"every event must belong to stream {stream}")


def check_appends(appends: Sequence[Append], heads: dict[str, int], owners: dict[tuple[str, str], str]) -> list[int]:
    """append_many's checks of the log's state, all made before anything is written
    (each append's shape is checked before, with check_append): its expected version
    against its stream's head (`heads`, moved on by the earlier appends of the call) and
    its claims against their owners (`owners`, including the earlier claims of the call).
    Returns the head each append starts from; `heads` and `owners` end as the call
    leaves them."""
    starts: list[int] = []
    for a in appends:
        head = heads.get(a.stream, 0)
        if a.expected_version != ANY_VERSION and a.expected_version != head:
            raise ConcurrencyError(a.stream, a.expected_version, head)
        for claim in a.claims:
            owner = owners.setdefault((claim.namespace, claim.value), claim.owner)
            if owner != claim.owner:
                raise UniqueViolation(claim.namespace, claim.value, owner)
        starts.append(head)
        heads[a.stream] = head + len(a.events)
    return starts


async def gather_bounded(calls: Sequence[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Run the calls with at most `limit` in flight; their results in order (bulk loads
    against a store that must not get thousands of requests at once)."""
    results: list[Any] = [None] * len(calls)
    queue = iter(enumerate(calls))

    async def worker() -> None:
        for i, call in queue:
            results[i] = await call()

    await asyncio.gather(*(worker() for _ in range(min(limit, len(calls)))))
    return results
