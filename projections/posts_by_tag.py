"""Read model `posts_by_tag`: the hashtag feeds, newest first.

Partitioned by (tag, month) so a popular tag does not grow one partition forever; a
small list of each tag's months says where to read. `post_tags` remembers a post's tags
so an edit can move it between feeds and a delete can remove it from all of them.
"""
from __future__ import annotations

from domain.events import Event, PostCreated, PostDeleted, PostEdited
from domain.ids import id_time
from projections.projector import Projector, on
from projections.store import Delete, DeletePartition, ReadView, Table, Upsert, Write

POSTS_BY_TAG = Table(
    "posts_by_tag",
    {"tag": "text", "bucket": "int", "post_id": "int", "author_id": "int"},
    ("tag", "bucket"),
    "post_id",
    descending=True,
)
TAG_BUCKETS = Table("tag_buckets", {"tag": "text", "bucket": "int"}, ("tag",), "bucket", descending=True)
POST_TAGS = Table("post_tags", {"post_id": "int", "tag": "text", "author_id": "int"}, ("post_id",), "tag")


def bucket_of(post_id: int) -> int:
    """The month a post id was made in, as yyyymm."""
    moment = id_time(post_id)
    return moment.year * 100 + moment.month


def _add(tag: str, post_id: int, author_id: int) -> list[Write]:
    bucket = bucket_of(post_id)
    return [
        Upsert(POSTS_BY_TAG, {"tag": tag, "bucket": bucket, "post_id": post_id, "author_id": author_id}),
        Upsert(TAG_BUCKETS, {"tag": tag, "bucket": bucket}),
        Upsert(POST_TAGS, {"post_id": post_id, "tag": tag, "author_id": author_id}),
    ]


def _remove(tag: str, post_id: int) -> list[Write]:
    return [
        Delete(POSTS_BY_TAG, {"tag": tag, "bucket": bucket_of(post_id), "post_id": post_id}),
        Delete(POST_TAGS, {"post_id": post_id, "tag": tag}),
    ]


class PostsByTag(Projector):
    name = "posts_by_tag"
    tables = (POSTS_BY_TAG, TAG_BUCKETS, POST_TAGS)

    @on(PostCreated, key=lambda e: e.post_id)
    def created(self, e: PostCreated, event: Event, view: ReadView) -> list[Write]:
        return [w for tag in e.tags for w in _add(tag, int(e.post_id), int(e.author_id))]

    @on(PostEdited, key=lambda e: e.post_id)
    def edited(self, e: PostEdited, event: Event, view: ReadView) -> list[Write]:
        post_id = int(e.post_id)
        old = {r["tag"] for r in view.scan(POST_TAGS, {"post_id": post_id})}
        new = set(e.tags)
        writes = [w for tag in sorted(old - new) for w in _remove(tag, post_id)]
        return writes + [w for tag in sorted(new - old) for w in _add(tag, post_id, int(e.author_id))]

    @on(PostDeleted, key=lambda e: e.post_id)
    def deleted(self, e: PostDeleted, event: Event, view: ReadView) -> list[Write]:
        post_id = int(e.post_id)
        writes = [
            Delete(POSTS_BY_TAG, {"tag": r["tag"], "bucket": bucket_of(post_id), "post_id": post_id})
            for r in view.scan(POST_TAGS, {"post_id": post_id})
        ]
        return writes + [DeletePartition(POST_TAGS, {"post_id": post_id})]


def tag_page(view: ReadView, tag: str, cursor: int | None, limit: int) -> tuple[list[int], int | None]:
    """Post ids with the tag, newest first, month partition by month partition."""
    ids: list[int] = []
    for row in view.scan(TAG_BUCKETS, {"tag": tag}):
        bucket = row["bucket"]
        if cursor is not None and bucket > bucket_of(cursor):
            continue
        after = cursor if cursor is not None and bucket == bucket_of(cursor) else None
        rows = view.scan(POSTS_BY_TAG, {"tag": tag, "bucket": bucket}, start_after=after, limit=limit - len(ids))
        ids += [r["post_id"] for r in rows]
        if len(ids) >= limit:
            break
    return ids, (ids[-1] if len(ids) == limit else None)
