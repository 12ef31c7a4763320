"""Query functions: the answers the API gives, read only from read models."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

from projections.accounts import ACCOUNT_BY_USERNAME, ACCOUNTS
from projections.comments import COMMENT_COUNTS, COMMENTS_BY_POST
from projections.followers import FOLLOWERS
from projections.following import FOLLOWING
from projections.liked_posts import liked_reads
from projections.likes import LIKES
from projections.posts import POSTS
from projections.post_cache import PostCache
from projections.posts_by_author import POST_COUNTS, POSTS_BY_AUTHOR
from projections.follow_requests import FOLLOW_REQUESTS
from projections.home_timeline import feed_page, naive_feed_page
from projections.posts_by_tag import tag_page
from projections.store import Get, Read, ReadView, Row, fetch_named, held
from projections.visibility import ALLOWED, access_from, access_reads, blocked_pairs, is_blocking, is_muting, muted_reads


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
    # How the signed-in reader relates to this account ({"following", "requested",
    # "blocking", "muting"}), where a route asked for it (relationship()).
    relationship: dict[str, bool] | None = None


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
    # The home feed only: the reader's timeline was dormant and this page was merged
    # from the followed authors; the caller should ask for a rebuild.
    rebuild: bool = False


def follower_counts(view: ReadView, ids: list[int]) -> list[int]:
    """The follower counts every profile shows, in the order of ids."""
    return [_count(r) for r in view.get_many(FOLLOWERS.counts, [{"account_id": i} for i in ids])]


def accounts_by_id(view: ReadView, ids: list[int]) -> list[AccountView | None]:
    """The accounts with their counts, in the order of ids: one round trip."""
    return _accounts_from(fetch_named(view, _account_reads(ids)))


def _account_reads(ids: list[int]) -> dict[str, list[Read]]:
    """An account's row and its three counts, for _accounts_from (with other reads)."""
    return {
        "accounts": [Get.of(ACCOUNTS, {"account_id": i}) for i in ids],
        "followers": [Get.of(FOLLOWERS.counts, {"account_id": i}) for i in ids],
        "following": [Get.of(FOLLOWING.counts, {"account_id": i}) for i in ids],
        "posts": [Get.of(POST_COUNTS, {"author_id": i}) for i in ids],
    }


def _accounts_from(answers: dict[str, list[Any]]) -> list[AccountView | None]:
    return [
        _account(row, _count(followers), _count(following), _count(posts)) if row else None
        for row, followers, following, posts in zip(answers["accounts"], answers["followers"], answers["following"], answers["posts"])
    ]


def _count(row: Row | None) -> int:
    return int(row["count"]) if row else 0


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


def posts_by_id(
    view: ReadView, ids: list[int], viewer: int | None, cache: PostCache | None = None, hide_muted: bool = False
) -> list[PostView]:
    """Hydrate post ids into posts, in the given order, skipping posts that are gone and
    posts the viewer may not see (projections.visibility: private authors, blocks).
    Two round trips however long the page: the posts, then everything shown with them
    in one fetch (authors and their counts, like and comment counts, which the viewer
    liked, and what visibility decides by). With a cache (the feed), contents, stats
    and authors come from it where it has them. `hide_muted` (the home feed): without
    the authors the viewer muted."""

    def load_posts(wanted: list[int]) -> list[Row | None]:
        return view.get_many(POSTS, [{"post_id": i} for i in wanted])

    if cache is None:
        found = load_posts(ids)
    else:
        cache.refresh(view)
        found = cache.contents.get_many(ids, load_posts)
    rows = [r for r in found if r is not None]
    if not rows:
        return []
    author_ids = list(dict.fromkeys(r["author_id"] for r in rows))
    post_ids = [r["post_id"] for r in rows]
    authors: dict[int, AccountView | None] = cache.authors.cached(author_ids) if cache else {}
    stats: dict[int, tuple[int, int]] = cache.stats.cached(post_ids) if cache else {}
    new_authors = [a for a in author_ids if a not in authors]
    new_stats = [p for p in post_ids if p not in stats]
    answers = fetch_named(view, {
        **_account_reads(new_authors),
        "likes": [Get.of(LIKES.counts, {"post_id": p}) for p in new_stats],
        "comments": [Get.of(COMMENT_COUNTS, {"post_id": p}) for p in new_stats],
        "liked": liked_reads(viewer, post_ids) if viewer is not None else [],
        "muted": muted_reads(viewer, author_ids) if hide_muted and viewer is not None else [],
        **access_reads(viewer, author_ids, private={a: account.private for a, account in authors.items() if account}),
    })  # fmt: skip
    loaded_authors = dict(zip(new_authors, _accounts_from(answers)))
    loaded_stats = {p: (_count(likes), _count(comments)) for p, likes, comments in zip(new_stats, answers["likes"], answers["comments"])}
    if cache is not None:
        cache.authors.put(loaded_authors)
        cache.stats.put(loaded_stats)
    authors.update(loaded_authors)
    stats.update(loaded_stats)
    private = {a: account.private for a, account in authors.items() if account is not None}
    access = access_from(viewer, author_ids, private, answers)
    mine = held(post_ids, answers["liked"])
    muted = held(author_ids, answers["muted"])
    views = []
    for row in rows:
        author = authors.get(row["author_id"])
        if author is None or access[row["author_id"]] != ALLOWED or row["author_id"] in muted:
            continue  # hidden, muted, or the author's projection has not caught up: shown later
        likes, comments = stats[row["post_id"]]
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
                like_count=likes,
                comment_count=comments,
                liked_by_me=row["post_id"] in mine,
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


def _edge_accounts(view: ReadView, rows: list[Row], other: str, sort: str, limit: int, viewer: int | None) -> Page:
    ids = [r[other] for r in rows]
    blocked = blocked_pairs(view, viewer, ids)  # a blocked pair is hidden from each other's lists
    accounts = accounts_by_id(view, [i for i in ids if i not in blocked])
    return Page([a for a in accounts if a is not None], rows[-1][sort] if len(rows) == limit else None)


def followers_of(view: ReadView, account_id: int, cursor: int | None, limit: int, viewer: int | None = None) -> Page:
    rows = FOLLOWERS.page(view, account_id, cursor, limit)
    return _edge_accounts(view, rows, "follower_id", "follow_id", limit, viewer)


def following_of(view: ReadView, account_id: int, cursor: int | None, limit: int, viewer: int | None = None) -> Page:
    rows = FOLLOWING.page(view, account_id, cursor, limit)
    return _edge_accounts(view, rows, "followee_id", "follow_id", limit, viewer)


def likers_of(view: ReadView, post_id: int, cursor: int | None, limit: int, viewer: int | None = None) -> Page:
    return _edge_accounts(view, LIKES.page(view, post_id, cursor, limit), "account_id", "like_id", limit, viewer)


def follow_requests_of(view: ReadView, account_id: int, cursor: int | None, limit: int) -> Page:
    """The pending requests to follow an account, newest first."""
    rows = FOLLOW_REQUESTS.page(view, account_id, cursor, limit)
    return _edge_accounts(view, rows, "follower_id", "request_id", limit, account_id)


def comments_of(view: ReadView, post_id: int, cursor: int | None, limit: int, viewer: int | None = None) -> Page:
    rows = view.scan(COMMENTS_BY_POST, {"post_id": post_id}, start_after=cursor, limit=limit)
    blocked = blocked_pairs(view, viewer, [r["author_id"] for r in rows])
    shown = [r for r in rows if r["author_id"] not in blocked]
    authors = dict(zip([r["author_id"] for r in shown], accounts_by_id(view, [r["author_id"] for r in shown])))
    items = [
        CommentView(r["comment_id"], post_id, authors[r["author_id"]], r["text"], r["created_at"])
        for r in shown
        if authors.get(r["author_id"]) is not None
    ]
    return Page(items, rows[-1]["comment_id"] if len(rows) == limit else None)


def relationship(view: ReadView, viewer: int, account_id: int) -> dict[str, bool]:
    """How the viewer relates to an account, for the Account's relationship fields."""
    return {
        "following": FOLLOWERS.has(view, account_id, viewer),
        "requested": FOLLOW_REQUESTS.has(view, account_id, viewer),
        "blocking": is_blocking(view, viewer, account_id),
        "muting": is_muting(view, viewer, account_id),
    }


def with_relationship(view: ReadView, viewer: int | None, account: AccountView) -> AccountView:
    if viewer is None or viewer == account.id:
        return account
    return replace(account, relationship=relationship(view, viewer, account.id))


# A page of posts drawn from an id source (a feed, a tag) after filtering may come up
# short; it is topped up from further down the source, at most this many reads.
FILL_ROUNDS = 8
IdSource = Callable[[int | None, int], tuple[list[int], int | None]]


def filled_page(
    view: ReadView,
    source: IdSource,
    cursor: int | None,
    limit: int,
    viewer: int | None,
    cache: PostCache | None = None,
    hide_muted: bool = False,
) -> Page:
    """Up to `limit` visible posts from `source` (ids newest first, cursor = the last id
    read), skipping hidden ones (and muted ones: posts_by_id). The next cursor is the
    id of the last post returned (or read, when the rounds ran out), so walking the
    cursors returns every visible post once."""
    items: list[PostView] = []
    for _ in range(FILL_ROUNDS):
        ids, next_cursor = source(cursor, limit)
        shown = {p.id: p for p in posts_by_id(view, ids, viewer, cache, hide_muted)}
        for post_id in ids:
            if post_id in shown:
                items.append(shown[post_id])
                if len(items) == limit:
                    return Page(items, post_id)
        if next_cursor is None:
            return Page(items, None)
        cursor = next_cursor
    return Page(items, cursor)


def home_feed(
    view: ReadView, reader: int, cursor: int | None, limit: int, cache: PostCache | None = None, naive: bool = False
) -> Page:
    """The reader's home feed: posts of the accounts they follow, newest first, without
    the accounts they muted (and anything visibility hides). `naive`: the benchmark's
    baseline read (fan-out on read). Page.rebuild: the timeline asks for a rebuild."""
    read = naive_feed_page if naive else feed_page
    rebuild = False

    def source(c: int | None, n: int) -> tuple[list[int], int | None]:
        nonlocal rebuild
        found = read(view, reader, c, n)
        rebuild = rebuild or found.rebuild
        return found.ids, found.next_cursor

    page = filled_page(view, source, cursor, limit, reader, cache, hide_muted=True)
    return replace(page, rebuild=rebuild)


def tag_feed(view: ReadView, tag: str, cursor: int | None, limit: int, viewer: int | None) -> Page:
    """Posts with the tag the viewer may see, newest first."""
    return filled_page(view, lambda c, n: tag_page(view, tag, c, n), cursor, limit, viewer)
