"""Versioned read models: each projection's tables exist once per *version*, and the query
side reads the *active* one, so a projection can be rebuilt beside the live one.

Physical names. Version 1 keeps the plain names (`posts`, checkpoint `posts`, lanes
`posts#3`), so stores written before versioning read on unchanged; version N > 1 is
`<table>_v<N>` with checkpoints `<projection>@v<N>` (`posts@v2#3` per lane).

The registry. One row per projection in `projection_versions` (through the store port,
so it lives in SQLite or Cassandra beside the read models): the active version, the one
being built, and the state: `live`, `building` (a rebuild folds the next version) or
`switching` (distributed hand-over: the live writers of that projection pause, see
streams/rebuild.py). No row means version 1, live.

`VersionedStore` wraps a ReadStore and rewrites every Table to its physical name before
passing the call on, and checkpoint names both ways; runners, the Faust app and queries
keep speaking logical names and need no change. `pinned` makes a store that writes one
projection's *building* version (the rebuilder's view).
"""
from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

from projections.projector import Projector
from projections.store import (
    Checkpoint,
    DeadLetter,
    Read,
    ReadStore,
    ReadStoreUnavailable,
    Row,
    Table,
    Write,
)
from domain.events import format_time, utc_now
from observability.metrics import WRITES_PER_EVENT

VERSIONS = Table(
    "projection_versions",
    {"projection": "text", "active": "int", "building": "int", "state": "text", "changed_at": "text"},
    ("projection",),
)

LIVE, BUILDING, SWITCHING = "live", "building", "switching"


class ProjectionPaused(ReadStoreUnavailable):
    """A projection is switching versions: its live writers wait and retry the batch
    (the Faust agents already do so for an unreachable store), skipping nothing."""


@dataclass(frozen=True)
class VersionState:
    projection: str
    active: int = 1
    building: int | None = None
    state: str = LIVE
    changed_at: str | None = None


def physical_table(table: Table, version: int) -> Table:
    return table if version == 1 else dataclasses.replace(table, name=f"{table.name}_v{version}")


def checkpoint_base(projection: str, version: int) -> str:
    return projection if version == 1 else f"{projection}@v{version}"


def split_checkpoint(name: str) -> tuple[str, int, str]:
    """`posts@v2#3` -> ("posts", 2, "#3"); `posts` -> ("posts", 1, "")."""
    base, sep, lane = name.partition("#")
    projection, _, version = base.partition("@v")
    return projection, int(version) if version.isdigit() else 1, sep + lane


class VersionedStore:
    """A ReadStore whose projection tables and checkpoints are those of the active version
    (or of a pinned one). Everything else passes through to the wrapped store."""

    def __init__(
        self,
        inner: ReadStore,
        projectors: Iterable[Projector],
        *,
        pinned: dict[str, int] | None = None,
        ttl: float | None = 0.5,
    ) -> None:
        self.inner = inner
        projectors = list(projectors)
        self.projections = {p.name for p in projectors}
        self._owner = {t.name: p.name for p in projectors for t in p.tables}
        self._pinned = dict(pinned or {})
        self._ttl = ttl  # None: only refresh() reloads (the embedded runner, in its transaction)
        self._physical: dict[tuple[str, int], Table] = {}
        self._lock = threading.Lock()
        self._reloading = threading.Lock()
        inner.ensure_tables([VERSIONS])
        self._states: dict[str, VersionState] = {}
        self._loaded_at = 0.0
        self.refresh()

    # ----- the registry -------------------------------------------------------------

    def refresh(self) -> bool:
        """Reload the registry now; True when an active version or a state changed."""
        rows = self.inner.dump(VERSIONS)
        states = {
            r["projection"]: VersionState(r["projection"], r["active"] or 1, r["building"], r["state"] or LIVE, r["changed_at"])
            for r in rows
        }
        with self._lock:
            changed = {k: (v.active, v.state) for k, v in states.items()} != {
                k: (v.active, v.state) for k, v in self._states.items()
            }
            self._states, self._loaded_at = states, time.monotonic()
        return changed

    def states(self, *, fresh: bool = False) -> dict[str, VersionState]:
        if fresh or (self._ttl is not None and time.monotonic() - self._loaded_at > self._ttl):
            self.refresh()
        return {name: self._states.get(name, VersionState(name)) for name in sorted(self.projections)}

    def state(self, projection: str) -> VersionState:
        if self._ttl is not None and time.monotonic() - self._loaded_at > self._ttl:
            # One thread reloads; the others go on with the registry as last read
            # (it is at most a TTL old either way).
            if self._reloading.acquire(blocking=False):
                try:
                    self.refresh()
                finally:
                    self._reloading.release()
        return self._states.get(projection) or VersionState(projection)

    def set_state(self, state: VersionState) -> None:
        from projections.store import Upsert

        self.inner.apply(
            [
                Upsert(
                    VERSIONS,
                    {
                        "projection": state.projection,
                        "active": state.active,
                        "building": state.building,
                        "state": state.state,
                        "changed_at": format_time(utc_now()),
                    },
                )
            ]
        )
        self.refresh()

    def version(self, projection: str) -> int:
        pinned = self._pinned.get(projection)
        return pinned if pinned is not None else self.state(projection).active

    def pinned(self, projection: str, version: int) -> VersionedStore:
        """A store that reads and writes `version` of `projection` (a rebuild's view)."""
        if projection not in self.projections:
            raise ValueError(f"unknown projection {projection!r}")
        clone = object.__new__(VersionedStore)
        clone.__dict__.update(self.__dict__)
        clone._pinned = {**self._pinned, projection: version}
        clone._lock = threading.Lock()
        clone._reloading = threading.Lock()
        return clone

    # ----- name mapping -------------------------------------------------------------

    def physical(self, table: Table, *, writing: bool = False) -> Table:
        projection = self._owner.get(table.name)
        if projection is None:
            return table  # not a projection's table (the registry, tests' own tables)
        if projection in self._pinned:
            version = self._pinned[projection]
        else:
            state = self.state(projection)
            if writing and state.state == SWITCHING:
                raise ProjectionPaused(f"projection {projection} is switching to version {state.building}")
            version = state.active
        if version == 1:
            return table
        found = self._physical.get((table.name, version))
        if found is None:
            found = self._physical[(table.name, version)] = physical_table(table, version)
        return found

    def tables_of(self, projector: Projector, version: int) -> list[Table]:
        return [physical_table(t, version) for t in projector.tables]

    def _write(self, write: Write) -> Write:
        table = self.physical(write.table, writing=True)
        return write if table is write.table else dataclasses.replace(write, table=table)  # type: ignore[arg-type]

    def _checkpoint_out(self, checkpoint: Checkpoint) -> Checkpoint:
        projection, _, lane = split_checkpoint(checkpoint.projection)
        if projection not in self.projections:
            return checkpoint
        if projection not in self._pinned and self.state(projection).state == SWITCHING:
            raise ProjectionPaused(f"projection {projection} is switching versions")
        name = checkpoint_base(projection, self.version(projection)) + lane
        return dataclasses.replace(checkpoint, projection=name)

    # ----- the port -----------------------------------------------------------------

    def ensure_tables(self, tables: Iterable[Table]) -> None:
        self.inner.ensure_tables([self.physical(t) for t in tables])

    def apply(self, writes: Sequence[Write]) -> None:
        if writes:
            projection = self._owner.get(writes[0].table.name)
            if projection is not None:  # for home_timeline this is the fan-out batch size
                WRITES_PER_EVENT.observe(len(writes), projection=projection)
        self.inner.apply([self._write(w) for w in writes])

    def apply_groups(self, groups: Sequence[Sequence[Sequence[Write]]]) -> None:
        mapped = []
        for group in groups:
            sets = []
            for writes in group:
                if writes:
                    projection = self._owner.get(writes[0].table.name)
                    if projection is not None:
                        WRITES_PER_EVENT.observe(len(writes), projection=projection)
                sets.append([self._write(w) for w in writes])
            mapped.append(sets)
        self.inner.apply_groups(mapped)

    def fetch(self, reads: Sequence[Read]) -> list[Any]:
        """The answers in the order asked; the reads go to the physical tables (callers
        key their answers by the logical reads they made)."""
        out = []
        for read in reads:
            table = self.physical(read.table)
            out.append(read if table is read.table else dataclasses.replace(read, table=table))
        return self.inner.fetch(out)

    def get(self, table: Table, key: Row) -> Row | None:
        return self.inner.get(self.physical(table), key)

    def get_many(self, table: Table, keys: Sequence[Row]) -> list[Row | None]:
        return self.inner.get_many(self.physical(table), keys)

    def scan(self, table: Table, partition: Row, **kwargs: Any) -> list[Row]:
        return self.inner.scan(self.physical(table), partition, **kwargs)

    def scan_many(self, table: Table, partitions: Sequence[Row], **kwargs: Any) -> list[Row]:
        return self.inner.scan_many(self.physical(table), partitions, **kwargs)

    def dump(self, table: Table) -> list[Row]:
        return self.inner.dump(self.physical(table))

    def unit_of_work(self) -> Any:
        return self.inner.unit_of_work()

    def savepoint(self) -> Any:
        return self.inner.savepoint()  # type: ignore[attr-defined]

    def load_checkpoints(self) -> list[Checkpoint]:
        """The checkpoints of the versions this store reads, under their logical names
        (other versions' checkpoints are left out)."""
        out = []
        for c in self.inner.load_checkpoints():
            projection, version, lane = split_checkpoint(c.projection)
            if projection not in self.projections:
                out.append(c)
            elif version == self.version(projection):
                out.append(dataclasses.replace(c, projection=projection + lane))
        return out

    def load_all_checkpoints(self) -> list[Checkpoint]:
        return self.inner.load_checkpoints()

    def save_checkpoints(self, checkpoints: Sequence[Checkpoint]) -> None:
        self.inner.save_checkpoints([self._checkpoint_out(c) for c in checkpoints])

    def add_dead_letter(self, letter: DeadLetter) -> None:
        self.inner.add_dead_letter(letter)

    def dead_letters(self) -> list[DeadLetter]:
        return self.inner.dead_letters()

    def ping(self) -> None:
        self.inner.ping()

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        # Adapter extras (session, keyspace, delete_checkpoints, drop_tables, ...).
        return getattr(self.inner, name)


def iter_projection_tables(projectors: Iterable[Projector]) -> Iterator[tuple[str, Table]]:
    for p in projectors:
        for t in p.tables:
            yield p.name, t
