"""Query functions: the answers the API gives, read only from read models."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from projections.accounts import ACCOUNT_BY_USERNAME, ACCOUNTS
from projections.comments import COMMENT_COUNTS, COMMENTS_BY_POST
from projections.followers import FOLLOWERS
from projections.following import FOLLOWING
from projections.likes import LIKES
from projections.posts import POSTS
from projections.post_cache import PostCache
from projections.posts_by_author import POST_COUNTS, POSTS_BY_AUTHOR
from projections.store import ReadView, Row


@dataclass(frozen=True)
class AccountView:
    id: int
    username: str
    display_name: str
    bio: str
    avatar: dict[str, Any] | None
    private: bool
    followers_count: int
    following_count: int
    posts_count: int
    created_at: str


@dataclass(frozen=True)
class PostView:
    id: int
    author: AccountView
    caption: str
    media: list[dict[str, Any]]
    tags: list[str]
    mentions: list[str]
    created_at: str
    edited_at: str | None
    like_count: int
    comment_count: int
    liked_by_me: bool


@dataclass(frozen=True)
class CommentView:
    id: int
    post_id: int
    author: AccountView
    text: str
    created_at: str


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_cursor: int | None


def _counts(view: ReadView, table: Any, column: str, ids: list[int]) -> list[int]:
    return [int(r["count"]) if r else 0 for r in view.get_many(table, [{column: i} for i in ids])]


def accounts_by_id(view: ReadView, ids: list[int]) -> list[AccountView | None]:
    rows = view.get_many(ACCOUNTS, [{"account_id": i} for i in ids])
    followers = _counts(view, FOLLOWERS.counts, "account_id", ids)
    following = _counts(view, FOLLOWING.counts, "account_id", ids)
    posts = _counts(view, POST_COUNTS, "author_id", ids)
    return [
        _account(row, followers[n], following[n], posts[n]) if row else None
        for n, row in enumerate(rows)
    ]


def _account(row: Row, followers: int, following: int, posts: int) -> AccountView:
    return AccountView(
        id=row["account_id"],
        username=row["username"],
        display_name=row["display_name"] or "",
        bio=row["bio"] or "",
        avatar=row["avatar"],
        private=bool(row["private"]),
        followers_count=followers,
        following_count=following,
        posts_count=posts,
        created_at=row["created_at"],
    )


def account_by_id(view: ReadView, account_id: int) -> AccountView | None:
    return accounts_by_id(view, [account_id])[0]


def account_id_by_username(view: ReadView, username: str) -> int | None:
    row = view.get(ACCOUNT_BY_USERNAME, {"username": username.lower()})
    return row["account_id"] if row else None


def account_by_username(view: ReadView, username: str) -> AccountView | None:
    account_id = account_id_by_username(view, username)
    return account_by_id(view, account_id) if account_id is not None else None


def posts_by_id(view: ReadView, ids: list[int], viewer: int | None, cache: PostCache | None = None) -> list[PostView]:
    """Hydrate post ids into posts, in the given order, skipping posts that are gone.
    With a cache (the feed), contents, stats and authors come from it where it has them."""
    keys = [{"post_id": i} for i in ids]
    if cache is None:
        found = view.get_many(POSTS, keys)
    else:
        cache.refresh(view)
        found = cache.contents.get_many(ids, lambda missing: view.get_many(POSTS, [{"post_id": i} for i in missing]))
    rows = [r for r in found if r is not None]
    if not rows:
        return []
    post_ids = [r["post_id"] for r in rows]
    author_ids = list({r["author_id"] for r in rows})

    def load_stats(wanted: list[int]) -> list[tuple[int, int]]:
        return list(zip(_counts(view, LIKES.counts, "post_id", wanted), _counts(view, COMMENT_COUNTS, "post_id", wanted)))

    if cache is None:
        authors = dict(zip(author_ids, accounts_by_id(view, author_ids)))
        stats = load_stats(post_ids)
    else:
        authors = dict(zip(author_ids, cache.authors.get_many(author_ids, lambda missing: accounts_by_id(view, missing))))
        stats = cache.stats.get_many(post_ids, load_stats)
    likes = [s[0] for s in stats]
    comments = [s[1] for s in stats]
    mine = (
        view.get_many(LIKES.index, [{"post_id": i, "account_id": viewer} for i in post_ids])
        if viewer is not None
        else [None] * len(post_ids)
    )
    views = []
    for n, row in enumerate(rows):
        author = authors.get(row["author_id"])
        if author is None:
            continue  # the author's projection has not caught up; show the post later
        views.append(
            PostView(
                id=row["post_id"],
                author=author,
                caption=row["caption"],
                media=row["media"],
                tags=row["tags"],
                mentions=row["mentions"],
                created_at=row["created_at"],
                edited_at=row["edited_at"],
                like_count=likes[n],
                comment_count=comments[n],
                liked_by_me=mine[n] is not None,
            )
        )
    return views


def post_by_id(view: ReadView, post_id: int, viewer: int | None) -> PostView | None:
    found = posts_by_id(view, [post_id], viewer)
    return found[0] if found else None


def posts_of_author(view: ReadView, author_id: int, cursor: int | None, limit: int, viewer: int | None) -> Page:
    rows = view.scan(POSTS_BY_AUTHOR, {"author_id": author_id}, start_after=cursor, limit=limit)
    ids = [r["post_id"] for r in rows]
    return Page(posts_by_id(view, ids, viewer), ids[-1] if len(ids) == limit else None)


def _edge_accounts(view: ReadView, rows: list[Row], other: str, sort: str, limit: int) -> Page:
    accounts = accounts_by_id(view, [r[other] for r in rows])
    return Page([a for a in accounts if a is not None], rows[-1][sort] if len(rows) == limit else None)


def followers_of(view: ReadView, account_id: int, cursor: int | None, limit: int) -> Page:
    return _edge_accounts(view, FOLLOWERS.page(view, account_id, cursor, limit), "follower_id", "follow_id", limit)


def following_of(view: ReadView, account_id: int, cursor: int | None, limit: int) -> Page:
    return _edge_accounts(view, FOLLOWING.page(view, account_id, cursor, limit), "followee_id", "follow_id", limit)


def likers_of(view: ReadView, post_id: int, cursor: int | None, limit: int) -> Page:
    return _edge_accounts(view, LIKES.page(view, post_id, cursor, limit), "account_id", "like_id", limit)


def comments_of(view: ReadView, post_id: int, cursor: int | None, limit: int) -> Page:
    rows = view.scan(COMMENTS_BY_POST, {"post_id": post_id}, start_after=cursor, limit=limit)
    authors = dict(zip([r["author_id"] for r in rows], accounts_by_id(view, [r["author_id"] for r in rows])))
    items = [
        CommentView(r["comment_id"], post_id, authors[r["author_id"]], r["text"], r["created_at"])
        for r in rows
        if authors.get(r["author_id"]) is not None
    ]
    return Page(items, rows[-1]["comment_id"] if len(rows) == limit else None)
