"""The embedded read store: every Table as a WITHOUT ROWID SQLite table.

Each thread gets its own connection (queries run in FastAPI's thread pool, the runner in
its own thread); WAL lets readers go on while the runner writes.
"""
from __future__ import annotations

import functools
import heapq
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import orjson

from observability.metrics import READ_STORE_QUERIES
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
    Table,
    Upsert,
    Write,
)

SQL_TYPES = {"int": "INTEGER", "text": "TEXT", "bool": "INTEGER", "json": "TEXT", "float": "REAL"}

INTERNAL_SCHEMA = """
CREATE TABLE IF NOT EXISTS projection_checkpoints (
    projection TEXT NOT NULL, partition INTEGER NOT NULL, position INTEGER NOT NULL,
    event_time TEXT, PRIMARY KEY (projection, partition)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dead_letters (
    projection TEXT NOT NULL, partition INTEGER NOT NULL, position INTEGER NOT NULL,
    event_id TEXT NOT NULL, event_type TEXT NOT NULL, error TEXT NOT NULL, body BLOB,
    failed_at TEXT NOT NULL, PRIMARY KEY (projection, partition, position)) WITHOUT ROWID;
"""


def _encode(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "json":
        return orjson.dumps(value).decode()
    if kind == "bool":
        return int(bool(value))
    return value


def _decode(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "json":
        return orjson.loads(value)
    if kind == "bool":
        return bool(value)
    return value


class SqliteReadStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._local = threading.local()
        self._tables: dict[str, Table] = {}
        self.conn().executescript(INTERNAL_SCHEMA)

    @classmethod
    def from_url(cls, url: str) -> SqliteReadStore:
        from streams.sqlite_event_store import sqlite_path  # one parser for sqlite URLs

        return cls(sqlite_path(url))

    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            # The read store is rebuildable from the log: NORMAL is durable enough.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    # ----- schema -------------------------------------------------------------------

    def ensure_tables(self, tables: Iterable[Table]) -> None:
        for table in tables:
            cols = ", ".join(f"{name} {SQL_TYPES[kind]}" for name, kind in table.columns.items())
            pk = ", ".join(table.primary_key)
            self.conn().execute(
                f"CREATE TABLE IF NOT EXISTS {table.name} ({cols}, PRIMARY KEY ({pk})) WITHOUT ROWID"
            )
            self._tables[table.name] = table

    # ----- writes -------------------------------------------------------------------

    def apply(self, writes: Sequence[Write]) -> None:
        conn = self.conn()
        for w in writes:
            if isinstance(w, Upsert):
                self._upsert(conn, w.table, w.row)
            elif isinstance(w, Delete):
                where, args = self._where(w.table, w.key, w.table.primary_key)
                conn.execute(f"DELETE FROM {w.table.name} WHERE {where}", args)
            elif isinstance(w, DeletePartition):
                where, args = self._where(w.table, w.partition, w.table.partition_key)
                conn.execute(f"DELETE FROM {w.table.name} WHERE {where}", args)
            elif isinstance(w, DeleteUpTo):
                where, args = self._where(w.table, w.partition, w.table.partition_key)
                conn.execute(
                    f"DELETE FROM {w.table.name} WHERE {where} AND {w.table.clustering} <= ?",
                    (*args, w.upto),
                )
            else:  # pragma: no cover - the Write union is closed
                raise TypeError(f"unknown write {w!r}")

    @staticmethod
    def _upsert(conn: sqlite3.Connection, table: Table, row: Row) -> None:
        names = list(row)
        missing = [k for k in table.primary_key if k not in row]
        if missing:
            raise ValueError(f"upsert into {table.name} lacks key columns {missing}")
        values = [_encode(table.columns[n], row[n]) for n in names]
        updates = [n for n in names if n not in table.primary_key]
        conflict = (
            "DO UPDATE SET " + ", ".join(f"{n} = excluded.{n}" for n in updates)
            if updates
            else "DO NOTHING"
        )
        conn.execute(
            f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
            f" ON CONFLICT ({', '.join(table.primary_key)}) {conflict}",
            values,
        )

    @staticmethod
    def _where(table: Table, key: Row, columns: tuple[str, ...]) -> tuple[str, list[Any]]:
        return (
            " AND ".join(f"{c} = ?" for c in columns),
            [_encode(table.columns[c], key[c]) for c in columns],
        )

    @contextmanager
    def unit_of_work(self) -> Iterator[None]:
        conn = self.conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Undo one projector's writes for one event, keeping the rest of the batch."""
        conn = self.conn()
        conn.execute("SAVEPOINT projector")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK TO projector")
            conn.execute("RELEASE projector")
            raise
        conn.execute("RELEASE projector")

    # ----- reads --------------------------------------------------------------------

    def _row(self, table: Table, names: Sequence[str], values: Sequence[Any]) -> Row:
        row = dict(zip(names, values))
        for name, decode in _decoders(table):
            value = row.get(name)
            if value is not None:
                row[name] = decode(value)
        return row

    def get(self, table: Table, key: Row) -> Row | None:
        where, args = self._where(table, key, table.primary_key)
        cols = list(table.columns)
        READ_STORE_QUERIES.inc(table=table.name)
        found = self.conn().execute(
            f"SELECT {', '.join(cols)} FROM {table.name} WHERE {where}", args
        ).fetchone()
        return self._row(table, cols, found) if found else None

    def get_many(self, table: Table, keys: Sequence[Row]) -> list[Row | None]:
        if not keys:
            return []
        cols = list(table.columns)
        pk = table.primary_key
        found: dict[tuple[Any, ...], Row] = {}
        for chunk_start in range(0, len(keys), 300):
            chunk = keys[chunk_start : chunk_start + 300]
            args = [_encode(table.columns[c], k[c]) for k in chunk for c in pk]
            READ_STORE_QUERIES.inc(table=table.name)
            rows = self.conn().execute(_get_many_sql(table, len(chunk)), args).fetchall()
            for values in rows:
                row = self._row(table, cols, values)
                found[tuple(row[c] for c in pk)] = row
        return [found.get(tuple(k[c] for c in pk)) for k in keys]

    def fetch(self, reads: Sequence[Read]) -> list[Any]:
        """SQLite is in-process, there is no round trip to save: the Gets of each table in
        one get_many, the Scans one by one."""
        answers: list[Any] = [None] * len(reads)
        gets: dict[str, list[int]] = {}
        for n, read in enumerate(reads):
            if isinstance(read, Get):
                gets.setdefault(read.table.name, []).append(n)
            else:
                answers[n] = self.scan(
                    read.table, read.partition_row, start_after=read.start_after, end_before=read.end_before, limit=read.limit
                )
        for indexes in gets.values():
            table = reads[indexes[0]].table
            for n, row in zip(indexes, self.get_many(table, [reads[n].key_row for n in indexes])):
                answers[n] = row
        return answers

    def apply_groups(self, groups: Sequence[Sequence[Sequence[Write]]]) -> None:
        for group in groups:
            for writes in group:
                self.apply(writes)

    def scan(
        self,
        table: Table,
        partition: Row,
        *,
        start_after: Any = None,
        end_before: Any = None,
        limit: int | None = None,
    ) -> list[Row]:
        where, args = self._where(table, partition, table.partition_key)
        where, args = self._bounds(table, where, args, start_after, end_before)
        return self._select(table, where, args, limit)

    def scan_many(
        self,
        table: Table,
        partitions: Sequence[Row],
        *,
        start_after: Any = None,
        end_before: Any = None,
        limit: int,
    ) -> list[Row]:
        if not partitions:
            return []
        if len(table.partition_key) != 1:
            per = [self.scan(table, p, start_after=start_after, end_before=end_before, limit=limit) for p in partitions]
            return _merge(table, per, limit)
        (pk,) = table.partition_key
        rows: list[list[Row]] = []
        for chunk_start in range(0, len(partitions), 500):
            chunk = partitions[chunk_start : chunk_start + 500]
            where = f"{pk} IN ({', '.join('?' * len(chunk))})"
            args = [_encode(table.columns[pk], p[pk]) for p in chunk]
            where, args = self._bounds(table, where, args, start_after, end_before)
            rows.append(self._select(table, where, args, limit))
        return _merge(table, rows, limit)

    @staticmethod
    def _bounds(
        table: Table, where: str, args: list[Any], start_after: Any, end_before: Any
    ) -> tuple[str, list[Any]]:
        ck = table.clustering
        if ck is None:
            return where, args
        after_op, before_op = ("<", ">") if table.descending else (">", "<")
        if start_after is not None:
            where += f" AND {ck} {after_op} ?"
            args = [*args, start_after]
        if end_before is not None:
            where += f" AND {ck} {before_op} ?"
            args = [*args, end_before]
        return where, args

    def _select(self, table: Table, where: str, args: list[Any], limit: int | None) -> list[Row]:
        cols = list(table.columns)
        order = ""
        if table.clustering:
            order = f" ORDER BY {table.clustering} {'DESC' if table.descending else 'ASC'}"
        sql = f"SELECT {', '.join(cols)} FROM {table.name} WHERE {where}{order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        READ_STORE_QUERIES.inc(table=table.name)
        return [self._row(table, cols, r) for r in self.conn().execute(sql, args).fetchall()]

    def dump(self, table: Table) -> list[Row]:
        cols = list(table.columns)
        rows = self.conn().execute(
            f"SELECT {', '.join(cols)} FROM {table.name} ORDER BY {', '.join(table.primary_key)}"
        ).fetchall()
        return [self._row(table, cols, r) for r in rows]

    # ----- checkpoints and dead letters ---------------------------------------------

    def load_checkpoints(self) -> list[Checkpoint]:
        rows = self.conn().execute(
            "SELECT projection, partition, position, event_time FROM projection_checkpoints"
        ).fetchall()
        return [Checkpoint(*r) for r in rows]

    def save_checkpoints(self, checkpoints: Sequence[Checkpoint]) -> None:
        self.conn().executemany(
            "INSERT INTO projection_checkpoints (projection, partition, position, event_time)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (projection, partition) DO UPDATE SET"
            " position = excluded.position, event_time = excluded.event_time",
            [(c.projection, c.partition, c.position, c.event_time) for c in checkpoints],
        )

    def delete_checkpoints(self, projection: str) -> None:
        self.conn().execute("DELETE FROM projection_checkpoints WHERE projection = ?", (projection,))

    def add_dead_letter(self, letter: DeadLetter) -> None:
        self.conn().execute(
            "INSERT OR REPLACE INTO dead_letters (projection, partition, position, event_id,"
            " event_type, error, body, failed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                letter.projection,
                letter.partition,
                letter.position,
                letter.event_id,
                letter.event_type,
                letter.error,
                letter.body,
                letter.failed_at,
            ),
        )

    def dead_letters(self) -> list[DeadLetter]:
        rows = self.conn().execute(
            "SELECT projection, partition, position, event_id, event_type, error, body, failed_at"
            " FROM dead_letters ORDER BY projection, partition, position"
        ).fetchall()
        return [DeadLetter(*r) for r in rows]

    def remove_dead_letter(self, projection: str, partition: int, position: int) -> None:
        self.conn().execute(
            "DELETE FROM dead_letters WHERE projection = ? AND partition = ? AND position = ?",
            (projection, partition, position),
        )

    def drop_tables(self, tables: Iterable[Table]) -> None:
        """Drop a retired projection version's tables (projections rebuild)."""
        for table in tables:
            self.conn().execute(f"DROP TABLE IF EXISTS {table.name}")
            self._tables.pop(table.name, None)

    def ping(self) -> None:
        try:
            self.conn().execute("SELECT 1").fetchone()
        except sqlite3.Error as exc:
            raise ReadStoreUnavailable(str(exc)) from exc

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


@functools.lru_cache(maxsize=None)
def _decoders(table: Table) -> tuple[tuple[str, Any], ...]:
    """Only json and bool columns need converting: the rest come back from SQLite as is."""
    return tuple(
        (name, orjson.loads if kind == "json" else bool)
        for name, kind in table.columns.items()
        if kind in ("json", "bool")
    )


@functools.lru_cache(maxsize=4096)
def _get_many_sql(table: Table, count: int) -> str:
    cols, pk = ", ".join(table.columns), table.primary_key
    if len(pk) == 1:  # a plain IN list is the form SQLite's planner always indexes
        return f"SELECT {cols} FROM {table.name} WHERE {pk[0]} IN ({', '.join('?' * count)})"
    tuples = ", ".join(f"({', '.join('?' * len(pk))})" for _ in range(count))
    return f"SELECT {cols} FROM {table.name} WHERE ({', '.join(pk)}) IN (VALUES {tuples})"


def _merge(table: Table, runs: list[list[Row]], limit: int) -> list[Row]:
    ck = table.clustering
    if ck is None:
        return [r for run in runs for r in run][:limit]
    merged = heapq.merge(*runs, key=lambda r: r[ck], reverse=table.descending)
    return [r for _, r in zip(range(limit), merged)]
