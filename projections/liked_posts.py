"""Read model `liked_posts`: which posts each account has liked, one partition per
account, so a page of posts learns "liked by me" in one read (the `likes` read model is
partitioned by post: that would be a read per post)."""
from __future__ import annotations

from typing import Sequence

from domain.events import Event, Liked, Unliked
from projections.projector import Projector, on
from projections.store import Delete, Get, ReadView, Table, Upsert, Write

LIKED_POSTS = Table("liked_posts", {"account_id": "int", "post_id": "int"}, ("account_id",), "post_id", descending=True)


class LikedPosts(Projector):
    name = "liked_posts"
    tables = (LIKED_POSTS,)

    @on(Liked, key=lambda e: e.account_id)
    def liked(self, e: Liked, event: Event, view: ReadView) -> list[Write]:
        return [Upsert(LIKED_POSTS, {"account_id": int(e.account_id), "post_id": int(e.post_id)})]

    @on(Unliked, key=lambda e: e.account_id)
    def unliked(self, e: Unliked, event: Event, view: ReadView) -> list[Write]:
        return [Delete(LIKED_POSTS, {"account_id": int(e.account_id), "post_id": int(e.post_id)})]


def liked_reads(account_id: int, post_ids: Sequence[int]) -> list[Get]:
    """The reads telling which of `post_ids` the account has liked (in held(), with the
    post ids): one partition, one query."""
    return [Get.of(LIKED_POSTS, {"account_id": account_id, "post_id": p}) for p in post_ids]
