"""Read model `followers`: who follows an account, newest first, with an exact count."""
from __future__ import annotations

from domain.events import Event, Followed, Unfollowed
from projections.edges import EdgeList
from projections.projector import Projector, on
from projections.store import ReadView, Write

FOLLOWERS = EdgeList.define("followers", owner="account_id", other="follower_id", sort="follow_id")


class Followers(Projector):
    name = "followers"
    tables = FOLLOWERS.tables

    @on(Followed, key=lambda e: e.followee_id)
    def followed(self, e: Followed, event: Event, view: ReadView) -> list[Write]:
        return FOLLOWERS.add(view, int(e.followee_id), int(e.follower_id), int(e.follow_id))

    @on(Unfollowed, key=lambda e: e.followee_id)
    def unfollowed(self, e: Unfollowed, event: Event, view: ReadView) -> list[Write]:
        return FOLLOWERS.remove(view, int(e.followee_id), int(e.follower_id))
