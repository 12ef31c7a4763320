"""The embedded event store: an append-only SQLite log in WAL mode.

One partition; `position` is the global order. A commit is fsync'd (synchronous=FULL)
before append() returns, so an acknowledged command is durable.
"""
from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from domain.events import Event, Recorded, decode_event, encode_event, format_time
from streams.event_store import (
    ANY_VERSION,
    Append,
    AppendResult,
    ConcurrencyError,
    EventStoreError,
    UniqueClaim,
    UniqueViolation,
    check_append,
    check_appends,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id       TEXT NOT NULL UNIQUE,
    stream         TEXT NOT NULL,
    stream_version INTEGER NOT NULL,
    type           TEXT NOT NULL,
    occurred_at    TEXT NOT NULL,
    body           BLOB NOT NULL,
    UNIQUE (stream, stream_version)
);
CREATE TABLE IF NOT EXISTS unique_claims (
    namespace TEXT NOT NULL,
    value     TEXT NOT NULL,
    owner     TEXT NOT NULL,
    PRIMARY KEY (namespace, value)
);
"""

POLL_SECONDS = 0.2  # how often a waiter looks for events written by other processes


def sqlite_path(url: str) -> Path:
    """`sqlite:///relative/path` or `sqlite:////absolute/path` (SQLAlchemy's convention)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ValueError(f"not a sqlite URL: {url!r} (expected sqlite:///path/to/file.db)")
    return Path(url[len(prefix):])


def connect(path: Path, *, durable: bool = True) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class SqliteEventStore:
    partitions = 1

    def __init__(self, path: Path, *, durable: bool = True) -> None:
        """durable=False (bulk loads such as `seed` only) skips the fsync per commit; the
        log is still consistent after a crash, but the last commits may be lost."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._writer = connect(path, durable=durable)
        self._writer.executescript(SCHEMA)
        self._write_lock = threading.Lock()
        self._appended = threading.Condition()
        self._local = threading.local()

    @classmethod
    def from_url(cls, url: str, *, durable: bool = True) -> SqliteEventStore:
        return cls(sqlite_path(url), durable=durable)

    # ----- connections --------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = connect(self.path)
        return conn

    # ----- the port -----------------------------------------------------------------

    async def append(
        self,
        stream: str,
        events: Sequence[Event],
        *,
        expected_version: int = ANY_VERSION,
        claims: Sequence[UniqueClaim] = (),
    ) -> AppendResult:
        return await asyncio.to_thread(self.append_sync, stream, events, expected_version, claims)

    def append_sync(
        self,
        stream: str,
        events: Sequence[Event],
        expected_version: int = ANY_VERSION,
        claims: Sequence[UniqueClaim] = (),
    ) -> AppendResult:
        check_append(stream, events)
        with self._transaction() as conn:
            existing = self._already_appended(conn, events)
            if existing is not None:
                return existing  # nothing written: the commit is empty
            (current,) = conn.execute(
                "SELECT COALESCE(MAX(stream_version), 0) FROM events WHERE stream = ?",
                (stream,),
            ).fetchone()
            if expected_version != ANY_VERSION and expected_version != current:
                raise ConcurrencyError(stream, expected_version, current)
            for claim in claims:
                self._claim(conn, claim)
            positions = []
            for offset, event in enumerate(events, start=1):
                cursor = conn.execute(
                    "INSERT INTO events (event_id, stream, stream_version, type, occurred_at, body)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        event.event_id,
                        stream,
                        current + offset,
                        event.type,
                        format_time(event.occurred_at),
                        encode_event(event),
                    ),
                )
                positions.append((0, int(cursor.lastrowid or 0)))
        return AppendResult(tuple(positions))

    async def append_many(self, appends: Sequence[Append]) -> None:
        await asyncio.to_thread(self.append_many_sync, appends)

    def append_many_sync(self, appends: Sequence[Append]) -> None:
        """One transaction: the checks in bulk queries, then one INSERT of every row."""
        for a in appends:
            check_append(a.stream, a.events)
        with self._transaction() as conn:
            versions = self._stream_versions(conn, {a.stream for a in appends})
            owners = self._claim_owners(conn, {(c.namespace, c.value) for a in appends for c in a.claims})
            rows = [
                (event.event_id, a.stream, head + offset, event.type, format_time(event.occurred_at), encode_event(event))
                for a, head in zip(appends, check_appends(appends, versions, owners))
                for offset, event in enumerate(a.events, start=1)
            ]
            conn.executemany(
                "INSERT OR IGNORE INTO unique_claims (namespace, value, owner) VALUES (?, ?, ?)",
                [(c.namespace, c.value, c.owner) for a in appends for c in a.claims],
            )
            try:
                conn.executemany(
                    "INSERT INTO events (event_id, stream, stream_version, type, occurred_at, body) VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
            except sqlite3.IntegrityError as exc:  # the only other UNIQUE is (stream, version), checked above
                raise EventStoreError(f"some of these events were appended before: {exc}") from exc

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction on the writer connection: committed if the block ends,
        rolled back if it raises; readers waiting for new events are woken after a commit."""
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        with self._appended:
            self._appended.notify_all()

    @staticmethod
    def _stream_versions(conn: sqlite3.Connection, streams: set[str]) -> dict[str, int]:
        versions: dict[str, int] = {}
        names = list(streams)
        for start in range(0, len(names), 500):
            chunk = names[start:start + 500]
            versions.update(conn.execute(
                f"SELECT stream, MAX(stream_version) FROM events WHERE stream IN ({','.join('?' * len(chunk))}) GROUP BY stream",
                chunk,
            ).fetchall())
        return versions

    @staticmethod
    def _claim_owners(conn: sqlite3.Connection, keys: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
        owners: dict[tuple[str, str], str] = {}
        for namespace, value in keys:
            row = conn.execute(
                "SELECT owner FROM unique_claims WHERE namespace = ? AND value = ?", (namespace, value)
            ).fetchone()
            if row is not None:
                owners[(namespace, value)] = row[0]
        return owners

    @staticmethod
    def _already_appended(conn: sqlite3.Connection, events: Sequence[Event]) -> AppendResult | None:
        """Idempotent append: the same event ids again answer with their first positions."""
        ids = [e.event_id for e in events]
        rows = conn.execute(
            f"SELECT position FROM events WHERE event_id IN ({','.join('?' * len(ids))})"
            " ORDER BY position",
            ids,
        ).fetchall()
        if not rows:
            return None
        if len(rows) != len(ids):
            raise EventStoreError("some of these events were appended before, some not")
        return AppendResult(tuple((0, r[0]) for r in rows))

    @staticmethod
    def _claim(conn: sqlite3.Connection, claim: UniqueClaim) -> None:
        row = conn.execute(
            "SELECT owner FROM unique_claims WHERE namespace = ? AND value = ?",
            (claim.namespace, claim.value),
        ).fetchone()
        if row is not None and row[0] != claim.owner:
            raise UniqueViolation(claim.namespace, claim.value, row[0])
        conn.execute(
            "INSERT OR IGNORE INTO unique_claims (namespace, value, owner) VALUES (?, ?, ?)",
            (claim.namespace, claim.value, claim.owner),
        )

    async def read_stream(self, stream: str) -> list[Recorded]:
        rows = self._reader().execute(
            "SELECT position, stream_version, body FROM events WHERE stream = ?"
            " ORDER BY stream_version",
            (stream,),
        ).fetchall()
        return [Recorded(decode_event(body), 0, pos, ver) for pos, ver, body in rows]

    async def lookup_unique(self, namespace: str, value: str) -> str | None:
        row = self._reader().execute(
            "SELECT owner FROM unique_claims WHERE namespace = ? AND value = ?", (namespace, value)
        ).fetchone()
        return row[0] if row else None

    async def read(self, partition: int, after: int, limit: int) -> list[Recorded]:
        return [
            Recorded(decode_event(body), 0, pos, ver)
            for pos, ver, body in self.read_raw(after, limit)
        ]

    def read_raw(self, after: int, limit: int) -> list[tuple[int, int, bytes]]:
        """Undecoded rows (position, stream_version, body): the runner decodes each itself
        so that one bad event becomes a dead letter instead of stopping the batch."""
        return self._reader().execute(
            "SELECT position, stream_version, body FROM events WHERE position > ?"
            " ORDER BY position LIMIT ?",
            (after, limit),
        ).fetchall()

    def iter_raw(self, after: int = 0, batch: int = 5000) -> Iterator[tuple[int, int, bytes]]:
        while rows := self.read_raw(after, batch):
            yield from rows
            after = rows[-1][0]

    async def head(self) -> dict[int, int]:
        return {0: self.head_sync()}

    def head_sync(self) -> int:
        (position,) = self._reader().execute("SELECT COALESCE(MAX(position), 0) FROM events").fetchone()
        return int(position)

    def wait_for_new(self, after: int, timeout: float) -> bool:
        """Block until an event with position > after exists, or timeout. Events appended
        by this process wake the waiter at once; other processes' within POLL_SECONDS."""
        deadline = time.monotonic() + timeout
        with self._appended:  # checked under the lock so an append cannot slip between
            while True:
                if self.head_sync() > after:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._appended.wait(min(remaining, POLL_SECONDS))

    async def ping(self) -> None:
        self._reader().execute("SELECT 1").fetchone()

    def flush(self) -> None:
        """Make everything appended so far durable (after non-durable bulk loads)."""
        with self._write_lock:
            self._writer.execute("PRAGMA wal_checkpoint(FULL)")

    async def close(self) -> None:
        self._writer.close()
