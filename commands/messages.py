"""Use cases of direct messages and notifications: send a message, mark a conversation
read, mark notifications read."""
from __future__ import annotations

import asyncio

from commands.accounts import USERNAMES
from commands.context import Actor, CommandContext, Done
from commands.social import ensure_not_blocked
from domain import rules
from domain.aggregates import (
    conversation_read_stream,
    fold_media,
    media_stream,
    message_stream,
    notifications_read_stream,
)
from domain.errors import NotFound
from domain.ids import parse_id
from domain.events import ConversationRead, MediaRef, MessageSent, NotificationsRead


async def check_may_message(ctx: CommandContext, sender_id: str, recipient_id: str) -> None:
    """THE one place that decides whether sender may message recipient: not oneself,
    and no block either way (NotAllowed, 403)."""
    rules.check_can_message(sender_id, recipient_id)
    await ensure_not_blocked(ctx, sender_id, recipient_id)


async def send_message(
    ctx: CommandContext, actor: Actor, to_username: str, text: str, media_ids: list[str]
) -> Done:
    """Send a direct message to an account by username, with text and/or photos the
    sender uploaded (the same media pipeline as posts)."""
    sender = actor.account_id
    assert sender is not None
    text = rules.check_message(text, media_ids)
    try:
        name = rules.normalize_username(to_username)
    except rules.InvalidInput as exc:
        raise NotFound(f"account {to_username!r} does not exist", field="to") from exc
    recipient = await ctx.events.lookup_unique(USERNAMES, name)
    if recipient is None:
        raise NotFound(f"account {to_username!r} does not exist", field="to")
    await check_may_message(ctx, sender, recipient)
    loaded = await asyncio.gather(*(ctx.load(media_stream(m), fold_media) for m in media_ids))
    refs: list[MediaRef] = []
    for media_id, (media, _) in zip(media_ids, loaded):
        rules.check_media_usable(media_id, media.owner_id if media else None, sender)
        assert media is not None
        refs.append(media.ref)
    message_id = ctx.new_id()
    event = MessageSent(message_id, rules.conversation_id(sender, recipient), sender, recipient, text, tuple(refs))
    done = await ctx.append(message_stream(message_id), [event], actor, expected_version=0)
    return Done(done.token, event, done.events)


def participant_of(conversation: str, account_id: str) -> tuple[str, str]:
    """(me, the other) of a conversation id, or NotFound for anyone else: only the two
    participants may know a conversation exists."""
    members = rules.conversation_members(conversation)
    if members is None or account_id not in members:
        raise NotFound(f"conversation {conversation} does not exist")
    low, high = members
    return (low, high) if account_id == low else (high, low)


async def mark_conversation_read(ctx: CommandContext, actor: Actor, conversation: str, up_to: str | None) -> Done:
    """The reader has read the conversation up to message id up_to (default: now)."""
    reader = actor.account_id or ""
    participant_of(conversation, reader)
    mark = _up_to(ctx, up_to)
    done = await ctx.append(
        conversation_read_stream(conversation, reader), [ConversationRead(conversation, reader, mark)], actor
    )
    return Done(done.token, mark, done.events)


async def mark_notifications_read(ctx: CommandContext, actor: Actor, up_to: str | None) -> Done:
    """Every notification with activity up to up_to (default: now) is read."""
    account = actor.account_id or ""
    mark = _up_to(ctx, up_to)
    done = await ctx.append(notifications_read_stream(account), [NotificationsRead(account, mark)], actor)
    return Done(done.token, mark, done.events)


def _up_to(ctx: CommandContext, up_to: str | None) -> str:
    """An explicit id, or a fresh one: ids are time-sortable, so a new id is 'now'."""
    if up_to is None:
        return ctx.new_id()
    if parse_id(up_to) is None:
        raise rules.InvalidInput(f"up_to {up_to!r} is not an id", field="up_to")
    return up_to
