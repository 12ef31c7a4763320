"""What every command handler is given, and the one way they load and append."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Awaitable, Callable, Iterable, Protocol, Sequence, TypeVar

import argon2

from domain.events import DomainEvent, Event, new_event, utc_now
from domain.ids import IdGenerator
from streams.event_store import (
    ANY_VERSION,
    Append,
    ConcurrencyError,
    ConsistencyToken,
    EventStore,
    UniqueClaim,
)

T = TypeVar("T")


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str: ...

    def verify(self, password_hash: str, password: str) -> bool: ...


class Argon2Hasher:
    """argon2id with the library's defaults (RFC 9106 low-memory profile)."""

    def __init__(self) -> None:
        self._hasher = argon2.PasswordHasher()
        # Verifying against a dummy hash for unknown usernames keeps sign-in timing flat.
        self.dummy_hash = self._hasher.hash("not a real password, only for timing")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False


@dataclass(frozen=True)
class Actor:
    """Who issues a command, and the correlation id that follows it into its events."""

    account_id: str | None
    correlation_id: str | None = None


@dataclass(frozen=True)
class Done:
    """A command's outcome: its consistency token (None when nothing changed) and value."""

    token: ConsistencyToken | None
    value: Any = None
    events: tuple[Event, ...] = field(default=())


@dataclass
class CommandContext:
    events: EventStore
    ids: IdGenerator
    hasher: PasswordHasher
    media: Any = None  # media.store.MediaStore; typed loosely to keep commands free of media/
    max_upload_bytes: int = 15 * 1024 * 1024
    max_upload_pixels: int = 50_000_000
    # When events occur. Tests of time-dependent read models (inactive readers) pass a
    # clock they can move; everything else uses the wall clock.
    clock: Callable[[], datetime] = utc_now

    def new_id(self) -> str:
        return str(self.ids.next_id())

    async def load(self, stream: str, fold: Callable[[Iterable[DomainEvent]], T]) -> tuple[T, int]:
        """Fold one stream into its write-side state; also return the stream's version."""
        recorded = await self.events.read_stream(stream)
        return fold(r.event.data for r in recorded), len(recorded)

    async def append(
        self,
        stream: str,
        data: Sequence[DomainEvent],
        actor: Actor,
        *,
        expected_version: int = ANY_VERSION,
        claims: Sequence[UniqueClaim] = (),
    ) -> Done:
        return await self.commit(self.prepare(stream, data, actor, expected_version=expected_version, claims=claims))

    async def commit(self, append: Append) -> Done:
        """Make one prepared append."""
        result = await self.events.append(
            append.stream, append.events, expected_version=append.expected_version, claims=append.claims
        )
        return Done(result.token, events=append.events)

    def prepare(
        self,
        stream: str,
        data: Sequence[DomainEvent],
        actor: Actor,
        *,
        expected_version: int = ANY_VERSION,
        claims: Sequence[UniqueClaim] = (),
    ) -> Append:
        """The append `append` makes, not yet made: bulk loads (api/seed.py) collect
        these and hand many at once to `EventStore.append_many`."""
        events = tuple(
            new_event(d, stream=stream, actor=actor.account_id, correlation_id=actor.correlation_id, occurred_at=self.clock())
            for d in data
        )
        return Append(stream, events, expected_version, tuple(claims))


async def retry_on_conflict(decide: Callable[[], Awaitable[T]], attempts: int = 5) -> T:
    """Optimistic concurrency: when the stream moved under us, read again and re-decide."""
    for attempt in range(attempts):
        try:
            return await decide()
        except ConcurrencyError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")
