"""Planning a batch (projections.batch) must write what applying its events one by one
writes: for any command script, any batch size and any order of the key groups within a
batch (the worker applies groups concurrently), the read models equal the embedded
runner's, which applies every event in log order.

The home timeline is the exception the design allows: its groups (one per author)
write to shared readers' timelines, so a trim planned in one group does not see another
group's inserts of the same batch; its rows may differ, its feeds may not."""
from __future__ import annotations

import asyncio
import random
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.events import Event, decode_event
from projections.batch import BatchView, plan_batch
from projections.home_timeline import HomeTimeline
from projections.projector import Projector
from projections.sqlite_store import SqliteReadStore
from projections.store import DeleteUpTo, Get, Scan, Table, Upsert
from tests.test_properties import SMALL, Model, World, check_against_model, play, script


def apply_in_batches(views: SqliteReadStore, projectors: list[Projector], events: list[Event], size: int, seed: int) -> int:
    """Returns how many fetch rounds the planning took."""
    shuffle = random.Random(seed)
    rounds = 0
    counting = CountingFetch(views)
    for start in range(0, len(events), size):
        batch = events[start : start + size]
        for projector in projectors:
            groups: dict[str, list[tuple[Event, Any]]] = defaultdict(list)
            for event in batch:
                if projector.handles(event):
                    groups[projector.key(event)].append((event, None))
            ordered = list(groups.values())
            shuffle.shuffle(ordered)
            plans = plan_batch(projector, ordered, counting)  # type: ignore[arg-type]
            assert all(p.error is None for g in plans for p in g), [p.error for g in plans for p in g if p.error]
            views.apply_groups([[p.writes for p in g] for g in plans])
    return counting.rounds


class CountingFetch:
    """The SQLite store, counting fetch rounds."""

    def __init__(self, views: SqliteReadStore) -> None:
        self.views = views
        self.rounds = 0

    def fetch(self, reads: list[Any]) -> list[Any]:
        self.rounds += 1
        return self.views.fetch(reads)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=script, size=st.integers(1, 40), seed=st.integers(0, 2**16), page_size=st.integers(1, 4))
def test_planned_batches_write_what_sequential_application_writes(steps: list, size: int, seed: int, page_size: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        world = World(Path(tmp))
        model = Model()
        asyncio.run(world.setup())
        asyncio.run(play(world, model, steps))
        world.runner.catch_up()
        sequential = world.dump(world.views)

        planned = SqliteReadStore(Path(tmp) / "planned.db")
        planned.ensure_tables(t for p in world.runner.projectors for t in p.tables)
        events = [decode_event(body) for _, _, body in world.events.iter_raw()]
        apply_in_batches(planned, world.runner.projectors, events, size, seed)

        timeline_tables = {t.name for t in HomeTimeline.tables}
        got = world.dump(planned)
        assert {k: v for k, v in got.items() if k not in timeline_tables} == {
            k: v for k, v in sequential.items() if k not in timeline_tables
        }
        check_against_model(world, model, planned, page_size)


def test_a_batch_needs_a_few_read_rounds_not_one_per_event(tmp_path: Path) -> None:
    """The point of planning: a batch of 200 follow events of 20 accounts is read in a
    handful of rounds, however many events and reads it has."""
    world = World(tmp_path, SMALL)
    asyncio.run(world.setup())
    views = SqliteReadStore(tmp_path / "planned.db")
    views.ensure_tables(t for p in world.runner.projectors for t in p.tables)
    from domain.events import Followed, new_event

    events = [
        new_event(Followed(str(a), str(b), str(1000 + a * 100 + b)), stream=f"follow-{a}-{b}", actor=str(a))
        for a in range(20)
        for b in range(10)
        if a != b
    ]
    rounds = apply_in_batches(views, world.runner.projectors, events, len(events), 0)
    # one batch, all projectors: each projector needs at most 3 rounds here
    assert rounds <= 3 * len(world.runner.projectors), rounds
    assert rounds >= 1


T = Table("t", {"p": "int", "c": "int", "v": "text", "w": "text"}, ("p",), "c", descending=True)


@settings(max_examples=300, deadline=None)
@given(
    rows=st.sets(st.integers(0, 20), max_size=12),
    writes=st.lists(
        st.one_of(
            st.tuples(st.just("up"), st.integers(0, 20), st.booleans()),
            st.tuples(st.just("del"), st.integers(0, 20), st.just(False)),
            st.tuples(st.just("upto"), st.integers(0, 20), st.just(False)),
        ),
        max_size=8,
    ),
    after=st.none() | st.integers(0, 21),
    before=st.none() | st.integers(0, 21),
    limit=st.none() | st.integers(0, 6),
    probe=st.integers(0, 20),
)
def test_the_overlay_answers_what_the_store_answers_after_the_writes(
    tmp_path_factory: Any, rows: set[int], writes: list, after: int | None, before: int | None, limit: int | None, probe: int
) -> None:
    """BatchView over the rows before plus pending writes == the store after the writes,
    for gets and scans of every shape (including partial-row upserts and range deletes)."""
    folder = tmp_path_factory.mktemp("overlay")
    store = SqliteReadStore(folder / "s.db")
    store.ensure_tables([T])
    store.apply([Upsert(T, {"p": 1, "c": c, "v": f"v{c}", "w": f"w{c}"}) for c in rows])
    from projections.store import Delete

    pending = []
    for kind, c, partial in writes:
        if kind == "up":
            pending.append(Upsert(T, {"p": 1, "c": c, "v": f"new{c}"} if partial else {"p": 1, "c": c, "v": "x", "w": "y"}))
        elif kind == "del":
            pending.append(Delete(T, {"p": 1, "c": c}))
        else:
            pending.append(DeleteUpTo(T, {"p": 1}, c))
    fetched: dict[Any, Any] = {}
    reads = [Get(T, (1, probe)), Scan(T, (1,), after, before, limit), Scan(T, (1,), after, before, None)]
    for read, answer in zip(reads, store.fetch(reads)):
        fetched[read] = answer
    view = BatchView(fetched)
    view.add_writes(pending)
    got_row = view.get(T, {"p": 1, "c": probe})
    got_scan = view.scan(T, {"p": 1}, start_after=after, end_before=before, limit=limit)
    assert not view.misses
    store.apply(pending)
    assert got_row == store.get(T, {"p": 1, "c": probe})
    assert got_scan == store.scan(T, {"p": 1}, start_after=after, end_before=before, limit=limit)
