"""Use cases of accounts: register, authenticate, update the profile."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from commands.context import Actor, CommandContext, Done, retry_on_conflict
from domain import rules
from domain.aggregates import Account, account_stream, fold_account, fold_media, media_stream
from domain.errors import Conflict, NotAuthenticated, NotFound
from domain.events import AccountRegistered, MediaRef, ProfileUpdated, SessionsRevoked
from streams.event_store import Append, UniqueClaim, UniqueViolation

USERNAMES = "username"


async def register_account(
    ctx: CommandContext, username: str, password: str, display_name: str | None, *, correlation_id: str | None = None
) -> Done:
    """Create an account; the username is claimed atomically with the first event."""
    name = rules.normalize_username(username)
    rules.check_password(password)
    shown = rules.check_display_name(display_name if display_name is not None else name)
    if await ctx.events.lookup_unique(USERNAMES, name) is not None:
        raise Conflict(f"username {name!r} is taken", field="username")
    password_hash = await asyncio.to_thread(ctx.hasher.hash, password)
    account_id, append = registration(ctx, name, shown or name, password_hash, correlation_id)
    try:
        done = await ctx.commit(append)
    except UniqueViolation as exc:  # lost a race with a concurrent sign-up
        raise Conflict(f"username {name!r} is taken", field="username") from exc
    return Done(done.token, account_id, done.events)


def registration(
    ctx: CommandContext, name: str, display_name: str, password_hash: str, correlation_id: str | None = None
) -> tuple[str, Append]:
    """A new account's id and the append that registers it, claiming the username (name
    and display name already checked by the rules): register_account's, and the bulk
    seeder's (api/seed.py)."""
    account_id = ctx.new_id()
    return account_id, ctx.prepare(
        account_stream(account_id),
        [AccountRegistered(account_id, name, display_name, password_hash)],
        Actor(account_id, correlation_id),
        expected_version=0,
        claims=[UniqueClaim(USERNAMES, name, account_id)],
    )


async def authenticate(ctx: CommandContext, username: str, password: str) -> Account:
    """The account for these credentials, or NotAuthenticated (same answer and about
    the same time whether the username or the password was wrong)."""
    try:
        name = rules.normalize_username(username)
    except rules.InvalidInput:
        name = None
    owner = await ctx.events.lookup_unique(USERNAMES, name) if name else None
    account: Account | None = None
    if owner is not None:
        account, _ = await ctx.load(account_stream(owner), fold_account)
    password_hash = account.password_hash if account else getattr(ctx.hasher, "dummy_hash", "")
    ok = await asyncio.to_thread(ctx.hasher.verify, password_hash, password)
    if not ok or account is None:
        raise NotAuthenticated("wrong username or password")
    return account


async def sign_out_everywhere(ctx: CommandContext, actor: Actor) -> Done:
    """Revoke every token issued so far: raise the account's session generation. The
    value is the new generation (tokens issued after this carry it)."""
    assert actor.account_id is not None
    account_id = actor.account_id

    async def decide() -> Done:
        account, version = await ctx.load(account_stream(account_id), fold_account)
        if account is None:
            raise NotFound("account does not exist")
        generation = account.session_generation + 1
        done = await ctx.append(
            account_stream(account_id), [SessionsRevoked(account_id, generation)], actor, expected_version=version
        )
        return Done(done.token, generation, done.events)

    return await retry_on_conflict(decide)


@dataclass(frozen=True)
class ProfileChanges:
    display_name: str | None = None
    bio: str | None = None
    avatar_media_id: str | None = None
    clear_avatar: bool = False
    private: bool | None = None


async def update_profile(ctx: CommandContext, actor: Actor, changes: ProfileChanges) -> Done:
    assert actor.account_id is not None
    account_id = actor.account_id
    avatar: MediaRef | None = None
    if changes.avatar_media_id is not None:
        media, _ = await ctx.load(media_stream(changes.avatar_media_id), fold_media)
        rules.check_media_usable(changes.avatar_media_id, media.owner_id if media else None, account_id)
        assert media is not None
        avatar = media.ref

    async def decide() -> Done:
        account, version = await ctx.load(account_stream(account_id), fold_account)
        if account is None:
            raise NotFound("account does not exist")
        event = ProfileUpdated(
            account_id=account_id,
            display_name=rules.check_display_name(changes.display_name)
            if changes.display_name is not None
            else account.display_name,
            bio=rules.check_bio(changes.bio) if changes.bio is not None else account.bio,
            avatar=None if changes.clear_avatar else (avatar or account.avatar),
            private=changes.private if changes.private is not None else account.private,
        )
        if (event.display_name, event.bio, event.avatar, event.private) == (
            account.display_name,
            account.bio,
            account.avatar,
            account.private,
        ):
            return Done(None, account_id)  # nothing changed: no event
        done = await ctx.append(account_stream(account_id), [event], actor, expected_version=version)
        return Done(done.token, account_id, done.events)

    return await retry_on_conflict(decide)
