"""The in-process cache in front of post hydration: bounded LRUs of post contents, post
stats (like and comment counts) and authors, one per API process.

- Contents change only by an edit or a delete. Each process learns of those from the
  `post_changes` read model: at most every `poll_seconds` it reads the changes of the
  last `window_minutes` minutes (event time) and drops those posts. A change applied
  by a projection lagging more than the window is still bounded by `content_ttl`.
- Stats (like and comment counts) change all the time and are cheap to be seconds late:
  they live `stats_ttl` seconds. Authors (names, avatars, their counts, whether private)
  change seldom and a page shows ~10 of them, 4 reads each: they live `author_ttl`
  seconds. Measured on the distributed stack (bench/feed_scale.py), a feed page costs
  ~80 store queries with nothing cached and ~17 with everything cached: under load
  these lifetimes decide which. (`cached` and `put` let a query read the misses in the
  same round as the rest of its page.) A switch to private hides the author's posts from
  other readers (who are not approved followers) within `author_ttl`; the author's
  own requests wait for their writes (read-your-writes below).
- A request that carries a consistency token (read-your-writes) does not use the cache
  at all (the caller passes no cache): what it waited for is read from the store.

No process coordinates with another; the cost is a poll of a few small partitions.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Hashable, Mapping, Sequence

from projections.post_changes import POST_CHANGES
from projections.store import ReadView

MISSING = object()


class TtlLru:
    """A bounded least-recently-used map whose entries may also expire. Misses are
    loaded in one call; None (not there yet) is returned but never kept."""

    def __init__(self, capacity: int, ttl: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self.capacity, self.ttl, self.clock = capacity, ttl, clock
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get_many(self, keys: Sequence[Hashable], load: Callable[[list[Any]], list[Any]]) -> list[Any]:
        found = self.cached(keys)
        missing = list(dict.fromkeys(k for k in keys if k not in found))
        if missing:
            loaded = dict(zip(missing, load(missing)))
            self.put(loaded)
            found.update(loaded)
        return [found[k] for k in keys]

    def cached(self, keys: Sequence[Hashable]) -> dict[Any, Any]:
        """The entries held (and not expired) of these keys; the caller loads the rest
        and put()s them, where get_many's one load call does not fit (a load read
        together with other reads)."""
        now = self.clock()
        found: dict[Any, Any] = {}
        with self._lock:
            for key in keys:
                entry = self._entries.get(key)
                if entry is not None and (self.ttl is None or now - entry[0] < self.ttl):
                    self._entries.move_to_end(key)
                    found[key] = entry[1]
        self.hits += len(found)
        self.misses += len(set(keys)) - len(found)
        return found

    def put(self, loaded: Mapping[Hashable, Any]) -> None:
        """Keep freshly loaded entries (None: not there yet, never kept)."""
        now = self.clock()
        with self._lock:
            for key, value in loaded.items():
                if value is not None:
                    self._entries[key] = (now, value)
                    self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def evict(self, keys: Sequence[Hashable]) -> None:
        with self._lock:
            for key in keys:
                self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class PostCache:
    def __init__(
        self,
        capacity: int = 20_000,
        *,
        stats_ttl: float = 5.0,
        author_ttl: float = 30.0,
        content_ttl: float = 600.0,
        poll_seconds: float = 0.25,
        window_minutes: int = 5,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.contents = TtlLru(capacity, content_ttl, clock)
        self.stats = TtlLru(capacity, stats_ttl, clock)
        self.authors = TtlLru(max(capacity // 4, 1), author_ttl, clock)
        self.poll_seconds, self.window_minutes = poll_seconds, window_minutes
        self.clock, self.wall = clock, wall
        self._polled = float("-inf")
        self._lock = threading.Lock()

    def refresh(self, view: ReadView) -> None:
        """Drop the posts edited or deleted lately (at most once per poll_seconds)."""
        with self._lock:
            now = self.clock()
            if now - self._polled < self.poll_seconds:
                return
            self._polled = now
        minute = int(self.wall() // 60)
        partitions = [{"minute": m} for m in range(minute - self.window_minutes, minute + 2)]
        limit = 5_000
        changed = view.scan_many(POST_CHANGES, partitions, limit=limit)
        if len(changed) >= limit:  # more changes than one poll reads: start afresh
            self.contents.clear()
            self.stats.clear()
            return
        ids = [r["post_id"] for r in changed]
        self.contents.evict(ids)
        self.stats.evict(ids)
