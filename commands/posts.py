"""Use cases of posts: create, edit, delete."""
from __future__ import annotations

import asyncio

from commands.accounts import USERNAMES
from commands.context import Actor, CommandContext, Done, retry_on_conflict
from domain import rules
from domain.aggregates import fold_media, fold_post, media_stream, post_stream
from domain.errors import NotFound
from domain.events import MediaRef, PostCreated, PostDeleted, PostEdited
from streams.event_store import Append


async def resolve_mentions(ctx: CommandContext, names: tuple[str, ...]) -> tuple[str, ...]:
    """The account ids of the @usernames that name an account, in order, through the
    write side's username claims (never a read model): an event records whom it
    mentioned when it happened, so a later rename or sign-up changes nothing."""
    candidates = [n for n in (rules.mentionable(name) for name in names) if n is not None]
    owners = await asyncio.gather(*(ctx.events.lookup_unique(USERNAMES, n) for n in candidates))
    return tuple(dict.fromkeys(o for o in owners if o is not None))


async def create_post(ctx: CommandContext, actor: Actor, caption: str, media_ids: list[str]) -> Done:
    assert actor.account_id is not None
    caption, tags, mentions = rules.check_caption(caption)
    rules.check_media_ids(media_ids)
    loaded = await asyncio.gather(*(ctx.load(media_stream(m), fold_media) for m in media_ids))
    refs: list[MediaRef] = []
    for media_id, (media, _) in zip(media_ids, loaded):
        rules.check_media_usable(media_id, media.owner_id if media else None, actor.account_id)
        assert media is not None
        refs.append(media.ref)
    event, append = post_creation(ctx, actor, caption, tags, refs, await resolve_mentions(ctx, mentions))
    done = await ctx.commit(append)
    return Done(done.token, event, done.events)


def post_creation(
    ctx: CommandContext, actor: Actor, caption: str, tags: tuple[str, ...], refs: list[MediaRef], mentions: tuple[str, ...]
) -> tuple[PostCreated, Append]:
    """A new post and the append that creates it (caption checked, photos the actor's,
    mentions resolved): create_post's, and the bulk seeder's (api/seed.py)."""
    assert actor.account_id is not None
    post_id = ctx.new_id()
    event = PostCreated(post_id, actor.account_id, caption, tuple(refs), tags, mentions)
    return event, ctx.prepare(post_stream(post_id), [event], actor, expected_version=0)


async def edit_post(ctx: CommandContext, actor: Actor, post_id: str, caption: str) -> Done:
    assert actor.account_id is not None
    caption, tags, names = rules.check_caption(caption)
    mentions = await resolve_mentions(ctx, names)

    async def decide() -> Done:
        post, version = await ctx.load(post_stream(post_id), fold_post)
        if post is None or post.deleted:
            raise NotFound(f"post {post_id} does not exist")
        rules.check_is_author(actor.account_id or "", post.author_id)
        if post.caption == caption:
            return Done(None, post_id)
        event = PostEdited(post_id, post.author_id, caption, tags, mentions)
        done = await ctx.append(post_stream(post_id), [event], actor, expected_version=version)
        return Done(done.token, post_id, done.events)

    return await retry_on_conflict(decide)


async def delete_post(ctx: CommandContext, actor: Actor, post_id: str) -> Done:
    async def decide() -> Done:
        post, version = await ctx.load(post_stream(post_id), fold_post)
        if post is None or post.deleted:
            raise NotFound(f"post {post_id} does not exist")
        rules.check_is_author(actor.account_id or "", post.author_id)
        done = await ctx.append(
            post_stream(post_id), [PostDeleted(post_id, post.author_id)], actor, expected_version=version
        )
        return Done(done.token, post_id, done.events)

    return await retry_on_conflict(decide)
