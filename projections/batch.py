"""Planning a batch of events for one projector in a few read rounds instead of one
round trip per read.

A projector reads through a ReadView one row or partition at a time. Against Cassandra
each read is a network round trip, so a batch of a thousand events applied one event at
a time costs thousands of sequential round trips. `plan_batch` instead runs the
projector against a `BatchView`: reads answer from rows fetched at the start of the batch
plus the writes of the batch's earlier events (an overlay), and a read that is not
fetched yet is recorded as a miss and answered as if the row were absent. Every pass over
the batch collects its misses; they are fetched together in one concurrent round
(`ReadStore.fetch`), and the batch is planned again. Once a pass has no miss, every
answer it saw was what the reads would have returned had the events been applied one by
one, so its writes are exactly the sequential writes. Passes needed = the depth of
dependent reads (a follower list, then each follower's floor): two or three.

Events are grouped by the projector's key: events of one key are planned in log order
and see each other's writes; groups are independent of each other (that is what the key
means: Faust routes by it, so one lane worker owns a key's rows).
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Any, Sequence

from domain.events import Event
from projections.projector import Projector
from projections.store import Delete, DeletePartition, DeleteUpTo, Get, Read, ReadStore, Row, Scan, Table, Upsert, Write

MAX_PASSES = 12  # a projector whose reads depend on each other deeper than this is read row by row


@dataclass
class EventPlan:
    """What one event turned into: its writes, or the error that parks it."""

    event: Event
    source: Any  # the caller's handle for the event (a Kafka message, a log position)
    writes: list[Write] = field(default_factory=list)
    error: str | None = None


class BatchView:
    """A ReadView over fetched rows plus the pending writes of earlier events.

    `fetched` maps a Read to what the store answered at the start of the batch (a row or
    None for a Get, a list of rows for a Scan). Pending writes are kept per partition in
    order, each applied over the fetched answer exactly as the store would apply it.
    """

    def __init__(self, fetched: dict[Read, Any]) -> None:
        self.fetched = fetched
        self.misses: set[Read] = set()
        self._pending: dict[tuple[str, tuple[Any, ...]], list[Write]] = {}

    # ----- the overlay -----------------------------------------------------------------

    def add_writes(self, writes: Sequence[Write]) -> None:
        for write in writes:
            self._pending.setdefault(_partition_of(write), []).append(write)

    def _writes_on(self, table: Table, partition: tuple[Any, ...]) -> list[Write]:
        return self._pending.get((table.name, partition), [])

    def _lookup(self, read: Read) -> tuple[bool, Any]:
        if read in self.fetched:
            return True, self.fetched[read]
        self.misses.add(read)
        return False, None

    # ----- ReadView ----------------------------------------------------------------------

    def get(self, table: Table, key: Row) -> Row | None:
        pk = tuple(key[c] for c in table.primary_key)
        partition = pk[: len(table.partition_key)]
        writes = self._writes_on(table, partition)
        row: Row | None
        if writes and _decided_by_writes(table, pk, writes):
            row = None  # the latest write on this row replaces it whole: no need to read
        else:
            found, row = self._lookup(Get(table, pk))
            if not found:
                row = None
        for write in writes:
            row = _apply_to_row(table, pk, row, write)
        return row

    def get_many(self, table: Table, keys: Sequence[Row]) -> list[Row | None]:
        return [self.get(table, key) for key in keys]

    def fetch(self, reads: Sequence[Read]) -> list[Any]:
        return [
            self.get(r.table, r.key_row)
            if isinstance(r, Get)
            else self.scan(r.table, r.partition_row, start_after=r.start_after, end_before=r.end_before, limit=r.limit)
            for r in reads
        ]

    def scan(
        self,
        table: Table,
        partition: Row,
        *,
        start_after: Any = None,
        end_before: Any = None,
        limit: int | None = None,
    ) -> list[Row]:
        if limit is not None and limit <= 0:
            return []
        part = tuple(partition[c] for c in table.partition_key)
        writes = self._writes_on(table, part)
        if not writes:
            found, rows = self._lookup(Scan(table, part, start_after, end_before, limit))
            return list(rows) if found else []
        # Deletes may remove rows the limited answer had, so later rows would move up:
        # read the range whole when this partition has pending writes.
        found, rows = self._lookup(Scan(table, part, start_after, end_before, None))
        if not found:
            return []
        return _overlay_scan(table, part, rows, writes, start_after, end_before, limit)

    def scan_many(
        self,
        table: Table,
        partitions: Sequence[Row],
        *,
        start_after: Any = None,
        end_before: Any = None,
        limit: int,
    ) -> list[Row]:
        runs = [self.scan(table, p, start_after=start_after, end_before=end_before, limit=limit) for p in partitions]
        rows = [r for run in runs for r in run]
        if table.clustering is not None:
            rows.sort(key=lambda r: r[table.clustering], reverse=table.descending)  # type: ignore[index]
        return rows[:limit]


def plan_batch(
    projector: Projector,
    groups: Sequence[Sequence[tuple[Event, Any]]],
    store: ReadStore,
) -> list[list[EventPlan]]:
    """The writes of every event of every group, as applying them in order would give.

    `groups`: lists of (event, source) sharing a key, each in log order. A projector
    error on complete data parks that event (EventPlan.error) and the group goes on
    without its writes, as the sequential runners do. Store errors propagate."""
    fetched: dict[Read, Any] = {}
    plans: list[list[EventPlan]] = [[] for _ in groups]
    parked: list[dict[int, str]] = [{} for _ in groups]
    pending = list(range(len(groups)))
    for _ in range(MAX_PASSES):
        misses: set[Read] = set()
        still: list[int] = []
        for g in pending:
            view = BatchView(fetched)
            planned = _plan_group(projector, groups[g], view, parked[g])
            if view.misses:
                misses |= view.misses
                still.append(g)
            elif planned is None:
                still.append(g)  # an event was parked: plan the group again without it
            else:
                plans[g] = planned
        pending = still
        if not pending:
            return plans
        if misses:
            wanted = list(misses)
            for read, answer in zip(wanted, store.fetch(wanted)):
                fetched[read] = answer
    for g in pending:  # reads deeper than MAX_PASSES: one read at a time, against the store
        plans[g] = _plan_group_reading_through(projector, groups[g], store, parked[g])
    return plans


def _plan_group(
    projector: Projector, group: Sequence[tuple[Event, Any]], view: BatchView, parked: dict[int, str]
) -> list[EventPlan] | None:
    """One pass over a group. After a miss the pass goes on, as a draft, to discover the
    later events' reads too; the caller discards a pass that had misses. None when an
    event failed on complete data: it is added to `parked`, plan the group again."""
    out: list[EventPlan] = []
    for i, (event, source) in enumerate(group):
        if i in parked:
            out.append(EventPlan(event, source, error=parked[i]))
            continue
        try:
            writes = projector.project(event, view)
        except Exception as exc:
            if view.misses:
                return out  # it may have failed on a placeholder answer: fetch first
            parked[i] = "".join(traceback.format_exception_only(exc)).strip()
            return None
        view.add_writes(writes)
        out.append(EventPlan(event, source, writes))
    return out


def _plan_group_reading_through(
    projector: Projector, group: Sequence[tuple[Event, Any]], store: ReadStore, parked: dict[int, str]
) -> list[EventPlan]:
    while True:
        planned = _plan_group(projector, group, _StoreOverlay(store), parked)
        if planned is not None:
            return planned


class _StoreOverlay(BatchView):
    """A BatchView whose misses are read from the store at once (the slow path)."""

    def __init__(self, store: ReadStore) -> None:
        super().__init__({})
        self._store = store

    def _lookup(self, read: Read) -> tuple[bool, Any]:
        if read not in self.fetched:
            self.fetched[read] = self._store.fetch([read])[0]
        return True, self.fetched[read]


# ----- applying pending writes to fetched answers ------------------------------------


def _partition_of(write: Write) -> tuple[str, tuple[Any, ...]]:
    table = write.table
    if isinstance(write, Upsert):
        values = write.row
    elif isinstance(write, Delete):
        values = write.key
    else:
        values = write.partition
    return table.name, tuple(values[c] for c in table.partition_key)


def _decided_by_writes(table: Table, pk: tuple[Any, ...], writes: list[Write]) -> bool:
    """Whether the row's value follows from the writes alone: the last write that
    touches it deletes it, or a full-row upsert comes after the last delete."""
    for write in reversed(writes):
        if isinstance(write, Upsert):
            if _pk_of(table, write.row) == pk and all(c in write.row for c in table.columns):
                return True
        elif _deletes(table, pk, write):
            return True
    return False


def _pk_of(table: Table, row: Row) -> tuple[Any, ...]:
    return tuple(row[c] for c in table.primary_key)


def _deletes(table: Table, pk: tuple[Any, ...], write: Write) -> bool:
    if isinstance(write, Delete):
        return _pk_of(table, write.key) == pk
    if isinstance(write, DeletePartition):
        return True  # writes are already per partition
    if isinstance(write, DeleteUpTo):
        return table.clustering is not None and pk[-1] <= write.upto
    return False


def _apply_to_row(table: Table, pk: tuple[Any, ...], row: Row | None, write: Write) -> Row | None:
    if isinstance(write, Upsert):
        if _pk_of(table, write.row) != pk:
            return row
        merged = dict(row) if row is not None else {c: None for c in table.columns}
        merged.update(write.row)
        return merged
    return None if _deletes(table, pk, write) else row


def _in_range(table: Table, value: Any, start_after: Any, end_before: Any) -> bool:
    if start_after is not None:
        if (value >= start_after) if table.descending else (value <= start_after):
            return False
    if end_before is not None:
        if (value <= end_before) if table.descending else (value >= end_before):
            return False
    return True


def _overlay_scan(
    table: Table,
    part: tuple[Any, ...],
    rows: list[Row],
    writes: list[Write],
    start_after: Any,
    end_before: Any,
    limit: int | None,
) -> list[Row]:
    ck = table.clustering
    if ck is None:  # a single-row partition
        pk = part
        row = rows[0] if rows else None
        for write in writes:
            row = _apply_to_row(table, pk, row, write)
        return [row] if row is not None else []
    by_ck: dict[Any, Row] = {r[ck]: dict(r) for r in rows}
    for write in writes:
        if isinstance(write, Upsert):
            value = write.row[ck]
            if _in_range(table, value, start_after, end_before):
                merged = by_ck.get(value) or {c: None for c in table.columns}
                merged.update(write.row)
                by_ck[value] = merged
        else:
            for value in list(by_ck):
                if _deletes(table, part + (value,), write):
                    del by_ck[value]
    ordered = sorted(by_ck.values(), key=lambda r: r[ck], reverse=table.descending)
    return ordered if limit is None else ordered[:limit]

