"""The read-store port's contract: one suite that every adapter must pass.

Each test runs against the embedded SQLite adapter and against Cassandra (marked
`distributed`; the fixture starts Cassandra itself). The Cassandra side uses one fresh
keyspace per module, dropped at the end, and wipes the tables between tests.

Two differential tests then hold the adapters to each other: a random stream of writes,
and a generated history of domain events folded through every projector, must leave
identical `dump()`s in both stores.
"""
from __future__ import annotations

import dataclasses
import random
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

from domain.events import (
    AccountRegistered,
    Blocked,
    CommentAdded,
    CommentDeleted,
    ConversationRead,
    EVENT_TYPES,
    DomainEvent,
    Event,
    Followed,
    FollowRequestCancelled,
    FollowRequestDeclined,
    FollowRequested,
    ImageVariant,
    Liked,
    MediaRef,
    MessageSent,
    Muted,
    NotificationsRead,
    PostCreated,
    PostDeleted,
    PostEdited,
    ProfileUpdated,
    SessionsRevoked,
    TimelineRebuildRequested,
    Unblocked,
    Unfollowed,
    Unliked,
    Unmuted,
    new_event,
)
from domain.ids import IdGenerator
from domain.rules import conversation_id
from projections.posts import POSTS
from projections.home_timeline import FANOUT_AUTHORS, PULL_SOURCES, TIMELINE_STATE
from projections.registry import ProjectionSettings, all_projectors, all_tables
from projections.sqlite_store import SqliteReadStore
from projections.store import (
    Checkpoint,
    DeadLetter,
    Delete,
    DeletePartition,
    DeleteUpTo,
    Get,
    ReadStoreUnavailable,
    Scan,
    Table,
    Upsert,
    Write,
)

# ----- the tables the contract is written against -------------------------------------

KV = Table(
    "ct_kv",
    {"id": "int", "name": "text", "flag": "bool", "doc": "json", "score": "float", "count": "int"},
    ("id",),
)
ASC = Table("ct_asc", {"owner": "int", "seq": "int", "label": "text"}, ("owner",), "seq")
DESC = Table("ct_desc", {"owner": "int", "seq": "int", "label": "text"}, ("owner",), "seq", descending=True)
TEXT_CK = Table("ct_text", {"name": "text", "tag": "text", "n": "int"}, ("name",), "tag")
COMPOSITE = Table(
    "ct_composite",
    {"region": "text", "bucket": "int", "seq": "int", "v": "text"},
    ("region", "bucket"),
    "seq",
    descending=True,
)
CONTRACT_TABLES = (KV, ASC, DESC, TEXT_CK, COMPOSITE)
# Small enough that trims, celebrities (pulled, overflow, demoted) and dormant readers all occur.
FOLD_SETTINGS = ProjectionSettings(
    timeline_max=6, backfill=4, trim_every=2, celebrity_threshold=4, celebrity_demote=3, pull_sources=1, inactive_days=1
)
FOLD_TABLES = all_tables(all_projectors(FOLD_SETTINGS))


# ----- fixtures -----------------------------------------------------------------------


def _cassandra_url(keyspace: str) -> str:
    from projections.cassandra_session import parse_cassandra_url
    from stack import services

    env = services.ensure_up(("cassandra",), progress=False)
    base = parse_cassandra_url(env["PHOTOSTREAM_READ_STORE"])
    return f"cassandra://{','.join(f'{h}:{base.port}' for h in base.hosts)}/{keyspace}"


@pytest.fixture(scope="module")
def cassandra_store() -> Iterator[Any]:
    from projections.cassandra_store import CassandraReadStore

    keyspace = f"ps_test_{uuid.uuid4().hex[:12]}"
    store = CassandraReadStore.from_url(_cassandra_url(keyspace))
    store.ensure_tables(CONTRACT_TABLES)
    store.ensure_tables(FOLD_TABLES)
    try:
        yield store
    finally:
        store.session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=120)
        store.close()


def _wipe(store: Any, tables: tuple[Table, ...] | list[Table]) -> None:
    """Empty a shared Cassandra keyspace between tests, through the port where it can."""
    for table in tables:
        partitions = {tuple(r[c] for c in table.partition_key) for r in store.dump(table)}
        store.apply([DeletePartition(table, dict(zip(table.partition_key, p))) for p in partitions])
    for projection in {c.projection for c in store.load_checkpoints()}:
        store.delete_checkpoints(projection)
    if store.dead_letters():
        store.session.execute("TRUNCATE dead_letters")


@pytest.fixture(params=["sqlite", pytest.param("cassandra", marks=pytest.mark.distributed)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        sqlite = SqliteReadStore(tmp_path / "views.db")
        sqlite.ensure_tables(CONTRACT_TABLES)
        yield sqlite
        sqlite.close()
        return
    cassandra = request.getfixturevalue("cassandra_store")
    _wipe(cassandra, CONTRACT_TABLES)
    yield cassandra


def _rows(store: Any, table: Table, owner: int) -> list[int]:
    return [r["seq"] for r in store.scan(table, {"owner": owner})]


def _fill(store: Any, table: Table, owner: int, seqs: range | list[int]) -> None:
    store.apply([Upsert(table, {"owner": owner, "seq": s, "label": f"{owner}/{s}"}) for s in seqs])


# ----- schema, health -----------------------------------------------------------------


def test_ensure_tables_is_idempotent_and_ping_answers(store: Any) -> None:
    store.ensure_tables(CONTRACT_TABLES)
    store.ensure_tables([KV])
    store.ping()
    assert store.dump(KV) == []


# ----- upsert and get: types and partial rows -----------------------------------------


def test_get_missing_row_is_none(store: Any) -> None:
    assert store.get(KV, {"id": 1}) is None
    assert store.get(ASC, {"owner": 1, "seq": 1}) is None


def test_every_column_type_round_trips(store: Any) -> None:
    doc = {"a": [1, 2.5, None, True, "é✓"], "nested": {"k": {}}, "empty": []}
    store.apply([Upsert(KV, {"id": 7, "name": "zoë 📷", "flag": True, "doc": doc, "score": 0.25, "count": 2**62})])
    assert store.get(KV, {"id": 7}) == {
        "id": 7,
        "name": "zoë 📷",
        "flag": True,
        "doc": doc,
        "score": 0.25,
        "count": 2**62,
    }


@pytest.mark.parametrize("value", [[], {}, "text", 0, 3.5, [1, [2, [3]]], {"x": None}, False])
def test_json_values_round_trip(store: Any, value: Any) -> None:
    store.apply([Upsert(KV, {"id": 1, "doc": value})])
    assert store.get(KV, {"id": 1})["doc"] == value


def test_bools_round_trip_as_bools(store: Any) -> None:
    store.apply([Upsert(KV, {"id": 1, "flag": False}), Upsert(KV, {"id": 2, "flag": True}), Upsert(KV, {"id": 3})])
    flags = [r["flag"] for r in store.get_many(KV, [{"id": 1}, {"id": 2}, {"id": 3}])]
    assert flags == [False, True, None]
    assert type(flags[0]) is bool and type(flags[1]) is bool


def test_float_column_holds_whole_numbers_as_floats(store: Any) -> None:
    store.apply([Upsert(KV, {"id": 1, "score": 3})])
    score = store.get(KV, {"id": 1})["score"]
    assert score == 3.0 and isinstance(score, float)


def test_partial_upsert_keeps_the_other_columns(store: Any) -> None:
    store.apply([Upsert(KV, {"id": 1, "name": "ann", "flag": True, "doc": {"v": 1}, "score": 1.5, "count": 3})])
    store.apply([Upsert(KV, {"id": 1, "count": 4})])
    assert store.get(KV, {"id": 1}) == {
        "id": 1,
        "name": "ann",
        "flag": True,
        "doc": {"v": 1},
        "score": 1.5,
        "count": 4,
    }


def test_upsert_of_none_clears_that_column_only(store: Any) -> None:
    store.apply([Upsert(KV, {"id": 1, "name": "ann", "doc": {"v": 1}})])
    store.apply([Upsert(KV, {"id": 1, "doc": None})])
    assert store.get(KV, {"id": 1}) == {"id": 1, "name": "ann", "flag": None, "doc": None, "score": None, "count": None}


def test_key_only_upsert_creates_a_row_and_keeps_an_existing_one(store: Any) -> None:
    store.apply([Upsert(ASC, {"owner": 1, "seq": 1})])
    assert store.get(ASC, {"owner": 1, "seq": 1}) == {"owner": 1, "seq": 1, "label": None}
    store.apply([Upsert(ASC, {"owner": 1, "seq": 2, "label": "kept"})])
    store.apply([Upsert(ASC, {"owner": 1, "seq": 2})])
    assert store.get(ASC, {"owner": 1, "seq": 2})["label"] == "kept"


def test_upsert_without_its_key_is_refused(store: Any) -> None:
    with pytest.raises(ValueError):
        store.apply([Upsert(ASC, {"owner": 1, "label": "no seq"})])


def test_composite_partition_key(store: Any) -> None:
    store.apply(
        [
            Upsert(COMPOSITE, {"region": "eu", "bucket": 1, "seq": 5, "v": "a"}),
            Upsert(COMPOSITE, {"region": "eu", "bucket": 1, "seq": 9, "v": "b"}),
            Upsert(COMPOSITE, {"region": "eu", "bucket": 2, "seq": 7, "v": "c"}),
            Upsert(COMPOSITE, {"region": "us", "bucket": 1, "seq": 8, "v": "d"}),
        ]
    )
    assert [r["v"] for r in store.scan(COMPOSITE, {"region": "eu", "bucket": 1})] == ["b", "a"]
    assert store.get(COMPOSITE, {"region": "eu", "bucket": 2, "seq": 7})["v"] == "c"
    merged = store.scan_many(COMPOSITE, [{"region": "eu", "bucket": 1}, {"region": "us", "bucket": 1}], limit=10)
    assert [r["v"] for r in merged] == ["b", "d", "a"]
    store.apply([DeletePartition(COMPOSITE, {"region": "eu", "bucket": 1})])
    assert [r["v"] for r in store.dump(COMPOSITE)] == ["c", "d"]


# ----- get_many -------------------------------------------------------------------------


def test_get_many_keeps_the_order_of_keys_with_none_for_missing(store: Any) -> None:
    store.apply([Upsert(KV, {"id": i, "name": f"n{i}"}) for i in (1, 2, 3)])
    found = store.get_many(KV, [{"id": 3}, {"id": 99}, {"id": 1}, {"id": 3}])
    assert [r and r["name"] for r in found] == ["n3", None, "n1", "n3"]
    assert store.get_many(KV, []) == []


def test_get_many_with_clustered_keys(store: Any) -> None:
    _fill(store, DESC, 1, range(5))
    _fill(store, DESC, 2, range(5))
    keys = [{"owner": 2, "seq": 4}, {"owner": 1, "seq": 0}, {"owner": 1, "seq": 9}]
    assert [r and r["label"] for r in store.get_many(DESC, keys)] == ["2/4", "1/0", None]


def test_get_many_of_many_rows_of_one_partition(store: Any) -> None:
    """A reader's blocks or likes among a page: many clustering keys of one partition
    (Cassandra: one IN per partition, in chunks), mixed with other partitions, repeats
    and misses, in the keys' order."""
    _fill(store, DESC, 1, range(0, 300, 3))
    _fill(store, DESC, 2, [7])
    keys = [{"owner": 1, "seq": s} for s in range(250)] + [{"owner": 2, "seq": 7}, {"owner": 1, "seq": 3}, {"owner": 3, "seq": 1}]
    found = store.get_many(DESC, keys)
    assert [r and r["label"] for r in found] == [f"1/{s}" if s % 3 == 0 else None for s in range(250)] + ["2/7", "1/3", None]


def test_get_many_of_many_keys(store: Any) -> None:
    store.apply([Upsert(KV, {"id": i, "count": i * i}) for i in range(0, 700, 2)])
    found = store.get_many(KV, [{"id": i} for i in range(700)])
    assert [r and r["count"] for r in found] == [i * i if i % 2 == 0 else None for i in range(700)]


# ----- scan: order and bounds -------------------------------------------------------------


def test_scan_returns_the_clustering_order(store: Any) -> None:
    _fill(store, ASC, 1, [5, 1, 9, 3])
    _fill(store, DESC, 1, [5, 1, 9, 3])
    _fill(store, ASC, 2, [4])
    assert _rows(store, ASC, 1) == [1, 3, 5, 9]
    assert _rows(store, DESC, 1) == [9, 5, 3, 1]
    assert _rows(store, ASC, 3) == []


@pytest.mark.parametrize(
    ("table", "start_after", "end_before", "limit", "expected"),
    [
        (ASC, None, None, None, [10, 20, 30, 40, 50]),
        (ASC, 20, None, None, [30, 40, 50]),
        (ASC, 25, None, None, [30, 40, 50]),  # a bound needs not be a stored value
        (ASC, None, 40, None, [10, 20, 30]),
        (ASC, 10, 50, None, [20, 30, 40]),
        (ASC, 10, 50, 2, [20, 30]),
        (ASC, None, None, 3, [10, 20, 30]),
        (ASC, 50, None, None, []),
        (ASC, None, 10, None, []),
        (ASC, 30, 20, None, []),
        (ASC, 0, 100, 100, [10, 20, 30, 40, 50]),
        (ASC, None, None, 0, []),
        (DESC, None, None, None, [50, 40, 30, 20, 10]),
        (DESC, 40, None, None, [30, 20, 10]),  # "after" in a descending table is smaller
        (DESC, 35, None, None, [30, 20, 10]),
        (DESC, None, 20, None, [50, 40, 30]),
        (DESC, 50, 10, None, [40, 30, 20]),
        (DESC, 50, 10, 1, [40]),
        (DESC, None, None, 2, [50, 40]),
        (DESC, 10, None, None, []),
        (DESC, 20, 30, None, []),
        (DESC, 100, 0, None, [50, 40, 30, 20, 10]),
    ],
)
def test_scan_bounds_follow_the_table_order(
    store: Any, table: Table, start_after: Any, end_before: Any, limit: int | None, expected: list[int]
) -> None:
    _fill(store, table, 1, [30, 10, 50, 20, 40])
    _fill(store, table, 2, [25, 35])  # another partition must never leak in
    rows = store.scan(table, {"owner": 1}, start_after=start_after, end_before=end_before, limit=limit)
    assert [r["seq"] for r in rows] == expected
    assert all(r["label"] == f"1/{r['seq']}" for r in rows)


def test_text_clustering_sorts_by_code_point(store: Any) -> None:
    tags = ["b", "B", "a", "é", "ab", "Z", "_"]
    store.apply([Upsert(TEXT_CK, {"name": "x", "tag": t, "n": i}) for i, t in enumerate(tags)])
    assert [r["tag"] for r in store.scan(TEXT_CK, {"name": "x"})] == sorted(tags)
    assert [r["tag"] for r in store.scan(TEXT_CK, {"name": "x"}, start_after="Z", end_before="b")] == ["_", "a", "ab"]


def test_scan_of_an_unclustered_table_returns_the_one_row(store: Any) -> None:
    store.apply([Upsert(KV, {"id": 1, "name": "one"}), Upsert(KV, {"id": 2, "name": "two"})])
    assert [r["name"] for r in store.scan(KV, {"id": 1})] == ["one"]
    assert [r["name"] for r in store.scan(KV, {"id": 1}, start_after=5, end_before=0, limit=1)] == ["one"]
    assert store.scan(KV, {"id": 3}) == []


def test_scan_of_a_large_partition_reads_every_page(store: Any) -> None:
    _fill(store, DESC, 1, range(6000))  # beyond the driver's 5,000-row page
    assert _rows(store, DESC, 1) == list(range(5999, -1, -1))


# ----- scan_many -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "start_after", "end_before", "limit", "expected"),
    [
        (ASC, None, None, 100, [1, 2, 3, 4, 5, 6, 7, 8, 9]),
        (ASC, None, None, 4, [1, 2, 3, 4]),
        (ASC, 3, None, 3, [4, 5, 6]),
        (ASC, 2, 7, 100, [3, 4, 5, 6]),
        (ASC, 9, None, 5, []),
        (DESC, None, None, 100, [9, 8, 7, 6, 5, 4, 3, 2, 1]),
        (DESC, None, None, 5, [9, 8, 7, 6, 5]),
        (DESC, 7, None, 3, [6, 5, 4]),
        (DESC, 8, 2, 100, [7, 6, 5, 4, 3]),
        (DESC, None, 8, 1, [9]),
        (ASC, None, None, 0, []),
    ],
)
def test_scan_many_merges_partitions_in_clustering_order(
    store: Any, table: Table, start_after: Any, end_before: Any, limit: int, expected: list[int]
) -> None:
    _fill(store, table, 1, [1, 4, 7])
    _fill(store, table, 2, [2, 5, 8])
    _fill(store, table, 3, [3, 6, 9])
    _fill(store, table, 4, [100])  # not asked for
    partitions = [{"owner": 3}, {"owner": 1}, {"owner": 2}, {"owner": 77}, {"owner": 1}]
    rows = store.scan_many(table, partitions, start_after=start_after, end_before=end_before, limit=limit)
    assert [r["seq"] for r in rows] == expected
    owners = {1: [1, 4, 7], 2: [2, 5, 8], 3: [3, 6, 9]}
    assert all(r["seq"] in owners[r["owner"]] and r["label"] == f"{r['owner']}/{r['seq']}" for r in rows)


def test_scan_many_of_no_partitions_is_empty(store: Any) -> None:
    _fill(store, DESC, 1, [1])
    assert store.scan_many(DESC, [], limit=10) == []


def test_scan_many_takes_the_limit_from_the_merge_not_from_each_partition(store: Any) -> None:
    _fill(store, DESC, 1, range(0, 200, 2))
    _fill(store, DESC, 2, range(1, 200, 2))
    rows = store.scan_many(DESC, [{"owner": 1}, {"owner": 2}], start_after=150, limit=20)
    assert [r["seq"] for r in rows] == list(range(149, 129, -1))


def test_scan_many_of_an_unclustered_table(store: Any) -> None:
    store.apply([Upsert(KV, {"id": i, "count": i}) for i in (1, 2, 3)])
    rows = store.scan_many(KV, [{"id": 1}, {"id": 3}, {"id": 4}], limit=10)
    assert sorted(r["count"] for r in rows) == [1, 3]
    assert len(store.scan_many(KV, [{"id": 1}, {"id": 2}, {"id": 3}], limit=2)) == 2


# ----- deletes ---------------------------------------------------------------------------------


def test_delete_removes_one_row(store: Any) -> None:
    _fill(store, ASC, 1, [1, 2, 3])
    store.apply([Delete(ASC, {"owner": 1, "seq": 2}), Delete(ASC, {"owner": 1, "seq": 99})])
    assert _rows(store, ASC, 1) == [1, 3]
    store.apply([Upsert(KV, {"id": 1, "name": "x"}), Upsert(KV, {"id": 2, "name": "y"})])
    store.apply([Delete(KV, {"id": 1})])
    assert [r["id"] for r in store.dump(KV)] == [2]


def test_delete_partition_removes_the_partition_only(store: Any) -> None:
    _fill(store, DESC, 1, range(10))
    _fill(store, DESC, 2, range(3))
    store.apply([DeletePartition(DESC, {"owner": 1}), DeletePartition(DESC, {"owner": 5})])
    assert _rows(store, DESC, 1) == []
    assert _rows(store, DESC, 2) == [2, 1, 0]


@pytest.mark.parametrize("table", [ASC, DESC])
def test_delete_up_to_removes_values_at_or_below_the_bound(store: Any, table: Table) -> None:
    _fill(store, table, 1, range(1, 11))
    _fill(store, table, 2, range(1, 11))
    store.apply([DeleteUpTo(table, {"owner": 1}, 6)])
    assert sorted(_rows(store, table, 1)) == [7, 8, 9, 10]
    assert len(_rows(store, table, 2)) == 10
    store.apply([DeleteUpTo(table, {"owner": 1}, 0)])
    assert sorted(_rows(store, table, 1)) == [7, 8, 9, 10]


# ----- order of writes --------------------------------------------------------------------------


def test_delete_then_upsert_in_one_apply_leaves_the_row(store: Any) -> None:
    _fill(store, ASC, 1, [1])
    store.apply([Delete(ASC, {"owner": 1, "seq": 1}), Upsert(ASC, {"owner": 1, "seq": 1, "label": "back"})])
    assert store.get(ASC, {"owner": 1, "seq": 1}) == {"owner": 1, "seq": 1, "label": "back"}


def test_upsert_then_delete_in_one_apply_leaves_nothing(store: Any) -> None:
    store.apply([Upsert(ASC, {"owner": 1, "seq": 1, "label": "gone"}), Delete(ASC, {"owner": 1, "seq": 1})])
    assert store.get(ASC, {"owner": 1, "seq": 1}) is None


def test_later_upsert_of_the_same_column_wins_in_one_apply(store: Any) -> None:
    store.apply([Upsert(KV, {"id": 1, "count": n}) for n in range(10)])
    assert store.get(KV, {"id": 1})["count"] == 9


def test_partition_and_range_deletes_are_ordered_with_upserts(store: Any) -> None:
    _fill(store, DESC, 1, range(5))
    store.apply(
        [
            DeletePartition(DESC, {"owner": 1}),
            Upsert(DESC, {"owner": 1, "seq": 2, "label": "new"}),
            Upsert(DESC, {"owner": 1, "seq": 8, "label": "new"}),
            DeleteUpTo(DESC, {"owner": 1}, 3),
            Upsert(DESC, {"owner": 1, "seq": 1, "label": "newest"}),
        ]
    )
    assert [(r["seq"], r["label"]) for r in store.scan(DESC, {"owner": 1})] == [(8, "new"), (1, "newest")]


def test_a_later_apply_always_wins(store: Any) -> None:
    for n in range(30):  # back to back, faster than any clock tick
        write = Upsert(ASC, {"owner": 1, "seq": 1, "label": str(n)}) if n % 2 == 0 else Delete(ASC, {"owner": 1, "seq": 1})
        store.apply([write])
        present = store.get(ASC, {"owner": 1, "seq": 1})
        assert (present is not None) == (n % 2 == 0)
    store.apply([Upsert(ASC, {"owner": 1, "seq": 1, "label": "a"})])
    store.apply([Upsert(ASC, {"owner": 1, "seq": 1, "label": "b"})])
    assert store.get(ASC, {"owner": 1, "seq": 1})["label"] == "b"


def test_order_holds_in_a_large_apply(store: Any) -> None:
    """Big enough for the concurrent path: each row's writes are spread across it."""
    writes: list[Write] = []
    writes += [Upsert(DESC, {"owner": o, "seq": s, "label": "first"}) for o in range(60) for s in range(5)]
    writes += [Delete(DESC, {"owner": o, "seq": 0}) for o in range(60)]
    writes += [Upsert(DESC, {"owner": o, "seq": 1, "label": "second"}) for o in range(60)]
    writes += [DeleteUpTo(DESC, {"owner": o}, 2) for o in range(0, 60, 2)]
    writes += [Upsert(DESC, {"owner": o, "seq": 2, "label": "third"}) for o in range(0, 60, 4)]
    store.apply(writes)
    for o in (0, 1, 2, 4, 59):
        rows = [(r["seq"], r["label"]) for r in store.scan(DESC, {"owner": o})]
        if o % 4 == 0:
            assert rows == [(4, "first"), (3, "first"), (2, "third")]
        elif o % 2 == 0:
            assert rows == [(4, "first"), (3, "first")]
        else:
            assert rows == [(4, "first"), (3, "first"), (2, "first"), (1, "second")]
    assert len(store.dump(DESC)) == 30 * 4 + 15 * 3 + 15 * 2


def test_unit_of_work_and_savepoint_can_be_entered(store: Any) -> None:
    with store.unit_of_work():
        with store.savepoint():
            store.apply([Upsert(KV, {"id": 1, "name": "in"})])
        store.save_checkpoints([Checkpoint("uow", 0, 1)])
    assert store.get(KV, {"id": 1})["name"] == "in"
    assert Checkpoint("uow", 0, 1) in store.load_checkpoints()


# ----- dump --------------------------------------------------------------------------------------


def test_dump_sorts_by_primary_key_whatever_the_clustering_order(store: Any) -> None:
    _fill(store, DESC, 2, [1, 3])
    _fill(store, DESC, 1, [2, 9, 4])
    assert [(r["owner"], r["seq"]) for r in store.dump(DESC)] == [(1, 2), (1, 4), (1, 9), (2, 1), (2, 3)]
    store.apply([Upsert(TEXT_CK, {"name": n, "tag": t}) for n, t in [("b", "x"), ("a", "y"), ("a", "X")]])
    assert [(r["name"], r["tag"]) for r in store.dump(TEXT_CK)] == [("a", "X"), ("a", "y"), ("b", "x")]
    assert store.dump(ASC) == []


# ----- checkpoints and dead letters ------------------------------------------------------------


def test_checkpoints_save_load_and_overwrite(store: Any) -> None:
    assert store.load_checkpoints() == []
    store.save_checkpoints(
        [Checkpoint("posts", 0, 10, "2025-03-01T10:00:00.000Z"), Checkpoint("posts", 1, 4), Checkpoint("likes", 0, 7)]
    )
    store.save_checkpoints([Checkpoint("posts", 0, 12, "2025-03-01T10:00:05.000Z")])
    store.save_checkpoints([])
    assert sorted(store.load_checkpoints(), key=lambda c: (c.projection, c.partition)) == [
        Checkpoint("likes", 0, 7, None),
        Checkpoint("posts", 0, 12, "2025-03-01T10:00:05.000Z"),
        Checkpoint("posts", 1, 4, None),
    ]
    store.delete_checkpoints("posts")
    assert store.load_checkpoints() == [Checkpoint("likes", 0, 7, None)]


def test_dead_letters_are_kept_sorted_and_replaced_by_key(store: Any) -> None:
    assert store.dead_letters() == []
    second = DeadLetter("posts", 0, 9, "e2", "PostCreated", "boom", b"\x00\xffbody", "2025-03-01T10:00:00.000Z")
    first = DeadLetter("likes", 3, 1, "e1", "Liked", "bad", b"", "2025-03-01T09:00:00.000Z")
    third = DeadLetter("posts", 0, 12, "e3", "PostDeleted", "worse", b"{}", "2025-03-01T11:00:00.000Z")
    for letter in (second, third, first):
        store.add_dead_letter(letter)
    assert store.dead_letters() == [first, second, third]
    assert store.dead_letters()[1].body == b"\x00\xffbody"
    retried = dataclasses.replace(second, error="boom again", failed_at="2025-03-01T12:00:00.000Z")
    store.add_dead_letter(retried)
    assert store.dead_letters() == [first, retried, third]


# ----- Cassandra only: unavailability ------------------------------------------------------------


@pytest.mark.distributed
def test_cassandra_that_does_not_answer_is_read_store_unavailable() -> None:
    from projections.cassandra_store import CassandraReadStore

    with pytest.raises(ReadStoreUnavailable):
        CassandraReadStore.from_url("cassandra://127.0.0.1:1/ps_nowhere")


@pytest.mark.distributed
def test_cassandra_refuses_an_existing_table_of_another_shape(cassandra_store: Any) -> None:
    """CREATE TABLE IF NOT EXISTS would silently keep the old table: the adapter says so."""
    cassandra_store.ensure_tables([Table("ct_shape", {"id": "int", "v": "text"}, ("id",))])
    with pytest.raises(ValueError, match="another shape"):
        cassandra_store.ensure_tables([Table("ct_shape", {"id": "int", "v": "int"}, ("id",))])
    with pytest.raises(ValueError, match="another shape"):
        cassandra_store.ensure_tables([Table("ct_shape", {"id": "int", "v": "text"}, ("id",), "v")])


@pytest.mark.distributed
def test_every_method_of_a_cassandra_store_that_lost_its_cluster_is_unavailable(cassandra_store: Any) -> None:
    from projections.cassandra_store import CassandraReadStore

    lost = CassandraReadStore.from_url(_cassandra_url(cassandra_store.keyspace))
    lost.close()  # from here on the driver has no host to ask, as when Cassandra is down
    calls = {
        "ping": lambda: lost.ping(),
        "ensure_tables": lambda: lost.ensure_tables([KV]),
        "get": lambda: lost.get(KV, {"id": 1}),
        "get_many": lambda: lost.get_many(KV, [{"id": 1}, {"id": 2}]),
        "scan": lambda: lost.scan(DESC, {"owner": 1}, limit=5),
        "scan_many": lambda: lost.scan_many(DESC, [{"owner": 1}, {"owner": 2}], limit=5),
        "dump": lambda: lost.dump(KV),
        "apply one": lambda: lost.apply([Upsert(KV, {"id": 1})]),
        "apply small": lambda: lost.apply([Upsert(KV, {"id": 1}), Delete(KV, {"id": 2})]),
        "apply large": lambda: lost.apply([Upsert(KV, {"id": i}) for i in range(100)]),
        "load_checkpoints": lambda: lost.load_checkpoints(),
        "save_checkpoints": lambda: lost.save_checkpoints([Checkpoint("x", 0, 1)]),
        "delete_checkpoints": lambda: lost.delete_checkpoints("x"),
        "add_dead_letter": lambda: lost.add_dead_letter(DeadLetter("x", 0, 1, "e", "T", "err")),
        "dead_letters": lambda: lost.dead_letters(),
    }
    for name, call in calls.items():
        with pytest.raises(ReadStoreUnavailable):
            call()
            pytest.fail(f"{name} answered without a cluster")


# ----- the two adapters against each other --------------------------------------------------------


@pytest.fixture
def both(tmp_path: Path, cassandra_store: Any) -> Iterator[tuple[SqliteReadStore, Any]]:
    sqlite = SqliteReadStore(tmp_path / "views.db")
    sqlite.ensure_tables(CONTRACT_TABLES)
    sqlite.ensure_tables(FOLD_TABLES)
    _wipe(cassandra_store, [*CONTRACT_TABLES, *FOLD_TABLES])
    yield sqlite, cassandra_store
    sqlite.close()


def _random_writes(rng: random.Random, count: int) -> list[Write]:
    writes: list[Write] = []
    for _ in range(count):
        owner, seq = rng.randrange(6), rng.randrange(40)
        table = rng.choice([ASC, DESC])
        roll = rng.random()
        if roll < 0.6:
            row: dict[str, Any] = {"owner": owner, "seq": seq}
            if rng.random() < 0.7:
                row["label"] = rng.choice(["a", "b", None, "ü"])
            writes.append(Upsert(table, row))
        elif roll < 0.8:
            writes.append(Delete(table, {"owner": owner, "seq": seq}))
        elif roll < 0.9:
            writes.append(DeleteUpTo(table, {"owner": owner}, rng.randrange(40)))
        elif roll < 0.93:
            writes.append(DeletePartition(table, {"owner": owner}))
        else:
            column, value = rng.choice(
                [("name", rng.choice(["x", "y"])), ("count", rng.randrange(3)), ("flag", rng.random() < 0.5)]
            )
            writes.append(Upsert(KV, {"id": owner, column: value}))
    return writes


@pytest.mark.distributed
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_writes_leave_the_same_rows_in_both_stores(both: tuple[SqliteReadStore, Any], seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(25):
        size = rng.choice([1, 2, 3, 8, 20, 21, 60, 400])  # both sides of the batch threshold
        writes = _random_writes(rng, size)
        for store in both:
            store.apply(writes)
    sqlite, cassandra = both
    for table in (ASC, DESC, KV):
        assert cassandra.dump(table) == sqlite.dump(table), table.name


@pytest.mark.distributed
@pytest.mark.parametrize("seed", [4, 5])
def test_write_groups_leave_the_same_rows_as_applying_them_in_order(both: tuple[SqliteReadStore, Any], seed: int) -> None:
    """apply_groups: each group's write sets in order (merged into batches, big ones
    packed), groups independent. Groups here touch disjoint owners, as keyed groups do."""
    rng = random.Random(seed)
    for _ in range(6):
        groups = []
        for owner in range(6):
            sets = [[w for w in _random_writes(rng, rng.choice([1, 3, 8, 30, 120])) if _owner_of(w) == owner] for _ in range(rng.randrange(1, 6))]
            groups.append(sets)
        sqlite, cassandra = both
        for group in groups:
            for writes in group:
                sqlite.apply(writes)
        cassandra.apply_groups(groups)
        for table in (ASC, DESC, KV):
            assert cassandra.dump(table) == sqlite.dump(table), table.name


def _owner_of(write: Write) -> int:
    values = write.row if isinstance(write, Upsert) else write.key if isinstance(write, Delete) else write.partition
    return int(values.get("owner", values.get("id")))


def test_fetch_answers_as_get_and_scan(store: Any) -> None:
    _fill(store, DESC, 1, range(10))
    reads = [
        Get(DESC, (1, 3)),
        Get(DESC, (1, 99)),
        Scan(DESC, (1,)),
        Scan(DESC, (1,), start_after=7, end_before=2, limit=3),
        Scan(DESC, (2,)),
        Get(KV, (5,)),
    ]
    assert store.fetch(reads) == [
        store.get(DESC, {"owner": 1, "seq": 3}),
        None,
        store.scan(DESC, {"owner": 1}),
        store.scan(DESC, {"owner": 1}, start_after=7, end_before=2, limit=3),
        [],
        None,
    ]
    assert store.fetch([]) == []


def test_apply_groups_keeps_each_groups_order(store: Any) -> None:
    row = {"owner": 7, "seq": 1}
    store.apply_groups(
        [
            [[Upsert(DESC, {**row, "label": "a"})], [Delete(DESC, row)], [Upsert(DESC, {**row, "label": "c"})]],
            [[Upsert(DESC, {"owner": 8, "seq": s, "label": "x"}) for s in range(150)], [DeleteUpTo(DESC, {"owner": 8}, 99)]],
            [],
        ]
    )
    assert store.get(DESC, row) == {**row, "label": "c"}
    assert _rows(store, DESC, 8) == list(range(149, 99, -1))


class History:
    """A made-up but plausible history of the network, built from domain events.

    Each step picks one action from ACTIONS by weight; an action that does not apply
    now (nothing to unlike yet) emits nothing. Every event type in EVENT_TYPES must be
    emitted by some action (the fold test checks it): a new event type is one new
    method and one new line in ACTIONS."""

    ACTIONS: tuple[tuple[str, float], ...] = (
        ("update_profile", 8),
        ("follow", 18),
        ("unfollow", 5),
        ("request_follow", 5),
        ("approve_request", 3),
        ("decline_request", 2.5),
        ("cancel_request", 2.5),
        ("block", 3),
        ("unblock", 2.5),
        ("mute", 2.5),
        ("unmute", 2),
        ("create_post", 20),
        ("edit_post", 4),
        ("delete_post", 5),
        ("like", 15),
        ("unlike", 4),
        ("request_timeline_rebuild", 3),
        ("comment", 11),
        ("delete_comment", 5),
        ("revoke_sessions", 2),
        ("read_notifications", 3),
        ("send_message", 6),
        ("read_conversation", 3),
    )
    NOT_EMITTED = frozenset({"MediaStored"})  # no projector reads it

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.ids = IdGenerator(worker=7)
        self.events: list[Event] = []
        self.accounts: list[str] = []
        self.private: set[str] = set()
        self.posts: dict[str, str] = {}  # post id -> author
        self.follows: set[tuple[str, str]] = set()  # (follower, followee)
        self.requests: set[tuple[str, str]] = set()  # (requester, private account)
        self.blocks: set[tuple[str, str]] = set()  # (blocker, blocked)
        self.mutes: set[tuple[str, str]] = set()  # (muter, muted)
        self.likes: set[tuple[str, str]] = set()
        self.comments: dict[str, str] = {}  # comment id -> post id
        self.sessions: dict[str, int] = {}  # account -> session generation
        self.conversations: dict[str, str] = {}  # conversation id -> newest message id
        self.clock = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def emit(self, data: DomainEvent, stream: str, actor: str | None = None) -> None:
        # Hours pass between events, so some readers go quiet for days (inactive readers).
        self.clock += timedelta(hours=self.rng.choice([0, 0, 1, 5]))
        self.events.append(new_event(data, stream=stream, actor=actor, occurred_at=self.clock))

    def new_id(self) -> str:
        return str(self.ids.next_id())

    def media(self) -> MediaRef:
        media_id = self.new_id()
        small = ImageVariant(f"{media_id}/small.jpg", "image/jpeg", 320, 240)
        return MediaRef(media_id, "image/jpeg", 1280, 960, {"small": small})

    def register(self) -> None:
        account = self.new_id()
        name = f"user{len(self.accounts)}"
        self.accounts.append(account)
        self.emit(AccountRegistered(account, name, name.title(), "hash"), account, account)

    def step(self) -> None:
        names, weights = zip(*self.ACTIONS)
        action = self.rng.choices(names, weights)[0]
        getattr(self, action)(self.rng.choice(self.accounts))

    def blocked(self, a: str, b: str) -> bool:
        return (a, b) in self.blocks or (b, a) in self.blocks

    def pick(self, pairs: set[tuple[str, str]]) -> tuple[str, str] | None:
        return self.rng.choice(sorted(pairs)) if pairs else None

    # ----- accounts and the follow graph (privacy included) -----

    def update_profile(self, a: str) -> None:
        avatar = self.rng.choice([None, self.media()])
        private = self.rng.random() < 0.3
        (self.private.add if private else self.private.discard)(a)
        self.emit(ProfileUpdated(a, "New Name", "bio ✓", avatar, private), a, a)

    def follow(self, a: str) -> None:
        other = self.rng.choice(self.accounts)
        if other != a and (a, other) not in self.follows and not self.blocked(a, other) and other not in self.private:
            self.follows.add((a, other))
            self.emit(Followed(a, other, self.new_id()), other, a)

    def unfollow(self, a: str) -> None:
        if (pair := self.pick(self.follows)) is not None:
            self.follows.discard(pair)
            self.emit(Unfollowed(*pair), pair[1], pair[0])

    def request_follow(self, a: str) -> None:
        other = self.rng.choice(sorted(self.private) or self.accounts)
        pair = (a, other)
        if other != a and pair not in self.follows and pair not in self.requests and not self.blocked(a, other):
            self.requests.add(pair)
            self.emit(FollowRequested(a, other, self.new_id()), f"follow-{a}-{other}", a)

    def approve_request(self, a: str) -> None:
        if (pair := self.pick(self.requests)) is not None:  # the owner appends the Followed
            self.requests.discard(pair)
            self.follows.add(pair)
            self.emit(Followed(pair[0], pair[1], self.new_id()), f"follow-{pair[0]}-{pair[1]}", pair[1])

    def decline_request(self, a: str) -> None:
        if (pair := self.pick(self.requests)) is not None:
            self.requests.discard(pair)
            self.emit(FollowRequestDeclined(*pair), f"follow-{pair[0]}-{pair[1]}", pair[1])

    def cancel_request(self, a: str) -> None:
        if (pair := self.pick(self.requests)) is not None:
            self.requests.discard(pair)
            self.emit(FollowRequestCancelled(*pair), f"follow-{pair[0]}-{pair[1]}", pair[0])

    def block(self, a: str) -> None:
        """As commands.social does: Blocked, then each follow or request either way ends."""
        other = self.rng.choice(self.accounts)
        if other == a or (a, other) in self.blocks:
            return
        self.blocks.add((a, other))
        self.emit(Blocked(a, other), f"block-{a}-{other}", a)
        for x, y in ((a, other), (other, a)):
            if (x, y) in self.follows:
                self.follows.discard((x, y))
                self.emit(Unfollowed(x, y), f"follow-{x}-{y}", a)
            if (x, y) in self.requests:
                self.requests.discard((x, y))
                ended = FollowRequestCancelled(x, y) if x == a else FollowRequestDeclined(x, y)
                self.emit(ended, f"follow-{x}-{y}", a)

    def unblock(self, a: str) -> None:
        if (pair := self.pick(self.blocks)) is not None:
            self.blocks.discard(pair)
            self.emit(Unblocked(*pair), f"block-{pair[0]}-{pair[1]}", pair[0])

    def mute(self, a: str) -> None:
        other = self.rng.choice(self.accounts)
        if other != a and (a, other) not in self.mutes:
            self.mutes.add((a, other))
            self.emit(Muted(a, other), f"mute-{a}-{other}", a)

    def unmute(self, a: str) -> None:
        if (pair := self.pick(self.mutes)) is not None:
            self.mutes.discard(pair)
            self.emit(Unmuted(*pair), f"mute-{pair[0]}-{pair[1]}", pair[0])

    def revoke_sessions(self, a: str) -> None:
        self.sessions[a] = self.sessions.get(a, 0) + 1
        self.emit(SessionsRevoked(a, self.sessions[a]), f"account-{a}", a)

    def request_timeline_rebuild(self, a: str) -> None:
        self.emit(TimelineRebuildRequested(a), f"timeline-{a}", a)

    # ----- posts and engagement -----

    def create_post(self, a: str) -> None:
        post = self.new_id()
        self.posts[post] = a
        tags = tuple(self.rng.sample(["sun", "sea", "cat"], self.rng.randrange(3)))
        self.emit(PostCreated(post, a, f"caption {post}", (self.media(),), tags, self.mentions()), post, a)

    def edit_post(self, a: str) -> None:
        if self.posts:
            post = self.rng.choice(sorted(self.posts))
            self.emit(PostEdited(post, self.posts[post], "edited", ("sea",), self.mentions()), post, self.posts[post])

    def delete_post(self, a: str) -> None:
        if self.posts:
            post = self.rng.choice(sorted(self.posts))
            author = self.posts.pop(post)
            self.emit(PostDeleted(post, author), post, author)

    def like(self, a: str) -> None:
        if self.posts:
            post = self.rng.choice(sorted(self.posts))
            if (post, a) not in self.likes and not self.blocked(a, self.posts[post]):
                self.likes.add((post, a))
                self.emit(Liked(post, a, self.posts[post], self.new_id()), post, a)

    def unlike(self, a: str) -> None:
        if (pair := self.pick(self.likes)) is not None:
            post, liker = pair
            self.likes.discard(pair)
            self.emit(Unliked(post, liker, self.posts.get(post, liker)), post, liker)

    def comment(self, a: str) -> None:
        if self.posts:
            post = self.rng.choice(sorted(self.posts))
            if not self.blocked(a, self.posts[post]):
                comment = self.new_id()
                self.comments[comment] = post
                self.emit(CommentAdded(comment, post, a, self.posts[post], f"nice {comment}", self.mentions()), post, a)

    def delete_comment(self, a: str) -> None:
        if self.comments:
            comment = self.rng.choice(sorted(self.comments))
            post = self.comments.pop(comment)
            self.emit(CommentDeleted(comment, post, a), post, a)

    def mentions(self) -> tuple[str, ...]:
        """The account ids a text's @usernames resolved to (v2 events carry ids)."""
        return tuple(self.rng.sample(self.accounts, self.rng.choice([0, 0, 1, 2])))

    # ----- notifications and direct messages -----

    def read_notifications(self, a: str) -> None:
        self.emit(NotificationsRead(a, self.new_id()), f"notifications-{a}", a)  # seen up to now

    def send_message(self, a: str) -> None:
        other = self.rng.choice(self.accounts)
        if other == a or self.blocked(a, other):
            return
        message, conversation = self.new_id(), conversation_id(a, other)
        self.conversations[conversation] = message
        media = (self.media(),) if self.rng.random() < 0.2 else ()
        self.emit(MessageSent(message, conversation, a, other, f"hi {message}", media), f"message-{message}", a)

    def read_conversation(self, a: str) -> None:
        if self.conversations:
            conversation = self.rng.choice(sorted(self.conversations))
            reader = self.rng.choice(conversation.split("-"))
            self.emit(ConversationRead(conversation, reader, self.conversations[conversation]), f"read-{conversation}-{reader}", reader)

    def delivered(self) -> list[Event]:
        """At-least-once delivery: some events arrive twice, a few again much later."""
        out: list[Event] = []
        for event in self.events:
            out.append(event)
            if self.rng.random() < 0.1:
                out.append(event)
        out += self.rng.sample(self.events, len(self.events) // 20)
        return out


def generate_history(seed: int, accounts: int = 12, steps: int = 450) -> list[Event]:
    history = History(seed)
    for _ in range(accounts):
        history.register()
    for _ in range(steps):
        history.step()
    return history.delivered()


@pytest.mark.distributed
@pytest.mark.parametrize("seed", [11, 12])
def test_every_projector_folds_to_the_same_rows_in_both_stores(both: tuple[SqliteReadStore, Any], seed: int) -> None:
    projectors = all_projectors(FOLD_SETTINGS)
    events = generate_history(seed)
    for event in events:
        for store in both:  # as the embedded runner does: project, then apply, per event
            for projector in projectors:
                if projector.handles(event):
                    store.apply(projector.project(event, store))
    sqlite, cassandra = both
    for table in FOLD_TABLES:
        assert cassandra.dump(table) == sqlite.dump(table), table.name
    # The history must have exercised what it is meant to (trims, deletes, counts).
    assert any((r["floor"] or 0) > 0 for r in sqlite.dump(TIMELINE_STATE)), "no timeline was ever trimmed"
    assert sqlite.dump(PULL_SOURCES) or any(r["celebrity"] for r in sqlite.dump(FANOUT_AUTHORS)), "no celebrity"
    assert {e.type for e in events} == set(EVENT_TYPES) - History.NOT_EMITTED, "every event type must occur"
    assert len(sqlite.dump(POSTS)) < sum(e.type == "PostCreated" for e in events), "some posts must be deleted"
    assert len(events) > 400


@pytest.mark.distributed
def test_planned_batches_fold_to_the_rows_of_sequential_application(both: tuple[SqliteReadStore, Any]) -> None:
    """The worker's path on real Cassandra: batches planned in a few read rounds
    (fetch) and written in a few rounds (apply_groups), groups in any order. Equal to
    SQLite's event-by-event fold, but for the home timeline (see test_batch_planning)."""
    from projections.batch import plan_batch
    from projections.home_timeline import HomeTimeline

    projectors = all_projectors(FOLD_SETTINGS)
    events = generate_history(13)
    sqlite, cassandra = both
    rng = random.Random(13)
    for event in events:
        for projector in projectors:
            if projector.handles(event):
                sqlite.apply(projector.project(event, sqlite))
    start = 0
    while start < len(events):
        batch = events[start : start + rng.choice([1, 5, 40, 150])]
        start += len(batch)
        for projector in projectors:
            groups: dict[str, list[tuple[Event, Any]]] = {}
            for event in batch:
                if projector.handles(event):
                    groups.setdefault(projector.key(event), []).append((event, None))
            ordered = list(groups.values())
            rng.shuffle(ordered)
            plans = plan_batch(projector, ordered, cassandra)
            assert all(p.error is None for g in plans for p in g)
            cassandra.apply_groups([[p.writes for p in g] for g in plans])
    timeline = {t.name for t in HomeTimeline.tables}
    for table in FOLD_TABLES:
        if table.name not in timeline:
            assert cassandra.dump(table) == sqlite.dump(table), table.name

def test_fetch_of_many_gets_of_one_partition_among_other_reads(store: Any) -> None:
    """A feed page's second round: many Gets of one partition (one IN per partition on
    Cassandra, in chunks), repeats, single-key Gets and Scans, in one fetch, answered in
    the reads' order."""
    _fill(store, DESC, 1, range(0, 300, 3))
    _fill(store, DESC, 2, [7])
    store.apply([Upsert(KV, {"id": i, "count": i * i}) for i in range(5)])
    gets = [Get(DESC, (1, s)) for s in range(250)]
    reads = [*gets, Scan(DESC, (2,)), Get(KV, (4,)), Get(DESC, (1, 3)), Get(KV, (9,)), Get(DESC, (2, 7)), Get(KV, (4,))]
    answers = store.fetch(reads)
    assert [r and r["label"] for r in answers[:250]] == [f"1/{s}" if s % 3 == 0 else None for s in range(250)]
    assert [r["seq"] for r in answers[250]] == [7]
    assert [answers[251]["count"], answers[252]["label"], answers[253], answers[254]["label"], answers[255]["count"]] == [16, "1/3", None, "2/7", 16]
