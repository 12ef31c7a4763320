"""Read model `conversations`: direct messages between two accounts.

Keyed by conversation (one per pair), so a participant's unread count in it is decided
in one place and written as an absolute value: exact without counters. Each participant
has an inbox row per conversation, listed newest activity first (the row moves when a
message arrives: one delete and one insert per participant).
"""
from __future__ import annotations

import dataclasses

from domain.events import ConversationRead, Event, MessageSent, format_time
from projections.projector import Projector, on
from projections.store import Delete, ReadView, Row, Table, Upsert, Write

MESSAGES = Table(
    "messages",
    {
        "conversation_id": "text",
        "message_id": "int",
        "sender_id": "int",
        "text": "text",
        "media": "json",
        "created_at": "text",
    },
    ("conversation_id",),
    "message_id",
    descending=True,
)
# One row per (participant, conversation): the other party, read state, unread count.
MEMBERSHIPS = Table(
    "conversation_members",
    {
        "account_id": "int",
        "conversation_id": "text",
        "other_id": "int",
        "last_message_id": "int",
        "read_up_to": "int",
        "unread": "int",
    },
    ("account_id",),
    "conversation_id",
)
# The inbox: a participant's conversations by newest message.
INBOX = Table(
    "conversation_inbox",
    {"account_id": "int", "last_message_id": "int", "conversation_id": "text"},
    ("account_id",),
    "last_message_id",
    descending=True,
)
UNREAD_SCAN_MAX = 1000


def _unread(view: ReadView, conversation: str, reader: int, after: int) -> int:
    """Messages from the other party newer than the reader's marker."""
    rows = view.scan(MESSAGES, {"conversation_id": conversation}, end_before=after or None, limit=UNREAD_SCAN_MAX)
    return sum(1 for r in rows if r["sender_id"] != reader)


class Conversations(Projector):
    name = "conversations"
    tables = (MESSAGES, MEMBERSHIPS, INBOX)

    @on(MessageSent, key=lambda e: e.conversation_id)
    def sent(self, e: MessageSent, event: Event, view: ReadView) -> list[Write]:
        conversation, message = e.conversation_id, int(e.message_id)
        key = {"conversation_id": conversation, "message_id": message}
        if view.get(MESSAGES, key) is not None:
            return []  # a repeated event
        writes: list[Write] = [
            Upsert(
                MESSAGES,
                {
                    **key,
                    "sender_id": int(e.sender_id),
                    "text": e.text,
                    "media": [dataclasses.asdict(m) for m in e.media],
                    "created_at": format_time(event.occurred_at),
                },
            )
        ]
        for me, other in ((int(e.sender_id), int(e.recipient_id)), (int(e.recipient_id), int(e.sender_id))):
            member = view.get(MEMBERSHIPS, {"account_id": me, "conversation_id": conversation})
            last = member["last_message_id"] if member else 0
            read_up_to = member["read_up_to"] if member else 0
            if me == int(e.sender_id):
                read_up_to = max(read_up_to, message)  # one has read what one wrote
            unread = (member["unread"] if member else 0) + (1 if me != int(e.sender_id) and message > read_up_to else 0)
            if message > last:  # the conversation moves up the inbox
                if member:
                    writes.append(Delete(INBOX, {"account_id": me, "last_message_id": last}))
                writes.append(Upsert(INBOX, {"account_id": me, "last_message_id": message, "conversation_id": conversation}))
            writes.append(
                Upsert(
                    MEMBERSHIPS,
                    {
                        "account_id": me,
                        "conversation_id": conversation,
                        "other_id": other,
                        "last_message_id": max(last, message),
                        "read_up_to": read_up_to,
                        "unread": unread,
                    },
                )
            )
        return writes

    @on(ConversationRead, key=lambda e: e.conversation_id)
    def read(self, e: ConversationRead, event: Event, view: ReadView) -> list[Write]:
        reader, up_to = int(e.reader_id), int(e.up_to)
        member = view.get(MEMBERSHIPS, {"account_id": reader, "conversation_id": e.conversation_id})
        if member is None or member["read_up_to"] >= up_to:
            return []
        unread = _unread(view, e.conversation_id, reader, up_to)
        return [Upsert(MEMBERSHIPS, {**member, "read_up_to": up_to, "unread": unread})]


# ----- queries ---------------------------------------------------------------------------


def inbox_page(view: ReadView, account: int, cursor: int | None, limit: int) -> tuple[list[Row], int | None]:
    """The account's conversations, newest message first, with their membership rows."""
    rows = view.scan(INBOX, {"account_id": account}, start_after=cursor, limit=limit)
    members = view.get_many(MEMBERSHIPS, [{"account_id": account, "conversation_id": r["conversation_id"]} for r in rows])
    out = []
    for r, m in zip(rows, members):
        if m is not None and m["last_message_id"] == r["last_message_id"]:
            last = view.get(MESSAGES, {"conversation_id": r["conversation_id"], "message_id": r["last_message_id"]})
            out.append({**m, "last_message": last})
    return out, (rows[-1]["last_message_id"] if len(rows) == limit else None)


def membership(view: ReadView, account: int, conversation: str) -> Row | None:
    return view.get(MEMBERSHIPS, {"account_id": account, "conversation_id": conversation})


def messages_page(view: ReadView, conversation: str, cursor: int | None, limit: int) -> tuple[list[Row], int | None]:
    rows = view.scan(MESSAGES, {"conversation_id": conversation}, start_after=cursor, limit=limit)
    return rows, (rows[-1]["message_id"] if len(rows) == limit else None)


def message_by_id(view: ReadView, conversation: str, message_id: int) -> Row | None:
    return view.get(MESSAGES, {"conversation_id": conversation, "message_id": message_id})


def unread_total(view: ReadView, account: int) -> int:
    return sum(int(r["unread"] or 0) for r in view.scan(MEMBERSHIPS, {"account_id": account}))


def messages_since(view: ReadView, account: int, since: int, limit: int = 200) -> list[Row]:
    """Messages to or from the account newer than `since`, oldest first (stream resume)."""
    out: list[Row] = []
    for inbox in view.scan(INBOX, {"account_id": account}, end_before=since or None, limit=limit):
        for m in view.scan(MESSAGES, {"conversation_id": inbox["conversation_id"]}, end_before=since or None, limit=limit):
            out.append({**m, "conversation_id": inbox["conversation_id"]})
    out.sort(key=lambda m: m["message_id"])
    return out[-limit:]
