"""Read model `comment_index`: which post a comment belongs to, by comment id.

The Mastodon adapter (api/mastodon) presents comments as statuses replying to their
post, and a client asks for a status by its id alone; `comments_by_post` is keyed by
post, so this index answers "comment id -> post id"."""
from __future__ import annotations

from domain.events import CommentAdded, CommentDeleted, Event
from projections.projector import Projector, on
from projections.store import Delete, ReadView, Table, Upsert, Write

COMMENT_INDEX = Table("comment_index", {"comment_id": "int", "post_id": "int", "author_id": "int"}, ("comment_id",))


def post_of_comment(view: ReadView, comment_id: int) -> int | None:
    row = view.get(COMMENT_INDEX, {"comment_id": comment_id})
    return int(row["post_id"]) if row else None


class CommentIndex(Projector):
    name = "comment_index"
    tables = (COMMENT_INDEX,)

    @on(CommentAdded, key=lambda e: e.comment_id)
    def added(self, e: CommentAdded, event: Event, view: ReadView) -> list[Write]:
        # An upsert of the same row: replaying or duplicating the event changes nothing.
        return [Upsert(COMMENT_INDEX, {"comment_id": int(e.comment_id), "post_id": int(e.post_id), "author_id": int(e.author_id)})]

    @on(CommentDeleted, key=lambda e: e.comment_id)
    def deleted(self, e: CommentDeleted, event: Event, view: ReadView) -> list[Write]:
        return [Delete(COMMENT_INDEX, {"comment_id": int(e.comment_id)})]
