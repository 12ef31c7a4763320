"""Unit tests of each projector: events in, rows out (on the embedded read store)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from domain.events import (
    AccountRegistered,
    CommentAdded,
    CommentDeleted,
    DomainEvent,
    Followed,
    ImageVariant,
    Liked,
    MediaRef,
    PostCreated,
    PostDeleted,
    PostEdited,
    ProfileUpdated,
    Unfollowed,
    Unliked,
    new_event,
)
from projections.accounts import ACCOUNT_BY_USERNAME, ACCOUNTS, Accounts
from projections.comments import COMMENT_COUNTS, COMMENTS_BY_POST, Comments
from projections.followers import FOLLOWERS, Followers
from projections.following import FOLLOWING, Following
from projections.home_timeline import HOME_TIMELINE, TIMELINE_STATE, HomeTimeline, feed_page
from projections.likes import LIKES, Likes
from projections.posts import POSTS, Posts
from projections.posts_by_author import POST_COUNTS, POSTS_BY_AUTHOR, PostsByAuthor
from projections.projector import Projector
from projections.sqlite_store import SqliteReadStore

VARIANT = ImageVariant("9/thumb-0000000000000000.jpg", "image/jpeg", 1, 1)
PHOTO = MediaRef("9", "image/jpeg", 1, 1, {"thumb": VARIANT, "small": VARIANT, "large": VARIANT, "original": VARIANT})


@pytest.fixture
def store(tmp_path: Path) -> SqliteReadStore:
    return SqliteReadStore(tmp_path / "views.db")


def feed(store: SqliteReadStore, projector: Projector, *payloads: DomainEvent) -> None:
    store.ensure_tables(projector.tables)
    for payload in payloads:
        event = new_event(payload, stream="s", actor=None)
        assert projector.handles(event)
        store.apply(projector.project(event, store))


def rows(store: SqliteReadStore, table: Any) -> list[dict[str, Any]]:
    return store.dump(table)


def post(post_id: int, author: int, caption: str = "hi #sun") -> PostCreated:
    return PostCreated(str(post_id), str(author), caption, (PHOTO,), ("sun",), ())


def test_accounts(store: SqliteReadStore) -> None:
    p = Accounts()
    feed(store, p, AccountRegistered("1", "ana", "Ana", "h"), ProfileUpdated("1", "Ana B", "bio", PHOTO, True))
    (account,) = rows(store, ACCOUNTS)
    assert account["username"] == "ana" and account["display_name"] == "Ana B" and account["private"] is True
    assert account["avatar"]["media_id"] == "9"
    assert rows(store, ACCOUNT_BY_USERNAME) == [{"username": "ana", "account_id": 1}]
    assert p.key(new_event(ProfileUpdated("1", "", "", None, False), stream="s", actor=None)) == "1"


def test_followers_and_following_are_exact_and_newest_first(store: SqliteReadStore) -> None:
    followers, following = Followers(), Following()
    events = [Followed("1", "9", "100"), Followed("2", "9", "101"), Followed("1", "9", "100"), Unfollowed("3", "9")]
    feed(store, followers, *events)
    feed(store, following, *events)
    assert [r["follower_id"] for r in FOLLOWERS.page(store, 9, None, 10)] == [2, 1]
    assert FOLLOWERS.count(store, 9) == 2 and FOLLOWING.count(store, 1) == 1
    feed(store, followers, Unfollowed("1", "9"), Unfollowed("1", "9"))
    assert FOLLOWERS.count(store, 9) == 1 and [r["follower_id"] for r in FOLLOWERS.page(store, 9, None, 10)] == [2]
    assert followers.key(new_event(Followed("1", "9", "5"), stream="s", actor=None)) == "9"
    assert following.key(new_event(Followed("1", "9", "5"), stream="s", actor=None)) == "1"


def test_likes_count_distinct_likers(store: SqliteReadStore) -> None:
    p = Likes()
    feed(store, p, Liked("5", "1", "9", "100"), Liked("5", "1", "9", "100"), Liked("5", "2", "9", "101"), Unliked("5", "3", "9"))
    assert LIKES.count(store, 5) == 2 and LIKES.has(store, 5, 1)
    feed(store, p, Unliked("5", "1", "9"))
    assert LIKES.count(store, 5) == 1 and not LIKES.has(store, 5, 1)


def test_comments_oldest_first_with_exact_count(store: SqliteReadStore) -> None:
    p = Comments()
    feed(
        store,
        p,
        CommentAdded("11", "5", "1", "9", "first"),
        CommentAdded("12", "5", "2", "9", "second"),
        CommentAdded("11", "5", "1", "9", "first"),
        CommentDeleted("13", "5", "1"),
    )
    assert [r["text"] for r in store.scan(COMMENTS_BY_POST, {"post_id": 5})] == ["first", "second"]
    assert rows(store, COMMENT_COUNTS) == [{"post_id": 5, "count": 2}]
    feed(store, p, CommentDeleted("11", "5", "1"), CommentDeleted("11", "5", "1"))
    assert rows(store, COMMENT_COUNTS) == [{"post_id": 5, "count": 1}]


def test_posts_edit_and_delete(store: SqliteReadStore) -> None:
    p = Posts()
    feed(store, p, post(5, 1), PostEdited("5", "1", "new #moon", ("moon",), ()))
    (row,) = rows(store, POSTS)
    assert row["caption"] == "new #moon" and row["tags"] == ["moon"] and row["media"][0]["media_id"] == "9"
    feed(store, p, PostDeleted("5", "1"), PostEdited("5", "1", "ghost", (), ()))
    assert rows(store, POSTS) == []  # an edit after the delete does not resurrect it


def test_posts_by_author_counts(store: SqliteReadStore) -> None:
    p = PostsByAuthor()
    feed(store, p, post(5, 1), post(6, 1), post(5, 1), PostDeleted("7", "1"))
    assert [r["post_id"] for r in store.scan(POSTS_BY_AUTHOR, {"author_id": 1})] == [6, 5]
    assert rows(store, POST_COUNTS) == [{"author_id": 1, "count": 2}]
    feed(store, p, PostDeleted("6", "1"))
    assert rows(store, POST_COUNTS) == [{"author_id": 1, "count": 1}]


def test_home_timeline_fans_out_backfills_and_removes(store: SqliteReadStore) -> None:
    p = HomeTimeline(timeline_max=800, backfill=2)
    store.ensure_tables(PostsByAuthor.tables + Following.tables)
    feed(store, p, post(10, 1), post(11, 1), post(12, 1), Followed("2", "1", "100"))
    # backfill keeps the newest 2; the third is below the author's horizon: the floor rises
    assert [r["post_id"] for r in store.scan(HOME_TIMELINE, {"owner_id": 2})] == [12, 11]
    assert [(r["owner_id"], r["floor"]) for r in rows(store, TIMELINE_STATE) if r["floor"]] == [(2, 10)]
    feed(store, p, post(13, 1))
    assert [r["post_id"] for r in store.scan(HOME_TIMELINE, {"owner_id": 2})] == [13, 12, 11]
    feed(store, p, PostDeleted("12", "1"))
    assert [r["post_id"] for r in store.scan(HOME_TIMELINE, {"owner_id": 2})] == [13, 11]
    feed(store, p, Unfollowed("2", "1"))
    assert store.scan(HOME_TIMELINE, {"owner_id": 2}) == []


def test_home_timeline_trims_to_its_bound_and_the_feed_reads_past_it(store: SqliteReadStore) -> None:
    p = HomeTimeline(timeline_max=3, backfill=50, trim_every=1)
    following, by_author = Following(), PostsByAuthor()
    events: list[DomainEvent] = [Followed("2", "1", "100")] + [post(i, 1) for i in range(10, 16)]
    for projector in (p, following, by_author):
        feed(store, projector, *[e for e in events if projector.handles(new_event(e, stream="s", actor=None))])
    assert [r["post_id"] for r in store.scan(HOME_TIMELINE, {"owner_id": 2})] == [15, 14, 13]
    assert [(r["owner_id"], r["floor"]) for r in rows(store, TIMELINE_STATE) if r["floor"]] == [(2, 12)]
    page = feed_page(store, 2, None, 4)
    assert page.ids == [15, 14, 13, 12] and page.next_cursor == 12
    page = feed_page(store, 2, page.next_cursor, 4)
    assert page.ids == [11, 10] and page.next_cursor is None


def test_a_projector_ignores_events_it_does_not_handle(store: SqliteReadStore) -> None:
    event = new_event(Liked("5", "1", "9", "100"), stream="s", actor=None)
    assert not Accounts().handles(event) and Accounts().project(event, store) == []
