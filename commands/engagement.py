"""Use cases of engagement: like, unlike (idempotent), comment, delete a comment."""
from __future__ import annotations

from commands.context import Actor, CommandContext, Done, retry_on_conflict
from domain import rules
from domain.aggregates import (
    comment_stream,
    fold_comment,
    fold_liked,
    fold_post,
    like_stream,
    post_stream,
)
from domain.aggregates import Post
from domain.errors import NotFound
from domain.events import CommentAdded, CommentDeleted, Liked, Unliked
from commands.posts import resolve_mentions
from commands.social import ensure_not_blocked, may_see_posts_of


async def _live_post(ctx: CommandContext, post_id: str) -> Post:
    post, _ = await ctx.load(post_stream(post_id), fold_post)
    if post is None or post.deleted:
        raise NotFound(f"post {post_id} does not exist")
    return post


async def _post_to_engage_with(ctx: CommandContext, actor_id: str, post_id: str) -> Post:
    """A live post the actor may like or comment on: 403 when either has blocked the
    other, 404 (as for reading it) when the author is private and the actor no approved
    follower. Decided on the write side (block, account and follow streams)."""
    post = await _live_post(ctx, post_id)
    if actor_id != post.author_id:
        await ensure_not_blocked(ctx, actor_id, post.author_id)
        if not await may_see_posts_of(ctx, actor_id, post.author_id):
            raise NotFound(f"post {post_id} does not exist")
    return post


async def like(ctx: CommandContext, actor: Actor, post_id: str) -> Done:
    account_id = actor.account_id or ""
    post = await _post_to_engage_with(ctx, account_id, post_id)
    stream = like_stream(post_id, account_id)

    async def decide() -> Done:
        liked, version = await ctx.load(stream, fold_liked)
        if liked:
            return Done(None, True)
        event = Liked(post_id, account_id, post.author_id, ctx.new_id())
        done = await ctx.append(stream, [event], actor, expected_version=version)
        return Done(done.token, True, done.events)

    return await retry_on_conflict(decide)


async def unlike(ctx: CommandContext, actor: Actor, post_id: str) -> Done:
    account_id = actor.account_id or ""
    stream = like_stream(post_id, account_id)

    async def decide() -> Done:
        liked, version = await ctx.load(stream, fold_liked)
        if not liked:
            return Done(None, False)
        post, _ = await ctx.load(post_stream(post_id), fold_post)
        author = post.author_id if post else ""
        done = await ctx.append(stream, [Unliked(post_id, account_id, author)], actor, expected_version=version)
        return Done(done.token, False, done.events)

    return await retry_on_conflict(decide)


async def add_comment(ctx: CommandContext, actor: Actor, post_id: str, text: str) -> Done:
    account_id = actor.account_id or ""
    text = rules.check_comment(text)
    post = await _post_to_engage_with(ctx, account_id, post_id)
    mentions = await resolve_mentions(ctx, rules.parse_mentions(text))
    comment_id = ctx.new_id()
    event = CommentAdded(comment_id, post_id, account_id, post.author_id, text, mentions)
    done = await ctx.append(comment_stream(comment_id), [event], actor, expected_version=0)
    return Done(done.token, event, done.events)


async def delete_comment(ctx: CommandContext, actor: Actor, comment_id: str) -> Done:
    async def decide() -> Done:
        comment, version = await ctx.load(comment_stream(comment_id), fold_comment)
        if comment is None or comment.deleted:
            raise NotFound(f"comment {comment_id} does not exist")
        post, _ = await ctx.load(post_stream(comment.post_id), fold_post)
        rules.check_can_delete_comment(actor.account_id or "", comment.author_id, post.author_id if post else "")
        done = await ctx.append(
            comment_stream(comment_id),
            [CommentDeleted(comment_id, comment.post_id, comment.author_id)],
            actor,
            expected_version=version,
        )
        return Done(done.token, comment_id, done.events)

    return await retry_on_conflict(decide)
