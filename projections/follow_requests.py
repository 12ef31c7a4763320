"""Read model `follow_requests`: the pending requests to follow each private account,
newest first, with an exact count, and an index to answer "has X asked to follow Y?".

A request leaves the list when it is approved (the Followed that records the approval),
declined or cancelled.
"""
from __future__ import annotations

from domain.events import Event, Followed, FollowRequestCancelled, FollowRequestDeclined, FollowRequested
from projections.edges import EdgeList
from projections.projector import Projector, on
from projections.store import ReadView, Write

FOLLOW_REQUESTS = EdgeList.define("follow_requests", owner="account_id", other="follower_id", sort="request_id")


class FollowRequests(Projector):
    name = "follow_requests"
    tables = FOLLOW_REQUESTS.tables

    @on(FollowRequested, key=lambda e: e.followee_id)
    def requested(self, e: FollowRequested, event: Event, view: ReadView) -> list[Write]:
        return FOLLOW_REQUESTS.add(view, int(e.followee_id), int(e.follower_id), int(e.request_id))

    @on(Followed, key=lambda e: e.followee_id)
    def approved(self, e: Followed, event: Event, view: ReadView) -> list[Write]:
        return FOLLOW_REQUESTS.remove(view, int(e.followee_id), int(e.follower_id))

    @on(FollowRequestDeclined, key=lambda e: e.followee_id)
    def declined(self, e: FollowRequestDeclined, event: Event, view: ReadView) -> list[Write]:
        return FOLLOW_REQUESTS.remove(view, int(e.followee_id), int(e.follower_id))

    @on(FollowRequestCancelled, key=lambda e: e.followee_id)
    def cancelled(self, e: FollowRequestCancelled, event: Event, view: ReadView) -> list[Write]:
        return FOLLOW_REQUESTS.remove(view, int(e.followee_id), int(e.follower_id))
