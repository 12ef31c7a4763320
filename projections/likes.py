"""Read model `likes`: who liked a post, newest first, with an exact like count."""
from __future__ import annotations

from domain.events import Event, Liked, Unliked
from projections.edges import EdgeList
from projections.projector import Projector, on
from projections.store import ReadView, Write

LIKES = EdgeList.define("likes_by_post", owner="post_id", other="account_id", sort="like_id")


class Likes(Projector):
    name = "likes"
    tables = LIKES.tables

    @on(Liked, key=lambda e: e.post_id)
    def liked(self, e: Liked, event: Event, view: ReadView) -> list[Write]:
        return LIKES.add(view, int(e.post_id), int(e.account_id), int(e.like_id))

    @on(Unliked, key=lambda e: e.post_id)
    def unliked(self, e: Unliked, event: Event, view: ReadView) -> list[Write]:
        return LIKES.remove(view, int(e.post_id), int(e.account_id))
