"""The per-process post cache: bounded, expiring, and told of edits and deletes by the
post_changes read model (on the embedded read store; the HTTP test in test_feed.py
covers both backends)."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from domain.events import PostDeleted, PostEdited, new_event
from projections.post_cache import PostCache, TtlLru
from projections.post_changes import PostChanges
from projections.sqlite_store import SqliteReadStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_lru_keeps_the_most_recently_used_and_loads_misses_in_one_call() -> None:
    loads: list[list[int]] = []

    def load(keys: list[int]) -> list[str | None]:
        loads.append(keys)
        return [None if k == 0 else f"v{k}" for k in keys]

    lru = TtlLru(capacity=2, ttl=None)
    assert lru.get_many([1, 2, 1], load) == ["v1", "v2", "v1"]
    assert loads == [[1, 2]]
    lru.get_many([1], load)  # 1 is now the most recent
    lru.get_many([3], load)  # evicts 2, the least recently used
    assert len(lru) == 2
    loads.clear()
    lru.get_many([1, 2, 3], load)
    assert loads == [[2]]
    assert lru.get_many([0], load) == [None] and lru.get_many([0], load) == [None]
    assert loads[-2:] == [[0], [0]], "a missing row must not be cached (the post may arrive later)"


def test_entries_expire_after_their_ttl() -> None:
    clock = Clock()
    lru = TtlLru(capacity=10, ttl=2.0, clock=clock)
    calls = []
    load = lambda keys: calls.append(keys) or [k * 10 for k in keys]  # noqa: E731
    lru.get_many([1], load)
    clock.now += 1.9
    lru.get_many([1], load)
    assert calls == [[1]]
    clock.now += 0.2
    lru.get_many([1], load)
    assert calls == [[1], [1]]


def test_edits_and_deletes_reach_the_cache_through_post_changes(tmp_path: Path) -> None:
    store = SqliteReadStore(tmp_path / "views.db")
    projector = PostChanges()
    store.ensure_tables(projector.tables)
    clock = Clock()
    now = datetime.now(timezone.utc)
    cache = PostCache(capacity=100, poll_seconds=0.25, clock=clock, wall=now.timestamp)
    cache.contents.get_many([1, 2, 3], lambda keys: [{"post_id": k} for k in keys])
    cache.refresh(store)
    for data in (PostEdited("1", "9", "new", (), ()), PostDeleted("2", "9")):
        event = new_event(data, stream="s", actor=None, occurred_at=now)
        store.apply(projector.project(event, store))
    cache.refresh(store)  # within poll_seconds of the last poll: not yet
    assert len(cache.contents) == 3
    clock.now += 0.3
    cache.refresh(store)
    reloaded: list[list[int]] = []
    cache.contents.get_many([1, 2, 3], lambda keys: reloaded.append(keys) or [{"post_id": k} for k in keys])
    assert reloaded == [[1, 2]]
