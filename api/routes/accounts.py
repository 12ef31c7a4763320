"""Routes of accounts, sessions and the follow graph."""
from __future__ import annotations

from fastapi import APIRouter, Request, Response

from commands import accounts as account_commands
from commands import social
from domain import rules
from domain.aggregates import REQUESTED
from domain.errors import InvalidInput
from domain.events import AccountRegistered, format_time
from projections import queries, visibility

from observability.context import CORRELATION_ID

from api import schemas
from api.http import ActorDep, JSONResponse, fresh_account, BackendDep, Consistent, HttpError, Paging, SignedIn, Viewer, command_answer, page
from api.presenters import account_json, post_json
from api.ratelimit import LIMITED, limit
from api.wiring import Backend

router = APIRouter(prefix="/v1", tags=["accounts"])


def _username(raw: str) -> str:
    try:
        return rules.normalize_username(raw)
    except InvalidInput as exc:
        raise HttpError(404, f"account {raw!r} does not exist") from exc


async def _account_or_404(backend: Backend, username: str, viewer: str | None = None) -> queries.AccountView:
    """The account, as the viewer may see it: an account that blocks the viewer does not
    exist for them (404), as one that does not exist at all."""
    found = await backend.query(queries.account_by_username, _username(username))
    if found is not None and viewer is not None:
        access = await backend.query(visibility.post_access, int(viewer), [found.id])
        if access[found.id] == visibility.BLOCKED_BY_AUTHOR:
            found = None
    if found is None:
        raise HttpError(404, f"account {username!r} does not exist")
    return found


async def _visible_account(backend: Backend, username: str, viewer: str | None, what: str) -> queries.AccountView:
    """The account whose posts or follow lists the viewer asks for: 404 when it does
    not exist for them, 403 with the reason when they may not see inside it."""
    owner = await _account_or_404(backend, username, viewer)
    viewer_id = int(viewer) if viewer else None
    access = (await backend.query(visibility.post_access, viewer_id, [owner.id]))[owner.id]
    if access == visibility.BLOCKING:
        raise HttpError(403, f"you have blocked {owner.username}; unblock them to see their {what}")
    if access == visibility.PRIVATE:
        raise HttpError(403, f"{owner.username}'s account is private: only approved followers see their {what}")
    if access != visibility.ALLOWED:
        raise HttpError(404, f"account {username!r} does not exist")
    return owner


async def _account_id_for_command(backend: Backend, username: str) -> str:
    """Commands resolve usernames on the write side, never through a projection."""
    owner = await backend.events.lookup_unique(account_commands.USERNAMES, _username(username))
    if owner is None:
        raise HttpError(404, f"account {username!r} does not exist")
    return owner


@router.post("/accounts", status_code=201, response_model=schemas.Session, responses={409: {"model": schemas.Problem}, **LIMITED})
async def sign_up(body: schemas.SignUp, request: Request, backend: BackendDep) -> Response:
    limit(request, "sign_up", None)
    done = await account_commands.register_account(
        backend.commands, body.username, body.password, body.display_name, correlation_id=CORRELATION_ID.get()
    )
    event = done.events[0]
    registered = event.data
    assert isinstance(registered, AccountRegistered)
    account = queries.AccountView(
        int(done.value), registered.username, registered.display_name, "", None, False, 0, 0, 0, format_time(event.occurred_at)
    )
    return await command_answer(
        backend, done, {"account": account_json(account), "token": backend.signer.issue(done.value)}, 201
    )


@router.post("/sessions", response_model=schemas.Session, responses={401: {"model": schemas.Problem}, **LIMITED})
async def sign_in(body: schemas.SignIn, request: Request, backend: BackendDep) -> Response:
    # Keyed by the username tried: that is the account a password guesser attacks.
    limit(request, "sign_in", body.username.strip().lower()[:64] or None)
    signed_in = await account_commands.authenticate(backend.commands, body.username, body.password)
    account = await fresh_account(backend, signed_in.account_id)
    token = backend.signer.issue(signed_in.account_id, generation=signed_in.session_generation)
    return {"account": account_json(account), "token": token}  # type: ignore[return-value]


@router.delete("/sessions", status_code=204, response_class=Response, responses={401: {"model": schemas.Problem}})
async def sign_out_everywhere(actor: ActorDep, backend: BackendDep) -> Response:
    """Sign out everywhere: every token issued to this account so far, this one
    included, is refused from the moment this answers."""
    done = await account_commands.sign_out_everywhere(backend.commands, actor)
    # Answer only once the `sessions` read model (checked on every request) has it.
    if done.token is not None and not await backend.wait_for(done.token, max(backend.settings.consistency_wait_seconds, 10)):
        raise HttpError(503, "the sign-out is recorded but not yet in effect everywhere; try again", {"Retry-After": "1"})
    return await command_answer(backend, done, None, 204)


@router.get("/accounts/me", response_model=schemas.Account, dependencies=[Consistent])
async def me(account_id: SignedIn, backend: BackendDep) -> Response:
    found = await backend.query(queries.account_by_id, int(account_id))
    if found is None:
        return account_json(await fresh_account(backend, account_id))  # type: ignore[return-value]
    return account_json(found)  # type: ignore[return-value]


@router.patch("/accounts/me", response_model=schemas.Account)
async def update_me(body: schemas.ProfilePatch, actor: ActorDep, backend: BackendDep) -> Response:
    fields = body.model_fields_set
    changes = account_commands.ProfileChanges(
        display_name=body.display_name,
        bio=body.bio,
        avatar_media_id=body.avatar_media_id,
        clear_avatar="avatar_media_id" in fields and body.avatar_media_id is None,
        private=body.private,
    )
    done = await account_commands.update_profile(backend.commands, actor, changes)
    if done.token is not None:
        await backend.wait_for(done.token, backend.settings.consistency_wait_seconds)
    account = await fresh_account(backend, actor.account_id or "")
    return await command_answer(backend, done, account_json(account))


@router.get("/accounts/{username}", response_model=schemas.AccountSeen, responses={404: {"model": schemas.Problem}}, dependencies=[Consistent])
async def account(username: str, viewer: Viewer, backend: BackendDep) -> Response:
    """An account; to a signed-in reader, also how they relate to it (following,
    requested, blocking, muting)."""
    found = await _account_or_404(backend, username, viewer)
    found = await backend.query(queries.with_relationship, int(viewer) if viewer else None, found)
    return JSONResponse(account_json(found))  # sent as is: the relationship fields only when known


@router.post("/accounts/{username}/follow", response_model=schemas.Following, responses={400: {"model": schemas.Problem}, 403: {"model": schemas.Problem}, 404: {"model": schemas.Problem}, **LIMITED})
async def follow(username: str, actor: ActorDep, request: Request, backend: BackendDep) -> Response:
    """Follow a public account (`{"following": true}`), or ask to follow a private one
    (`{"following": false, "requested": true}`); 403 when either blocks the other."""
    limit(request, "follow", actor.account_id)
    followee = await _account_id_for_command(backend, username)
    done = await social.follow(backend.commands, actor, followee)
    body = {"following": False, "requested": True} if done.value == REQUESTED else {"following": True}
    return await command_answer(backend, done, body)


@router.delete("/accounts/{username}/follow", response_model=schemas.Following, responses={404: {"model": schemas.Problem}, **LIMITED})
async def unfollow(username: str, actor: ActorDep, request: Request, backend: BackendDep) -> Response:
    """Unfollow, or withdraw a pending follow request (idempotent)."""
    limit(request, "follow", actor.account_id)
    followee = await _account_id_for_command(backend, username)
    done = await social.unfollow(backend.commands, actor, followee)
    return await command_answer(backend, done, {"following": False})


@router.get("/accounts/{username}/followers", response_model=schemas.Page[schemas.Account], dependencies=[Consistent])
async def followers(username: str, paging: Paging, viewer: Viewer, backend: BackendDep) -> Response:
    owner = await _visible_account(backend, username, viewer, "followers")
    viewer_id = int(viewer) if viewer else None
    result = await backend.query(queries.followers_of, owner.id, paging.cursor, paging.limit, viewer_id)
    return page([account_json(a) for a in result.items], result.next_cursor)


@router.get("/accounts/{username}/following", response_model=schemas.Page[schemas.Account], dependencies=[Consistent])
async def following(username: str, paging: Paging, viewer: Viewer, backend: BackendDep) -> Response:
    owner = await _visible_account(backend, username, viewer, "follows")
    viewer_id = int(viewer) if viewer else None
    result = await backend.query(queries.following_of, owner.id, paging.cursor, paging.limit, viewer_id)
    return page([account_json(a) for a in result.items], result.next_cursor)


@router.get("/accounts/{username}/posts", response_model=schemas.Page[schemas.Post], dependencies=[Consistent])
async def posts(username: str, paging: Paging, viewer: Viewer, backend: BackendDep) -> Response:
    """An account's posts, newest first: 403 when it is private and you are not an
    approved follower, or when you block it; 404 when it blocks you."""
    owner = await _visible_account(backend, username, viewer, "posts")
    viewer_id = int(viewer) if viewer else None
    result = await backend.query(queries.posts_of_author, owner.id, paging.cursor, paging.limit, viewer_id)
    return page([post_json(p) for p in result.items], result.next_cursor)




# ----- follow requests, blocks and mutes ------------------------------------------------

PROBLEMS = {400: {"model": schemas.Problem}, 404: {"model": schemas.Problem}}


@router.get("/follow_requests", response_model=schemas.Page[schemas.Account], dependencies=[Consistent])
async def follow_requests(account_id: SignedIn, paging: Paging, backend: BackendDep) -> Response:
    """The pending requests to follow you (a private account), newest first."""
    result = await backend.query(queries.follow_requests_of, int(account_id), paging.cursor, paging.limit)
    return page([account_json(a) for a in result.items], result.next_cursor)


@router.post("/follow_requests/{username}/approve", response_model=schemas.FollowRequestAnswer, responses=PROBLEMS)
async def approve_follow_request(username: str, actor: ActorDep, backend: BackendDep) -> Response:
    """Approve a pending request: the requester now follows you (idempotent once they
    do); 404 when there is no request from them."""
    follower = await _account_id_for_command(backend, username)
    done = await social.approve_follow_request(backend.commands, actor, follower)
    return await command_answer(backend, done, {"username": _username(username), "approved": True})


@router.post("/follow_requests/{username}/decline", response_model=schemas.FollowRequestAnswer, responses=PROBLEMS)
async def decline_follow_request(username: str, actor: ActorDep, backend: BackendDep) -> Response:
    """Decline a pending request; 404 when there is no request from them."""
    follower = await _account_id_for_command(backend, username)
    done = await social.decline_follow_request(backend.commands, actor, follower)
    return await command_answer(backend, done, {"username": _username(username), "approved": False})


@router.post("/accounts/{username}/block", response_model=schemas.Blocking, responses=PROBLEMS)
async def block(username: str, actor: ActorDep, backend: BackendDep) -> Response:
    """Block an account (idempotent): the follows and requests both ways end, and each
    of you disappears from the other's feeds, lists and posts."""
    target = await _account_id_for_command(backend, username)
    done = await social.block(backend.commands, actor, target)
    return await command_answer(backend, done, {"blocking": True})


@router.delete("/accounts/{username}/block", response_model=schemas.Blocking, responses=PROBLEMS)
async def unblock(username: str, actor: ActorDep, backend: BackendDep) -> Response:
    """Lift a block (idempotent); ended follows stay ended."""
    target = await _account_id_for_command(backend, username)
    done = await social.unblock(backend.commands, actor, target)
    return await command_answer(backend, done, {"blocking": False})


@router.post("/accounts/{username}/mute", response_model=schemas.Muting, responses=PROBLEMS)
async def mute(username: str, actor: ActorDep, backend: BackendDep) -> Response:
    """Mute an account (idempotent): its posts leave your home feed; nothing else changes."""
    target = await _account_id_for_command(backend, username)
    done = await social.mute(backend.commands, actor, target)
    return await command_answer(backend, done, {"muting": True})


@router.delete("/accounts/{username}/mute", response_model=schemas.Muting, responses=PROBLEMS)
async def unmute(username: str, actor: ActorDep, backend: BackendDep) -> Response:
    target = await _account_id_for_command(backend, username)
    done = await social.unmute(backend.commands, actor, target)
    return await command_answer(backend, done, {"muting": False})
