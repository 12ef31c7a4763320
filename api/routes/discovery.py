"""Search, explore, who to follow and follow paths."""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from domain import rules
from domain.errors import InvalidInput
from domain.events import utc_now
from projections import queries
from projections.explore import explore_page
from projections.graph import PATH_DEPTH_MAX, shortest_path, suggestions
from projections.search import account_term, search_accounts, search_posts, search_tags, tag_term, words_of

from api import schemas
from api.http import (
    BackendDep,
    Consistent,
    HttpError,
    JSONResponse,
    Viewer,
    decode_cursor,
    decode_key_cursor,
    encode_cursor,
    encode_key_cursor,
)
from api.presenters import account_json, post_json
from api.wiring import Backend

router = APIRouter(prefix="/v1", tags=["discovery"])

Q_MAX = 100
QUERY_WORDS_MAX = 8
_TAG_TERM_RE = re.compile(r"\w+", re.UNICODE)

Limit = Annotated[int, Query(ge=1, le=100, description="page size, 1 to 100")]
Cursor = Annotated[str | None, Query(max_length=256, description="next_cursor of the previous page")]


def _items(items: list[Any], next_cursor: str | None) -> JSONResponse:
    return JSONResponse({"items": items, "next_cursor": next_cursor})


def _check_q(q: str | None) -> str:
    if q is None or not q.strip():
        raise InvalidInput("q must not be empty: say what to search for", field="q")
    if len(q) > Q_MAX:
        raise InvalidInput(f"q is {len(q)} characters; at most {Q_MAX} are allowed", field="q")
    return q


@router.get(
    "/search",
    response_model=schemas.Page[schemas.Account] | schemas.Page[schemas.TagHit] | schemas.Page[schemas.Post],
    responses={422: {"model": schemas.Problem}},
    dependencies=[Consistent],
)
async def search(
    backend: BackendDep,
    viewer: Viewer,
    q: Annotated[str | None, Query(description="what to look for; case and accents do not matter")] = None,
    type: Annotated[Literal["accounts", "tags", "posts"], Query(description="what to find")] = "accounts",
    limit: Limit = 20,
    cursor: Cursor = None,
) -> Response:
    """Accounts (by username or display-name prefix: the exact username first, then the
    most followed), hashtags (by prefix, by name, with post counts) or posts (whose
    captions have every word of q, newest first)."""
    q = _check_q(q)
    viewer_id = int(viewer) if viewer else None
    if type == "accounts":
        if not account_term(q):
            raise InvalidInput("q has nothing to look for once '@' and spaces are removed", field="q")
        accounts, after = await backend.query(search_accounts, q, viewer_id, decode_key_cursor(cursor), limit)
        return _items([account_json(a) for a in accounts], encode_key_cursor(after))
    if type == "tags":
        if not _TAG_TERM_RE.fullmatch(tag_term(q)):
            raise InvalidInput("a hashtag search is letters, digits and '_', with or without a leading '#'", field="q")
        tags, after = await backend.query(search_tags, q, decode_key_cursor(cursor), limit)
        return _items([{"name": t.name, "post_count": t.post_count} for t in tags], encode_key_cursor(after))
    words = words_of(q)
    if not words:
        raise InvalidInput("q has no words to search captions for (letters or digits)", field="q")
    if len(words) > QUERY_WORDS_MAX:
        raise InvalidInput(f"q has {len(words)} words; at most {QUERY_WORDS_MAX} are allowed", field="q")
    posts, last = await backend.query(search_posts, q, viewer_id, decode_cursor(cursor), limit)
    return _items([post_json(p) for p in posts], encode_cursor(last))


@router.get("/explore", response_model=schemas.Page[schemas.Post], dependencies=[Consistent])
async def explore(backend: BackendDep, viewer: Viewer, limit: Limit = 20, cursor: Cursor = None) -> Response:
    """Popular recent posts: likes and comments of the last days, the recent ones
    weighing most (a half-life of hours); never your own posts."""
    viewer_id = int(viewer) if viewer else None
    posts, after = await backend.query(explore_page, viewer_id, utc_now(), decode_key_cursor(cursor), limit)
    return _items([post_json(p) for p in posts], encode_key_cursor(after))


async def _account(backend: Backend, username: str, what: str = "account") -> queries.AccountView:
    try:
        name = rules.normalize_username(username)
    except InvalidInput as exc:
        raise HttpError(404, f"{what} {username!r} does not exist") from exc
    found = await backend.query(queries.account_by_username, name)
    if found is None:
        raise HttpError(404, f"{what} {username!r} does not exist")
    return found


@router.get(
    "/accounts/{username}/suggestions",
    response_model=schemas.Page[schemas.Suggestion],
    responses={404: {"model": schemas.Problem}},
    dependencies=[Consistent],
)
async def who_to_follow(username: str, backend: BackendDep, viewer: Viewer, limit: Limit = 20, cursor: Cursor = None) -> Response:
    """People followed by the people this account follows, most such followers first;
    never the account itself nor anyone it already follows."""
    owner = await _account(backend, username)
    viewer_id = int(viewer) if viewer else None
    found, next_offset = await backend.query(suggestions, owner.id, viewer_id, decode_cursor(cursor) or 0, limit)
    items = [{**account_json(s.account), "followed_by_count": s.followed_by_count} for s in found]
    return _items(items, encode_cursor(next_offset))


@router.get("/graph/path", response_model=schemas.FollowPath, responses={404: {"model": schemas.Problem}}, dependencies=[Consistent])
async def follow_path(
    backend: BackendDep,
    viewer: Viewer,
    from_: Annotated[str, Query(alias="from", max_length=64, description="username where the path starts")],
    to: Annotated[str, Query(max_length=64, description="username where it ends")],
    max_depth: Annotated[int, Query(ge=1, le=PATH_DEPTH_MAX, description=f"most follows in the path, 1 to {PATH_DEPTH_MAX}")] = PATH_DEPTH_MAX,
) -> Response:
    """The shortest chain of follows from one account to another (from follows a, a
    follows b, ..., which follows to), if there is one of at most max_depth follows."""
    start = await _account(backend, from_, "account (from)")
    end = await _account(backend, to, "account (to)")
    found = await backend.query(shortest_path, start.id, end.id, max_depth, int(viewer) if viewer else None)
    accounts = await backend.query(queries.accounts_by_id, found.path)
    path = [account_json(a) for a in accounts if a is not None]
    body: dict[str, Any] = {
        "from": account_json(start),
        "to": account_json(end),
        "found": bool(found.path),
        "length": len(found.path) - 1 if found.path else None,
        "path": path,
        "max_depth": max_depth,
        "complete": found.complete,
    }
    if not found.path:
        body["detail"] = (
            f"{start.username} cannot reach {end.username} in at most {max_depth} follows"
            if found.complete
            else f"no path found from {start.username} to {end.username} within the search limits; one may still exist"
        )
    return JSONResponse(body)
