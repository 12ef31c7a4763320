"""Read model `post_changes`: which posts were edited or deleted, by minute (event time).

It exists for the API processes' post caches (projections.post_cache): each process
reads the last few minutes of changes every fraction of a second and drops those posts,
so an edit or a delete reaches every process's cache without any process talking to
another. Partitioned by minute so a poll reads a handful of small partitions.
"""
from __future__ import annotations

from datetime import datetime

from domain.events import Event, PostDeleted, PostEdited
from projections.projector import Projector, on
from projections.store import ReadView, Table, Upsert, Write

POST_CHANGES = Table("post_changes", {"minute": "int", "post_id": "int"}, ("minute",), "post_id")


def minute_of(moment: datetime) -> int:
    return int(moment.timestamp() // 60)


class PostChanges(Projector):
    name = "post_changes"
    tables = (POST_CHANGES,)

    @on(PostEdited, key=lambda e: e.post_id)
    def edited(self, e: PostEdited, event: Event, view: ReadView) -> list[Write]:
        return [Upsert(POST_CHANGES, {"minute": minute_of(event.occurred_at), "post_id": int(e.post_id)})]

    @on(PostDeleted, key=lambda e: e.post_id)
    def deleted(self, e: PostDeleted, event: Event, view: ReadView) -> list[Write]:
        return [Upsert(POST_CHANGES, {"minute": minute_of(event.occurred_at), "post_id": int(e.post_id)})]
