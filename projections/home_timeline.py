"""Read model `home_timeline`: each reader's feed, fanned out on write.

The projector keeps its own copy of what fan-out needs (each author's followers and
newest posts), keyed by author, so it never depends on another projection's progress.

A timeline is *complete above its floor*: every post by a followed account with an id
greater than the reader's floor is in it. The floor rises when the timeline is trimmed
to its bound, or when a follow backfills an author whose older posts were not kept.
Reading below the floor merges the followed authors' `posts_by_author` instead.
"""
from __future__ import annotations

from domain.events import Event, Followed, PostCreated, PostDeleted, Unfollowed
from projections.following import FOLLOWING
from projections.posts_by_author import POSTS_BY_AUTHOR
from projections.projector import Projector, on
from projections.store import Delete, DeleteUpTo, ReadView, Table, Upsert, Write

HOME_TIMELINE = Table(
    "home_timeline",
    {"owner_id": "int", "post_id": "int", "author_id": "int"},
    ("owner_id",),
    "post_id",
    descending=True,
)
TIMELINE_FLOORS = Table("home_timeline_floors", {"owner_id": "int", "floor": "int"}, ("owner_id",))
FANOUT_FOLLOWERS = Table(
    "fanout_followers", {"author_id": "int", "follower_id": "int"}, ("author_id",), "follower_id"
)
FANOUT_POSTS = Table(
    "fanout_recent_posts", {"author_id": "int", "post_id": "int"}, ("author_id",), "post_id", descending=True
)
FANOUT_HORIZONS = Table("fanout_horizons", {"author_id": "int", "horizon": "int"}, ("author_id",))


def _floor(view: ReadView, owner: int) -> int:
    row = view.get(TIMELINE_FLOORS, {"owner_id": owner})
    return int(row["floor"]) if row else 0


class HomeTimeline(Projector):
    name = "home_timeline"
    tables = (HOME_TIMELINE, TIMELINE_FLOORS, FANOUT_FOLLOWERS, FANOUT_POSTS, FANOUT_HORIZONS)

    def __init__(self, timeline_max: int = 800, backfill: int = 50, trim_every: int = 16) -> None:
        if timeline_max < 1 or backfill < 1 or trim_every < 1:
            raise ValueError("timeline_max, backfill and trim_every must be positive")
        self.timeline_max = timeline_max
        self.backfill = backfill
        # Checking a timeline's length costs a partition read, so fan-out checks one in
        # trim_every inserts per reader (deterministically, so a replay trims the same).
        self.trim_every = trim_every

    @on(PostCreated, key=lambda e: e.author_id)
    def post_created(self, e: PostCreated, event: Event, view: ReadView) -> list[Write]:
        author, post = int(e.author_id), int(e.post_id)
        horizon_row = view.get(FANOUT_HORIZONS, {"author_id": author})
        horizon = horizon_row["horizon"] if horizon_row else 0
        writes: list[Write] = []
        if post > horizon:  # a redelivered old post must not come back below the horizon
            writes.append(Upsert(FANOUT_POSTS, {"author_id": author, "post_id": post}))
            recent = view.scan(FANOUT_POSTS, {"author_id": author}, limit=self.backfill + 1)
            kept = sorted({r["post_id"] for r in recent} | {post}, reverse=True)
            if len(kept) > self.backfill:
                cut = kept[self.backfill]
                writes.append(DeleteUpTo(FANOUT_POSTS, {"author_id": author}, cut))
                writes.append(Upsert(FANOUT_HORIZONS, {"author_id": author, "horizon": max(horizon, cut)}))
        for row in view.scan(FANOUT_FOLLOWERS, {"author_id": author}):
            reader = row["follower_id"]
            floor = _floor(view, reader)
            if post <= floor:
                continue  # below the floor the feed reads posts_by_author instead
            writes.append(Upsert(HOME_TIMELINE, {"owner_id": reader, "post_id": post, "author_id": author}))
            if (post ^ reader) % self.trim_every == 0:
                writes += self._trim(view, reader, [post], floor)
        return writes

    @on(PostDeleted, key=lambda e: e.author_id)
    def post_deleted(self, e: PostDeleted, event: Event, view: ReadView) -> list[Write]:
        author, post = int(e.author_id), int(e.post_id)
        writes: list[Write] = [Delete(FANOUT_POSTS, {"author_id": author, "post_id": post})]
        for row in view.scan(FANOUT_FOLLOWERS, {"author_id": author}):
            writes.append(Delete(HOME_TIMELINE, {"owner_id": row["follower_id"], "post_id": post}))
        return writes

    @on(Followed, key=lambda e: e.followee_id)
    def followed(self, e: Followed, event: Event, view: ReadView) -> list[Write]:
        author, reader = int(e.followee_id), int(e.follower_id)
        writes: list[Write] = [Upsert(FANOUT_FOLLOWERS, {"author_id": author, "follower_id": reader})]
        floor = _floor(view, reader)
        horizon = view.get(FANOUT_HORIZONS, {"author_id": author})
        new_floor = max(floor, horizon["horizon"] if horizon else 0)
        recent = [
            r["post_id"]
            for r in view.scan(FANOUT_POSTS, {"author_id": author}, limit=self.backfill)
            if r["post_id"] > new_floor
        ]
        for post in recent:
            writes.append(Upsert(HOME_TIMELINE, {"owner_id": reader, "post_id": post, "author_id": author}))
        trim = self._trim(view, reader, recent, new_floor)
        if not trim and new_floor > floor:
            writes.append(Upsert(TIMELINE_FLOORS, {"owner_id": reader, "floor": new_floor}))
        return writes + trim

    @on(Unfollowed, key=lambda e: e.followee_id)
    def unfollowed(self, e: Unfollowed, event: Event, view: ReadView) -> list[Write]:
        author, reader = int(e.followee_id), int(e.follower_id)
        writes: list[Write] = [Delete(FANOUT_FOLLOWERS, {"author_id": author, "follower_id": reader})]
        for row in view.scan(HOME_TIMELINE, {"owner_id": reader}):
            if row["author_id"] == author:
                writes.append(Delete(HOME_TIMELINE, {"owner_id": reader, "post_id": row["post_id"]}))
        return writes

    def _trim(self, view: ReadView, reader: int, incoming: list[int], floor: int) -> list[Write]:
        """Keep the newest timeline_max entries; raise the floor to what was cut.
        `floor` is the floor the caller has decided so far (written here if trimming)."""
        rows = view.scan(HOME_TIMELINE, {"owner_id": reader}, limit=self.timeline_max + 1)
        ids = sorted({r["post_id"] for r in rows} | set(incoming), reverse=True)
        if len(ids) <= self.timeline_max:
            return []
        cut = ids[self.timeline_max]
        return [
            DeleteUpTo(HOME_TIMELINE, {"owner_id": reader}, cut),
            Upsert(TIMELINE_FLOORS, {"owner_id": reader, "floor": max(floor, cut)}),
        ]


def feed_page(view: ReadView, reader: int, cursor: int | None, limit: int) -> tuple[list[int], int | None]:
    """Post ids of one page of a reader's feed, newest first, and the next cursor.

    Above the floor the timeline answers in one partition read; below it (past the bound,
    or older than what a follow backfilled) the followed authors' posts are merged.
    """
    floor = _floor(view, reader)
    ids: list[int] = []
    if cursor is None or cursor > floor + 1:
        rows = view.scan(
            HOME_TIMELINE, {"owner_id": reader}, start_after=cursor, end_before=floor or None, limit=limit
        )
        ids = [r["post_id"] for r in rows]
    if len(ids) < limit and floor > 0:
        start = floor + 1 if cursor is None else min(cursor, floor + 1)
        authors = [{"author_id": a} for a in FOLLOWING.all_others(view, reader)]
        merged = view.scan_many(POSTS_BY_AUTHOR, authors, start_after=start, limit=limit - len(ids))
        ids += [r["post_id"] for r in merged]
    return ids, (ids[-1] if len(ids) == limit else None)
