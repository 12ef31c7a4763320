"""The distributed read store: every Table as a Cassandra table, on cassandra-driver.

Same port, same behaviour as projections.sqlite_store (tests/test_read_store_contract.py
holds both to one suite); what differs is how each promise is kept on Cassandra.

Order of writes. Cassandra resolves conflicting writes by timestamp, not by arrival, so
"apply these writes in order" is kept by giving every statement an explicit
`USING TIMESTAMP` taken from one strictly increasing per-process microsecond clock, in
list order. A Delete then an Upsert of the same row in one apply leaves the row (the
upsert's timestamp is higher), an Upsert then a Delete removes it, and a later apply
always beats an earlier one. Because the order lives in the timestamps, the statements
of one apply may reach Cassandra in any order, which is what lets big write sets go out
concurrently (see `CassandraReadStore.apply`). It also makes every statement idempotent
(a retry writes the same cells with the same timestamp), so the driver may retry them.
Across processes the order is wall-clock order; that is enough because every event
touching one counter is routed to one worker (architecture rule 2).

Consistency. Every read and write runs at LOCAL_QUORUM (set by
projections.cassandra_session.open_session). Projectors read-modify-write (is this like
new? what is the count now?), so a read must see the previous event's writes:
LOCAL_QUORUM writes plus LOCAL_QUORUM reads overlap in at least one replica (R + W > RF).
LOCAL keeps a request inside its data centre (no cross-DC latency on the hot path), and
with three replicas it survives one node down. With one replica it is simply ONE.

Transactions. Cassandra has none: `unit_of_work()` and `savepoint()` are no-ops. A failure
part-way through an apply can leave part of its writes; the runner then does not save
its checkpoint, replays the event, and the projector's idempotent writes (rule 1) repair
the rows. Small applies are a LOGGED batch, so for them it is all or nothing anyway.
"""
from __future__ import annotations

import functools
import heapq
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

import orjson
from cassandra import OperationTimedOut, ReadTimeout, Unavailable, WriteTimeout
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, NoHostAvailable, ResultSet, Session
from cassandra.concurrent import execute_concurrent
from cassandra.connection import ConnectionException
from cassandra.query import BatchStatement, BatchType, BoundStatement, PreparedStatement, Statement, tuple_factory

from observability.metrics import READ_STORE_QUERIES
from projections.cassandra_session import open_session, parse_cassandra_url
from projections.store import (
    Checkpoint,
    DeadLetter,
    Delete,
    DeletePartition,
    DeleteUpTo,
    Get,
    Read,
    ReadStoreUnavailable,
    Row,
    Scan,
    Table,
    Upsert,
    Write,
)

CQL_TYPES = {"int": "bigint", "text": "text", "bool": "boolean", "json": "text", "float": "double"}

# An apply at most this big goes as one LOGGED batch: the edge + index + count a
# projector emits for one event lands all together or not at all.
SMALL_APPLY_STATEMENTS = 20
# ...and only while its values stay well under Cassandra's batch_size_fail_threshold
# (50 KiB by default), which would reject the whole batch.
SMALL_APPLY_BYTES = 32 * 1024
# apply_groups merges the write sets of consecutive events of one group into one LOGGED
# batch up to this many statements (and SMALL_APPLY_BYTES): fewer requests and batch-log
# writes, and a group's events still land all or nothing, in order.
GROUP_BATCH_STATEMENTS = 100
# Big applies go as UNLOGGED batches of writes whose partitions share one replica set,
# kept under Cassandra's warning thresholds (unlogged_batch_across_partitions_warn_threshold
# 10, batch_size_warn_threshold 5 KiB) so the server log stays readable.
BATCH_PARTITIONS = 10
BATCH_STATEMENTS = 40
BATCH_BYTES = 4 * 1024
STATEMENT_OVERHEAD_BYTES = 32  # column names, liveness info: what _size cannot see
# Requests in flight at once for big applies and multi-key reads.
CONCURRENCY = 100
# Clustering keys per IN (get_many): Cassandra reads an IN as that many slices of one
# partition; a short list keeps one request's work and its result page small.
IN_LIMIT = 100

CHECKPOINTS = Table(
    "projection_checkpoints",
    {"projection": "text", "partition": "int", "position": "int", "event_time": "text"},
    ("projection",),
    "partition",
)
DEAD_LETTERS_DDL = (
    'CREATE TABLE IF NOT EXISTS "dead_letters" ("projection" text, "partition" bigint, "position" bigint,'
    ' "event_id" text, "event_type" text, "error" text, "body" blob, "failed_at" text,'
    ' PRIMARY KEY (("projection"), "partition", "position"))'
)
DEAD_LETTER_COLUMNS = ("projection", "partition", "position", "event_id", "event_type", "error", "body", "failed_at")

# What "Cassandra does not answer" looks like from the driver.
UNAVAILABLE = (NoHostAvailable, OperationTimedOut, Unavailable, ReadTimeout, WriteTimeout, ConnectionException)

F = TypeVar("F", bound=Callable[..., Any])


def _unavailable_as_port_error(method: F) -> F:
    """Callers of the port only know ReadStoreUnavailable, not the driver's errors."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except UNAVAILABLE as exc:
            raise ReadStoreUnavailable(f"cassandra: {exc}") from exc

    return wrapper  # type: ignore[return-value]


class MicrosecondClock:
    """Strictly increasing microsecond timestamps for this process.

    Wall-clock based (so a later process's writes also win over an earlier one's), but
    never repeating or going backwards: reserving n stamps moves the clock n microseconds
    on, so it only runs ahead of real time above a million statements a second.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def reserve(self, count: int) -> int:
        """The first of `count` consecutive fresh timestamps."""
        with self._lock:
            first = max(time.time_ns() // 1000, self._last + 1)
            self._last = first + max(count, 1) - 1
            return first


CLOCK = MicrosecondClock()  # one per process: every store's applies are ordered together


def _q(name: str) -> str:
    # Quoted identifiers: column names such as "count", "text" or "partition" are CQL
    # keywords; our names are lower case, so quoting does not change them.
    return f'"{name}"'


def _encode(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "json":
        return orjson.dumps(value).decode()
    if kind == "bool":
        return bool(value)
    if kind == "float":
        return float(value)
    return value


def _decode(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "json":
        return orjson.loads(value)
    return value


def _size(value: Any) -> int:
    """Rough bytes a bound value adds to a batch (for the batch size limit)."""
    return len(value) if isinstance(value, (str, bytes)) else 8


@dataclass(frozen=True)
class _Bound:
    """One write ready to send: the statement, the partition it mutates, its rough size."""

    statement: BoundStatement
    partition: tuple[Any, ...]  # (table name, partition key values...)
    size: int


class CassandraReadStore:
    def __init__(self, cluster: Cluster, session: Session) -> None:
        self._cluster = cluster
        self._session = session
        self._prepared: dict[tuple[Any, ...], PreparedStatement] = {}
        self._prepare_lock = threading.Lock()
        # Reads want plain tuples: the columns are always selected in table order.
        self._reads = session.execution_profile_clone_update(EXEC_PROFILE_DEFAULT, row_factory=tuple_factory)
        self._ensure_internal_tables()

    @classmethod
    def from_url(cls, url: str) -> CassandraReadStore:
        try:
            cluster, session = open_session(parse_cassandra_url(url))
        except UNAVAILABLE as exc:
            raise ReadStoreUnavailable(f"cassandra at {url}: {exc}") from exc
        try:
            return cls(cluster, session)
        except BaseException:
            cluster.shutdown()  # do not leak the driver's threads and connections
            raise

    @property
    def session(self) -> Session:
        """The driver session (schema tools and tests; projectors use the port)."""
        return self._session

    @property
    def keyspace(self) -> str:
        return str(self._session.keyspace)

    # ----- schema -------------------------------------------------------------------

    @_unavailable_as_port_error
    def ensure_tables(self, tables: Iterable[Table]) -> None:
        """CREATE TABLE IF NOT EXISTS each table, then wait until every node agrees."""
        tables = list(tables)
        for table in tables:
            self._session.execute(_create_table_cql(table))
        self._wait_for_schema_agreement()
        for table in tables:
            self._check_shape(table)

    migrate = ensure_tables

    def _ensure_internal_tables(self) -> None:
        try:
            self._session.execute(_create_table_cql(CHECKPOINTS))
            self._session.execute(DEAD_LETTERS_DDL)
            self._wait_for_schema_agreement()
        except UNAVAILABLE as exc:
            raise ReadStoreUnavailable(f"cassandra: {exc}") from exc

    def _wait_for_schema_agreement(self) -> None:
        # Preparing against a node that has not seen the table yet fails: wait first.
        if not self._cluster.control_connection.wait_for_schema_agreement(wait_time=30):
            raise ReadStoreUnavailable("cassandra: nodes did not agree on the schema within 30 s")

    def _check_shape(self, table: Table) -> None:
        """CREATE TABLE IF NOT EXISTS keeps an older table as it is: say so loudly
        instead of failing later on a missing column."""
        meta = self._cluster.metadata.keyspaces[self.keyspace].tables.get(table.name)
        if meta is None:
            raise ReadStoreUnavailable(f"cassandra: table {table.name} was created but is not in the schema")
        want = {name: CQL_TYPES[kind] for name, kind in table.columns.items()}
        have = {name: column.cql_type for name, column in meta.columns.items()}
        keys = (
            tuple(c.name for c in meta.partition_key),
            tuple(c.name for c in meta.clustering_key),
            tuple(c.is_reversed for c in meta.clustering_key),
        )
        want_keys = (
            table.partition_key,
            (table.clustering,) if table.clustering else (),
            (table.descending,) if table.clustering else (),
        )
        if have != want or keys != want_keys:
            raise ValueError(
                f"table {self.keyspace}.{table.name} exists with another shape: columns {have},"
                f" keys {keys}; this code wants {want}, keys {want_keys} (a new projection"
                " version gets new tables)"
            )

    # ----- prepared statements ------------------------------------------------------

    def _statement(self, key: tuple[Any, ...], cql: Callable[[], str]) -> PreparedStatement:
        """The prepared statement for (table, operation, columns...), prepared once."""
        found = self._prepared.get(key)
        if found is None:
            with self._prepare_lock:
                found = self._prepared.get(key)
                if found is None:
                    found = self._session.prepare(cql())
                    # Explicit timestamps make every write safe to retry; reads always are.
                    found.is_idempotent = True
                    self._prepared[key] = found
        return found

    def _bind_write(self, write: Write, stamp: int) -> _Bound:
        if isinstance(write, Upsert):
            return self._bind_upsert(write.table, write.row, stamp)
        if isinstance(write, Delete):
            return self._bind_delete(write.table, write.key, write.table.primary_key, "delete", stamp)
        if isinstance(write, DeletePartition):
            return self._bind_delete(write.table, write.partition, write.table.partition_key, "delete_partition", stamp)
        if isinstance(write, DeleteUpTo):
            return self._bind_delete_up_to(write, stamp)
        raise TypeError(f"unknown write {write!r}")  # pragma: no cover - the Write union is closed

    def _bind_upsert(self, table: Table, row: Row, stamp: int) -> _Bound:
        missing = [k for k in table.primary_key if k not in row]
        if missing:
            raise ValueError(f"upsert into {table.name} lacks key columns {missing}")
        unknown = [k for k in row if k not in table.columns]
        if unknown:
            raise ValueError(f"upsert into {table.name} names unknown columns {unknown}")
        names = tuple(c for c in table.columns if c in row)  # one cache entry per column set
        prepared = self._statement(
            (table.name, "upsert", names),
            lambda: f"INSERT INTO {_q(table.name)} ({', '.join(map(_q, names))})"
            f" VALUES ({', '.join('?' * len(names))}) USING TIMESTAMP ?",
        )
        values = [_encode(table.columns[n], row[n]) for n in names]
        size = STATEMENT_OVERHEAD_BYTES + sum(map(_size, values))
        return _Bound(prepared.bind([*values, stamp]), self._partition_of(table, row), size)

    def _bind_delete(self, table: Table, key: Row, columns: tuple[str, ...], op: str, stamp: int) -> _Bound:
        prepared = self._statement(
            (table.name, op),
            lambda: f"DELETE FROM {_q(table.name)} USING TIMESTAMP ? WHERE {_where(columns)}",
        )
        values = [_encode(table.columns[c], key[c]) for c in columns]
        size = STATEMENT_OVERHEAD_BYTES + sum(map(_size, values))
        return _Bound(prepared.bind([stamp, *values]), self._partition_of(table, key), size)

    def _bind_delete_up_to(self, write: DeleteUpTo, stamp: int) -> _Bound:
        table = write.table
        if table.clustering is None:
            raise ValueError(f"DeleteUpTo on {table.name}, which has no clustering column")
        prepared = self._statement(
            (table.name, "delete_up_to"),
            lambda: f"DELETE FROM {_q(table.name)} USING TIMESTAMP ?"
            f" WHERE {_where(table.partition_key)} AND {_q(table.clustering)} <= ?",  # type: ignore[arg-type]
        )
        values = [_encode(table.columns[c], write.partition[c]) for c in table.partition_key]
        upto = _encode(table.columns[table.clustering], write.upto)
        size = STATEMENT_OVERHEAD_BYTES + sum(map(_size, values)) + 8
        return _Bound(prepared.bind([stamp, *values, upto]), self._partition_of(table, write.partition), size)

    @staticmethod
    def _partition_of(table: Table, row: Row) -> tuple[Any, ...]:
        return (table.name, *(row[c] for c in table.partition_key))

    # ----- writes -------------------------------------------------------------------

    @_unavailable_as_port_error
    def apply(self, writes: Sequence[Write]) -> None:
        """Carry out writes with the effect of doing them in order.

        Each write gets the next timestamp of the process clock, in list order, so the
        order is kept whatever order Cassandra receives them in. How they are sent:

        - Small sets (at most SMALL_APPLY_STATEMENTS statements and SMALL_APPLY_BYTES of
          values: what a projector emits for one event, such as an edge, its index row
          and the count) go as ONE LOGGED batch: atomic, so a count never lands
          without its row, whatever fails in between.
        - Large sets (a post fanned out to thousands of timelines) are too big for one
          batch and atomicity across thousands of partitions is not worth the batch
          log. Since the timestamps already fix the outcome, any grouping of them is
          order-insensitive, so they are grouped for speed (see _pack): a partition's
          writes stay together (one mutation, atomic within the partition), partitions
          whose replicas are the same nodes share an UNLOGGED batch (the token-aware
          coordinator is their replica: no extra hop, and a tenth of the requests;
          measured 3-4x faster than one statement each), and the batches run
          concurrently, CONCURRENCY at a time. A failure part-way raises; the runner
          replays the event and its idempotent writes finish the job.
        """
        if not writes:
            return
        first = CLOCK.reserve(len(writes))
        bound = [self._bind_write(w, first + i) for i, w in enumerate(writes)]
        if len(bound) == 1:
            self._session.execute(bound[0].statement)
        elif len(bound) <= SMALL_APPLY_STATEMENTS and sum(b.size for b in bound) <= SMALL_APPLY_BYTES:
            self._session.execute(_batch(BatchType.LOGGED, (b.statement for b in bound)))
        else:
            self._run_concurrently(self._pack(bound), self._session.get_execution_profile(EXEC_PROFILE_DEFAULT))

    @_unavailable_as_port_error
    def apply_groups(self, groups: Sequence[Sequence[Sequence[Write]]]) -> None:
        """Apply many events' write sets in a few concurrent rounds.

        Within a group, consecutive small write sets are merged into one LOGGED batch (of
        at most GROUP_BATCH_STATEMENTS statements and SMALL_APPLY_BYTES), a write set too
        big for that becomes its own step of packed UNLOGGED batches (as apply() sends
        it). Round r sends step r of every group at once; a group's next step waits for
        the round, so a group's write sets land in order and a crash leaves a prefix of
        each group, never a later write set without an earlier one: an absolute count
        never lands ahead of the edge it counted. Timestamps are reserved in group order
        as apply() does."""
        steps: list[list[list[Statement]]] = []  # per group: steps, each concurrent statements
        for group in groups:
            sets = [ws for ws in group if ws]
            if not sets:
                continue
            first = CLOCK.reserve(sum(len(ws) for ws in sets))
            group_steps: list[list[Statement]] = []
            batch: list[_Bound] = []
            batch_size = 0
            for ws in sets:
                bound = [self._bind_write(w, first + i) for i, w in enumerate(ws)]
                first += len(ws)
                size = sum(b.size for b in bound)
                if len(bound) > SMALL_APPLY_STATEMENTS or size > SMALL_APPLY_BYTES:
                    if batch:
                        group_steps.append([_logged(batch)])
                        batch, batch_size = [], 0
                    group_steps.append(self._pack(bound))
                    continue
                if batch and (len(batch) + len(bound) > GROUP_BATCH_STATEMENTS or batch_size + size > SMALL_APPLY_BYTES):
                    group_steps.append([_logged(batch)])
                    batch, batch_size = [], 0
                batch += bound
                batch_size += size
            if batch:
                group_steps.append([_logged(batch)])
            steps.append(group_steps)
        profile = self._session.get_execution_profile(EXEC_PROFILE_DEFAULT)
        for r in range(max((len(g) for g in steps), default=0)):
            statements = [s for g in steps if r < len(g) for s in g[r]]
            self._run_concurrently(statements, profile)

    def _replicas(self, statement: BoundStatement) -> tuple[str, ...]:
        """The nodes holding a statement's partition (empty without token metadata)."""
        hosts = self._cluster.metadata.get_replicas(self.keyspace, statement.routing_key)
        return tuple(sorted(str(h.endpoint) for h in hosts))

    def _pack(self, bound: Sequence[_Bound]) -> list[Statement]:
        """Batches for a large write set: partitions grouped by replica set, each batch
        within BATCH_PARTITIONS, BATCH_STATEMENTS and BATCH_BYTES. A partition with more
        writes than fit one batch is split over several (the timestamps keep its order)."""
        partitions: dict[tuple[Any, ...], list[_Bound]] = {}
        for b in bound:
            partitions.setdefault(b.partition, []).append(b)
        by_replicas: dict[tuple[str, ...], list[list[_Bound]]] = {}
        for partition, group in partitions.items():
            # Without token metadata, no sharing: a batch then stays on one partition.
            replicas = self._replicas(group[0].statement) or (repr(partition),)
            by_replicas.setdefault(replicas, []).append(group)
        packer = _Packer()
        for groups in by_replicas.values():
            for group in groups:
                for start in range(0, len(group), BATCH_STATEMENTS):
                    packer.add_partition(group[start : start + BATCH_STATEMENTS])
            packer.flush()  # never mix replica sets in one batch
        return packer.statements

    def _run_concurrently(self, statements: Sequence[Statement], profile: Any) -> list[ResultSet]:
        """Run statements with CONCURRENCY in flight; results in the statements' order."""
        if len(statements) == 1:
            return [self._session.execute(statements[0], execution_profile=profile)]
        outcomes = execute_concurrent(
            self._session,
            [(s, None) for s in statements],
            concurrency=CONCURRENCY,
            raise_on_first_error=True,
            results_generator=False,
            execution_profile=profile,
        )
        return [outcome.result_or_exc for outcome in outcomes]

    @contextmanager
    def unit_of_work(self) -> Iterator[None]:
        """No-op: Cassandra has no transactions. Rows and checkpoints are written by
        separate requests; replaying idempotent writes covers a crash in between."""
        yield

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """No-op, for the runners that call it: there is nothing to roll back to. A
        projector that fails does so in project(), before its writes are sent."""
        yield

    # ----- reads --------------------------------------------------------------------

    def _decode_row(self, table: Table, values: Sequence[Any]) -> Row:
        return {name: _decode(kind, v) for (name, kind), v in zip(table.columns.items(), values)}

    def _bind_get(self, table: Table, key: Row) -> BoundStatement:
        prepared = self._statement(
            (table.name, "get"),
            lambda: f"SELECT {_columns(table)} FROM {_q(table.name)} WHERE {_where(table.primary_key)}",
        )
        return prepared.bind([_encode(table.columns[c], key[c]) for c in table.primary_key])

    @_unavailable_as_port_error
    def get(self, table: Table, key: Row) -> Row | None:
        READ_STORE_QUERIES.inc(table=table.name)
        found = self._session.execute(self._bind_get(table, key), execution_profile=self._reads).one()
        return self._decode_row(table, found) if found else None

    def _bind_get_in(self, table: Table, partition: tuple[Any, ...], clustering: list[Any]) -> BoundStatement:
        assert table.clustering is not None
        prepared = self._statement(
            (table.name, "get_in"),
            lambda: f"SELECT {_columns(table)} FROM {_q(table.name)}"
            f" WHERE {_where(table.partition_key)} AND {_q(table.clustering)} IN ?",
        )
        kind = table.columns[table.clustering]
        values = [_encode(table.columns[c], v) for c, v in zip(table.partition_key, partition)]
        return prepared.bind([*values, [_encode(kind, v) for v in clustering]])

    def get_many(self, table: Table, keys: Sequence[Row]) -> list[Row | None]:
        return self.fetch([Get(table, tuple(k[c] for c in table.primary_key)) for k in keys])

    def _bind_scan(
        self, table: Table, partition: Row, start_after: Any, end_before: Any, limit: int | None
    ) -> BoundStatement:
        ck = table.clustering
        after = ck is not None and start_after is not None
        before = ck is not None and end_before is not None
        limited = limit is not None

        def cql() -> str:
            where = _where(table.partition_key)
            # In the table's own order, "after" is smaller for a descending table.
            after_op, before_op = ("<", ">") if table.descending else (">", "<")
            if after:
                where += f" AND {_q(ck)} {after_op} ?"  # type: ignore[arg-type]
            if before:
                where += f" AND {_q(ck)} {before_op} ?"  # type: ignore[arg-type]
            return f"SELECT {_columns(table)} FROM {_q(table.name)} WHERE {where}" + (" LIMIT ?" if limited else "")

        prepared = self._statement((table.name, "scan", after, before, limited), cql)
        values = [_encode(table.columns[c], partition[c]) for c in table.partition_key]
        if after:
            values.append(_encode(table.columns[ck], start_after))  # type: ignore[index]
        if before:
            values.append(_encode(table.columns[ck], end_before))  # type: ignore[index]
        if limited:
            values.append(int(limit))  # type: ignore[arg-type]
        return prepared.bind(values)

    @_unavailable_as_port_error
    def fetch(self, reads: Sequence[Read]) -> list[Any]:
        """Every read in flight at once (CONCURRENCY at a time): one round trip. Gets of
        several rows of one partition (a reader's blocks, likes, follows among a page's
        authors) go as one IN on the clustering column, a slice of one partition on one
        replica set. Never one IN across partitions: that would make one coordinator
        wait for every replica set in turn."""
        if not reads:
            return []
        singles: dict[tuple[str, tuple[Any, ...]], Get] = {}
        slices: dict[tuple[str, tuple[Any, ...]], tuple[Table, dict[Any, None]]] = {}
        for read in reads:
            if isinstance(read, Get) and read.table.clustering is None:
                singles.setdefault((read.table.name, read.key), read)
            elif isinstance(read, Get):
                width = len(read.table.partition_key)
                slices.setdefault((read.table.name, read.key[:width]), (read.table, {}))[1][read.key[width]] = None
        statements: list[BoundStatement] = []
        sources: list[tuple[Table, int | None]] = []  # per statement: its table, the Scan's index
        for read in singles.values():
            statements.append(self._bind_get(read.table, read.key_row))
            sources.append((read.table, None))
        for (_, partition), (table, clustering) in slices.items():
            wanted = list(clustering)
            for start in range(0, len(wanted), IN_LIMIT):
                statements.append(self._bind_get_in(table, partition, wanted[start : start + IN_LIMIT]))
                sources.append((table, None))
        for n, read in enumerate(reads):
            if isinstance(read, Scan):
                statements.append(self._bind_scan(read.table, read.partition_row, read.start_after, read.end_before, read.limit))
                sources.append((read.table, n))
        for name, count in Counter(table.name for table, _ in sources).items():
            READ_STORE_QUERIES.inc(count, table=name)
        rows: dict[tuple[str, tuple[Any, ...]], Row] = {}
        scanned: dict[int, list[Row]] = {}
        for (table, scan), result in zip(sources, self._run_concurrently(statements, self._reads)):
            decoded = [self._decode_row(table, values) for values in result]
            if scan is not None:
                scanned[scan] = decoded
                continue
            for row in decoded:
                rows[(table.name, tuple(row[c] for c in table.primary_key))] = row
        return [scanned[n] if isinstance(r, Scan) else rows.get((r.table.name, r.key)) for n, r in enumerate(reads)]

    @_unavailable_as_port_error
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
            return []  # CQL refuses LIMIT 0
        statement = self._bind_scan(table, partition, start_after, end_before, limit)
        READ_STORE_QUERIES.inc(table=table.name)
        result = self._session.execute(statement, execution_profile=self._reads)
        # Cassandra returns a partition in its clustering order; iterating pages on.
        return [self._decode_row(table, r) for r in result]

    @_unavailable_as_port_error
    def scan_many(
        self,
        table: Table,
        partitions: Sequence[Row],
        *,
        start_after: Any = None,
        end_before: Any = None,
        limit: int,
    ) -> list[Row]:
        """Each partition's first `limit` rows, read concurrently, merged by the
        clustering column (heapq), cut at `limit`."""
        if not partitions or limit <= 0:
            return []
        distinct = list(dict.fromkeys(tuple(p[c] for c in table.partition_key) for p in partitions))
        statements = [
            self._bind_scan(table, dict(zip(table.partition_key, p)), start_after, end_before, limit)
            for p in distinct
        ]
        READ_STORE_QUERIES.inc(len(statements), table=table.name)
        results = self._run_concurrently(statements, self._reads)
        runs = [[self._decode_row(table, r) for r in result] for result in results]
        return _merge(table, runs, limit)

    @_unavailable_as_port_error
    def dump(self, table: Table) -> list[Row]:
        """The whole table (a full scan, across every node), sorted by primary key here:
        for tests and verification, never for serving."""
        result = self._session.execute(f"SELECT {_columns(table)} FROM {_q(table.name)}", execution_profile=self._reads)
        rows = [self._decode_row(table, r) for r in result]
        rows.sort(key=lambda r: tuple(r[c] for c in table.primary_key))
        return rows

    # ----- checkpoints and dead letters ---------------------------------------------

    @_unavailable_as_port_error
    def load_checkpoints(self) -> list[Checkpoint]:
        return [
            Checkpoint(r["projection"], r["partition"], r["position"], r["event_time"]) for r in self.dump(CHECKPOINTS)
        ]

    def save_checkpoints(self, checkpoints: Sequence[Checkpoint]) -> None:
        self.apply(
            [
                Upsert(
                    CHECKPOINTS,
                    {
                        "projection": c.projection,
                        "partition": c.partition,
                        "position": c.position,
                        "event_time": c.event_time,
                    },
                )
                for c in checkpoints
            ]
        )

    def delete_checkpoints(self, projection: str) -> None:
        self.apply([DeletePartition(CHECKPOINTS, {"projection": projection})])

    @_unavailable_as_port_error
    def add_dead_letter(self, letter: DeadLetter) -> None:
        prepared = self._statement(
            ("dead_letters", "upsert"),
            lambda: f"INSERT INTO dead_letters ({', '.join(map(_q, DEAD_LETTER_COLUMNS))})"
            f" VALUES ({', '.join('?' * len(DEAD_LETTER_COLUMNS))}) USING TIMESTAMP ?",
        )
        values = [getattr(letter, c) for c in DEAD_LETTER_COLUMNS]
        self._session.execute(prepared.bind([*values, CLOCK.reserve(1)]))

    @_unavailable_as_port_error
    def dead_letters(self) -> list[DeadLetter]:
        result = self._session.execute(
            f"SELECT {', '.join(map(_q, DEAD_LETTER_COLUMNS))} FROM dead_letters", execution_profile=self._reads
        )
        letters = [DeadLetter(*r) for r in result]
        letters.sort(key=lambda d: (d.projection, d.partition, d.position))
        return letters

    @_unavailable_as_port_error
    def remove_dead_letter(self, projection: str, partition: int, position: int) -> None:
        self._session.execute(
            'DELETE FROM dead_letters USING TIMESTAMP %s WHERE "projection" = %s AND "partition" = %s AND "position" = %s',
            (CLOCK.reserve(1), projection, partition, position),
        )

    @_unavailable_as_port_error
    def drop_tables(self, tables: Iterable[Table]) -> None:
        """Drop a retired projection version's tables (projections rebuild)."""
        for table in tables:
            self._session.execute(f"DROP TABLE IF EXISTS {_q(table.name)}", timeout=60)
            self._prepared = {k: v for k, v in self._prepared.items() if k[0] != table.name}
        self._wait_for_schema_agreement()

    # ----- health -------------------------------------------------------------------

    @_unavailable_as_port_error
    def ping(self) -> None:
        self._session.execute("SELECT release_version FROM system.local", timeout=5)

    def close(self) -> None:
        self._cluster.shutdown()


# ----- CQL text ---------------------------------------------------------------------


def _create_table_cql(table: Table) -> str:
    columns = ", ".join(f"{_q(name)} {CQL_TYPES[kind]}" for name, kind in table.columns.items())
    key = f"({', '.join(map(_q, table.partition_key))})"
    if table.clustering:
        key += f", {_q(table.clustering)}"
    cql = f"CREATE TABLE IF NOT EXISTS {_q(table.name)} ({columns}, PRIMARY KEY ({key}))"
    if table.clustering and table.descending:
        cql += f" WITH CLUSTERING ORDER BY ({_q(table.clustering)} DESC)"
    return cql


def _where(columns: Sequence[str]) -> str:
    return " AND ".join(f"{_q(c)} = ?" for c in columns)


def _columns(table: Table) -> str:
    return ", ".join(map(_q, table.columns))


# ----- sending writes ---------------------------------------------------------------


def _batch(kind: BatchType, statements: Iterable[BoundStatement]) -> BatchStatement:
    batch = BatchStatement(batch_type=kind)
    for statement in statements:
        batch.add(statement)
    return batch


def _logged(bound: Sequence[_Bound]) -> Statement:
    return bound[0].statement if len(bound) == 1 else _batch(BatchType.LOGGED, (b.statement for b in bound))


@dataclass
class _Packer:
    """Fills UNLOGGED batches partition by partition, flushing before a limit is passed."""

    statements: list[Statement] = field(default_factory=list)
    pending: list[_Bound] = field(default_factory=list)
    partitions: int = 0
    size: int = 0

    def add_partition(self, writes: list[_Bound]) -> None:
        size = sum(w.size for w in writes)
        if self.pending and (
            self.partitions + 1 > BATCH_PARTITIONS
            or len(self.pending) + len(writes) > BATCH_STATEMENTS
            or self.size + size > BATCH_BYTES
        ):
            self.flush()
        self.pending += writes
        self.partitions += 1
        self.size += size

    def flush(self) -> None:
        if len(self.pending) == 1:
            self.statements.append(self.pending[0].statement)
        elif self.pending:
            self.statements.append(_batch(BatchType.UNLOGGED, (w.statement for w in self.pending)))
        self.pending, self.partitions, self.size = [], 0, 0


def _merge(table: Table, runs: list[list[Row]], limit: int) -> list[Row]:
    ck = table.clustering
    if ck is None:
        return [r for run in runs for r in run][:limit]
    merged = heapq.merge(*runs, key=lambda r: r[ck], reverse=table.descending)
    return [r for _, r in zip(range(limit), merged)]
