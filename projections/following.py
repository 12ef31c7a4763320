"""Read model `following`: whom an account follows, newest first, with an exact count."""
from __future__ import annotations

from domain.events import Event, Followed, Unfollowed
from projections.edges import EdgeList
from projections.projector import Projector, on
from projections.store import ReadView, Write

FOLLOWING = EdgeList.define("following", owner="account_id", other="followee_id", sort="follow_id")


class Following(Projector):
    name = "following"
    tables = FOLLOWING.tables

    @on(Followed, key=lambda e: e.follower_id)
    def followed(self, e: Followed, event: Event, view: ReadView) -> list[Write]:
        return FOLLOWING.add(view, int(e.follower_id), int(e.followee_id), int(e.follow_id))

    @on(Unfollowed, key=lambda e: e.follower_id)
    def unfollowed(self, e: Unfollowed, event: Event, view: ReadView) -> list[Write]:
        return FOLLOWING.remove(view, int(e.follower_id), int(e.followee_id))
