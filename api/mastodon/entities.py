"""Photostream's read models presented as Mastodon entities (Account, Status,
MediaAttachment, Notification, Relationship, Conversation, Tag).

Functions of a ReadView, run through Backend.query like api.live_views, so a route and
the streaming API present an entity alike. `base` is the server's URL (entities carry
absolute URLs).

How photostream maps to Mastodon:
* a post is a status; its caption is the content (HTML, #tags and @mentions linked);
* a comment is a status replying to its post (in_reply_to_id = the post); comments are
  flat, so a reply to a comment is another comment on the same post;
* visibility is the author's: "private" for a private account, else "public";
* a direct message is a "direct" status (shown in conversations only).
"""
from __future__ import annotations

import html
import re
from typing import Any

from domain.rules import parse_mentions, parse_tags
from projections import queries
from projections.comment_index import post_of_comment
from projections.comments import COMMENTS_BY_POST
from projections.conversations import inbox_page
from projections import notifications as notif
from projections.store import ReadView, Row
from projections.visibility import blocked_pairs, is_blocking, is_muting
from projections.followers import FOLLOWERS
from projections.follow_requests import FOLLOW_REQUESTS

from api.presenters import MEDIA_PREFIX

_TOKEN_RE = re.compile(r"(?<![\w/])([#@])(\w+)", re.UNICODE)
NOTIFICATION_TYPES = {"like": "favourite", "comment": "mention", "mention": "mention", "follow": "follow", "follow_request": "follow_request"}


def html_content(text: str, base: str) -> str:
    """Plain text as Mastodon's HTML: escaped, paragraphs and line breaks, hashtags and
    mentions as links (Mastodon's classes, so clients style them)."""

    def link(match: re.Match[str]) -> str:
        sign, word = match.group(1), match.group(2)
        if sign == "#":
            return f'<a href="{base}/tags/{word.lower()}" class="mention hashtag" rel="tag">#<span>{word}</span></a>'
        return f'<span class="h-card"><a href="{base}/@{word.lower()}" class="u-url mention">@<span>{word}</span></a></span>'

    paragraphs = [p for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    out = []
    for paragraph in paragraphs:
        escaped = html.escape(paragraph, quote=False)
        out.append("<p>" + _TOKEN_RE.sub(link, escaped).replace("\n", "<br />") + "</p>")
    return "".join(out)


def _url(base: str, key_or_path: str) -> str:
    return f"{base}{key_or_path}"


def account(a: queries.AccountView, base: str) -> dict[str, Any]:
    avatar = _url(base, MEDIA_PREFIX + a.avatar["variants"]["small"]["key"]) if a.avatar else _url(base, "/web/icon.svg")
    return {
        "id": str(a.id),
        "username": a.username,
        "acct": a.username,
        "display_name": a.display_name,
        "locked": a.private,
        "bot": False,
        "discoverable": True,
        "group": False,
        "created_at": a.created_at,
        "note": html_content(a.bio, base) if a.bio else "",
        "url": f"{base}/@{a.username}",
        "uri": f"{base}/users/{a.username}",
        "avatar": avatar,
        "avatar_static": avatar,
        "header": "",
        "header_static": "",
        "followers_count": a.followers_count,
        "following_count": a.following_count,
        "statuses_count": a.posts_count,
        "last_status_at": None,
        "emojis": [],
        "fields": [],
    }


def credential_account(a: queries.AccountView, base: str) -> dict[str, Any]:
    """verify_credentials: the Account with its `source` (what the owner edits)."""
    return {
        **account(a, base),
        "source": {
            "privacy": "private" if a.private else "public",
            "sensitive": False,
            "language": None,
            "note": a.bio,
            "fields": [],
            "follow_requests_count": 0,
        },
    }


def media_attachment(m: dict[str, Any], base: str) -> dict[str, Any]:
    variants = m["variants"]
    large, small = variants["large"], variants["small"]

    def meta(v: dict[str, Any]) -> dict[str, Any]:
        w, h = int(v.get("width") or m["width"]), int(v.get("height") or m["height"])
        return {"width": w, "height": h, "size": f"{w}x{h}", "aspect": round(w / h, 4) if h else 1}

    return {
        "id": str(m["media_id"]),
        "type": "image",
        "url": _url(base, MEDIA_PREFIX + large["key"]),
        "preview_url": _url(base, MEDIA_PREFIX + small["key"]),
        "remote_url": None,
        "text_url": None,
        "meta": {"original": meta(variants["original"]), "small": meta(small)},
        "description": None,
        "blurhash": None,
    }


def _mentions(view: ReadView, names: list[str], base: str) -> list[dict[str, Any]]:
    out = []
    for name in dict.fromkeys(n.lower() for n in names):
        found = queries.account_id_by_username(view, name)
        if found is not None:
            out.append({"id": str(found), "username": name, "acct": name, "url": f"{base}/@{name}"})
    return out


def _tags(names: list[str], base: str) -> list[dict[str, Any]]:
    return [{"name": t, "url": f"{base}/tags/{t}"} for t in names]


def _status(
    *,
    id: int | str,
    author: queries.AccountView,
    text: str,
    created_at: str,
    base: str,
    view: ReadView,
    visibility: str,
    media: list[dict[str, Any]],
    tags: list[str],
    mentions: list[str],
    in_reply_to: tuple[int, int] | None = None,
    favourites: int = 0,
    replies: int = 0,
    favourited: bool = False,
    edited_at: str | None = None,
) -> dict[str, Any]:
    return {
        "id": str(id),
        "uri": f"{base}/users/{author.username}/statuses/{id}",
        "url": f"{base}/@{author.username}/{id}",
        "created_at": created_at,
        "edited_at": edited_at,
        "account": account(author, base),
        "content": html_content(text, base),
        "visibility": visibility,
        "sensitive": False,
        "spoiler_text": "",
        "media_attachments": [media_attachment(m, base) for m in media],
        "application": None,
        "mentions": _mentions(view, mentions, base),
        "tags": _tags(tags, base),
        "emojis": [],
        "reblogs_count": 0,
        "favourites_count": favourites,
        "replies_count": replies,
        "in_reply_to_id": str(in_reply_to[0]) if in_reply_to else None,
        "in_reply_to_account_id": str(in_reply_to[1]) if in_reply_to else None,
        "reblog": None,
        "poll": None,
        "card": None,
        "language": None,
        "text": None,
        "favourited": favourited,
        "reblogged": False,
        "muted": False,
        "bookmarked": False,
        "pinned": False,
        "filtered": [],
    }


def post_status(view: ReadView, p: queries.PostView, base: str) -> dict[str, Any]:
    return _status(
        id=p.id,
        author=p.author,
        text=p.caption,
        created_at=p.created_at,
        base=base,
        view=view,
        visibility="private" if p.author.private else "public",
        media=p.media,
        tags=p.tags,
        mentions=p.mentions,
        favourites=p.like_count,
        replies=p.comment_count,
        favourited=p.liked_by_me,
        edited_at=p.edited_at,
    )


def comment_status(view: ReadView, c: queries.CommentView, post_author: queries.AccountView, base: str) -> dict[str, Any]:
    return _status(
        id=c.id,
        author=c.author,
        text=c.text,
        created_at=c.created_at,
        base=base,
        view=view,
        visibility="private" if post_author.private else "public",
        media=[],
        tags=list(parse_tags(c.text)),
        mentions=list(parse_mentions(c.text)),
        in_reply_to=(c.post_id, post_author.id),
    )


def message_status(view: ReadView, row: Row, base: str) -> dict[str, Any] | None:
    """A direct message as a "direct" status (in conversations)."""
    sender = queries.account_by_id(view, int(row["sender_id"]))
    if sender is None:
        return None
    return _status(
        id=row["message_id"],
        author=sender,
        text=row["text"] or "",
        created_at=row["created_at"],
        base=base,
        view=view,
        visibility="direct",
        media=row["media"] or [],
        tags=[],
        mentions=list(parse_mentions(row["text"] or "")),
    )


def statuses(view: ReadView, posts: list[queries.PostView], base: str) -> list[dict[str, Any]]:
    return [post_status(view, p, base) for p in posts]


# ----- reads by status id -------------------------------------------------------------------


def _comment(view: ReadView, post_id: int, comment_id: int, viewer: int | None) -> queries.CommentView | None:
    row = view.get(COMMENTS_BY_POST, {"post_id": post_id, "comment_id": comment_id})
    if row is None or row["author_id"] in blocked_pairs(view, viewer, [row["author_id"]]):
        return None
    author = queries.account_by_id(view, row["author_id"])
    if author is None:
        return None
    return queries.CommentView(comment_id, post_id, author, row["text"], row["created_at"])


def status_by_id(view: ReadView, status_id: int, viewer: int | None, base: str) -> dict[str, Any] | None:
    """A post, or a comment (as a reply to its post), as the viewer may see it."""
    post = queries.post_by_id(view, status_id, viewer)
    if post is not None:
        return post_status(view, post, base)
    post_id = post_of_comment(view, status_id)
    if post_id is None:
        return None
    parent = queries.post_by_id(view, post_id, viewer)  # hidden post: hidden comments
    if parent is None:
        return None
    found = _comment(view, post_id, status_id, viewer)
    return comment_status(view, found, parent.author, base) if found else None


CONTEXT_MAX = 200  # comments shown under a post in its context (oldest first)


def context(view: ReadView, status_id: int, viewer: int | None, base: str) -> dict[str, Any] | None:
    """Ancestors and descendants: a post's comments are its descendants; a comment's
    post is its ancestor (comments are flat, so a comment has no descendants)."""
    post = queries.post_by_id(view, status_id, viewer)
    if post is not None:
        comments = queries.comments_of(view, status_id, None, CONTEXT_MAX, viewer).items
        return {"ancestors": [], "descendants": [comment_status(view, c, post.author, base) for c in comments]}
    post_id = post_of_comment(view, status_id)
    parent = queries.post_by_id(view, post_id, viewer) if post_id is not None else None
    if parent is None or post_id is None or _comment(view, post_id, status_id, viewer) is None:
        return None
    return {"ancestors": [post_status(view, parent, base)], "descendants": []}


# ----- relationships -------------------------------------------------------------------------


def relationship(view: ReadView, viewer: int, other: int) -> dict[str, Any]:
    return {
        "id": str(other),
        "following": FOLLOWERS.has(view, other, viewer),
        "showing_reblogs": True,
        "notifying": False,
        "languages": None,
        "followed_by": FOLLOWERS.has(view, viewer, other),
        "blocking": is_blocking(view, viewer, other),
        "blocked_by": is_blocking(view, other, viewer),
        "muting": is_muting(view, viewer, other),
        "muting_notifications": is_muting(view, viewer, other),
        "requested": FOLLOW_REQUESTS.has(view, other, viewer),
        "requested_by": FOLLOW_REQUESTS.has(view, viewer, other),
        "domain_blocking": False,
        "endorsed": False,
        "note": "",
    }


# ----- notifications -------------------------------------------------------------------------


def present_notifications(view: ReadView, found: list[notif.NotificationRow], viewer: int, base: str) -> list[dict[str, Any]]:
    out = []
    for n in found:
        r = n.row
        kind = NOTIFICATION_TYPES.get(r["kind"])
        actor = queries.account_by_id(view, n.actor_ids[0]) if n.actor_ids else None
        if kind is None or actor is None:
            continue
        status = None
        if r["comment_id"] is not None:
            status = status_by_id(view, int(r["comment_id"]), viewer, base)
        elif r["post_id"] is not None:
            status = status_by_id(view, int(r["post_id"]), viewer, base)
        if kind in ("favourite", "mention") and status is None:
            continue  # the post or comment is gone: nothing to show
        out.append(
            {
                "id": str(r["notification_id"]),
                "type": kind,
                "created_at": r["created_at"],
                "account": account(actor, base),
                "status": status,
            }
        )
    return out


def notifications_page(view: ReadView, recipient: int, cursor: int | None, limit: int, base: str, types: frozenset[str]) -> tuple[list[dict[str, Any]], int | None]:
    found, next_cursor = notif.notifications_page(view, recipient, cursor, limit)
    items = present_notifications(view, found, recipient, base)
    return [i for i in items if i["type"] in types], next_cursor


def notification(view: ReadView, recipient: int, notification_id: int, base: str) -> dict[str, Any] | None:
    found = notif.notification_by_id(view, recipient, notification_id)
    items = present_notifications(view, [found], recipient, base) if found else []
    return items[0] if items else None


# ----- conversations -------------------------------------------------------------------------


def conversations_page(view: ReadView, account_id: int, cursor: int | None, limit: int, base: str) -> tuple[list[dict[str, Any]], int | None]:
    rows, next_cursor = inbox_page(view, account_id, cursor, limit)
    rows = [r for r in rows if not notif.silenced(view, account_id, r["other_id"], mutes=False)]
    out = []
    for r in rows:
        other = queries.account_by_id(view, r["other_id"])
        if other is None:
            continue
        last = r["last_message"]
        out.append(
            {
                "id": r["conversation_id"],
                "unread": int(r["unread"] or 0) > 0,
                "accounts": [account(other, base)],
                "last_status": message_status(view, last, base) if last else None,
            }
        )
    return out, next_cursor
