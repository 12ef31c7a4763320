"""Routes of accounts, sessions and the follow graph."""
from __future__ import annotations

from fastapi import APIRouter, Response

from commands import accounts as account_commands
from commands import social
from domain import rules
from domain.errors import InvalidInput
from domain.events import AccountRegistered, format_time
from projections import queries

from observability.context import CORRELATION_ID

from api import schemas
from api.http import ActorDep, fresh_account, BackendDep, Consistent, HttpError, Paging, SignedIn, Viewer, command_answer, page
from api.presenters import account_json, post_json
from api.wiring import Backend

router = APIRouter(prefix="/v1", tags=["accounts"])


def _username(raw: str) -> str:
    try:
        return rules.normalize_username(raw)
    except InvalidInput as exc:
        raise HttpError(404, f"account {raw!r} does not exist") from exc


async def _account_or_404(backend: Backend, username: str) -> queries.AccountView:
    found = await backend.query(queries.account_by_username, _username(username))
    if found is None:
        raise HttpError(404, f"account {username!r} does not exist")
    return found


async def _account_id_for_command(backend: Backend, username: str) -> str:
    """Commands resolve usernames on the write side, never through a projection."""
    owner = await backend.events.lookup_unique(account_commands.USERNAMES, _username(username))
    if owner is None:
        raise HttpError(404, f"account {username!r} does not exist")
    return owner


@router.post("/accounts", status_code=201, response_model=schemas.Session, responses={409: {"model": schemas.Problem}})
async def sign_up(body: schemas.SignUp, backend: BackendDep) -> Response:
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


@router.post("/sessions", response_model=schemas.Session, responses={401: {"model": schemas.Problem}})
async def sign_in(body: schemas.SignIn, backend: BackendDep) -> Response:
    account_id = await account_commands.authenticate(backend.commands, body.username, body.password)
    account = await fresh_account(backend, account_id)
    return {"account": account_json(account), "token": backend.signer.issue(account_id)}  # type: ignore[return-value]


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


@router.get("/accounts/{username}", response_model=schemas.Account, responses={404: {"model": schemas.Problem}}, dependencies=[Consistent])
async def account(username: str, backend: BackendDep) -> Response:
    return account_json(await _account_or_404(backend, username))  # type: ignore[return-value]


@router.post("/accounts/{username}/follow", response_model=schemas.Following, responses={400: {"model": schemas.Problem}, 404: {"model": schemas.Problem}})
async def follow(username: str, actor: ActorDep, backend: BackendDep) -> Response:
    followee = await _account_id_for_command(backend, username)
    done = await social.follow(backend.commands, actor, followee)
    return await command_answer(backend, done, {"following": True})


@router.delete("/accounts/{username}/follow", response_model=schemas.Following, responses={404: {"model": schemas.Problem}})
async def unfollow(username: str, actor: ActorDep, backend: BackendDep) -> Response:
    followee = await _account_id_for_command(backend, username)
    done = await social.unfollow(backend.commands, actor, followee)
    return await command_answer(backend, done, {"following": False})


@router.get("/accounts/{username}/followers", response_model=schemas.Page[schemas.Account], dependencies=[Consistent])
async def followers(username: str, paging: Paging, backend: BackendDep) -> Response:
    owner = await _account_or_404(backend, username)
    result = await backend.query(queries.followers_of, owner.id, paging.cursor, paging.limit)
    return page([account_json(a) for a in result.items], result.next_cursor)


@router.get("/accounts/{username}/following", response_model=schemas.Page[schemas.Account], dependencies=[Consistent])
async def following(username: str, paging: Paging, backend: BackendDep) -> Response:
    owner = await _account_or_404(backend, username)
    result = await backend.query(queries.following_of, owner.id, paging.cursor, paging.limit)
    return page([account_json(a) for a in result.items], result.next_cursor)


@router.get("/accounts/{username}/posts", response_model=schemas.Page[schemas.Post], dependencies=[Consistent])
async def posts(username: str, paging: Paging, viewer: Viewer, backend: BackendDep) -> Response:
    owner = await _account_or_404(backend, username)
    viewer_id = int(viewer) if viewer else None
    result = await backend.query(queries.posts_of_author, owner.id, paging.cursor, paging.limit, viewer_id)
    return page([post_json(p) for p in result.items], result.next_cursor)


