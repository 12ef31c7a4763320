"""Read model `explore`: recent posts ranked by engagement that decays with time.

A post's score at time T is  sum over its engagement e of  w_e * 2^-((T - t_e) / HALF_LIFE):
the creation of the post itself (w=1, so a fresh post shows up), each like by someone
else (w=1) and each comment by someone else (w=2); engagement more than WINDOW after the
post does not count, and only posts younger than WINDOW are shown.

Ranking by that score at any T is the same as ranking by its "forward decayed" form,
log2(sum w_e * 2^((t_e - EPOCH) / HALF_LIFE)), which does not change as time passes: the
projector can keep a fixed, sortable rank per post, and the query reads the top of an
index instead of scoring anything per request. The rank is written as
(t_post - EPOCH) / HALF_LIFE + log2(S) with S = sum w_e * 2^((t_e - t_post) / HALF_LIFE),
where each term of S is a whole number (scaled by 2^SCALE_BITS): S is exact and the same
whatever order likes, unlikes, comments and their repeats arrive in.

Tables, all keyed by post (the projector's key), so one worker at a time touches a post's
score; no counter columns:
- `explore_engagement` (post, "p" | "l:<account>" | "c:<comment>") -> its term: the
  index that says whether an engagement is new, and what to subtract when it goes.
- `explore_posts` (post) -> author, S, rank: the post's state.
- `explore_ranking` ((day, shard), rank DESC) -> post: the index a page reads, one
  partition per day of posts (and shard, to spread a day's writes).
- `explore_days` and `explore_day_posts`: what to drop once a day leaves the window, so
  storage stays bounded: the first post created each new day removes the rows of days
  older than the window (an event's own time decides, so a replay drops the same).
"""
from __future__ import annotations

import math
import zlib
from datetime import datetime, timedelta

from domain.events import CommentAdded, CommentDeleted, Event, Liked, PostCreated, PostDeleted, Unliked
from domain.ids import EPOCH_MS, SEQUENCE_BITS, WORKER_BITS
from projections import queries
from projections import discovery_filter
from projections.paging import filtered_page
from projections.projector import Projector, on
from projections.store import Delete, DeletePartition, ReadView, Row, Table, Upsert, Write

HALF_LIFE_MS = 6 * 3600 * 1000
WINDOW_MS = 3 * 86400 * 1000
DAY_MS = 86400 * 1000
WINDOW_DAYS = WINDOW_MS // DAY_MS
SHARDS = 4
SCALE_BITS = 20
RANK_SCALE = 1 << 24  # rank (in half-lives) to an integer with this many steps per unit
WEIGHTS = {"p": 1, "l": 1, "c": 2}
READ_BUDGET = 600

EXPLORE_ENGAGEMENT = Table("explore_engagement", {"post_id": "int", "what": "text", "term": "int"}, ("post_id",), "what")
EXPLORE_POSTS = Table(
    "explore_posts",
    {"post_id": "int", "author_id": "int", "created": "bool", "deleted": "bool", "score": "int", "rank": "text"},
    ("post_id",),
)
EXPLORE_RANKING = Table(
    "explore_ranking",
    {"day": "int", "shard": "int", "rank": "text", "post_id": "int", "author_id": "int"},
    ("day", "shard"),
    "rank",
    descending=True,
)
EXPLORE_DAYS = Table("explore_days", {"slot": "int", "day": "int"}, ("slot",), "day")
EXPLORE_DAY_POSTS = Table("explore_day_posts", {"day": "int", "post_id": "int"}, ("day",), "post_id")


def post_time_ms(post_id: int) -> int:
    """Milliseconds since the Unix epoch at which a post (its snowflake id) was made."""
    return (post_id >> (WORKER_BITS + SEQUENCE_BITS)) + EPOCH_MS


def day_of(post_id: int) -> int:
    return post_time_ms(post_id) // DAY_MS


def shard_of(post_id: int) -> int:
    return zlib.crc32(str(post_id).encode()) % SHARDS


def term(kind: str, post_id: int, at: datetime) -> int | None:
    """What one engagement adds to S, or None when it falls outside the window."""
    offset = int(at.timestamp() * 1000) - post_time_ms(post_id)
    if offset > WINDOW_MS:
        return None
    offset = max(offset, 0)  # clocks differ a little between machines
    return WEIGHTS[kind] * round(2.0 ** (SCALE_BITS + offset / HALF_LIFE_MS))


def rank_of(post_id: int, score: int) -> str:
    """The post's forward-decayed score as fixed-width text (larger = more engaging now),
    with the post id to make it unique."""
    value = (post_time_ms(post_id) - EPOCH_MS) / HALF_LIFE_MS + math.log2(score) - SCALE_BITS
    return f"{max(round(value * RANK_SCALE), 0):016d}:{post_id:019d}"


class Explore(Projector):
    name = "explore"
    tables = (EXPLORE_ENGAGEMENT, EXPLORE_POSTS, EXPLORE_RANKING, EXPLORE_DAYS, EXPLORE_DAY_POSTS)

    @on(PostCreated, key=lambda e: e.post_id)
    def created(self, e: PostCreated, event: Event, view: ReadView) -> list[Write]:
        post_id = int(e.post_id)
        return _cleanup(view, day_of(post_id)) + _engage(view, post_id, int(e.author_id), "p", event, created=True)

    @on(PostDeleted, key=lambda e: e.post_id)
    def deleted(self, e: PostDeleted, event: Event, view: ReadView) -> list[Write]:
        post_id = int(e.post_id)
        state = view.get(EXPLORE_POSTS, {"post_id": post_id})
        writes: list[Write] = [DeletePartition(EXPLORE_ENGAGEMENT, {"post_id": post_id})]
        if state is not None and state["rank"]:
            writes.append(Delete(EXPLORE_RANKING, {"day": day_of(post_id), "shard": shard_of(post_id), "rank": state["rank"]}))
        if state is None and term("p", post_id, event.occurred_at) is None:
            return writes  # out of the window (maybe cleaned up already): nothing to keep
        # Kept as a tombstone so that a like delivered late cannot bring the post back.
        writes += _touch(state, post_id)
        writes.append(Upsert(EXPLORE_POSTS, {"post_id": post_id, "author_id": int(e.author_id), "deleted": True, "score": 0, "rank": None}))
        return writes

    @on(Liked, key=lambda e: e.post_id)
    def liked(self, e: Liked, event: Event, view: ReadView) -> list[Write]:
        if e.account_id == e.post_author_id:
            return []
        return _engage(view, int(e.post_id), int(e.post_author_id), f"l:{e.account_id}", event)

    @on(Unliked, key=lambda e: e.post_id)
    def unliked(self, e: Unliked, event: Event, view: ReadView) -> list[Write]:
        return _disengage(view, int(e.post_id), f"l:{e.account_id}")

    @on(CommentAdded, key=lambda e: e.post_id)
    def commented(self, e: CommentAdded, event: Event, view: ReadView) -> list[Write]:
        if e.author_id == e.post_author_id:
            return []
        return _engage(view, int(e.post_id), int(e.post_author_id), f"c:{e.comment_id}", event)

    @on(CommentDeleted, key=lambda e: e.post_id)
    def comment_deleted(self, e: CommentDeleted, event: Event, view: ReadView) -> list[Write]:
        return _disengage(view, int(e.post_id), f"c:{e.comment_id}")


def _touch(state: Row | None, post_id: int) -> list[Write]:
    """Register a post's first row with its day, so the day's cleanup finds it."""
    if state is not None:
        return []
    day = day_of(post_id)
    return [Upsert(EXPLORE_DAYS, {"slot": 0, "day": day}), Upsert(EXPLORE_DAY_POSTS, {"day": day, "post_id": post_id})]


def _engage(view: ReadView, post_id: int, author_id: int, what: str, event: Event, created: bool = False) -> list[Write]:
    state = view.get(EXPLORE_POSTS, {"post_id": post_id})
    if state is not None and state["deleted"]:
        return []
    if view.get(EXPLORE_ENGAGEMENT, {"post_id": post_id, "what": what}) is not None:
        return []  # a repeat
    # A like may arrive before the post's creation (another stream of the log): it
    # counts all the same; the post is ranked once its creation is here.
    value = term(what[0], post_id, event.occurred_at)
    if value is None:
        return []
    score = (state["score"] if state else 0) + value
    return [
        *_touch(state, post_id),
        Upsert(EXPLORE_ENGAGEMENT, {"post_id": post_id, "what": what, "term": value}),
        *_rerank(state, post_id, author_id, score, created or bool(state and state["created"])),
    ]


def _disengage(view: ReadView, post_id: int, what: str) -> list[Write]:
    state = view.get(EXPLORE_POSTS, {"post_id": post_id})
    found = view.get(EXPLORE_ENGAGEMENT, {"post_id": post_id, "what": what})
    if state is None or state["deleted"] or found is None:
        return []
    score = max(state["score"] - found["term"], 0)
    return [Delete(EXPLORE_ENGAGEMENT, {"post_id": post_id, "what": what}), *_rerank(state, post_id, state["author_id"], score, state["created"])]


def _rerank(state: Row | None, post_id: int, author_id: int, score: int, created: bool) -> list[Write]:
    rank = rank_of(post_id, score) if created and score > 0 else None
    old = state["rank"] if state else None
    writes: list[Write] = []
    partition = {"day": day_of(post_id), "shard": shard_of(post_id)}
    if old and old != rank:
        writes.append(Delete(EXPLORE_RANKING, {**partition, "rank": old}))
    if rank and rank != old:
        writes.append(Upsert(EXPLORE_RANKING, {**partition, "rank": rank, "post_id": post_id, "author_id": author_id}))
    writes.append(
        Upsert(EXPLORE_POSTS, {"post_id": post_id, "author_id": author_id, "created": created, "deleted": False, "score": score, "rank": rank})
    )
    return writes


def _cleanup(view: ReadView, today: int) -> list[Write]:
    """Drop every row of the days that left the window (two days of slack for late events)."""
    writes: list[Write] = []
    for row in view.scan(EXPLORE_DAYS, {"slot": 0}, end_before=today - WINDOW_DAYS - 2):
        day = row["day"]
        for post in view.scan(EXPLORE_DAY_POSTS, {"day": day}):
            writes += [DeletePartition(EXPLORE_ENGAGEMENT, {"post_id": post["post_id"]}), Delete(EXPLORE_POSTS, {"post_id": post["post_id"]})]
        writes += [DeletePartition(EXPLORE_RANKING, {"day": day, "shard": s}) for s in range(SHARDS)]
        writes += [DeletePartition(EXPLORE_DAY_POSTS, {"day": day}), Delete(EXPLORE_DAYS, {"slot": 0, "day": day})]
    return writes


def explore_page(view: ReadView, viewer: int | None, now: datetime, cursor: str | None, limit: int) -> tuple[list[queries.PostView], str | None]:
    """The most engaging posts of the last WINDOW, best first, leaving out the viewer's
    own posts and whatever the discovery filter hides from them."""
    oldest = int((now - timedelta(milliseconds=WINDOW_MS)).timestamp() * 1000)
    today = int(now.timestamp() * 1000) // DAY_MS
    partitions = [{"day": d, "shard": s} for d in range(oldest // DAY_MS, today + 1) for s in range(SHARDS)]

    def keep(rows: list[Row]) -> list[queries.PostView | None]:
        wanted = [r for r in rows if r["author_id"] != viewer and post_time_ms(r["post_id"]) >= oldest]
        hidden = discovery_filter.hidden_post_authors(view, viewer, {r["author_id"] for r in wanted})
        ids = [r["post_id"] for r in wanted if r["author_id"] not in hidden]
        found = {p.id: p for p in queries.posts_by_id(view, ids, viewer)}
        return [found.get(r["post_id"]) for r in rows]

    def fetch(after: str | None, n: int) -> list[Row]:
        return view.scan_many(EXPLORE_RANKING, partitions, start_after=after, limit=n)

    return filtered_page(fetch, keep, "rank", cursor, limit, READ_BUDGET)
