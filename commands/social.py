"""Use cases of the social graph: follow and unfollow (both idempotent)."""
from __future__ import annotations

from commands.context import Actor, CommandContext, Done, retry_on_conflict
from domain import rules
from domain.aggregates import follow_stream, fold_following
from domain.events import Followed, Unfollowed


async def follow(ctx: CommandContext, actor: Actor, followee_id: str) -> Done:
    follower_id = actor.account_id or ""
    rules.check_can_follow(follower_id, followee_id)
    stream = follow_stream(follower_id, followee_id)

    async def decide() -> Done:
        following, version = await ctx.load(stream, fold_following)
        if following:
            return Done(None, True)
        event = Followed(follower_id, followee_id, ctx.new_id())
        done = await ctx.append(stream, [event], actor, expected_version=version)
        return Done(done.token, True, done.events)

    return await retry_on_conflict(decide)


async def unfollow(ctx: CommandContext, actor: Actor, followee_id: str) -> Done:
    follower_id = actor.account_id or ""
    stream = follow_stream(follower_id, followee_id)

    async def decide() -> Done:
        following, version = await ctx.load(stream, fold_following)
        if not following:
            return Done(None, False)
        done = await ctx.append(stream, [Unfollowed(follower_id, followee_id)], actor, expected_version=version)
        return Done(done.token, False, done.events)

    return await retry_on_conflict(decide)
