"""Folding the log through projectors outside the live pipeline: replay into a separate
store, rebuild a projection's next version beside the live one, verify a projection
against a fresh fold. All read the log through streams.log_reader (no consumer group).

Rebuild, step by step (design: docs/ARCHITECTURE.md, "Projection versions"):

1. registry: P building version N+1 (tables `<table>_v<N+1>` created empty);
2. fold the log from the start into N+1 (progress and rate), again until the lag is small;
3. hand over. Embedded: one read-store transaction folds the last events and flips the
   active version; the live runner reads the registry inside its own transaction, so it
   continues N+1 from the rebuild's checkpoint in its very next batch. Distributed: the
   registry says `switching`; the live agents of P (only P) pause, their batch failing as
   if Cassandra were away and being retried; the rebuild folds up to the head, writes
   N+1's lane checkpoints and flips; the agents' retried batch then lands in N+1
   (idempotent projectors make the few repeated events harmless);
4. after a grace period (queries that resolved N before the flip finish), drop N.

Queries read N until the flip and N+1 after it: they never stop answering.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
import tempfile
import time
import traceback
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from domain.events import EventDecodeError, Recorded, UnknownEvent, decode_event, format_time, parse_time, utc_now
from observability.metrics import EVENTS_SKIPPED
from projections.projector import Projector
from projections.store import Checkpoint, DeadLetter, ReadStore, Row, Table
from projections.versions import BUILDING, LIVE, SWITCHING, VersionedStore, VersionState, checkpoint_base
from streams.lanes import lane_name
from streams.log_reader import EventFilter, LogReader, RawRecord

log = logging.getLogger("photostream.rebuild")

Progress = Callable[[int, int | None], None]  # (events read so far, events to read or None)
BATCH = 1000
CAUGHT_UP = 200  # hand over once fewer events than this are left to fold
GRACE_SECONDS = 3.0  # > the registry TTL of every process, plus a slow query
STALE_SWITCH_SECONDS = 120  # a switch takes seconds; one this old was interrupted


class RebuildError(Exception):
    """A rebuild that cannot start or go on (reported to the operator as is)."""


@dataclass
class FoldReport:
    events: int = 0  # events read from the log
    applied: int = 0  # events some projector handled
    dead_letters: int = 0
    skipped: int = 0  # events of types (or versions) this code does not know
    seconds: float = 0.0
    positions: dict[int, int] = field(default_factory=dict)  # partition -> last position read

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


class Folder:
    """Applies decoded events to one store through projectors, batch by batch: on SQLite
    one transaction a batch; on Cassandra the events of different keys concurrently (one
    key in order), as the Faust agents do."""

    def __init__(self, projectors: Sequence[Projector], store: ReadStore, *, threads: int = 0) -> None:
        self.projectors = list(projectors)
        self.store = store
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="fold") if threads else None
        self.transactional = True  # False inside a caller's transaction (the embedded switch)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()

    def fold(
        self,
        records: Iterable[RawRecord],
        report: FoldReport,
        *,
        on_progress: Callable[[int], None] | None = None,
        where: EventFilter | None = None,
    ) -> FoldReport:
        started = time.perf_counter()
        batch: list[RawRecord] = []
        for record in records:
            batch.append(record)
            if len(batch) >= BATCH:
                self._batch(batch, report, where)
                batch = []
                if on_progress:
                    on_progress(report.events)
        if batch:
            self._batch(batch, report, where)
            if on_progress:
                on_progress(report.events)
        report.seconds += time.perf_counter() - started
        return report

    def _batch(self, batch: list[RawRecord], report: FoldReport, where: EventFilter | None) -> None:
        decoded: list[tuple[RawRecord, Any]] = []
        for raw in batch:
            report.events += 1
            report.positions[raw.partition] = raw.position
            try:
                event = decode_event(raw.body)
            except EventDecodeError as exc:
                report.dead_letters += self._park("(decode)", raw, None, exc)
                continue
            if where is not None and not where.matches(Recorded(event, raw.partition, raw.position)):
                continue
            if isinstance(event.data, UnknownEvent):  # written by newer code: skipped, counted
                EVENTS_SKIPPED.inc(type=event.type)
                report.skipped += 1
                continue
            decoded.append((raw, event))
        with self.store.unit_of_work() if self.transactional else _nothing():
            for projector in self.projectors:
                mine = [(raw, e) for raw, e in decoded if projector.handles(e)]
                report.applied += len(mine)
                if self.pool is None:
                    for raw, event in mine:
                        report.dead_letters += self._apply(projector, raw, event)
                else:
                    groups: dict[str, list[tuple[RawRecord, Any]]] = defaultdict(list)
                    for raw, event in mine:
                        groups[projector.key(event)].append((raw, event))
                    results = self.pool.map(lambda g, p=projector: sum(self._apply(p, r, e) for r, e in g), groups.values())
                    report.dead_letters += sum(results)

    def _apply(self, projector: Projector, raw: RawRecord, event: Any) -> int:
        error: Exception | None = None
        savepoint = getattr(self.store, "savepoint", None)
        for _attempt in range(2):
            try:
                if savepoint is not None and self.pool is None:
                    with savepoint():
                        self.store.apply(projector.project(event, self.store))
                else:
                    self.store.apply(projector.project(event, self.store))
                return 0
            except Exception as exc:  # a poison event is parked, the fold goes on
                error = exc
        return self._park(projector.name, raw, event, error)

    def _park(self, projection: str, raw: RawRecord, event: Any, error: Exception | None) -> int:
        log.error(
            "%s cannot apply the event at %s/%s: %s",
            projection,
            raw.partition,
            raw.position,
            error,
            extra={"correlation_id": event.correlation_id if event else None},
        )
        self.store.add_dead_letter(
            DeadLetter(
                projection=projection,
                partition=raw.partition,
                position=raw.position,
                event_id=event.event_id if event else "",
                event_type=event.type if event else "?",
                error="".join(traceback.format_exception_only(error)).strip() if error else "undecodable",
                body=raw.body,
                failed_at=format_time(utc_now()),
            )
        )
        return 1


@contextmanager
def _nothing() -> Iterator[None]:
    yield


# ----- stores -----------------------------------------------------------------------


def open_read_store(url: str) -> ReadStore:
    """A read store from a URL (sqlite:///path or cassandra://host/keyspace) or a path."""
    if url.startswith("cassandra:"):
        from projections.cassandra_store import CassandraReadStore

        return CassandraReadStore.from_url(url)
    from projections.sqlite_store import SqliteReadStore

    if url.startswith("sqlite:"):
        return SqliteReadStore.from_url(url)
    return SqliteReadStore(Path(url))


def threads_for(store: Any) -> int:
    inner = getattr(store, "inner", store)
    return 0 if type(inner).__name__ == "SqliteReadStore" else 16


# ----- replay -----------------------------------------------------------------------


def replay(
    reader: LogReader,
    projectors: Sequence[Projector],
    store: ReadStore,
    where: EventFilter,
    *,
    on_progress: Callable[[int], None] | None = None,
) -> FoldReport:
    """Fold the log (or the slice `where` selects) through projectors into `store`."""
    store.ensure_tables(t for p in projectors for t in p.tables)
    folder = Folder(projectors, store, threads=threads_for(store))
    try:
        report = folder.fold(reader.raw(where), FoldReport(), on_progress=on_progress, where=where)
    finally:
        folder.close()
    store.save_checkpoints(
        [Checkpoint(p.name, partition, position, None) for p in projectors for partition, position in report.positions.items()]
    )
    return report


# ----- rebuild ----------------------------------------------------------------------


@dataclass
class RebuildReport:
    projection: str
    old_version: int
    new_version: int
    fold: FoldReport
    switched_at: str = ""
    dropped: list[str] = field(default_factory=list)


def rebuild(
    reader: LogReader,
    projector: Projector,
    store: VersionedStore,
    *,
    lanes: int | None,
    on_phase: Callable[[str], None] = lambda _: None,
    on_progress: Progress | None = None,
    grace: float = GRACE_SECONDS,
    caught_up: int = CAUGHT_UP,
) -> RebuildReport:
    """Build the next version of `projector` beside the live one, switch to it, drop the
    old one. `lanes`: the Faust lane count (distributed), None embedded."""
    name = projector.name
    current = store.states(fresh=True)[name]
    if current.state == SWITCHING:
        since = (utc_now() - parse_time(current.changed_at)).total_seconds() if current.changed_at else float("inf")
        if since < STALE_SWITCH_SECONDS:
            raise RebuildError(f"{name} is switching versions already (another rebuild is finishing)")
        # A rebuild killed mid-switch left the live writers paused: release them first.
        on_phase(f"a rebuild was interrupted while switching {since:.0f} s ago; the live writers of {name} resume")
        store.set_state(VersionState(name, current.active, current.building, BUILDING))
        current = store.states(fresh=True)[name]
    old = current.active
    new = max(old, current.building or 0) + 1
    if current.state == BUILDING and current.building:
        on_phase(f"an unfinished rebuild left version {current.building}; dropping it and starting over")
        store.inner.drop_tables(store.tables_of(projector, current.building))  # type: ignore[attr-defined]
        _delete_checkpoints(store, name, current.building, lanes)
    target = store.pinned(name, new)
    store.set_state(VersionState(name, old, new, BUILDING))
    target.ensure_tables(projector.tables)
    on_phase(f"building {name} v{new} beside v{old} from the start of the log")

    folder = Folder([projector], target, threads=threads_for(store))
    report = FoldReport()
    try:
        while True:  # fold to the head; again from there until little is left
            head = reader.head()
            after = {p: report.positions.get(p, _before_first(reader)) for p in head}
            left = sum(max(head[p] - after[p], 0) for p in head)
            if report.events and left < caught_up:
                break
            total = report.events + left
            folder.fold(
                _after(reader, after, head),
                report,
                on_progress=(lambda done: on_progress(done, total)) if on_progress else None,
            )
            if left == 0:
                break
        on_phase(f"caught up at {report.events} events ({report.rate:,.0f} events/s); switching")
        if lanes is None:
            _switch_embedded(reader, folder, report, store, target, projector, old, new)
        else:
            _switch_distributed(reader, folder, report, store, target, projector, old, new, lanes, grace)
    except BaseException:
        # Leave the live version as it was; a later rebuild drops the half-built one.
        state = store.states(fresh=True)[name]
        if state.state == SWITCHING:
            store.set_state(VersionState(name, old, new, BUILDING))
        raise
    finally:
        folder.close()
    switched = format_time(utc_now())
    on_phase(f"queries read {name} v{new}; dropping v{old} in {grace:.0f} s")
    time.sleep(grace)
    store.inner.drop_tables(store.tables_of(projector, old))  # type: ignore[attr-defined]
    _delete_checkpoints(store, name, old, lanes)
    return RebuildReport(name, old, new, report, switched, [t.name for t in store.tables_of(projector, old)])


def _before_first(reader: LogReader) -> int:
    return 0 if reader.partitions == 1 and type(reader).__name__ == "SqliteLogReader" else -1


def _after(reader: LogReader, after: dict[int, int], upto: dict[int, int]) -> Iterable[RawRecord]:
    """The records after `after` up to `upto`: on Kafka every partition at once, as the
    fetches interleave them (close to the order the live pipeline saw)."""
    return reader.raw(EventFilter(), upto=upto, after=after)


def _switch_embedded(
    reader: LogReader,
    folder: Folder,
    report: FoldReport,
    store: VersionedStore,
    target: VersionedStore,
    projector: Projector,
    old: int,
    new: int,
) -> None:
    """One transaction: the last events, the new version's checkpoint, the flip. The live
    runner's batches take the same write lock, so each one runs wholly before or after."""
    with store.inner.unit_of_work():
        head = reader.head()
        after = {0: report.positions.get(0, 0)}
        folder.transactional = False
        folder.fold(_after(reader, after, head), report)
        position = report.positions.get(0, 0)
        store.inner.save_checkpoints([Checkpoint(checkpoint_base(projector.name, new), 0, position, None)])
        store.set_state(VersionState(projector.name, new, None, LIVE))


def _switch_distributed(
    reader: LogReader,
    folder: Folder,
    report: FoldReport,
    store: VersionedStore,
    target: VersionedStore,
    projector: Projector,
    old: int,
    new: int,
    lanes: int,
    grace: float,
) -> None:
    name = projector.name
    store.set_state(VersionState(name, old, new, SWITCHING))
    time.sleep(grace)  # every worker has seen `switching`; writes in flight have landed
    head = reader.head()
    after = {p: report.positions.get(p, -1) for p in head}
    folder.fold(_after(reader, after, head), report)
    stamp = format_time(utc_now())
    store.inner.save_checkpoints(
        [
            Checkpoint(lane_name(checkpoint_base(name, new), lane), partition, position, stamp)
            for lane in range(lanes)
            for partition, position in head.items()
            if position >= 0
        ]
    )
    store.set_state(VersionState(name, new, None, LIVE))


def _delete_checkpoints(store: VersionedStore, name: str, version: int, lanes: int | None) -> None:
    base = checkpoint_base(name, version)
    names = [base] if lanes is None else [lane_name(base, lane) for lane in range(lanes)]
    for n in names:
        store.inner.delete_checkpoints(n)  # type: ignore[attr-defined]


# ----- verify -----------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    table: str
    key: dict[str, Any]
    kind: str  # missing (in the fold, not live) | extra (live, not in the fold) | differs
    live: Row | None
    fresh: Row | None

    def describe(self) -> str:
        if self.kind == "differs" and self.live and self.fresh:
            cols = {c: (self.live.get(c), self.fresh.get(c)) for c in self.fresh if self.live.get(c) != self.fresh.get(c)}
            return f"{self.table} {self.key}: " + ", ".join(f"{c} live={a!r} fold={b!r}" for c, (a, b) in cols.items())
        if self.kind == "missing":
            return f"{self.table} {self.key}: missing from the projection (fold has {self.fresh})"
        return f"{self.table} {self.key}: in the projection but not in a fresh fold ({self.live})"


@dataclass
class VerifyReport:
    projection: str
    version: int
    positions: dict[int, int]
    rows: int
    differences: list[Difference]


def _stable_positions(store: VersionedStore, name: str, lanes: int | None, partitions: Iterable[int]) -> dict[int, int] | None:
    """The position each partition is applied up to, when every lane agrees."""
    marks: dict[tuple[str, int], int] = {(c.projection, c.partition): c.position for c in store.load_checkpoints()}
    names = [name] if lanes is None else [lane_name(name, lane) for lane in range(lanes)]
    out = {}
    for p in partitions:
        seen = {marks.get((n, p), -1 if lanes is not None else 0) for n in names}
        if len(seen) != 1:
            return None
        out[p] = seen.pop()
    return out


def verify(
    reader: LogReader,
    projector: Projector,
    store: VersionedStore,
    *,
    lanes: int | None,
    attempts: int = 30,
) -> VerifyReport:
    """Compare the live projection with a fresh fold of the log up to the positions the
    live one has applied. A snapshot is taken only when its checkpoints did not move
    while its tables were read (and, distributed, every lane agrees); retried a while."""
    name = projector.name
    partitions = list(reader.head())
    for _attempt in range(attempts):
        before = _stable_positions(store, name, lanes, partitions)
        if before is not None:
            live = {t.name: store.dump(t) for t in projector.tables}
            if _stable_positions(store, name, lanes, partitions) == before:
                break
        time.sleep(1)
    else:
        raise RebuildError(f"{name} kept moving (or its lanes disagree) for {attempts} s; verify it when it is quiet")
    with tempfile.TemporaryDirectory(prefix="photostream-verify-") as folder:
        from projections.sqlite_store import SqliteReadStore

        fresh_store = SqliteReadStore(Path(folder) / "fold.db")
        try:
            fresh_store.ensure_tables(projector.tables)
            upto = {p: pos for p, pos in before.items()}
            Folder([projector], fresh_store).fold(reader.raw(EventFilter(), upto=upto), FoldReport())
            fresh = {t.name: fresh_store.dump(t) for t in projector.tables}
        finally:
            fresh_store.close()
    differences = []
    for table in projector.tables:
        differences += _compare(table, live[table.name], fresh[table.name])
    return VerifyReport(name, store.version(name), before, sum(len(v) for v in live.values()), differences)


def _compare(table: Table, live: list[Row], fresh: list[Row]) -> list[Difference]:
    def key(row: Row) -> tuple[Any, ...]:
        return tuple(row[c] for c in table.primary_key)

    a = {key(r): r for r in live}
    b = {key(r): r for r in fresh}
    out = []
    for k in sorted(set(a) | set(b), key=repr):
        named = dict(zip(table.primary_key, k))
        if k not in a:
            out.append(Difference(table.name, named, "missing", None, b[k]))
        elif k not in b:
            out.append(Difference(table.name, named, "extra", a[k], None))
        elif a[k] != b[k]:
            out.append(Difference(table.name, named, "differs", a[k], b[k]))
    return out
