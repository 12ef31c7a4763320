"""Read model `home_timeline`: each reader's feed, by hybrid fan-out.

Ordinary authors are pushed: a post is written into each follower's timeline. Authors
with at least `celebrity_threshold` followers are pulled: their posts are not fanned
out; the reader keeps a short list of the celebrities they follow (`home_pull_sources`,
at most `pull_sources` per reader) and a feed read merges those authors'
`posts_by_author` by id. Hysteresis: a celebrity becomes ordinary again only below
`celebrity_demote` followers, so an account hovering at the threshold does not flip. A
reader who follows more celebrities than `pull_sources` is pushed the rest (the
`fanout_overflow` list of each celebrity), so a read never merges more than the bound.

The projector keeps its own copy of what fan-out needs (each author's followers, newest
posts and follower count; each reader's followees), keyed by author, so it never
depends on another projection's progress.

A timeline is *complete above its floor*: every post by a pushed followed account with
an id greater than the reader's floor is in it. The floor rises when the timeline is
trimmed to its bound, or when a follow (or a demotion, or a rebuild) backfills an
author whose older posts were not kept. Reading below the floor merges the followed
authors' `posts_by_author` instead.

Inactive readers: a reader not seen for more than `inactive_days` (seen = registered,
posted, liked, commented, or asked for a rebuild; measured in *event time*, the
`occurred_at` of the events, never the wall clock, so a replay decides exactly as the
live run did) gets no fan-out writes. The first post skipped marks the timeline
`dormant`; a feed read of a dormant timeline merges the followed authors' posts (the
whole feed, at once) and asks for a rebuild (`TimelineRebuildRequested`), which this
projector carries out from its own copies and which clears the mark.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domain.events import (
    AccountRegistered,
    CommentAdded,
    Event,
    Followed,
    Liked,
    PostCreated,
    PostDeleted,
    TimelineRebuildRequested,
    Unfollowed,
)
from projections.following import FOLLOWING
from projections.posts_by_author import POSTS_BY_AUTHOR
from projections.projector import Projector, on
from projections.store import Delete, DeleteUpTo, Get, ReadView, Row, Scan, Table, Upsert, Write

HOME_TIMELINE = Table(
    "home_timeline",
    {"owner_id": "int", "post_id": "int", "author_id": "int"},
    ("owner_id",),
    "post_id",
    descending=True,
)
# One row per reader: the floor, the last day (event time) the reader was seen, and
# whether fan-out has skipped them since (dormant). Columns are written separately
# (Upsert writes only the columns it names), each by the handlers that own it.
TIMELINE_STATE = Table(
    "home_timeline_state",
    {"owner_id": "int", "floor": "int", "seen_day": "int", "dormant": "bool"},
    ("owner_id",),
)
# Celebrities each reader pulls (bounded by pull_sources).
PULL_SOURCES = Table("home_pull_sources", {"owner_id": "int", "author_id": "int"}, ("owner_id",), "author_id")
FANOUT_FOLLOWERS = Table(
    "fanout_followers", {"author_id": "int", "follower_id": "int"}, ("author_id",), "follower_id"
)
FANOUT_FOLLOWING = Table(
    "fanout_following", {"owner_id": "int", "author_id": "int"}, ("owner_id",), "author_id"
)
# Followers of a celebrity who are pushed its posts anyway (they already pull the most
# celebrities a read merges).
FANOUT_OVERFLOW = Table(
    "fanout_overflow", {"author_id": "int", "follower_id": "int"}, ("author_id",), "follower_id"
)
# followers: exact (decided against fanout_followers); pushed_upto: at promotion, the
# newest post id that may have been pushed to every follower (deletes of older posts
# still sweep every follower's timeline).
FANOUT_AUTHORS = Table(
    "fanout_authors",
    {"author_id": "int", "followers": "int", "celebrity": "bool", "pushed_upto": "int"},
    ("author_id",),
)
FANOUT_POSTS = Table(
    "fanout_recent_posts", {"author_id": "int", "post_id": "int"}, ("author_id",), "post_id", descending=True
)
FANOUT_HORIZONS = Table("fanout_horizons", {"author_id": "int", "horizon": "int"}, ("author_id",))


def day_of(moment: datetime) -> int:
    """Days since the Unix epoch of an event time (the unit of `inactive_days`)."""
    return int(moment.timestamp() // 86_400)


@dataclass(frozen=True)
class ReaderState:
    floor: int = 0
    seen_day: int | None = None  # None: never seen by this projector (counts as active)
    dormant: bool = False

    @staticmethod
    def of(row: Row | None) -> ReaderState:
        if row is None:
            return ReaderState()
        return ReaderState(int(row.get("floor") or 0), row.get("seen_day"), bool(row.get("dormant")))


@dataclass(frozen=True)
class AuthorState:
    followers: int = 0
    celebrity: bool = False
    pushed_upto: int = 0

    @staticmethod
    def of(row: Row | None) -> AuthorState:
        if row is None:
            return AuthorState()
        return AuthorState(int(row.get("followers") or 0), bool(row.get("celebrity")), int(row.get("pushed_upto") or 0))


def reader_state(view: ReadView, owner: int) -> ReaderState:
    return ReaderState.of(view.get(TIMELINE_STATE, {"owner_id": owner}))


def author_state(view: ReadView, author: int) -> AuthorState:
    return AuthorState.of(view.get(FANOUT_AUTHORS, {"author_id": author}))


class HomeTimeline(Projector):
    name = "home_timeline"
    tables = (
        HOME_TIMELINE,
        TIMELINE_STATE,
        PULL_SOURCES,
        FANOUT_FOLLOWERS,
        FANOUT_FOLLOWING,
        FANOUT_OVERFLOW,
        FANOUT_AUTHORS,
        FANOUT_POSTS,
        FANOUT_HORIZONS,
    )

    def __init__(
        self,
        timeline_max: int = 800,
        backfill: int = 50,
        trim_every: int = 16,
        *,
        celebrity_threshold: int = 10_000,
        celebrity_demote: int | None = None,
        pull_sources: int = 50,
        inactive_days: int = 30,
    ) -> None:
        if min(timeline_max, backfill, trim_every, celebrity_threshold, pull_sources) < 1:
            raise ValueError("timeline_max, backfill, trim_every, celebrity_threshold and pull_sources must be positive")
        demote = celebrity_threshold * 9 // 10 if celebrity_demote is None else celebrity_demote
        if not 0 <= demote <= celebrity_threshold:
            raise ValueError("celebrity_demote must be between 0 and celebrity_threshold")
        if inactive_days < 0:
            raise ValueError("inactive_days must not be negative")
        self.timeline_max = timeline_max
        self.backfill = backfill
        # Checking a timeline's length costs a partition read, so fan-out checks one in
        # trim_every inserts per reader (deterministically, so a replay trims the same).
        self.trim_every = trim_every
        self.celebrity_threshold = celebrity_threshold
        self.celebrity_demote = demote
        self.pull_sources = pull_sources
        self.inactive_days = inactive_days

    # ----- readers seen ------------------------------------------------------------

    def _seen(self, view: ReadView, reader: int, event: Event) -> list[Write]:
        """Record the reader's latest active day. Only ever raised, so events seen again
        or out of order cannot make a reader look older than they are."""
        day = day_of(event.occurred_at)
        seen = reader_state(view, reader).seen_day
        if seen is not None and seen >= day:
            return []
        return [Upsert(TIMELINE_STATE, {"owner_id": reader, "seen_day": day})]

    def _away(self, state: ReaderState, day: int) -> bool:
        return state.seen_day is not None and day - state.seen_day > self.inactive_days

    @on(AccountRegistered, key=lambda e: e.account_id)
    def registered(self, e: AccountRegistered, event: Event, view: ReadView) -> list[Write]:
        return self._seen(view, int(e.account_id), event)

    @on(Liked, key=lambda e: e.account_id)
    def liked(self, e: Liked, event: Event, view: ReadView) -> list[Write]:
        return self._seen(view, int(e.account_id), event)

    @on(CommentAdded, key=lambda e: e.author_id)
    def commented(self, e: CommentAdded, event: Event, view: ReadView) -> list[Write]:
        return self._seen(view, int(e.author_id), event)

    # ----- posts -------------------------------------------------------------------

    @on(PostCreated, key=lambda e: e.author_id)
    def post_created(self, e: PostCreated, event: Event, view: ReadView) -> list[Write]:
        author, post = int(e.author_id), int(e.post_id)
        writes = self._seen(view, author, event)
        horizon = self._horizon(view, author)
        if post > horizon:  # a redelivered old post must not come back below the horizon
            writes.append(Upsert(FANOUT_POSTS, {"author_id": author, "post_id": post}))
            recent = view.scan(FANOUT_POSTS, {"author_id": author}, limit=self.backfill + 1)
            kept = sorted({r["post_id"] for r in recent} | {post}, reverse=True)
            if len(kept) > self.backfill:
                cut = kept[self.backfill]
                writes.append(DeleteUpTo(FANOUT_POSTS, {"author_id": author}, cut))
                writes.append(Upsert(FANOUT_HORIZONS, {"author_id": author, "horizon": max(horizon, cut)}))
        # A celebrity's post is pulled by its readers: only the overflow is pushed.
        audience = FANOUT_OVERFLOW if author_state(view, author).celebrity else FANOUT_FOLLOWERS
        readers = [r["follower_id"] for r in view.scan(audience, {"author_id": author})]
        states = view.get_many(TIMELINE_STATE, [{"owner_id": r} for r in readers])
        day = day_of(event.occurred_at)
        for reader, row in zip(readers, states):
            state = ReaderState.of(row)
            if post <= state.floor or state.dormant:
                continue  # below the floor the feed reads posts_by_author; dormant: rebuilt later
            if self._away(state, day):
                writes.append(Upsert(TIMELINE_STATE, {"owner_id": reader, "dormant": True}))
                continue
            writes.append(Upsert(HOME_TIMELINE, {"owner_id": reader, "post_id": post, "author_id": author}))
            if (post ^ reader) % self.trim_every == 0:
                writes += self._trim(view, reader, [post], state.floor)
        return writes

    @on(PostDeleted, key=lambda e: e.author_id)
    def post_deleted(self, e: PostDeleted, event: Event, view: ReadView) -> list[Write]:
        author, post = int(e.author_id), int(e.post_id)
        writes: list[Write] = [Delete(FANOUT_POSTS, {"author_id": author, "post_id": post})]
        profile = author_state(view, author)
        # A celebrity's post newer than its promotion reached only the overflow; anything
        # older may have been pushed to every follower.
        audience = FANOUT_OVERFLOW if profile.celebrity and post > profile.pushed_upto else FANOUT_FOLLOWERS
        for row in view.scan(audience, {"author_id": author}):
            writes.append(Delete(HOME_TIMELINE, {"owner_id": row["follower_id"], "post_id": post}))
        return writes

    # ----- the graph ---------------------------------------------------------------

    @on(Followed, key=lambda e: e.followee_id)
    def followed(self, e: Followed, event: Event, view: ReadView) -> list[Write]:
        author, reader = int(e.followee_id), int(e.follower_id)
        if view.get(FANOUT_FOLLOWERS, {"author_id": author, "follower_id": reader}) is not None:
            return []  # seen before: the count and the lists are already right
        profile = author_state(view, author)
        count = profile.followers + 1
        writes: list[Write] = [
            Upsert(FANOUT_FOLLOWERS, {"author_id": author, "follower_id": reader}),
            Upsert(FANOUT_FOLLOWING, {"owner_id": reader, "author_id": author}),
        ]
        if profile.celebrity:
            writes.append(Upsert(FANOUT_AUTHORS, {"author_id": author, "followers": count}))
            return writes + self._attach(view, reader, author, new_follower=True)
        if count < self.celebrity_threshold:
            writes.append(Upsert(FANOUT_AUTHORS, {"author_id": author, "followers": count}))
            return writes + self._backfill(view, reader, author)
        # Promotion: from now on the author's posts are pulled. Everything processed so
        # far was pushed; remember up to where, for deletes.
        newest = view.scan(FANOUT_POSTS, {"author_id": author}, limit=1)
        pushed_upto = max([self._horizon(view, author), int(e.follow_id)] + [r["post_id"] for r in newest])
        writes.append(
            Upsert(FANOUT_AUTHORS, {"author_id": author, "followers": count, "celebrity": True, "pushed_upto": pushed_upto})
        )
        writes += self._attach(view, reader, author, new_follower=True)
        for row in view.scan(FANOUT_FOLLOWERS, {"author_id": author}):
            writes += self._attach(view, row["follower_id"], author, new_follower=False)
        return writes

    @on(Unfollowed, key=lambda e: e.followee_id)
    def unfollowed(self, e: Unfollowed, event: Event, view: ReadView) -> list[Write]:
        author, reader = int(e.followee_id), int(e.follower_id)
        if view.get(FANOUT_FOLLOWERS, {"author_id": author, "follower_id": reader}) is None:
            return []
        profile = author_state(view, author)
        count = max(profile.followers - 1, 0)
        writes: list[Write] = [
            Delete(FANOUT_FOLLOWERS, {"author_id": author, "follower_id": reader}),
            Delete(FANOUT_FOLLOWING, {"owner_id": reader, "author_id": author}),
            Delete(PULL_SOURCES, {"owner_id": reader, "author_id": author}),
            Delete(FANOUT_OVERFLOW, {"author_id": author, "follower_id": reader}),
        ]
        for row in view.scan(HOME_TIMELINE, {"owner_id": reader}):
            if row["author_id"] == author:
                writes.append(Delete(HOME_TIMELINE, {"owner_id": reader, "post_id": row["post_id"]}))
        if not (profile.celebrity and count < self.celebrity_demote):
            return writes + [Upsert(FANOUT_AUTHORS, {"author_id": author, "followers": count})]
        # Demotion: the readers who pulled the author get its recent posts pushed, as a
        # follow would (their floor rises to the author's horizon where posts were not kept).
        writes.append(Upsert(FANOUT_AUTHORS, {"author_id": author, "followers": count, "celebrity": False}))
        for row in view.scan(FANOUT_FOLLOWERS, {"author_id": author}):
            follower = row["follower_id"]
            if follower == reader:
                continue
            writes.append(Delete(FANOUT_OVERFLOW, {"author_id": author, "follower_id": follower}))
            if view.get(PULL_SOURCES, {"owner_id": follower, "author_id": author}) is not None:
                writes.append(Delete(PULL_SOURCES, {"owner_id": follower, "author_id": author}))
                writes += self._backfill(view, follower, author)
        return writes

    def _attach(self, view: ReadView, reader: int, author: int, *, new_follower: bool) -> list[Write]:
        """A reader of a celebrity pulls it, unless they already pull as many celebrities
        as a read may merge: then they are pushed its posts (the overflow)."""
        pulled = view.scan(PULL_SOURCES, {"owner_id": reader}, limit=self.pull_sources)
        if len(pulled) < self.pull_sources:
            return [Upsert(PULL_SOURCES, {"owner_id": reader, "author_id": author})]
        writes: list[Write] = [Upsert(FANOUT_OVERFLOW, {"author_id": author, "follower_id": reader})]
        if new_follower:  # an existing follower's timeline already holds the pushed posts
            writes += self._backfill(view, reader, author)
        return writes

    def _backfill(self, view: ReadView, reader: int, author: int) -> list[Write]:
        """Put the author's recent posts (up to `backfill`) into the reader's timeline;
        the floor rises to the author's horizon (the newest post no longer kept)."""
        floor = reader_state(view, reader).floor
        new_floor = max(floor, self._horizon(view, author))
        recent = [
            r["post_id"]
            for r in view.scan(FANOUT_POSTS, {"author_id": author}, limit=self.backfill)
            if r["post_id"] > new_floor
        ]
        writes: list[Write] = [
            Upsert(HOME_TIMELINE, {"owner_id": reader, "post_id": post, "author_id": author}) for post in recent
        ]
        trim = self._trim(view, reader, recent, new_floor)
        if not trim and new_floor > floor:
            writes.append(Upsert(TIMELINE_STATE, {"owner_id": reader, "floor": new_floor}))
        return writes + trim

    # ----- inactive readers --------------------------------------------------------

    @on(TimelineRebuildRequested, key=lambda e: e.reader_id)
    def rebuild(self, e: TimelineRebuildRequested, event: Event, view: ReadView) -> list[Write]:
        """A dormant reader is back: refill the timeline from the newest posts of every
        pushed followee (this projector's own copies), raise the floor to the newest
        post not kept among them, and clear the mark."""
        reader = int(e.reader_id)
        state = reader_state(view, reader)
        if not state.dormant:
            return self._seen(view, reader, event)
        pulled = {r["author_id"] for r in view.scan(PULL_SOURCES, {"owner_id": reader})}
        floor = state.floor
        candidates: list[tuple[int, int]] = []
        for row in view.scan(FANOUT_FOLLOWING, {"owner_id": reader}):
            author = row["author_id"]
            if author in pulled:
                continue
            floor = max(floor, self._horizon(view, author))
            candidates += [(r["post_id"], author) for r in view.scan(FANOUT_POSTS, {"author_id": author}, limit=self.backfill)]
        fresh = sorted((c for c in candidates if c[0] > floor), reverse=True)
        writes: list[Write] = [
            Upsert(HOME_TIMELINE, {"owner_id": reader, "post_id": post, "author_id": author}) for post, author in fresh
        ]
        writes += self._trim(view, reader, [post for post, _ in fresh], floor)
        seen_day = max(day_of(event.occurred_at), state.seen_day or 0)
        # The floor goes first so that a trim's higher floor (appended above) is not lowered.
        writes.insert(0, Upsert(TIMELINE_STATE, {"owner_id": reader, "floor": floor, "seen_day": seen_day, "dormant": False}))
        return writes

    # ----- helpers -----------------------------------------------------------------

    @staticmethod
    def _horizon(view: ReadView, author: int) -> int:
        row = view.get(FANOUT_HORIZONS, {"author_id": author})
        return int(row["horizon"]) if row else 0

    def _trim(self, view: ReadView, reader: int, incoming: list[int], floor: int) -> list[Write]:
        """Keep the newest timeline_max entries; raise the floor to what was cut.
        `floor` is the floor the caller has decided so far (written here if trimming).
        One range delete of everything at or below the cut: one range tombstone in
        Cassandra however many rows it covers."""
        rows = view.scan(HOME_TIMELINE, {"owner_id": reader}, end_before=floor or None, limit=self.timeline_max + 1)
        ids = sorted({r["post_id"] for r in rows} | {i for i in incoming if i > floor}, reverse=True)
        if len(ids) <= self.timeline_max:
            return []
        cut = ids[self.timeline_max]
        return [
            DeleteUpTo(HOME_TIMELINE, {"owner_id": reader}, cut),
            Upsert(TIMELINE_STATE, {"owner_id": reader, "floor": max(floor, cut)}),
        ]


# ----- the read path -----------------------------------------------------------------


@dataclass(frozen=True)
class FeedPage:
    ids: list[int]  # post ids, newest first
    next_cursor: int | None
    # The reader's timeline was left behind while they were away: this page was merged
    # from the followed authors, and the caller should ask for a rebuild.
    rebuild: bool = False


def _merge_followed(view: ReadView, reader: int, start_after: int | None, limit: int) -> list[int]:
    """Fan-out on read: the followed authors' posts merged by id (the fallback)."""
    authors = [{"author_id": a} for a in FOLLOWING.all_others(view, reader)]
    return [r["post_id"] for r in view.scan_many(POSTS_BY_AUTHOR, authors, start_after=start_after, limit=limit)]


def naive_feed_page(view: ReadView, reader: int, cursor: int | None, limit: int) -> FeedPage:
    """The baseline design (fan-out on read): every followed author's posts merged per
    request. Only the benchmark serves it (PHOTOSTREAM_FEED_READ=naive)."""
    ids = _merge_followed(view, reader, cursor, limit)
    return FeedPage(ids, ids[-1] if len(ids) == limit else None)


def feed_page(view: ReadView, reader: int, cursor: int | None, limit: int) -> FeedPage:
    """One page of a reader's feed, newest first, and the next cursor (the last id).

    Above the floor: the timeline (one partition read) merged by id with the pulled
    celebrities' posts (one scan_many over at most `pull_sources` partitions, read
    concurrently). Below the floor (past the bound, or older than what a follow
    backfilled), or when the timeline is dormant: the followed authors' posts merged.
    Ids are time-sortable and the cursor is the last id given, so posts arriving while
    a reader pages land above the cursor: a walk never repeats or skips an item, and a
    cursor holds no server state, so it never expires.
    """
    # One round trip for the reader's state, pull sources and timeline page: the page is
    # read without the floor (unknown yet) and cut at it, the same rows as a read
    # bounded by it, since the timeline is newest first.
    state_row, pull_rows, timeline_rows = view.fetch([
        Get.of(TIMELINE_STATE, {"owner_id": reader}),
        Scan(PULL_SOURCES, (reader,)),
        Scan(HOME_TIMELINE, (reader,), start_after=cursor, limit=limit),
    ])  # fmt: skip
    state = ReaderState.of(state_row)
    if state.dormant:
        ids = _merge_followed(view, reader, cursor, limit)
        return FeedPage(ids, ids[-1] if len(ids) == limit else None, rebuild=True)
    floor = state.floor
    ids: list[int] = []
    if cursor is None or cursor > floor + 1:
        pushed = [r["post_id"] for r in timeline_rows if r["post_id"] > floor]
        pulled = [{"author_id": r["author_id"]} for r in pull_rows]
        bounds = {"start_after": cursor, "end_before": floor or None, "limit": limit}
        pulls = [r["post_id"] for r in view.scan_many(POSTS_BY_AUTHOR, pulled, **bounds)] if pulled else []
        ids = sorted(set(pushed) | set(pulls), reverse=True)[:limit]
    if len(ids) < limit and floor > 0:
        start = floor + 1 if cursor is None else min(cursor, floor + 1)
        ids += _merge_followed(view, reader, start, limit - len(ids))
    return FeedPage(ids, ids[-1] if len(ids) == limit else None)
