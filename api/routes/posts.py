"""Routes of posts, likes and comments."""
from __future__ import annotations

from fastapi import APIRouter, Request, Response

from commands import engagement
from commands import posts as post_commands
from domain.events import CommentAdded, PostCreated, format_time
from projections import queries

from api import schemas
from api.http import ActorDep, fresh_account, BackendDep, Consistent, HttpError, Paging, Viewer, command_answer, page, parse_path_id
from api.presenters import account_json, comment_json, new_comment_json, new_post_json, post_json
from api.ratelimit import LIMITED, limit
from api.wiring import Backend

router = APIRouter(prefix="/v1", tags=["posts"])
NOT_FOUND = {404: {"model": schemas.Problem}}
FORBIDDEN = {403: {"model": schemas.Problem}}


@router.post("/posts", status_code=201, response_model=schemas.Post, responses={422: {"model": schemas.Problem}, **LIMITED})
async def create_post(body: schemas.NewPost, actor: ActorDep, request: Request, backend: BackendDep) -> Response:
    limit(request, "post", actor.account_id)
    done = await post_commands.create_post(backend.commands, actor, body.caption, body.media_ids)
    created: PostCreated = done.value
    author = await fresh_account(backend, created.author_id)
    return await command_answer(backend, done, new_post_json(created, author, format_time(done.events[0].occurred_at)), 201)


@router.get("/posts/{post_id}", response_model=schemas.Post, responses=NOT_FOUND, dependencies=[Consistent])
async def get_post(post_id: str, viewer: Viewer, backend: BackendDep) -> Response:
    found = await backend.query(queries.post_by_id, parse_path_id(post_id, "post"), int(viewer) if viewer else None)
    if found is None:
        raise HttpError(404, f"post {post_id} does not exist")
    return post_json(found)  # type: ignore[return-value]


@router.patch("/posts/{post_id}", response_model=schemas.Post, responses={**NOT_FOUND, **FORBIDDEN})
async def edit_post(post_id: str, body: schemas.PostPatch, actor: ActorDep, backend: BackendDep) -> Response:
    numeric = parse_path_id(post_id, "post")
    done = await post_commands.edit_post(backend.commands, actor, post_id, body.caption)
    if done.token is not None:
        await backend.wait_for(done.token, backend.settings.consistency_wait_seconds)
    found = await backend.query(queries.post_by_id, numeric, int(actor.account_id or 0))
    if found is None:
        raise HttpError(404, f"post {post_id} does not exist")
    return await command_answer(backend, done, post_json(found))


@router.delete("/posts/{post_id}", status_code=204, response_class=Response, responses={**NOT_FOUND, **FORBIDDEN})
async def delete_post(post_id: str, actor: ActorDep, backend: BackendDep) -> Response:
    parse_path_id(post_id, "post")
    done = await post_commands.delete_post(backend.commands, actor, post_id)
    return await command_answer(backend, done, None, 204)


@router.post("/posts/{post_id}/like", response_model=schemas.LikeState, responses={**NOT_FOUND, **LIMITED})
async def like(post_id: str, actor: ActorDep, request: Request, backend: BackendDep) -> Response:
    limit(request, "like", actor.account_id)
    parse_path_id(post_id, "post")
    done = await engagement.like(backend.commands, actor, post_id)
    return await command_answer(backend, done, {"liked": True})


@router.delete("/posts/{post_id}/like", response_model=schemas.LikeState, responses={**NOT_FOUND, **LIMITED})
async def unlike(post_id: str, actor: ActorDep, request: Request, backend: BackendDep) -> Response:
    limit(request, "like", actor.account_id)
    parse_path_id(post_id, "post")
    done = await engagement.unlike(backend.commands, actor, post_id)
    return await command_answer(backend, done, {"liked": False})


@router.get("/posts/{post_id}/likes", response_model=schemas.Page[schemas.Account], responses=NOT_FOUND, dependencies=[Consistent])
async def likes(post_id: str, paging: Paging, viewer: Viewer, backend: BackendDep) -> Response:
    numeric = parse_path_id(post_id, "post")
    viewer_id = int(viewer) if viewer else None
    if await backend.query(queries.post_by_id, numeric, viewer_id) is None:  # also when hidden from the viewer
        raise HttpError(404, f"post {post_id} does not exist")
    result = await backend.query(queries.likers_of, numeric, paging.cursor, paging.limit, viewer_id)

    return page([account_json(a) for a in result.items], result.next_cursor)


@router.post("/posts/{post_id}/comments", status_code=201, response_model=schemas.Comment, responses={**NOT_FOUND, **LIMITED})
async def add_comment(post_id: str, body: schemas.NewComment, actor: ActorDep, request: Request, backend: BackendDep) -> Response:
    limit(request, "comment", actor.account_id)
    parse_path_id(post_id, "post")
    done = await engagement.add_comment(backend.commands, actor, post_id, body.text)
    added: CommentAdded = done.value
    author = await fresh_account(backend, added.author_id)
    return await command_answer(backend, done, new_comment_json(added, author, format_time(done.events[0].occurred_at)), 201)


@router.get("/posts/{post_id}/comments", response_model=schemas.Page[schemas.Comment], responses=NOT_FOUND, dependencies=[Consistent])
async def comments(post_id: str, paging: Paging, viewer: Viewer, backend: BackendDep) -> Response:
    numeric = parse_path_id(post_id, "post")
    viewer_id = int(viewer) if viewer else None
    if await backend.query(queries.post_by_id, numeric, viewer_id) is None:  # also when hidden from the viewer
        raise HttpError(404, f"post {post_id} does not exist")
    result = await backend.query(queries.comments_of, numeric, paging.cursor, paging.limit, viewer_id)
    return page([comment_json(c) for c in result.items], result.next_cursor)


@router.delete("/comments/{comment_id}", status_code=204, response_class=Response, responses={**NOT_FOUND, **FORBIDDEN})
async def delete_comment(comment_id: str, actor: ActorDep, backend: BackendDep) -> Response:
    parse_path_id(comment_id, "comment")
    done = await engagement.delete_comment(backend.commands, actor, comment_id)
    return await command_answer(backend, done, None, 204)
