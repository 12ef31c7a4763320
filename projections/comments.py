"""Read model `comments`: a post's comments, oldest first, with an exact comment count."""
from __future__ import annotations

from domain.events import CommentAdded, CommentDeleted, Event, format_time
from projections.projector import Projector, on
from projections.store import Delete, ReadView, Table, Upsert, Write

COMMENTS_BY_POST = Table(
    "comments_by_post",
    {"post_id": "int", "comment_id": "int", "author_id": "int", "text": "text", "created_at": "text"},
    ("post_id",),
    "comment_id",
)
COMMENT_COUNTS = Table("comment_counts", {"post_id": "int", "count": "int"}, ("post_id",))


def comment_count(view: ReadView, post_id: int) -> int:
    row = view.get(COMMENT_COUNTS, {"post_id": post_id})
    return int(row["count"]) if row else 0


class Comments(Projector):
    name = "comments"
    tables = (COMMENTS_BY_POST, COMMENT_COUNTS)

    @on(CommentAdded, key=lambda e: e.post_id)
    def added(self, e: CommentAdded, event: Event, view: ReadView) -> list[Write]:
        key = {"post_id": int(e.post_id), "comment_id": int(e.comment_id)}
        if view.get(COMMENTS_BY_POST, key) is not None:
            return []
        return [
            Upsert(
                COMMENTS_BY_POST,
                {**key, "author_id": int(e.author_id), "text": e.text, "created_at": format_time(event.occurred_at)},
            ),
            Upsert(COMMENT_COUNTS, {"post_id": key["post_id"], "count": comment_count(view, key["post_id"]) + 1}),
        ]

    @on(CommentDeleted, key=lambda e: e.post_id)
    def deleted(self, e: CommentDeleted, event: Event, view: ReadView) -> list[Write]:
        key = {"post_id": int(e.post_id), "comment_id": int(e.comment_id)}
        if view.get(COMMENTS_BY_POST, key) is None:
            return []
        count = max(comment_count(view, key["post_id"]) - 1, 0)
        return [Delete(COMMENTS_BY_POST, key), Upsert(COMMENT_COUNTS, {"post_id": key["post_id"], "count": count})]
