"""What every route shares: the backend, who is signed in, read-your-writes waits,
pagination, the command answer with its consistency token, and error bodies."""
from __future__ import annotations

import base64
import dataclasses
from typing import Annotated, Any

import orjson
from fastapi import Depends, Query, Request, Response
from starlette.responses import JSONResponse as StarletteJSONResponse

from commands.context import Actor, Done
from domain.aggregates import account_stream, fold_account
from domain.events import format_time
from domain.ids import parse_id
from projections.queries import AccountView, account_by_id
from projections.sessions import session_generation
from streams.event_store import ConsistencyToken

from observability.context import CORRELATION_ID

from api.auth import InvalidToken
from api.wiring import Backend

TOKEN_HEADER = "X-Consistency-Token"


class JSONResponse(StarletteJSONResponse):
    """JSON rendered by orjson (fast, and it knows dataclasses and datetimes). A
    JSONResponse subclass, so FastAPI documents each route's response_model."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class HttpError(Exception):
    """An answer with a status and a detail sentence, raised from anywhere in a route."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers or {}


def get_backend(request: Request) -> Backend:
    return request.app.state.backend


BackendDep = Annotated[Backend, Depends(get_backend)]


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HttpError(401, "the Authorization header must be 'Bearer <token>'", {"WWW-Authenticate": "Bearer"})
    return token.strip()


async def optional_account(request: Request, backend: BackendDep) -> str | None:
    """The account a valid bearer token names, None without one, 401 for a bad one. Every
    request checks the token's session generation against the `sessions` read model, so
    a token revoked by signing out everywhere stops working as soon as that is projected
    (the sign-out answers only after it is)."""
    token = bearer_token(request)
    if token is None:
        return None
    try:
        return str(await account_of_token(backend, token))
    except SignedOut as exc:
        raise HttpError(401, "this session was signed out; sign in again", {"WWW-Authenticate": "Bearer"}) from exc
    except InvalidToken as exc:
        raise HttpError(401, f"the bearer token is not valid ({exc}); sign in again", {"WWW-Authenticate": "Bearer"}) from exc


class SignedOut(InvalidToken):
    """A well-formed token of a session that was signed out (sign out everywhere)."""


async def account_of_token(backend: Backend, token: str) -> int:
    """The account a session token names, whichever way it came (a header, a WebSocket
    query or frame). Checked against the `sessions` read model, so a token revoked by
    signing out everywhere stops working as soon as that is projected. Raises InvalidToken."""
    claims = backend.signer.claims(token)
    try:
        account_id = int(claims.account_id)
    except ValueError as exc:
        raise InvalidToken("malformed token") from exc
    if claims.generation < await backend.query(session_generation, account_id):
        raise SignedOut("signed out")
    return account_id


def current_account(account_id: Annotated[str | None, Depends(optional_account)]) -> str:
    if account_id is None:
        raise HttpError(401, "sign in first: send 'Authorization: Bearer <token>'", {"WWW-Authenticate": "Bearer"})
    return account_id


def actor(request: Request, account_id: Annotated[str, Depends(current_account)]) -> Actor:
    return Actor(account_id, CORRELATION_ID.get() or request.headers.get("x-correlation-id") or None)


async def consistent(backend: BackendDep, request: Request) -> None:
    """Read-your-writes: wait until the read models have caught up with the token the
    request carried (checked and parsed once by api.middleware, 400 there if malformed)."""
    wanted: ConsistencyToken | None = getattr(request.state, "consistency_token", None)
    if wanted is None:
        return
    if not await backend.wait_for(wanted, backend.settings.consistency_wait_seconds):
        request.state.consistency_stale = True  # api.middleware adds X-Consistency: stale


Viewer = Annotated[str | None, Depends(optional_account)]
SignedIn = Annotated[str, Depends(current_account)]
ActorDep = Annotated[Actor, Depends(actor)]
Consistent = Depends(consistent)


def encode_cursor(value: int | None) -> str | None:
    if value is None:
        return None
    return base64.urlsafe_b64encode(f"c1:{value}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if cursor is None or cursor == "":
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        prefix, _, value = text.partition(":")
        parsed = parse_id(value) if prefix == "c1" else None
    except (ValueError, UnicodeError):
        parsed = None
    if parsed is None:
        raise HttpError(400, "cursor is not one this server gave out; start again without it")
    return parsed


def encode_key_cursor(value: str | None) -> str | None:
    """A cursor over an index sorted by a text key (search, explore ranks)."""
    if value is None:
        return None
    return base64.urlsafe_b64encode(f"k1:{value}".encode()).decode().rstrip("=")


def decode_key_cursor(cursor: str | None) -> str | None:
    if cursor is None or cursor == "":
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8")
    except (ValueError, UnicodeError):
        text = ""
    if not text.startswith("k1:"):
        raise HttpError(400, "cursor is not one this server gave out; start again without it")
    return text[3:]


class PageParams:
    def __init__(
        self,
        limit: Annotated[int, Query(ge=1, le=100, description="page size, 1 to 100")] = 20,
        cursor: Annotated[str | None, Query(max_length=64, description="next_cursor of the previous page")] = None,
    ) -> None:
        self.limit = limit
        self.cursor = decode_cursor(cursor)


Paging = Annotated[PageParams, Depends(PageParams)]


def parse_path_id(value: str, what: str) -> int:
    parsed = parse_id(value)
    if parsed is None:
        raise HttpError(404, f"{what} {value!r} does not exist")
    return parsed


async def fresh_account(backend: Backend, account_id: str) -> AccountView:
    """An account read right after a command, e.g. the author of a new post: when the
    read model does not have it yet, wait for everything in the log to be projected."""
    found = await backend.query(account_by_id, int(account_id))
    if found is None:
        await backend.wait_for(ConsistencyToken.at_head(await backend.events.head()), backend.settings.consistency_wait_seconds)
        found = await backend.query(account_by_id, int(account_id))
    if found is None:
        # Still not projected (a worker far behind or paused). This often answers a
        # command that is already in the log: a 503 would invite a retry that repeats it
        # (a second post). So answer from the write side; the counts are not known there.
        found = await _account_from_log(backend, account_id)
    if found is None:
        raise HttpError(503, "your account is still being set up; try again in a moment", {"Retry-After": "1"})
    return found


async def _account_from_log(backend: Backend, account_id: str) -> AccountView | None:
    recorded = await backend.events.read_stream(account_stream(account_id))
    account = fold_account(r.event.data for r in recorded)
    if account is None:
        return None
    avatar = dataclasses.asdict(account.avatar) if account.avatar else None
    return AccountView(
        int(account_id), account.username, account.display_name, account.bio, avatar, account.private,
        0, 0, 0, format_time(recorded[0].event.occurred_at),
    )


async def answer_token(backend: Backend, done: Done) -> ConsistencyToken:
    """The token that reads see a command's outcome by: its own, or when nothing changed,
    the current end of the log (which covers the state the command saw)."""
    return done.token or ConsistencyToken.at_head(await backend.events.head())


async def command_answer(backend: Backend, done: Done, body: Any, status: int = 200) -> Response:
    """The answer to a successful command, with the token that reads see it by."""
    token = await answer_token(backend, done)
    if status == 204:
        return Response(status_code=204, headers={TOKEN_HEADER: token.encode()})
    return JSONResponse(body, status_code=status, headers={TOKEN_HEADER: token.encode()})


def page(items: list[Any], next_cursor: int | None) -> JSONResponse:
    return JSONResponse({"items": items, "next_cursor": encode_cursor(next_cursor)})
