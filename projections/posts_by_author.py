"""Read model `posts_by_author`: an account's posts newest first (the profile grid) and
its exact post count."""
from __future__ import annotations

from domain.events import Event, PostCreated, PostDeleted
from projections.projector import Projector, on
from projections.store import Delete, ReadView, Table, Upsert, Write

POSTS_BY_AUTHOR = Table(
    "posts_by_author", {"author_id": "int", "post_id": "int"}, ("author_id",), "post_id", descending=True
)
POST_COUNTS = Table("post_counts", {"author_id": "int", "count": "int"}, ("author_id",))


def post_count(view: ReadView, author_id: int) -> int:
    row = view.get(POST_COUNTS, {"author_id": author_id})
    return int(row["count"]) if row else 0


class PostsByAuthor(Projector):
    name = "posts_by_author"
    tables = (POSTS_BY_AUTHOR, POST_COUNTS)

    @on(PostCreated, key=lambda e: e.author_id)
    def created(self, e: PostCreated, event: Event, view: ReadView) -> list[Write]:
        key = {"author_id": int(e.author_id), "post_id": int(e.post_id)}
        if view.get(POSTS_BY_AUTHOR, key) is not None:
            return []
        count = post_count(view, key["author_id"]) + 1
        return [Upsert(POSTS_BY_AUTHOR, key), Upsert(POST_COUNTS, {"author_id": key["author_id"], "count": count})]

    @on(PostDeleted, key=lambda e: e.author_id)
    def deleted(self, e: PostDeleted, event: Event, view: ReadView) -> list[Write]:
        key = {"author_id": int(e.author_id), "post_id": int(e.post_id)}
        if view.get(POSTS_BY_AUTHOR, key) is None:
            return []
        count = max(post_count(view, key["author_id"]) - 1, 0)
        return [Delete(POSTS_BY_AUTHOR, key), Upsert(POST_COUNTS, {"author_id": key["author_id"], "count": count})]
