"""Read model `posts`: one row per live post (deleted posts are gone)."""
from __future__ import annotations

import dataclasses

from domain.rules import parse_mentions
from domain.events import Event, PostCreated, PostDeleted, PostEdited, format_time
from projections.projector import Projector, on
from projections.store import Delete, ReadView, Table, Upsert, Write

POSTS = Table(
    "posts",
    {
        "post_id": "int",
        "author_id": "int",
        "caption": "text",
        "media": "json",
        "tags": "json",
        "mentions": "json",
        "created_at": "text",
        "edited_at": "text",
    },
    ("post_id",),
)


class Posts(Projector):
    name = "posts"
    tables = (POSTS,)

    @on(PostCreated, key=lambda e: e.post_id)
    def created(self, e: PostCreated, event: Event, view: ReadView) -> list[Write]:
        return [
            Upsert(
                POSTS,
                {
                    "post_id": int(e.post_id),
                    "author_id": int(e.author_id),
                    "caption": e.caption,
                    "media": [dataclasses.asdict(m) for m in e.media],
                    "tags": list(e.tags),
                    "mentions": list(parse_mentions(e.caption)),  # as written; the event has account ids
                    "created_at": format_time(event.occurred_at),
                },
            )
        ]

    @on(PostEdited, key=lambda e: e.post_id)
    def edited(self, e: PostEdited, event: Event, view: ReadView) -> list[Write]:
        if view.get(POSTS, {"post_id": int(e.post_id)}) is None:
            return []  # deleted (or never seen): an edit must not resurrect a partial row
        return [
            Upsert(
                POSTS,
                {
                    "post_id": int(e.post_id),
                    "caption": e.caption,
                    "tags": list(e.tags),
                    "mentions": list(parse_mentions(e.caption)),  # as written; the event has account ids
                    "edited_at": format_time(event.occurred_at),
                },
            )
        ]

    @on(PostDeleted, key=lambda e: e.post_id)
    def deleted(self, e: PostDeleted, event: Event, view: ReadView) -> list[Write]:
        return [Delete(POSTS, {"post_id": int(e.post_id)})]
