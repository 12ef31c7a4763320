"""Use cases of the social graph: follow and unfollow (both idempotent), follow requests
of private accounts, blocking and muting.

Every decision reads the write side only: the follow stream `follow-<a>-<b>`, the block
streams `block-<a>-<b>` and the followee's account stream (is it private?). Never a
read model, which may lag.
"""
from __future__ import annotations

from typing import Sequence

from commands.context import Actor, CommandContext, Done, retry_on_conflict
from domain import rules
from domain.aggregates import (
    FOLLOWING,
    NOT_FOLLOWING,
    REQUESTED,
    account_stream,
    block_stream,
    fold_account,
    fold_blocked,
    fold_follow,
    fold_muted,
    follow_stream,
    mute_stream,
)
from domain.errors import NotFound
from domain.events import (
    Blocked,
    DomainEvent,
    Event,
    Followed,
    FollowRequestCancelled,
    FollowRequestDeclined,
    FollowRequested,
    Muted,
    Unblocked,
    Unfollowed,
    Unmuted,
)
from streams.event_store import Append, ConsistencyToken


async def blocks_between(ctx: CommandContext, a: str, b: str) -> tuple[bool, bool]:
    """(a blocks b, b blocks a), from the two block streams."""
    a_blocks, _ = await ctx.load(block_stream(a, b), fold_blocked)
    b_blocks, _ = await ctx.load(block_stream(b, a), fold_blocked)
    return a_blocks, b_blocks


async def ensure_not_blocked(ctx: CommandContext, actor_id: str, other_id: str) -> None:
    """Raise NotAllowed (403) when actor and other have blocked each other either way.

    The one check every interaction between two accounts makes on the write side:
    follows, likes, comments, messages."""
    blocking, blocked_by = await blocks_between(ctx, actor_id, other_id)
    if blocking or blocked_by:
        other, _ = await ctx.load(account_stream(other_id), fold_account)
        rules.check_not_blocked(blocking, blocked_by, other.username if other else f"account {other_id}")


async def may_see_posts_of(ctx: CommandContext, viewer_id: str, author_id: str) -> bool:
    """Whether viewer may see author's posts, decided on the write side: not blocked
    either way, and the author public or the viewer an approved follower."""
    if viewer_id == author_id:
        return True
    blocking, blocked_by = await blocks_between(ctx, viewer_id, author_id)
    if blocking or blocked_by:
        return False
    author, _ = await ctx.load(account_stream(author_id), fold_account)
    if author is None or not author.private:
        return author is not None
    state, _ = await ctx.load(follow_stream(viewer_id, author_id), fold_follow)
    return state == FOLLOWING


def _merge(tokens: Sequence[ConsistencyToken | None]) -> ConsistencyToken | None:
    merged: ConsistencyToken | None = None
    for token in tokens:
        if token is not None:
            merged = token if merged is None else merged.merge(token)
    return merged


async def _end_follow(ctx: CommandContext, actor: Actor, follower_id: str, followee_id: str) -> Done:
    """End whatever the follow stream holds (a follow or a request), as the actor."""
    stream = follow_stream(follower_id, followee_id)
    by_followee = actor.account_id == followee_id

    async def decide() -> Done:
        state, version = await ctx.load(stream, fold_follow)
        event: DomainEvent
        if state == FOLLOWING:
            event = Unfollowed(follower_id, followee_id)
        elif state == REQUESTED:
            event = (FollowRequestDeclined if by_followee else FollowRequestCancelled)(follower_id, followee_id)
        else:
            return Done(None, NOT_FOLLOWING)
        done = await ctx.append(stream, [event], actor, expected_version=version)
        return Done(done.token, NOT_FOLLOWING, done.events)

    return await retry_on_conflict(decide)


async def follow(ctx: CommandContext, actor: Actor, followee_id: str) -> Done:
    """Follow a public account, or ask to follow a private one. Done.value is the state
    after: FOLLOWING or REQUESTED. A request repeated once the account went public
    becomes a follow."""
    follower_id = actor.account_id or ""
    rules.check_can_follow(follower_id, followee_id)
    await ensure_not_blocked(ctx, follower_id, followee_id)
    stream = follow_stream(follower_id, followee_id)

    async def decide() -> Done:
        state, version = await ctx.load(stream, fold_follow)
        if state == FOLLOWING:
            return Done(None, FOLLOWING)
        followee, _ = await ctx.load(account_stream(followee_id), fold_account)
        if followee is None:
            raise NotFound(f"account {followee_id} does not exist")
        if not followee.private:
            done = await ctx.commit(following(ctx, actor, followee_id, version))
            return Done(done.token, FOLLOWING, done.events)
        if state == REQUESTED:
            return Done(None, REQUESTED)
        request = FollowRequested(follower_id, followee_id, ctx.new_id())
        done = await ctx.append(stream, [request], actor, expected_version=version)
        return Done(done.token, REQUESTED, done.events)

    done = await retry_on_conflict(decide)
    if done.events:
        # A block appended between our check and our append did not see this follow (it
        # severs what it reads after appending Blocked); we read the blocks after our
        # append, so one of the two always sees the other. Undo and refuse.
        blocking, blocked_by = await blocks_between(ctx, follower_id, followee_id)
        if blocking or blocked_by:
            await _end_follow(ctx, actor, follower_id, followee_id)
            await ensure_not_blocked(ctx, follower_id, followee_id)
    return done


def following(ctx: CommandContext, actor: Actor, followee_id: str, version: int = 0) -> Append:
    """The append by which the actor follows a public account whose follow stream is at
    `version` (not following): follow's, and the bulk seeder's (api/seed.py)."""
    follower_id = actor.account_id or ""
    return ctx.prepare(
        follow_stream(follower_id, followee_id), [Followed(follower_id, followee_id, ctx.new_id())], actor, expected_version=version
    )


async def unfollow(ctx: CommandContext, actor: Actor, followee_id: str) -> Done:
    """Stop following, or withdraw a pending request (idempotent)."""
    return await _end_follow(ctx, actor, actor.account_id or "", followee_id)


async def approve_follow_request(ctx: CommandContext, actor: Actor, follower_id: str) -> Done:
    """The owner approves a pending request: it becomes a Followed (idempotent when the
    requester already follows; NotFound when there is no request)."""
    owner_id = actor.account_id or ""
    rules.check_not_self(owner_id, follower_id, "approve a follow request from")
    stream = follow_stream(follower_id, owner_id)

    async def decide() -> Done:
        state, version = await ctx.load(stream, fold_follow)
        if state == FOLLOWING:
            return Done(None, FOLLOWING)
        if state != REQUESTED:
            raise NotFound("there is no pending follow request from this account")
        done = await ctx.append(stream, [Followed(follower_id, owner_id, ctx.new_id())], actor, expected_version=version)
        return Done(done.token, FOLLOWING, done.events)

    return await retry_on_conflict(decide)


async def decline_follow_request(ctx: CommandContext, actor: Actor, follower_id: str) -> Done:
    """The owner declines a pending request (NotFound when there is none)."""
    owner_id = actor.account_id or ""
    rules.check_not_self(owner_id, follower_id, "decline a follow request from")
    stream = follow_stream(follower_id, owner_id)

    async def decide() -> Done:
        state, version = await ctx.load(stream, fold_follow)
        if state != REQUESTED:
            raise NotFound("there is no pending follow request from this account")
        done = await ctx.append(stream, [FollowRequestDeclined(follower_id, owner_id)], actor, expected_version=version)
        return Done(done.token, NOT_FOLLOWING, done.events)

    return await retry_on_conflict(decide)


async def block(ctx: CommandContext, actor: Actor, blocked_id: str) -> Done:
    """Block an account (idempotent): record the block, then end the follows and
    requests both ways with their own events, so every read model of the graph follows.

    Not one transaction: a crash between the appends leaves a follow behind a block;
    blocking again finishes the job, and every read path hides blocked pairs anyway."""
    blocker_id = actor.account_id or ""
    rules.check_not_self(blocker_id, blocked_id, "block")
    target, _ = await ctx.load(account_stream(blocked_id), fold_account)
    if target is None:
        raise NotFound(f"account {blocked_id} does not exist")
    stream = block_stream(blocker_id, blocked_id)

    async def decide() -> Done:
        blocked, version = await ctx.load(stream, fold_blocked)
        if blocked:
            return Done(None, True)
        done = await ctx.append(stream, [Blocked(blocker_id, blocked_id)], actor, expected_version=version)
        return Done(done.token, True, done.events)

    done = await retry_on_conflict(decide)
    # Always sever (also when already blocked), so that repeating a block repairs a crash.
    ends = [
        await _end_follow(ctx, actor, blocker_id, blocked_id),
        await _end_follow(ctx, actor, blocked_id, blocker_id),
    ]
    events: tuple[Event, ...] = done.events + tuple(e for d in ends for e in d.events)
    return Done(_merge([done.token] + [d.token for d in ends]), True, events)


async def unblock(ctx: CommandContext, actor: Actor, blocked_id: str) -> Done:
    """Lift a block (idempotent). Follows ended by the block stay ended."""
    blocker_id = actor.account_id or ""
    rules.check_not_self(blocker_id, blocked_id, "unblock")
    stream = block_stream(blocker_id, blocked_id)

    async def decide() -> Done:
        blocked, version = await ctx.load(stream, fold_blocked)
        if not blocked:
            return Done(None, False)
        done = await ctx.append(stream, [Unblocked(blocker_id, blocked_id)], actor, expected_version=version)
        return Done(done.token, False, done.events)

    return await retry_on_conflict(decide)


async def mute(ctx: CommandContext, actor: Actor, muted_id: str) -> Done:
    """Hide an account's posts from one's home feed (idempotent); nothing else changes."""
    return await _set_muted(ctx, actor, muted_id, True)


async def unmute(ctx: CommandContext, actor: Actor, muted_id: str) -> Done:
    return await _set_muted(ctx, actor, muted_id, False)


async def _set_muted(ctx: CommandContext, actor: Actor, muted_id: str, wanted: bool) -> Done:
    muter_id = actor.account_id or ""
    rules.check_not_self(muter_id, muted_id, "mute" if wanted else "unmute")
    stream = mute_stream(muter_id, muted_id)

    async def decide() -> Done:
        muted, version = await ctx.load(stream, fold_muted)
        if muted == wanted:
            return Done(None, wanted)
        event = Muted(muter_id, muted_id) if wanted else Unmuted(muter_id, muted_id)
        done = await ctx.append(stream, [event], actor, expected_version=version)
        return Done(done.token, wanted, done.events)

    return await retry_on_conflict(decide)
