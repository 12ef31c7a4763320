"""Notifications and direct messages as the JSON the API and the live stream send.

Functions of a ReadView (run through Backend.query), so the HTTP routes and the stream
present a notification or a message exactly alike.
"""
from __future__ import annotations

from typing import Any

from projections import conversations as conv
from projections import notifications as notif
from projections.comments import COMMENTS_BY_POST
from projections.posts import POSTS
from projections.queries import accounts_by_id
from projections.store import ReadView, Row

from api.presenters import MEDIA_PREFIX, account_json, media_json


def _post_summaries(view: ReadView, post_ids: list[int]) -> dict[int, dict[str, Any]]:
    ids = list(dict.fromkeys(post_ids))
    rows = view.get_many(POSTS, [{"post_id": i} for i in ids])
    out = {}
    for row in rows:
        if row is None:
            continue
        media = row["media"] or []
        thumb = MEDIA_PREFIX + media[0]["variants"]["thumb"]["key"] if media else None
        out[row["post_id"]] = {"id": str(row["post_id"]), "caption": row["caption"], "thumb_url": thumb}
    return out


def present_notifications(view: ReadView, found: list[notif.NotificationRow]) -> list[dict[str, Any]]:
    account_ids = list({a for n in found for a in n.actor_ids})
    accounts = {a.id: a for a in accounts_by_id(view, account_ids) if a is not None}
    posts = _post_summaries(view, [n.row["post_id"] for n in found if n.row["post_id"] is not None])
    comment_keys = [{"post_id": n.row["post_id"], "comment_id": n.row["comment_id"]} for n in found if n.row["comment_id"] is not None]
    comments = {
        (c["post_id"], c["comment_id"]): c for c in view.get_many(COMMENTS_BY_POST, comment_keys) if c is not None
    }
    out = []
    for n in found:
        r = n.row
        actors = [account_json(accounts[a]) for a in n.actor_ids if a in accounts]
        if not actors:
            continue  # the actor's account is not projected yet
        comment = comments.get((r["post_id"], r["comment_id"])) if r["comment_id"] is not None else None
        out.append(
            {
                "id": str(r["notification_id"]),
                "kind": r["kind"],
                "actors": actors,
                "actors_count": n.actors_count,
                "post": posts.get(r["post_id"]) if r["post_id"] is not None else None,
                "comment": {"id": str(comment["comment_id"]), "text": comment["text"]} if comment else None,
                "activity_id": str(r["activity_id"]),
                "created_at": r["created_at"],
                "read": n.read,
            }
        )
    return out


def notifications_page(view: ReadView, recipient: int, cursor: int | None, limit: int) -> tuple[list[dict[str, Any]], int | None]:
    found, next_cursor = notif.notifications_page(view, recipient, cursor, limit)
    return present_notifications(view, found), next_cursor


def notification(view: ReadView, recipient: int, notification_id: int) -> dict[str, Any] | None:
    found = notif.notification_by_id(view, recipient, notification_id)
    presented = present_notifications(view, [found]) if found else []
    return presented[0] if presented else None


def notifications_since(view: ReadView, recipient: int, since: int, window_ms: int) -> list[dict[str, Any]]:
    return present_notifications(view, notif.notifications_since(view, recipient, since, window_ms))


def unread_counts(view: ReadView, account: int, window_ms: int) -> dict[str, int]:
    return {
        "notifications": notif.unread_count(view, account, window_ms),
        "messages": conv.unread_total(view, account),
    }


# ----- messages --------------------------------------------------------------------------


def message_json(row: Row, conversation: str) -> dict[str, Any]:
    return {
        "id": str(row["message_id"]),
        "conversation_id": conversation,
        "sender_id": str(row["sender_id"]),
        "text": row["text"],
        "media": [media_json(m) for m in row["media"] or []],
        "created_at": row["created_at"],
    }


def conversations_page(view: ReadView, account: int, cursor: int | None, limit: int) -> tuple[list[dict[str, Any]], int | None]:
    rows, next_cursor = conv.inbox_page(view, account, cursor, limit)
    rows = [r for r in rows if not notif.silenced(view, account, r["other_id"], mutes=False)]
    others = {a.id: a for a in accounts_by_id(view, [r["other_id"] for r in rows]) if a is not None}
    items = []
    for r in rows:
        other = others.get(r["other_id"])
        if other is None:
            continue
        items.append(
            {
                "id": r["conversation_id"],
                "with": account_json(other),
                "last_message": message_json(r["last_message"], r["conversation_id"]) if r["last_message"] else None,
                "unread_count": int(r["unread"] or 0),
                "read_up_to": str(r["read_up_to"]) if r["read_up_to"] else None,
            }
        )
    return items, next_cursor


def conversation(view: ReadView, account: int, conversation_id: str) -> dict[str, Any] | None:
    member = conv.membership(view, account, conversation_id)
    if member is None:
        return None
    other = accounts_by_id(view, [member["other_id"]])[0]
    return {
        "id": conversation_id,
        "with": account_json(other) if other else None,
        "unread_count": int(member["unread"] or 0),
        "read_up_to": str(member["read_up_to"]) if member["read_up_to"] else None,
    }


def messages_page(view: ReadView, conversation_id: str, cursor: int | None, limit: int) -> tuple[list[dict[str, Any]], int | None]:
    rows, next_cursor = conv.messages_page(view, conversation_id, cursor, limit)
    return [message_json(r, conversation_id) for r in rows], next_cursor


def message(view: ReadView, conversation_id: str, message_id: int) -> dict[str, Any] | None:
    row = conv.message_by_id(view, conversation_id, message_id)
    return message_json(row, conversation_id) if row else None


def messages_since(view: ReadView, account: int, since: int) -> list[dict[str, Any]]:
    return [message_json(r, r["conversation_id"]) for r in conv.messages_since(view, account, since)]
