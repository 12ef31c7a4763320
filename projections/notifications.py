"""Read model `notifications`: what happened to an account (likes, comments, follows,
mentions), newest first, with likes of one post grouped.

Grouping: the likes of one post whose like ids fall in one window (fixed windows of
`group_hours` aligned to the id epoch, so the grouping does not depend on the order
events arrive in, and a replay groups the same) are one notification. Its actors are a
newest-first edge list per (post, window) with an exact count decided against its own
index, like projections/edges.py: a like storm writes the liker's edge and the count,
never one row per like into the recipient's list.

Keys: everything about a post (its likes, comments, mentions, deletion) is serialized by
post id, so a group's count is exact without counters; follows by followee; the read
marker by account. No count is shared between keys: the unread count is computed from
the list above the read marker (see `unread_count`).

A notification's `id` is when it started (a group: its first like); its `activity_id`
is its newest activity, which is what unread and the live stream's resume compare.
"""
from __future__ import annotations

from dataclasses import dataclass

from domain.events import (
    CommentAdded,
    CommentDeleted,
    Event,
    Followed,
    FollowRequestCancelled,
    FollowRequestDeclined,
    FollowRequested,
    Liked,
    NotificationsRead,
    PostCreated,
    PostDeleted,
    PostEdited,
    Unfollowed,
    Unliked,
    format_time,
)
from domain.ids import SEQUENCE_BITS, WORKER_BITS
from projections.projector import Projector, on
from projections.store import Delete, DeletePartition, ReadView, Row, Table, Upsert, Write
from projections.visibility import is_blocking, is_muting

TIME_SHIFT = WORKER_BITS + SEQUENCE_BITS
ACTORS_SHOWN = 8

NOTIFICATIONS = Table(
    "notifications",
    {
        "recipient_id": "int",
        "notification_id": "int",
        "kind": "text",  # like | comment | follow | mention
        "actor_id": "int",  # who did it (a like group: its first liker)
        "post_id": "int",
        "comment_id": "int",
        "bucket": "int",  # a like group's window
        "activity_id": "int",
        "created_at": "text",
    },
    ("recipient_id",),
    "notification_id",
    descending=True,
)
NOTIFICATIONS_READ = Table("notifications_read", {"recipient_id": "int", "up_to": "int"}, ("recipient_id",))
# A like group per (post, window): where its notification sits.
LIKE_GROUPS = Table(
    "notification_like_groups",
    {"post_id": "int", "bucket": "int", "recipient_id": "int", "notification_id": "int", "activity_id": "int"},
    ("post_id",),
    "bucket",
)
LIKE_ACTORS = Table(
    "notification_like_actors",
    {"post_id": "int", "bucket": "int", "like_id": "int", "account_id": "int"},
    ("post_id", "bucket"),
    "like_id",
    descending=True,
)
LIKE_ACTOR_INDEX = Table(
    "notification_like_actor_index",
    {"post_id": "int", "account_id": "int", "like_id": "int", "bucket": "int"},
    ("post_id",),
    "account_id",
)
LIKE_ACTOR_COUNTS = Table(
    "notification_like_actor_counts", {"post_id": "int", "bucket": "int", "count": "int"}, ("post_id", "bucket")
)
# Every non-like notification about a post, to remove them with the post.
BY_POST = Table(
    "notifications_by_post",
    {"post_id": "int", "ref": "text", "recipient_id": "int", "notification_id": "int", "comment_id": "int"},
    ("post_id",),
    "ref",
)
FOLLOW_REQUESTS = Table(
    "notification_follow_requests",
    {"followee_id": "int", "follower_id": "int", "request_id": "int"},
    ("followee_id",),
    "follower_id",
)
DELETED_POSTS = Table("notification_deleted_posts", {"post_id": "int"}, ("post_id",))
FOLLOWS = Table(
    "notification_follows", {"followee_id": "int", "follower_id": "int", "follow_id": "int"}, ("followee_id",), "follower_id"
)


def silenced(view: ReadView, recipient_id: int, actor_id: int, *, mutes: bool = True) -> bool:
    """THE one filter of notifications, messages and live frames: whether recipient must
    not hear from actor (a block either way; a mute, unless mutes=False as for direct
    messages). Queries and the stream call it, so a block also hides what came before it."""
    if recipient_id == actor_id:
        return False
    if is_blocking(view, recipient_id, actor_id) or is_blocking(view, actor_id, recipient_id):
        return True
    return mutes and is_muting(view, recipient_id, actor_id)


def id_millis(snowflake: int) -> int:
    return snowflake >> TIME_SHIFT


def first_id_at(millis: int) -> int:
    """The smallest snowflake of a millisecond (since the id epoch)."""
    return max(millis, 0) << TIME_SHIFT


class Notifications(Projector):
    name = "notifications"
    tables = (NOTIFICATIONS, NOTIFICATIONS_READ, LIKE_GROUPS, LIKE_ACTORS, LIKE_ACTOR_INDEX, LIKE_ACTOR_COUNTS, BY_POST, DELETED_POSTS, FOLLOWS, FOLLOW_REQUESTS)

    def __init__(self, group_hours: float = 12) -> None:
        if group_hours <= 0:
            raise ValueError("group_hours must be positive")
        self.window_ms = int(group_hours * 3600 * 1000)

    def bucket_of(self, like_id: int) -> int:
        return id_millis(like_id) // self.window_ms

    # ----- likes, grouped ---------------------------------------------------------------

    @on(Liked, key=lambda e: e.post_id)
    def liked(self, e: Liked, event: Event, view: ReadView) -> list[Write]:
        post, liker, like_id, author = int(e.post_id), int(e.account_id), int(e.like_id), int(e.post_author_id)
        if liker == author or view.get(DELETED_POSTS, {"post_id": post}) is not None:
            return []
        if view.get(LIKE_ACTOR_INDEX, {"post_id": post, "account_id": liker}) is not None:
            return []  # a repeated event
        bucket = self.bucket_of(like_id)
        group_key = {"post_id": post, "bucket": bucket}
        count_row = view.get(LIKE_ACTOR_COUNTS, group_key)
        writes: list[Write] = [
            Upsert(LIKE_ACTORS, {**group_key, "like_id": like_id, "account_id": liker}),
            Upsert(LIKE_ACTOR_INDEX, {"post_id": post, "account_id": liker, "like_id": like_id, "bucket": bucket}),
            Upsert(LIKE_ACTOR_COUNTS, {**group_key, "count": (int(count_row["count"]) if count_row else 0) + 1}),
        ]
        group = view.get(LIKE_GROUPS, group_key)
        if group is None:
            nid, activity, first_actor = like_id, like_id, liker
        else:
            nid, activity = min(group["notification_id"], like_id), max(group["activity_id"], like_id)
            first_actor = liker if like_id < group["notification_id"] else None
            if nid != group["notification_id"]:  # an earlier like arrived late: the group starts earlier
                old = view.get(NOTIFICATIONS, {"recipient_id": author, "notification_id": group["notification_id"]})
                writes.append(Delete(NOTIFICATIONS, {"recipient_id": author, "notification_id": group["notification_id"]}))
                first_actor = liker
                created = old["created_at"] if old else format_time(event.occurred_at)
        writes.append(Upsert(LIKE_GROUPS, {**group_key, "recipient_id": author, "notification_id": nid, "activity_id": activity}))
        row: Row = {"recipient_id": author, "notification_id": nid, "activity_id": activity}
        if first_actor is not None:  # a new row: the whole of it
            row.update(kind="like", actor_id=first_actor, post_id=post, comment_id=None, bucket=bucket)
            row["created_at"] = format_time(event.occurred_at) if group is None else created
        writes.append(Upsert(NOTIFICATIONS, row))
        return writes

    @on(Unliked, key=lambda e: e.post_id)
    def unliked(self, e: Unliked, event: Event, view: ReadView) -> list[Write]:
        post, liker = int(e.post_id), int(e.account_id)
        edge = view.get(LIKE_ACTOR_INDEX, {"post_id": post, "account_id": liker})
        if edge is None:
            return []
        group_key = {"post_id": post, "bucket": edge["bucket"]}
        count_row = view.get(LIKE_ACTOR_COUNTS, group_key)
        count = max((int(count_row["count"]) if count_row else 0) - 1, 0)
        writes: list[Write] = [
            Delete(LIKE_ACTORS, {**group_key, "like_id": edge["like_id"]}),
            Delete(LIKE_ACTOR_INDEX, {"post_id": post, "account_id": liker}),
        ]
        group = view.get(LIKE_GROUPS, group_key)
        if count == 0:  # the last liker of the group took it back: no notification
            writes.append(Delete(LIKE_ACTOR_COUNTS, group_key))
            if group is not None:
                writes.append(Delete(LIKE_GROUPS, group_key))
                writes.append(Delete(NOTIFICATIONS, {"recipient_id": group["recipient_id"], "notification_id": group["notification_id"]}))
        else:
            writes.append(Upsert(LIKE_ACTOR_COUNTS, {**group_key, "count": count}))
        return writes

    # ----- comments and mentions --------------------------------------------------------

    def _single(self, view: ReadView, recipient: int, nid: int, kind: str, actor: int, post: int, comment: int | None, event: Event) -> list[Write]:
        """One notification about a post, indexed by the post so that it goes with it."""
        return [
            Upsert(
                NOTIFICATIONS,
                {
                    "recipient_id": recipient,
                    "notification_id": nid,
                    "kind": kind,
                    "actor_id": actor,
                    "post_id": post,
                    "comment_id": comment,
                    "bucket": None,
                    "activity_id": nid,
                    "created_at": format_time(event.occurred_at),
                },
            ),
            Upsert(BY_POST, {"post_id": post, "ref": f"{recipient}:{nid}", "recipient_id": recipient, "notification_id": nid, "comment_id": comment}),
        ]

    @on(CommentAdded, key=lambda e: e.post_id)
    def comment_added(self, e: CommentAdded, event: Event, view: ReadView) -> list[Write]:
        post, comment, author, post_author = int(e.post_id), int(e.comment_id), int(e.author_id), int(e.post_author_id)
        if view.get(DELETED_POSTS, {"post_id": post}) is not None:
            return []
        writes: list[Write] = []
        if author != post_author:
            writes += self._single(view, post_author, comment, "comment", author, post, comment, event)
        for mentioned in dict.fromkeys(int(m) for m in e.mentions):
            if mentioned not in (author, post_author):  # the post's author hears of it as a comment
                writes += self._single(view, mentioned, comment, "mention", author, post, comment, event)
        return writes

    @on(CommentDeleted, key=lambda e: e.post_id)
    def comment_deleted(self, e: CommentDeleted, event: Event, view: ReadView) -> list[Write]:
        post, comment = int(e.post_id), int(e.comment_id)
        writes: list[Write] = []
        for row in view.scan(BY_POST, {"post_id": post}):
            if row["comment_id"] == comment:
                writes.append(Delete(NOTIFICATIONS, {"recipient_id": row["recipient_id"], "notification_id": row["notification_id"]}))
                writes.append(Delete(BY_POST, {"post_id": post, "ref": row["ref"]}))
        return writes

    def _mentioned_in_post(self, e: PostCreated | PostEdited, event: Event, view: ReadView) -> list[Write]:
        post, author = int(e.post_id), int(e.author_id)
        if view.get(DELETED_POSTS, {"post_id": post}) is not None:
            return []
        writes: list[Write] = []
        for mentioned in dict.fromkeys(int(m) for m in e.mentions):
            ref = {"post_id": post, "ref": f"{mentioned}:{post}"}
            if mentioned == author or view.get(BY_POST, ref) is not None:
                continue  # one's own mention, or already told (an edit keeping the name)
            writes += self._single(view, mentioned, post, "mention", author, post, None, event)
        return writes

    @on(PostCreated, key=lambda e: e.post_id)
    def post_created(self, e: PostCreated, event: Event, view: ReadView) -> list[Write]:
        return self._mentioned_in_post(e, event, view)

    @on(PostEdited, key=lambda e: e.post_id)
    def post_edited(self, e: PostEdited, event: Event, view: ReadView) -> list[Write]:
        return self._mentioned_in_post(e, event, view)

    @on(PostDeleted, key=lambda e: e.post_id)
    def post_deleted(self, e: PostDeleted, event: Event, view: ReadView) -> list[Write]:
        """The post's notifications go with it, and none may come after it."""
        post = int(e.post_id)
        writes: list[Write] = [Upsert(DELETED_POSTS, {"post_id": post})]
        for row in view.scan(BY_POST, {"post_id": post}):
            writes.append(Delete(NOTIFICATIONS, {"recipient_id": row["recipient_id"], "notification_id": row["notification_id"]}))
        for group in view.scan(LIKE_GROUPS, {"post_id": post}):
            writes.append(Delete(NOTIFICATIONS, {"recipient_id": group["recipient_id"], "notification_id": group["notification_id"]}))
            writes.append(DeletePartition(LIKE_ACTORS, {"post_id": post, "bucket": group["bucket"]}))
            writes.append(Delete(LIKE_ACTOR_COUNTS, {"post_id": post, "bucket": group["bucket"]}))
        writes += [
            DeletePartition(BY_POST, {"post_id": post}),
            DeletePartition(LIKE_GROUPS, {"post_id": post}),
            DeletePartition(LIKE_ACTOR_INDEX, {"post_id": post}),
        ]
        return writes

    # ----- follows and the read marker --------------------------------------------------

    def _request_answered(self, view: ReadView, followee: int, follower: int) -> list[Write]:
        """A follow request approved, declined or withdrawn: its notification goes."""
        edge = {"followee_id": followee, "follower_id": follower}
        row = view.get(FOLLOW_REQUESTS, edge)
        if row is None:
            return []
        return [Delete(FOLLOW_REQUESTS, edge), Delete(NOTIFICATIONS, {"recipient_id": followee, "notification_id": row["request_id"]})]

    @on(FollowRequested, key=lambda e: e.followee_id)
    def follow_requested(self, e: FollowRequested, event: Event, view: ReadView) -> list[Write]:
        followee, follower, request_id = int(e.followee_id), int(e.follower_id), int(e.request_id)
        edge = {"followee_id": followee, "follower_id": follower}
        if view.get(FOLLOW_REQUESTS, edge) is not None:
            return []
        return [
            Upsert(FOLLOW_REQUESTS, {**edge, "request_id": request_id}),
            Upsert(
                NOTIFICATIONS,
                {
                    "recipient_id": followee,
                    "notification_id": request_id,
                    "kind": "follow_request",
                    "actor_id": follower,
                    "post_id": None,
                    "comment_id": None,
                    "bucket": None,
                    "activity_id": request_id,
                    "created_at": format_time(event.occurred_at),
                },
            ),
        ]

    @on(FollowRequestDeclined, key=lambda e: e.followee_id)
    def follow_request_declined(self, e: FollowRequestDeclined, event: Event, view: ReadView) -> list[Write]:
        return self._request_answered(view, int(e.followee_id), int(e.follower_id))

    @on(FollowRequestCancelled, key=lambda e: e.followee_id)
    def follow_request_cancelled(self, e: FollowRequestCancelled, event: Event, view: ReadView) -> list[Write]:
        return self._request_answered(view, int(e.followee_id), int(e.follower_id))

    @on(Followed, key=lambda e: e.followee_id)
    def followed(self, e: Followed, event: Event, view: ReadView) -> list[Write]:
        followee, follower, follow_id = int(e.followee_id), int(e.follower_id), int(e.follow_id)
        edge = {"followee_id": followee, "follower_id": follower}
        answered = self._request_answered(view, followee, follower)  # an approval
        if view.get(FOLLOWS, edge) is not None:
            return answered
        return answered + [
            Upsert(FOLLOWS, {**edge, "follow_id": follow_id}),
            Upsert(
                NOTIFICATIONS,
                {
                    "recipient_id": followee,
                    "notification_id": follow_id,
                    "kind": "follow",
                    "actor_id": follower,
                    "post_id": None,
                    "comment_id": None,
                    "bucket": None,
                    "activity_id": follow_id,
                    "created_at": format_time(event.occurred_at),
                },
            ),
        ]

    @on(Unfollowed, key=lambda e: e.followee_id)
    def unfollowed(self, e: Unfollowed, event: Event, view: ReadView) -> list[Write]:
        """Taking a follow back takes its notification back, as un-liking does."""
        edge = {"followee_id": int(e.followee_id), "follower_id": int(e.follower_id)}
        row = view.get(FOLLOWS, edge)
        if row is None:
            return []
        return [Delete(FOLLOWS, edge), Delete(NOTIFICATIONS, {"recipient_id": edge["followee_id"], "notification_id": row["follow_id"]})]

    @on(NotificationsRead, key=lambda e: e.account_id)
    def read(self, e: NotificationsRead, event: Event, view: ReadView) -> list[Write]:
        account, up_to = int(e.account_id), int(e.up_to)
        current = view.get(NOTIFICATIONS_READ, {"recipient_id": account})
        if current is not None and current["up_to"] >= up_to:
            return []  # the marker only moves forward
        return [Upsert(NOTIFICATIONS_READ, {"recipient_id": account, "up_to": up_to})]


# ----- queries ---------------------------------------------------------------------------

UNREAD_SCAN_MAX = 1000


@dataclass(frozen=True)
class NotificationRow:
    row: Row
    actor_ids: list[int]  # newest first; a like group: its newest ACTORS_SHOWN
    actors_count: int
    read: bool


def read_marker(view: ReadView, recipient: int) -> int:
    row = view.get(NOTIFICATIONS_READ, {"recipient_id": recipient})
    return int(row["up_to"]) if row else 0


def _hydrate(view: ReadView, recipient: int, rows: list[Row], marker: int) -> list[NotificationRow]:
    groups = [{"post_id": r["post_id"], "bucket": r["bucket"]} for r in rows if r["kind"] == "like"]
    counts = dict(zip([(g["post_id"], g["bucket"]) for g in groups], view.get_many(LIKE_ACTOR_COUNTS, groups)))
    out = []
    for r in rows:
        if r["kind"] == "like":
            key = {"post_id": r["post_id"], "bucket": r["bucket"]}
            actors = [a["account_id"] for a in view.scan(LIKE_ACTORS, key, limit=ACTORS_SHOWN * 2)]
            actors = [a for a in actors if not silenced(view, recipient, a)][:ACTORS_SHOWN]
            count_row = counts.get((r["post_id"], r["bucket"]))
            total = int(count_row["count"]) if count_row else 0
            if not actors or total == 0:
                continue
        else:
            if silenced(view, recipient, r["actor_id"]):
                continue
            actors, total = [r["actor_id"]], 1
        out.append(NotificationRow(r, actors, total, r["activity_id"] <= marker))
    return out


def notifications_page(view: ReadView, recipient: int, cursor: int | None, limit: int) -> tuple[list[NotificationRow], int | None]:
    rows = view.scan(NOTIFICATIONS, {"recipient_id": recipient}, start_after=cursor, limit=limit)
    next_cursor = rows[-1]["notification_id"] if len(rows) == limit else None
    return _hydrate(view, recipient, rows, read_marker(view, recipient)), next_cursor


def notifications_since(view: ReadView, recipient: int, since: int, window_ms: int) -> list[NotificationRow]:
    """Every notification with activity after `since` (the live stream's resume), oldest
    activity first. A like group starts at most a window before its newest activity, so
    nothing older than that needs reading."""
    floor = first_id_at(id_millis(since) - window_ms) if since else None
    rows = view.scan(NOTIFICATIONS, {"recipient_id": recipient}, end_before=floor, limit=UNREAD_SCAN_MAX)
    fresh = [r for r in rows if r["activity_id"] > since]
    fresh.sort(key=lambda r: r["activity_id"])
    return _hydrate(view, recipient, fresh, read_marker(view, recipient))


def notification_by_id(view: ReadView, recipient: int, notification_id: int) -> NotificationRow | None:
    row = view.get(NOTIFICATIONS, {"recipient_id": recipient, "notification_id": notification_id})
    if row is None:
        return None
    found = _hydrate(view, recipient, [row], read_marker(view, recipient))
    return found[0] if found else None


def unread_count(view: ReadView, recipient: int, window_ms: int) -> int:
    """Exact: the notifications whose newest activity is after the read marker. Only
    the rows that started at most one grouping window before the marker can be."""
    marker = read_marker(view, recipient)
    floor = first_id_at(id_millis(marker) - window_ms) if marker else None
    rows = view.scan(NOTIFICATIONS, {"recipient_id": recipient}, end_before=floor, limit=UNREAD_SCAN_MAX)
    # Counted from the rows alone (no actors read): a like storm asks this once per like.
    return sum(
        1
        for r in rows
        if r["activity_id"] > marker and (r["kind"] == "like" or not silenced(view, recipient, r["actor_id"]))
    )


def like_group_of(view: ReadView, post_id: int, like_id: int, window_ms: int) -> Row | None:
    return view.get(LIKE_GROUPS, {"post_id": post_id, "bucket": id_millis(like_id) // window_ms})
