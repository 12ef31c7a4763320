"""Read-model views and events turned into the JSON shapes of the contract."""
from __future__ import annotations

import dataclasses
from typing import Any

from domain.events import CommentAdded, MediaRef, PostCreated, format_time
from domain.rules import parse_mentions, parse_tags
from projections.queries import AccountView, CommentView, PostView

MEDIA_PREFIX = "/media/"


def media_json(media: dict[str, Any]) -> dict[str, Any]:
    variants = media["variants"]
    return {
        "id": media["media_id"],
        "content_type": media["content_type"],
        "width": media["width"],
        "height": media["height"],
        "urls": {name: MEDIA_PREFIX + variants[name]["key"] for name in ("thumb", "small", "large", "original")},
    }


def media_ref_json(ref: MediaRef) -> dict[str, Any]:
    return media_json(dataclasses.asdict(ref))


def account_json(a: AccountView) -> dict[str, Any]:
    body = {
        "id": str(a.id),
        "username": a.username,
        "display_name": a.display_name,
        "bio": a.bio,
        "avatar_url": MEDIA_PREFIX + a.avatar["variants"]["thumb"]["key"] if a.avatar else None,
        "private": a.private,
        "followers_count": a.followers_count,
        "following_count": a.following_count,
        "posts_count": a.posts_count,
        "created_at": a.created_at,
    }
    if a.relationship is not None:  # only for a signed-in reader looking at someone else
        body.update(a.relationship)
    return body


def post_json(p: PostView) -> dict[str, Any]:
    return {
        "id": str(p.id),
        "author": account_json(p.author),
        "caption": p.caption,
        "media": [media_json(m) for m in p.media],
        "tags": p.tags,
        "mentions": p.mentions,
        "created_at": p.created_at,
        "edited_at": p.edited_at,
        "like_count": p.like_count,
        "comment_count": p.comment_count,
        "liked_by_me": p.liked_by_me,
    }


def new_post_json(e: PostCreated, author: AccountView, created_at: str) -> dict[str, Any]:
    """A post as it is the moment it is created, straight from its event."""
    return {
        "id": e.post_id,
        "author": account_json(author),
        "caption": e.caption,
        "media": [media_ref_json(m) for m in e.media],
        "tags": list(e.tags),
        "mentions": list(parse_mentions(e.caption)),
        "created_at": created_at,
        "edited_at": None,
        "like_count": 0,
        "comment_count": 0,
        "liked_by_me": False,
    }


def comment_json(c: CommentView) -> dict[str, Any]:
    return {
        "id": str(c.id),
        "post_id": str(c.post_id),
        "author": account_json(c.author),
        "text": c.text,
        **comment_links(c.text),
        "created_at": c.created_at,
    }


def new_comment_json(e: CommentAdded, author: AccountView, created_at: str) -> dict[str, Any]:
    return {"id": e.comment_id, "post_id": e.post_id, "author": account_json(author), "text": e.text, **comment_links(e.text), "created_at": created_at}


def comment_links(text: str) -> dict[str, list[str]]:
    """A comment's hashtags and @usernames, parsed by the caption's rules, so clients link
    them as a caption's. (They link to tag pages; they do not list the post there: only
    its caption's tags do, as on Instagram.)"""
    return {"tags": list(parse_tags(text)), "mentions": list(parse_mentions(text))}


def page_json(items: list[dict[str, Any]], next_cursor: str | None) -> dict[str, Any]:
    return {"items": items, "next_cursor": next_cursor}


__all__ = ["format_time"]
