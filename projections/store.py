"""The read-store port: query-first tables shaped the way Cassandra stores them.

A Table has a partition key and at most one clustering column. Projectors write Upserts
and Deletes; queries read one partition (or a few) at a time. Adapters:
projections.sqlite_store (embedded) and projections.cassandra_store.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ContextManager, Hashable, Iterable, Literal, Mapping, Protocol, Sequence, TypeVar, Union

ColumnType = Literal["int", "text", "bool", "json", "float"]
Row = dict[str, Any]
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Table:
    name: str
    columns: dict[str, ColumnType]
    partition_key: tuple[str, ...]
    clustering: str | None = None
    descending: bool = False  # natural order of the clustering column

    def __hash__(self) -> int:  # columns is a dict; name and keys identify a table
        return hash((self.name, self.partition_key, self.clustering))

    @property
    def primary_key(self) -> tuple[str, ...]:
        return self.partition_key + ((self.clustering,) if self.clustering else ())

    @property
    def value_columns(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c not in self.primary_key)


@dataclass(frozen=True)
class Upsert:
    """Insert or overwrite the given columns of one row (Cassandra's INSERT semantics)."""

    table: Table
    row: Row


@dataclass(frozen=True)
class Delete:
    """Delete one row by its full primary key."""

    table: Table
    key: Row


@dataclass(frozen=True)
class DeletePartition:
    table: Table
    partition: Row


@dataclass(frozen=True)
class DeleteUpTo:
    """Delete the rows of a partition whose clustering value is <= upto: one range
    tombstone in Cassandra, however many rows it covers (used to trim timelines)."""

    table: Table
    partition: Row
    upto: int


Write = Union[Upsert, Delete, DeletePartition, DeleteUpTo]


@dataclass(frozen=True)
class Get:
    """A read of one row by its full primary key (values in primary-key order)."""

    table: Table
    key: tuple[Any, ...]

    @classmethod
    def of(cls, table: Table, key: Row) -> Get:
        """The read of the row with this primary key (a row of key columns)."""
        return cls(table, tuple(key[c] for c in table.primary_key))

    @property
    def key_row(self) -> Row:
        return dict(zip(self.table.primary_key, self.key))


@dataclass(frozen=True)
class Scan:
    """A read of one partition (partition-key values in order), as ReadView.scan."""

    table: Table
    partition: tuple[Any, ...]
    start_after: Any = None
    end_before: Any = None
    limit: int | None = None

    @property
    def partition_row(self) -> Row:
        return dict(zip(self.table.partition_key, self.partition))


Read = Union[Get, Scan]


@dataclass(frozen=True)
class Checkpoint:
    projection: str
    partition: int
    position: int
    event_time: str | None = None  # occurred_at of the last applied event


@dataclass(frozen=True)
class DeadLetter:
    projection: str
    partition: int
    position: int
    event_id: str
    event_type: str
    error: str
    body: bytes = field(repr=False, default=b"")
    failed_at: str = ""


class ReadView(Protocol):
    """What projectors and queries may read."""

    def get(self, table: Table, key: Row) -> Row | None:
        """One row by full primary key."""

    def get_many(self, table: Table, keys: Sequence[Row]) -> list[Row | None]:
        """Rows by full primary key, in the order of keys (None where missing)."""

    def scan(
        self,
        table: Table,
        partition: Row,
        *,
        start_after: Any = None,
        end_before: Any = None,
        limit: int | None = None,
    ) -> list[Row]:
        """Rows of one partition in the table's clustering order, strictly after
        start_after and strictly before end_before (in that order) when given."""

    def scan_many(
        self,
        table: Table,
        partitions: Sequence[Row],
        *,
        start_after: Any = None,
        end_before: Any = None,
        limit: int,
    ) -> list[Row]:
        """scan() over several partitions merged into one clustering order."""

    def fetch(self, reads: Sequence[Read]) -> list[Any]:
        """The answers of many reads, in order: a row or None for a Get, a list of rows for
        a Scan. A read store runs them concurrently (one round trip for all): a query
        that needs several independent reads asks for them in one fetch."""


class ReadStore(ReadView, Protocol):
    def ensure_tables(self, tables: Iterable[Table]) -> None: ...

    def apply(self, writes: Sequence[Write]) -> None:
        """Carry out writes in order (atomically per call where the backend can)."""

    def apply_groups(self, groups: Sequence[Sequence[Sequence[Write]]]) -> None:
        """Apply the write sets of many events. Each group's write sets take effect in
        order, each atomically where the backend can (as apply()); groups are
        independent of each other, so the store may apply them concurrently."""

    def unit_of_work(self) -> ContextManager[None]:
        """Group applies and checkpoint saves (one SQLite transaction; Cassandra: none)."""

    def load_checkpoints(self) -> list[Checkpoint]: ...

    def save_checkpoints(self, checkpoints: Sequence[Checkpoint]) -> None: ...

    def add_dead_letter(self, letter: DeadLetter) -> None: ...

    def dead_letters(self) -> list[DeadLetter]: ...

    def dump(self, table: Table) -> list[Row]:
        """Every row of a table, sorted by primary key (tests and verification)."""

    def ping(self) -> None:
        """Raise ReadStoreUnavailable when the store cannot be reached."""

    def close(self) -> None: ...


class ReadStoreUnavailable(Exception):
    """The read store cannot be reached."""


def fetch_named(view: ReadView, reads: Mapping[str, Sequence[Read]]) -> dict[str, list[Any]]:
    """Several named lists of reads in one view.fetch (one round trip for all), the
    answers by the same names: how a query reads at once what it needs together."""
    answers = iter(view.fetch([r for group in reads.values() for r in group]))
    return {name: [next(answers) for _ in group] for name, group in reads.items()}


def held(candidates: Sequence[K], rows: Sequence[Row | None]) -> set[K]:
    """The candidates whose Get (in the same order) found a row: a reader's likes,
    blocks or follows among a page's posts or authors, which the Cassandra store reads
    as one query per partition."""
    return {c for c, row in zip(candidates, rows) if row is not None}
