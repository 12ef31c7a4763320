"""What every Mastodon route shares: request parameters however the client sent them,
who is signed in, read-your-writes for clients that know no consistency tokens, and
Mastodon's pagination (max_id / since_id / min_id / limit with Link headers)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Callable, Sequence, TypeVar
from urllib.parse import urlencode

import orjson
from fastapi import Depends, Request, Response
from starlette.datastructures import UploadFile

from commands.context import Actor, Done
from domain.ids import parse_id
from streams.event_store import ConsistencyToken

from observability.context import CORRELATION_ID

from api.http import TOKEN_HEADER, BackendDep, HttpError, JSONResponse, answer_token, bearer_token, optional_account
from api.mastodon import oauth
from api.wiring import Backend

T = TypeVar("T")

# Where the Mastodon routes live: errors there are {"error": "..."} (api.app).
MASTODON_PREFIXES = ("/api/v1/", "/api/v2/", "/oauth/")
PARAM_VALUES_MAX = 100  # values of one array parameter (ids[], media_ids[], ...)


def is_mastodon_path(path: str) -> bool:
    return path.startswith(MASTODON_PREFIXES)


class Params:
    """Query string and body (form, multipart or JSON) merged, Mastodon-style: `x[]=1&x[]=2`
    and `x=1` both give x; the body wins over the query."""

    def __init__(self, values: dict[str, list[Any]]) -> None:
        self.values = values

    def one(self, name: str) -> str | None:
        found = self.values.get(name) or self.values.get(name + "[]")
        if not found:
            return None
        value = found[-1]
        if isinstance(value, UploadFile):
            raise HttpError(422, f"{name} must be text, not a file")
        return value

    def many(self, name: str) -> list[str]:
        found = (self.values.get(name + "[]") or []) + (self.values.get(name) or [])
        if len(found) > PARAM_VALUES_MAX:
            raise HttpError(422, f"{name} has {len(found)} values; at most {PARAM_VALUES_MAX} are allowed")
        if any(isinstance(v, UploadFile) for v in found):
            raise HttpError(422, f"{name} must be text, not a file")
        return [v for v in found if v != ""]

    def text(self, name: str, *, required: bool = False, max_length: int = 10_000) -> str | None:
        value = self.one(name)
        if value is None or (required and not value.strip()):
            if required:
                raise HttpError(422, f"Validation failed: {name} can't be blank")
            return None
        if len(value) > max_length:
            raise HttpError(422, f"Validation failed: {name} is too long (at most {max_length} characters)")
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.one(name)
        if value is None or value == "":
            return default
        lowered = value.strip().lower()
        if lowered in ("true", "1", "on", "yes"):
            return True
        if lowered in ("false", "0", "off", "no"):
            return False
        raise HttpError(422, f"{name} must be true or false, not {value[:40]!r}")

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self.one(name)
        if value is None or value == "":
            return default
        try:
            number = int(value)
        except ValueError as exc:
            raise HttpError(422, f"{name} must be a whole number, not {value[:40]!r}") from exc
        if not low <= number <= high:
            raise HttpError(422, f"{name} must be between {low} and {high}")
        return number

    def file(self, name: str) -> UploadFile | None:
        found = self.values.get(name) or []
        files = [v for v in found if isinstance(v, UploadFile)]
        return files[-1] if files else None


def _flatten_json(body: Any) -> dict[str, list[Any]]:
    if not isinstance(body, dict):
        raise HttpError(422, "the JSON body must be an object")
    out: dict[str, list[Any]] = {}
    for key, value in body.items():
        items = value if isinstance(value, list) else [value]
        texts: list[Any] = []
        for item in items:
            if item is None:
                continue
            if isinstance(item, bool):
                texts.append("true" if item else "false")
            elif isinstance(item, (int, float, str)):
                texts.append(str(item))
            else:
                raise HttpError(422, f"{key} must be a string, a number, a boolean or a list of them")
        out[str(key)] = texts
    return out


async def read_params(request: Request) -> Params:
    values: dict[str, list[Any]] = {}
    for key, value in request.query_params.multi_items():
        values.setdefault(key, []).append(value)
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body: dict[str, list[Any]] = {}
        if kind == "application/json":
            raw = await request.body()
            if raw.strip():
                try:
                    body = _flatten_json(orjson.loads(raw))
                except orjson.JSONDecodeError as exc:
                    raise HttpError(422, "the request body is not valid JSON") from exc
        elif kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
            try:
                form = await request.form(max_files=4, max_fields=1000)
            except Exception as exc:  # a malformed form: the client's fault, say so
                raise HttpError(422, f"the form could not be read ({type(exc).__name__})") from exc
            for key, value in form.multi_items():
                body.setdefault(key, []).append(value)
        values.update(body)
    return Params(values)


ParamsDep = Annotated[Params, Depends(read_params)]


# ----- who is asking ---------------------------------------------------------------------


async def viewer(request: Request, backend: BackendDep) -> str | None:
    """The signed-in account, None for anonymous requests and app-only tokens (client
    credentials), 401 for a token that is not valid (or was revoked)."""
    token = bearer_token(request)
    if token is not None and oauth.is_app_token(token):
        oauth.verify_app_token(backend, token)
        return None
    return await optional_account(request, backend)


def signed_in(account: Annotated[str | None, Depends(viewer)]) -> str:
    if account is None:
        raise HttpError(401, "The access token is invalid: this needs a user's token", {"WWW-Authenticate": "Bearer"})
    return account


def actor_of(request: Request, account: Annotated[str, Depends(signed_in)]) -> Actor:
    return Actor(account, CORRELATION_ID.get() or request.headers.get("x-correlation-id") or None)


MViewer = Annotated[str | None, Depends(viewer)]
MSignedIn = Annotated[str, Depends(signed_in)]
MActor = Annotated[Actor, Depends(actor_of)]


def viewer_id(account: str | None) -> int | None:
    return int(account) if account else None


async def settle(backend: Backend, done: Done) -> ConsistencyToken:
    """Mastodon clients send no consistency token but read right after they write (post,
    then reload the timeline): answer a write only once the read models have it."""
    token = await answer_token(backend, done)
    if done.token is not None:
        await backend.wait_for(done.token, backend.settings.consistency_wait_seconds)
    return token


def answer(body: Any, token: ConsistencyToken | None = None, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    all_headers = dict(headers or {})
    if token is not None:
        all_headers[TOKEN_HEADER] = token.encode()
    return JSONResponse(body, status_code=status, headers=all_headers)


def path_id(value: str, what: str) -> int:
    parsed = parse_id(value)
    if parsed is None:
        raise HttpError(404, "Record not found")
    return parsed


# ----- pagination --------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """Mastodon's page window: max_id (older than), since_id (newer than, newest first),
    min_id (newer than, the oldest of them first in time) and limit."""

    max_id: int | None
    since_id: int | None
    min_id: int | None
    limit: int

    @staticmethod
    def of(params: Params, default: int = 20, most: int = 40) -> Window:
        def one_id(name: str) -> int | None:
            value = params.one(name)
            if value is None or value == "":
                return None
            parsed = parse_id(value)
            if parsed is None:
                raise HttpError(422, f"{name} must be an id, not {value[:40]!r}")
            return parsed

        limit = params.integer("limit", default, 1, 10_000)
        return Window(one_id("max_id"), one_id("since_id"), one_id("min_id"), min(limit, most))


# A source of items newest first: (cursor = start after this, limit) -> (items, next cursor).
Source = Callable[[int | None, int], tuple[list[T], int | None]]
SCAN_PAGES_MAX = 10  # since_id/min_id walk down from the newest at most this many pages


def paginate(source: Source[T], key: Callable[[T], int], window: Window) -> tuple[list[T], int | None]:
    """The items of the window and the max_id of the next (older) page, over a source
    that reads newest first from a cursor. since_id/min_id are answered by reading down
    from the newest (or max_id) until the floor: the read models index newest first."""
    floor = window.min_id if window.min_id is not None else window.since_id
    if floor is None:
        items, next_cursor = source(window.max_id, window.limit)
        return items, next_cursor
    above: list[T] = []
    cursor = window.max_id
    batch = max(window.limit, 40)
    for _ in range(SCAN_PAGES_MAX):
        items, cursor = source(cursor, batch)
        fresh = [i for i in items if key(i) > floor]
        above.extend(fresh)
        if len(fresh) < len(items) or cursor is None:
            break
        if window.min_id is None and len(above) >= window.limit:
            break
    if window.min_id is not None:
        chosen = above[-window.limit :]  # the oldest just above min_id
    else:
        chosen = above[: window.limit]  # the newest above since_id
    next_max = key(chosen[-1]) if chosen and len(chosen) == window.limit else None
    return chosen, next_max


def link_header(request: Request, next_max: int | str | None, newest: int | str | None) -> dict[str, str]:
    """`Link: <...max_id=N>; rel="next", <...min_id=M>; rel="prev"` on the request's URL."""
    base = str(request.url).split("?")[0]
    keep = [(k, v) for k, v in request.query_params.multi_items() if k not in ("max_id", "since_id", "min_id")]
    links = []
    if next_max is not None:
        links.append(f'<{base}?{urlencode(keep + [("max_id", str(next_max))])}>; rel="next"')
    if newest is not None:
        links.append(f'<{base}?{urlencode(keep + [("min_id", str(newest))])}>; rel="prev"')
    return {"Link": ", ".join(links)} if links else {}


def page_answer(request: Request, items: Sequence[dict[str, Any]], next_max: int | str | None, newest: int | str | None = None) -> Response:
    if newest is None and items:
        newest = items[0].get("id")
    return JSONResponse(list(items), headers=link_header(request, next_max, newest))
