"""The Mastodon client API: routes that turn Mastodon requests into photostream's
commands and queries, and their answers into Mastodon entities (api.mastodon.entities).
Nothing here stores anything: every write is a command of `commands/`, every read a
query of the read models."""
from __future__ import annotations

import dataclasses
import functools
import html
import importlib.metadata
import re
import time
from typing import Any, Callable
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from commands import accounts as account_commands
from commands import engagement, social
from commands import messages as message_commands
from commands import posts as post_commands
from commands.context import Actor
from domain import rules
from domain.aggregates import account_stream, fold_account, fold_media, media_stream
from domain.errors import InvalidInput, NotAuthenticated, NotFound
from domain.events import CommentAdded, MessageSent, PostCreated, format_time, utc_now
from domain.ids import parse_id
from projections import queries, visibility
from projections.comment_index import post_of_comment
from projections.explore import explore_page
from projections.search import account_term, search_accounts, search_posts, search_tags, tag_term, words_of
from projections.sessions import session_generation

from observability.context import CORRELATION_ID

from api.http import BackendDep, HttpError, JSONResponse, decode_key_cursor, encode_key_cursor, fresh_account
from api.mastodon import entities, oauth
from api.mastodon.common import (
    MActor,
    MSignedIn,
    MViewer,
    Params,
    ParamsDep,
    Window,
    answer,
    page_answer,
    paginate,
    path_id,
    settle,
    viewer_id,
)
from api.ratelimit import limit
from api.routes.media import receive_upload
from api.wiring import Backend

router = APIRouter(tags=["mastodon"])
MASTODON_VERSION = "4.2.0"
STATUS_CHARACTERS = 2200  # domain.rules.CAPTION_MAX


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@functools.cache
def photostream_version() -> str:
    try:
        return importlib.metadata.version("photostream")
    except importlib.metadata.PackageNotFoundError:
        return "0"


# ----- instance ------------------------------------------------------------------------------


def _streaming_url(request: Request) -> str:
    base = base_url(request)
    return ("wss://" + base[len("https://") :]) if base.startswith("https://") else ("ws://" + base[len("http://") :])


@router.get("/api/v1/instance")
async def instance_v1(request: Request, backend: BackendDep) -> Response:
    base = base_url(request)
    return JSONResponse(
        {
            "uri": request.url.netloc,
            "title": "photostream",
            "short_description": "A photo-sharing social network.",
            "description": "A photo-sharing social network, event-sourced.",
            "email": "",
            "version": f"{MASTODON_VERSION} (compatible; photostream {photostream_version()})",
            "urls": {"streaming_api": _streaming_url(request)},
            "stats": {"user_count": 0, "status_count": 0, "domain_count": 1},
            "thumbnail": f"{base}/web/icon.svg",
            "languages": ["en"],
            "registrations": True,
            "approval_required": False,
            "invites_enabled": False,
            "configuration": _configuration(),
            "contact_account": None,
            "rules": [],
        }
    )


def _configuration() -> dict[str, Any]:
    return {
        "accounts": {"max_featured_tags": 0},
        "statuses": {"max_characters": STATUS_CHARACTERS, "max_media_attachments": 10, "characters_reserved_per_url": 23},
        "media_attachments": {
            "supported_mime_types": ["image/jpeg", "image/png", "image/webp", "image/gif"],
            "image_size_limit": 15_000_000,
            "image_matrix_limit": 50_000_000,
            "video_size_limit": 0,
            "video_frame_rate_limit": 0,
            "video_matrix_limit": 0,
        },
        "polls": {"max_options": 0, "max_characters_per_option": 0, "min_expiration": 0, "max_expiration": 0},
    }


@router.get("/api/v2/instance")
async def instance_v2(request: Request) -> Response:
    base = base_url(request)
    return JSONResponse(
        {
            "domain": request.url.netloc,
            "title": "photostream",
            "version": f"{MASTODON_VERSION} (compatible; photostream {photostream_version()})",
            "source_url": "https://example.invalid/photostream",
            "description": "A photo-sharing social network, event-sourced.",
            "usage": {"users": {"active_month": 0}},
            "thumbnail": {"url": f"{base}/web/icon.svg"},
            "languages": ["en"],
            "configuration": {**_configuration(), "urls": {"streaming": _streaming_url(request)}, "translation": {"enabled": False}},
            "registrations": {"enabled": True, "approval_required": False, "message": None},
            "contact": {"email": "", "account": None},
            "rules": [],
        }
    )


@router.get("/api/v1/custom_emojis")
async def custom_emojis() -> Response:
    return JSONResponse([])


# ----- apps and OAuth --------------------------------------------------------------------------


@router.post("/api/v1/apps")
async def create_app(params: ParamsDep, backend: BackendDep) -> Response:
    """Register an app: its client_id and client_secret (signed; nothing is stored)."""
    uris = params.many("redirect_uris")
    client, secret = oauth.register_client(
        backend,
        params.text("client_name", required=True, max_length=oauth.CLIENT_NAME_MAX) or "",
        "\n".join(uris) or oauth.OOB,
        oauth.check_scopes(params.text("scopes", max_length=200)),
        params.text("website", max_length=300),
    )
    return JSONResponse(
        {
            "id": client.client_id[-16:],
            "name": client.name,
            "website": client.website,
            "redirect_uri": "\n".join(client.redirect_uris),
            "redirect_uris": list(client.redirect_uris),
            "scopes": client.scopes.split(),
            "client_id": client.client_id,
            "client_secret": secret,
            "vapid_key": "",
        }
    )


def _token_body(token: str, scopes: str) -> dict[str, Any]:
    return {"access_token": token, "token_type": "Bearer", "scope": scopes, "created_at": int(time.time())}


@router.post("/oauth/token")
async def token(request: Request, params: ParamsDep, backend: BackendDep) -> Response:
    """grant_type authorization_code, password or client_credentials."""
    client = oauth.load_client(backend, params.one("client_id"), params.one("client_secret"))
    grant = params.one("grant_type")
    scopes = oauth.check_scopes(params.text("scope", max_length=200) or client.scopes)
    if grant == "client_credentials":
        return JSONResponse(_token_body(oauth.issue_app_token(backend, client), scopes))
    if grant == "password":
        username = params.text("username", required=True, max_length=200) or ""
        password = params.text("password", required=True, max_length=1000) or ""
        limit(request, "sign_in", username.strip().lower()[:64] or None)
        account = await account_commands.authenticate(backend.commands, username, password)
        issued = backend.signer.issue(account.account_id, generation=account.session_generation)
        return JSONResponse(_token_body(issued, scopes))
    if grant == "authorization_code":
        code = params.text("code", required=True, max_length=4000) or ""
        redirect_uri = params.text("redirect_uri", max_length=1000) or oauth.OOB
        found = oauth.redeem_code(backend, client, code, redirect_uri)
        if found.generation < await backend.query(session_generation, int(found.account_id)):
            raise HttpError(400, "The provided authorization grant is invalid: its session was signed out")
        issued = backend.signer.issue(found.account_id, generation=found.generation)
        return JSONResponse(_token_body(issued, found.scopes))
    raise HttpError(400, "The authorization grant type is not supported: use authorization_code, password or client_credentials")


@router.post("/oauth/revoke")
async def revoke(params: ParamsDep, backend: BackendDep) -> Response:
    """Revoke an access token: photostream's sign-out everywhere (SessionsRevoked), so
    every token of that account stops working (tokens are not stored one by one)."""
    oauth.load_client(backend, params.one("client_id"), params.one("client_secret"))
    value = params.text("token", required=True, max_length=600) or ""
    if oauth.is_app_token(value):
        return JSONResponse({})  # app tokens expire on their own
    try:
        claims = backend.signer.claims(value)
    except Exception:
        return JSONResponse({})  # RFC 7009: an unknown token is no error
    if claims.generation < await backend.query(session_generation, int(claims.account_id)):
        return JSONResponse({})
    done = await account_commands.sign_out_everywhere(backend.commands, Actor(claims.account_id, CORRELATION_ID.get()))
    if done.token is not None and not await backend.wait_for(done.token, max(backend.settings.consistency_wait_seconds, 10)):
        raise HttpError(503, "the revocation is recorded but not yet in effect everywhere; try again", {"Retry-After": "1"})
    return JSONResponse({})


_FORM = """<!doctype html><html><head><meta charset="utf-8"><title>Authorize {app}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family:sans-serif;max-width:26em;margin:3em auto">
<h1>photostream</h1><p><b>{app}</b> asks to use your account ({scopes}).</p>{error}
<form method="post" action="/oauth/authorize">
<input type="hidden" name="client_id" value="{client_id}">
<input type="hidden" name="redirect_uri" value="{redirect_uri}">
<input type="hidden" name="scope" value="{scopes}">
<input type="hidden" name="state" value="{state}">
<p><label>Username <input name="username" autocomplete="username" required></label></p>
<p><label>Password <input name="password" type="password" autocomplete="current-password" required></label></p>
<p><button type="submit">Sign in and authorize</button></p></form></body></html>"""


def _authorize_request(backend: Backend, client_id: str | None, redirect_uri: str | None) -> tuple[oauth.Client, str]:
    client = oauth.load_client(backend, client_id, need_secret=False)
    uri = redirect_uri or client.redirect_uris[0]
    if uri not in client.redirect_uris:
        raise HttpError(400, "The redirect uri included is not valid.")
    return client, uri


def _form(client: oauth.Client, uri: str, scopes: str, state: str, error: str = "", status: int = 200) -> HTMLResponse:
    escape = html.escape
    return HTMLResponse(
        _FORM.format(
            app=escape(client.name),
            scopes=escape(scopes),
            client_id=escape(client.client_id),
            redirect_uri=escape(uri),
            state=escape(state),
            error=f'<p role="alert" style="color:#b00">{escape(error)}</p>' if error else "",
        ),
        status_code=status,
        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"},
    )


@router.get("/oauth/authorize", response_class=HTMLResponse)
async def authorize_page(params: ParamsDep, backend: BackendDep) -> Response:
    """The sign-in page an app sends its user to (response_type=code)."""
    if (params.one("response_type") or "code") != "code":
        raise HttpError(400, "The authorization server does not support this response type: use code")
    client, uri = _authorize_request(backend, params.one("client_id"), params.text("redirect_uri", max_length=1000))
    return _form(client, uri, oauth.check_scopes(params.text("scope", max_length=200) or client.scopes), params.text("state", max_length=500) or "")


@router.post("/oauth/authorize", response_class=HTMLResponse, responses={302: {"description": "to the app's redirect_uri with ?code= and ?state="}})
async def authorize(request: Request, params: ParamsDep, backend: BackendDep) -> Response:
    """Sign in and authorize: a redirect to the app's redirect_uri with ?code= (or, for
    urn:ietf:wg:oauth:2.0:oob, a page showing the code)."""
    client, uri = _authorize_request(backend, params.one("client_id"), params.text("redirect_uri", max_length=1000))
    scopes = oauth.check_scopes(params.text("scope", max_length=200) or client.scopes)
    state = params.text("state", max_length=500) or ""
    username = params.text("username", max_length=200) or ""
    limit(request, "sign_in", username.strip().lower()[:64] or None)
    try:
        account = await account_commands.authenticate(backend.commands, username, params.text("password", max_length=1000) or "")
    except NotAuthenticated:
        return _form(client, uri, scopes, state, "Wrong username or password.")
    code = oauth.issue_code(backend, client, account.account_id, account.session_generation, uri, scopes)
    if uri == oauth.OOB:
        return HTMLResponse(f'<!doctype html><p>Copy this code into the app:</p><p><code id="code">{html.escape(code)}</code></p>', headers={"Cache-Control": "no-store"})
    query = {"code": code, **({"state": state} if state else {})}
    return RedirectResponse(f"{uri}{'&' if '?' in uri else '?'}{urlencode(query)}", status_code=302)


# ----- accounts ----------------------------------------------------------------------------------


@router.post("/api/v1/accounts")
async def register(request: Request, params: ParamsDep, backend: BackendDep) -> Response:
    """Register with an app token (client_credentials); answers the new user's Token.
    email, agreement and locale are accepted and not kept (photostream has no email)."""
    header = request.headers.get("authorization", "")
    scheme, _, app_token = header.partition(" ")
    if scheme.lower() != "bearer" or not oauth.is_app_token(app_token.strip()):
        raise HttpError(401, "The access token is invalid: registering needs an app token (grant_type client_credentials)", {"WWW-Authenticate": "Bearer"})
    oauth.verify_app_token(backend, app_token.strip())
    # The user's token gets the app's scopes (Mastodon.py sends the app's credentials
    # along); checked before anything is recorded.
    requested = params.text("scope", max_length=200)
    if requested is None and params.one("client_id"):
        requested = oauth.load_client(backend, params.one("client_id"), params.one("client_secret")).scopes
    scopes = oauth.check_scopes(requested)
    limit(request, "sign_up", None)
    done = await account_commands.register_account(
        backend.commands,
        params.text("username", required=True, max_length=200) or "",
        params.text("password", required=True, max_length=1000) or "",
        params.text("display_name", max_length=200),
        correlation_id=CORRELATION_ID.get(),
    )
    issued = backend.signer.issue(done.value)
    token = await settle(backend, done)
    return answer(_token_body(issued, scopes), token)


async def _account(backend: Backend, account_id: str, viewer: str | None) -> queries.AccountView:
    """The account by id, 404 when it does not exist or blocks the viewer."""
    numeric = path_id(account_id, "account")
    found = await backend.query(queries.account_by_id, numeric)
    if found is not None and viewer is not None and numeric != int(viewer):
        access = await backend.query(visibility.post_access, int(viewer), [numeric])
        if access[numeric] == visibility.BLOCKED_BY_AUTHOR:
            found = None
    if found is None:
        raise HttpError(404, "Record not found")
    return found


async def _visible(backend: Backend, account_id: str, viewer: str | None) -> queries.AccountView:
    owner = await _account(backend, account_id, viewer)
    access = (await backend.query(visibility.post_access, viewer_id(viewer), [owner.id]))[owner.id]
    if access != visibility.ALLOWED:
        raise HttpError(403, f"{owner.username}'s posts are not visible to you (private account, or blocked)")
    return owner


@router.get("/api/v1/accounts/verify_credentials")
async def verify_credentials(request: Request, account_id: MSignedIn, backend: BackendDep) -> Response:
    found = await fresh_account(backend, account_id)
    return JSONResponse(entities.credential_account(found, base_url(request)))


@router.patch("/api/v1/accounts/update_credentials")
async def update_credentials(request: Request, actor: MActor, params: ParamsDep, backend: BackendDep) -> Response:
    """display_name, note (the bio) and locked (a private account)."""
    locked = params.one("locked")
    changes = account_commands.ProfileChanges(
        display_name=params.text("display_name", max_length=200),
        bio=params.text("note", max_length=2000),
        private=params.flag("locked") if locked is not None else None,
    )
    done = await account_commands.update_profile(backend.commands, actor, changes)
    token = await settle(backend, done)
    found = await fresh_account(backend, actor.account_id or "")
    return answer(entities.credential_account(found, base_url(request)), token)


@router.get("/api/v1/accounts/lookup")
async def lookup(request: Request, params: ParamsDep, viewer: MViewer, backend: BackendDep) -> Response:
    acct = (params.text("acct", required=True, max_length=200) or "").lstrip("@")
    name, _, domain = acct.partition("@")
    if domain and domain != request.url.netloc and domain != request.url.hostname:
        raise HttpError(404, "Record not found")
    try:
        normalized = rules.normalize_username(name)
    except InvalidInput as exc:
        raise HttpError(404, "Record not found") from exc
    found = await backend.query(queries.account_id_by_username, normalized)
    if found is None:
        raise HttpError(404, "Record not found")
    return JSONResponse(entities.account(await _account(backend, str(found), viewer), base_url(request)))


@router.get("/api/v1/accounts/relationships")
async def relationships(params: ParamsDep, account_id: MSignedIn, backend: BackendDep) -> Response:
    ids = [parse_id(i) for i in params.many("id")]
    me = int(account_id)
    return JSONResponse(await backend.query(lambda view: [entities.relationship(view, me, i) for i in ids if i is not None]))


@router.get("/api/v1/accounts/search")
async def account_search(request: Request, params: ParamsDep, viewer: MViewer, backend: BackendDep) -> Response:
    q = params.text("q", required=True, max_length=100) or ""
    found = await _search_accounts(backend, q, viewer, params.integer("limit", 40, 1, 80))
    return JSONResponse([entities.account(a, base_url(request)) for a in found])


@router.get("/api/v1/accounts/{account_id}")
async def show_account(request: Request, account_id: str, viewer: MViewer, backend: BackendDep) -> Response:
    return JSONResponse(entities.account(await _account(backend, account_id, viewer), base_url(request)))


@router.get("/api/v1/accounts/{account_id}/statuses")
async def account_statuses(request: Request, account_id: str, params: ParamsDep, viewer: MViewer, backend: BackendDep) -> Response:
    owner = await _visible(backend, account_id, viewer)
    window, base, me = Window.of(params), base_url(request), viewer_id(viewer)
    # A profile lists posts only (comments are not on profiles), all with media, so
    # exclude_replies and only_media change nothing.

    def read(view: Any) -> tuple[list[dict[str, Any]], int | None]:
        def source(cursor: int | None, n: int) -> tuple[list[Any], int | None]:
            found = queries.posts_of_author(view, owner.id, cursor, n, me)
            return found.items, found.next_cursor

        items, next_max = paginate(source, lambda p: p.id, window)
        return entities.statuses(view, items, base), next_max

    items, next_max = await backend.query(read)
    return page_answer(request, items, next_max)


async def _edges(request: Request, account_id: str, params: Any, viewer: str | None, backend: Backend, query: Any) -> Response:
    owner = await _visible(backend, account_id, viewer)
    window, base = Window.of(params), base_url(request)
    result = await backend.query(query, owner.id, window.max_id, window.limit, viewer_id(viewer))
    return page_answer(request, [entities.account(a, base) for a in result.items], result.next_cursor, newest=None)


@router.get("/api/v1/accounts/{account_id}/followers")
async def followers(request: Request, account_id: str, params: ParamsDep, viewer: MViewer, backend: BackendDep) -> Response:
    return await _edges(request, account_id, params, viewer, backend, queries.followers_of)


@router.get("/api/v1/accounts/{account_id}/following")
async def following(request: Request, account_id: str, params: ParamsDep, viewer: MViewer, backend: BackendDep) -> Response:
    return await _edges(request, account_id, params, viewer, backend, queries.following_of)


async def _target(backend: Backend, account_id: str) -> str:
    """An account id for a command: it must exist on the write side."""
    numeric = path_id(account_id, "account")
    found, _ = await backend.commands.load(account_stream(str(numeric)), fold_account)
    if found is None:
        raise HttpError(404, "Record not found")
    return str(numeric)


async def _relationship_answer(backend: Backend, done: Any, me: str, other: str) -> Response:
    token = await settle(backend, done)
    body = await backend.query(entities.relationship, int(me), int(other))
    return answer(body, token)


@router.post("/api/v1/accounts/{account_id}/follow")
async def follow(request: Request, account_id: str, actor: MActor, backend: BackendDep) -> Response:
    limit(request, "follow", actor.account_id)
    target = await _target(backend, account_id)
    done = await social.follow(backend.commands, actor, target)
    response = await _relationship_answer(backend, done, actor.account_id or "", target)
    return response


@router.post("/api/v1/accounts/{account_id}/unfollow")
async def unfollow(request: Request, account_id: str, actor: MActor, backend: BackendDep) -> Response:
    limit(request, "follow", actor.account_id)
    target = await _target(backend, account_id)
    return await _relationship_answer(backend, await social.unfollow(backend.commands, actor, target), actor.account_id or "", target)


def _graph_route(path: str, command: Any) -> None:
    async def route(account_id: str, actor: MActor, backend: BackendDep) -> Response:
        target = await _target(backend, account_id)
        return await _relationship_answer(backend, await command(backend.commands, actor, target), actor.account_id or "", target)

    route.__name__ = f"mastodon_{path}"
    router.post(f"/api/v1/accounts/{{account_id}}/{path}")(route)


for _path, _command in (("block", social.block), ("unblock", social.unblock), ("mute", social.mute), ("unmute", social.unmute)):
    _graph_route(_path, _command)


@router.get("/api/v1/follow_requests")
async def follow_requests(request: Request, params: ParamsDep, account_id: MSignedIn, backend: BackendDep) -> Response:
    window, base = Window.of(params), base_url(request)
    result = await backend.query(queries.follow_requests_of, int(account_id), window.max_id, window.limit)
    return page_answer(request, [entities.account(a, base) for a in result.items], result.next_cursor, newest=None)


@router.post("/api/v1/follow_requests/{account_id}/authorize")
async def authorize_follow_request(account_id: str, actor: MActor, backend: BackendDep) -> Response:
    follower = await _target(backend, account_id)
    done = await social.approve_follow_request(backend.commands, actor, follower)
    return await _relationship_answer(backend, done, actor.account_id or "", follower)


@router.post("/api/v1/follow_requests/{account_id}/reject")
async def reject_follow_request(account_id: str, actor: MActor, backend: BackendDep) -> Response:
    follower = await _target(backend, account_id)
    done = await social.decline_follow_request(backend.commands, actor, follower)
    return await _relationship_answer(backend, done, actor.account_id or "", follower)


# ----- statuses ----------------------------------------------------------------------------------


async def _status_or_404(backend: Backend, status_id: int, viewer: str | None, base: str) -> dict[str, Any]:
    found = await backend.query(entities.status_by_id, status_id, viewer_id(viewer), base)
    if found is None:
        raise HttpError(404, "Record not found")
    return found


@router.post("/api/v1/statuses")
async def create_status(request: Request, params: ParamsDep, actor: MActor, backend: BackendDep) -> Response:
    """A post (status with media_ids), a comment (in_reply_to_id: a post, or a comment
    of it) or a direct message (visibility direct, to the one @mentioned account)."""
    text = params.text("status", max_length=STATUS_CHARACTERS * 2) or ""
    media_ids = params.many("media_ids")
    reply_to = params.one("in_reply_to_id")
    wanted = params.one("visibility")
    if wanted not in (None, "", "public", "unlisted", "private", "direct"):
        raise HttpError(422, f"Validation failed: visibility {wanted[:40]!r} is not public, unlisted, private or direct")
    if params.flag("sensitive") or (params.one("spoiler_text") or "") or params.one("poll[expires_in]") or params.many("poll[options]"):
        raise HttpError(422, "Validation failed: photostream has no content warnings, sensitive media or polls")
    if params.one("scheduled_at"):
        raise HttpError(422, "Validation failed: photostream does not schedule statuses")
    base = base_url(request)
    if wanted == "direct":
        return await _direct(request, text, media_ids, actor, backend, base)
    me = await fresh_account(backend, actor.account_id or "")
    # A post is as visible as its author's account: never more visible than asked.
    if wanted in ("private",) and not me.private:
        raise HttpError(422, "Validation failed: on photostream a post is as visible as its account; make your account private (locked) for followers-only posts")
    if wanted == "unlisted":
        raise HttpError(422, "Validation failed: photostream has no unlisted posts: every public post is in hashtag feeds and search")
    if reply_to:
        return await _comment(request, reply_to, text, media_ids, actor, backend, base)
    limit(request, "post", actor.account_id)
    done = await post_commands.create_post(backend.commands, actor, text, media_ids)
    created: PostCreated = done.value
    token = await settle(backend, done)
    found = await backend.query(entities.status_by_id, int(created.post_id), int(me.id), base)
    if found is None:  # the projections lag beyond the wait: present it from its event
        post = queries.PostView(
            int(created.post_id), me, created.caption, [dataclasses.asdict(m) for m in created.media], list(created.tags),
            list(rules.parse_mentions(created.caption)), format_time(done.events[0].occurred_at), None, 0, 0, False,
        )
        found = await backend.query(entities.post_status, post, base)
    return answer(found, token)


async def _comment(request: Request, reply_to: str, text: str, media_ids: list[str], actor: Actor, backend: Backend, base: str) -> Response:
    if media_ids:
        raise HttpError(422, "Validation failed: a reply is a comment, and comments have no photos")
    target = parse_id(reply_to)
    if target is None:
        raise HttpError(404, "Record not found")
    # A reply to a comment is a comment on the same post (comments are flat).
    post_id = await backend.query(post_of_comment, target) or target
    limit(request, "comment", actor.account_id)
    done = await engagement.add_comment(backend.commands, actor, str(post_id), text)
    added: CommentAdded = done.value
    token = await settle(backend, done)
    found = await backend.query(entities.status_by_id, int(added.comment_id), int(actor.account_id or 0), base)
    if found is None:
        raise HttpError(503, "the reply is recorded but not yet readable; reload in a moment", {"Retry-After": "1"})
    return answer(found, token)


async def _direct(request: Request, text: str, media_ids: list[str], actor: Actor, backend: Backend, base: str) -> Response:
    names = rules.parse_mentions(text)
    if len(names) != 1:
        raise HttpError(422, "Validation failed: a direct status goes to exactly one @mentioned account (photostream's direct messages are one to one)")
    limit(request, "message", actor.account_id)
    done = await message_commands.send_message(backend.commands, actor, names[0], text, media_ids)
    sent: MessageSent = done.value
    token = await settle(backend, done)
    row = {
        "message_id": int(sent.message_id),
        "sender_id": int(sent.sender_id),
        "text": sent.text,
        "media": [dataclasses.asdict(m) for m in sent.media],
        "created_at": format_time(done.events[0].occurred_at),
    }
    found = await backend.query(entities.message_status, row, base)
    return answer(found, token)


@router.get("/api/v1/statuses/{status_id}")
async def show_status(request: Request, status_id: str, viewer: MViewer, backend: BackendDep) -> Response:
    return JSONResponse(await _status_or_404(backend, path_id(status_id, "status"), viewer, base_url(request)))


@router.delete("/api/v1/statuses/{status_id}")
async def delete_status(request: Request, status_id: str, actor: MActor, backend: BackendDep) -> Response:
    """Delete a post, or a comment (by its author or the post's author)."""
    numeric = path_id(status_id, "status")
    base = base_url(request)
    shown = await _status_or_404(backend, numeric, actor.account_id, base)
    if shown["in_reply_to_id"] is None:
        done = await post_commands.delete_post(backend.commands, actor, str(numeric))
    else:
        done = await engagement.delete_comment(backend.commands, actor, str(numeric))
    token = await settle(backend, done)
    shown["text"] = _plain(shown)
    return answer(shown, token)


def _plain(status: dict[str, Any]) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", status["content"].replace("<br />", "\n").replace("</p><p>", "\n\n")))


@router.get("/api/v1/statuses/{status_id}/context")
async def status_context(request: Request, status_id: str, viewer: MViewer, backend: BackendDep) -> Response:
    found = await backend.query(entities.context, path_id(status_id, "status"), viewer_id(viewer), base_url(request))
    if found is None:
        raise HttpError(404, "Record not found")
    return JSONResponse(found)


async def _post_for_like(backend: Backend, status_id: str) -> int:
    numeric = path_id(status_id, "status")
    if await backend.query(post_of_comment, numeric) is not None:
        raise HttpError(422, "Validation failed: photostream likes posts, not comments")
    return numeric


@router.post("/api/v1/statuses/{status_id}/favourite")
async def favourite(request: Request, status_id: str, actor: MActor, backend: BackendDep) -> Response:
    numeric = await _post_for_like(backend, status_id)
    limit(request, "like", actor.account_id)
    done = await engagement.like(backend.commands, actor, str(numeric))
    token = await settle(backend, done)
    return answer(await _status_or_404(backend, numeric, actor.account_id, base_url(request)), token)


@router.post("/api/v1/statuses/{status_id}/unfavourite")
async def unfavourite(request: Request, status_id: str, actor: MActor, backend: BackendDep) -> Response:
    numeric = await _post_for_like(backend, status_id)
    limit(request, "like", actor.account_id)
    await _status_or_404(backend, numeric, actor.account_id, base_url(request))  # 404 rather than a silent no-op
    done = await engagement.unlike(backend.commands, actor, str(numeric))
    token = await settle(backend, done)
    return answer(await _status_or_404(backend, numeric, actor.account_id, base_url(request)), token)


@router.get("/api/v1/statuses/{status_id}/favourited_by")
async def favourited_by(request: Request, status_id: str, params: ParamsDep, viewer: MViewer, backend: BackendDep) -> Response:
    numeric = path_id(status_id, "status")
    base, me = base_url(request), viewer_id(viewer)
    await _status_or_404(backend, numeric, viewer, base)
    window = Window.of(params)
    result = await backend.query(queries.likers_of, numeric, window.max_id, window.limit, me)
    return page_answer(request, [entities.account(a, base) for a in result.items], result.next_cursor, newest=None)


@router.get("/api/v1/statuses/{status_id}/reblogged_by")
async def reblogged_by(status_id: str, viewer: MViewer, backend: BackendDep) -> Response:
    path_id(status_id, "status")
    return JSONResponse([])  # photostream has no reblogs


# ----- media ---------------------------------------------------------------------------------------


async def _upload(request: Request, params: Any, actor: Actor, backend: Backend) -> Response:
    file = params.file("file")
    if file is None:
        raise HttpError(422, "Validation failed: file can't be blank (multipart field 'file')")
    # description (alt text) and focus are accepted and not kept: photostream has no alt text yet.
    done = await receive_upload(request, file, actor, backend)
    token = await settle(backend, done)
    return answer(entities.media_attachment(dataclasses.asdict(done.value), base_url(request)), token)


@router.post("/api/v2/media")
async def upload_v2(request: Request, params: ParamsDep, actor: MActor, backend: BackendDep) -> Response:
    """Upload a photo; it is processed at once (200, never 202)."""
    return await _upload(request, params, actor, backend)


@router.post("/api/v1/media")
async def upload_v1(request: Request, params: ParamsDep, actor: MActor, backend: BackendDep) -> Response:
    return await _upload(request, params, actor, backend)


@router.get("/api/v1/media/{media_id}")
async def show_media(request: Request, media_id: str, actor: MActor, backend: BackendDep) -> Response:
    """One of your uploads. Media are write-side records (the media stream), owned by
    their uploader: there is no read model of uploads, so this folds the stream."""
    numeric = path_id(media_id, "media")
    media, _ = await backend.commands.load(media_stream(str(numeric)), fold_media)
    if media is None or media.owner_id != actor.account_id:
        raise HttpError(404, "Record not found")
    return JSONResponse(entities.media_attachment(dataclasses.asdict(media.ref), base_url(request)))


# ----- timelines -------------------------------------------------------------------------------------


async def _feed_timeline(request: Request, params: Params, backend: Backend, feed: Callable[[Any, int | None, int], Any]) -> Response:
    """A timeline over one of our feed queries (`feed(view, cursor, n)` -> a page with
    items and next_cursor), paged in Mastodon's windows."""
    window, base = Window.of(params), base_url(request)

    def read(view: Any) -> tuple[list[dict[str, Any]], int | None]:
        def source(cursor: int | None, n: int) -> tuple[list[Any], int | None]:
            found = feed(view, cursor, n)
            return found.items, found.next_cursor

        items, next_max = paginate(source, lambda p: p.id, window)
        return entities.statuses(view, items, base), next_max

    items, next_max = await backend.query(read)
    return page_answer(request, items, next_max)


@router.get("/api/v1/timelines/home")
async def home(request: Request, params: ParamsDep, account_id: MSignedIn, backend: BackendDep) -> Response:
    me = int(account_id)
    return await _feed_timeline(request, params, backend, lambda view, cursor, n: queries.home_feed(view, me, cursor, n))


@router.get("/api/v1/timelines/tag/{hashtag}")
async def tag_timeline(request: Request, hashtag: str, params: ParamsDep, viewer: MViewer, backend: BackendDep) -> Response:
    parsed = rules.parse_tags("#" + hashtag.removeprefix("#"))
    if len(parsed) != 1 or parsed[0] != rules.normalize_tag(hashtag.removeprefix("#")):
        raise HttpError(404, "Record not found")
    me = viewer_id(viewer)
    return await _feed_timeline(request, params, backend, lambda view, cursor, n: queries.tag_feed(view, parsed[0], cursor, n, me))


@router.get("/api/v1/timelines/public")
async def public_timeline(request: Request, params: ParamsDep, viewer: MViewer, backend: BackendDep) -> Response:
    """photostream keeps no global timeline: the public timeline is the explore read
    model (popular recent posts), paged by its own opaque max_id (a rank, not an id)."""
    limit_ = Window.of(params).limit
    raw = params.text("max_id", max_length=256)
    cursor = decode_key_cursor(raw) if raw else None
    base = base_url(request)

    def read(view: Any) -> tuple[list[dict[str, Any]], str | None]:
        posts, after = explore_page(view, viewer_id(viewer), utc_now(), cursor, limit_)
        return entities.statuses(view, posts, base), after

    items, after = await backend.query(read)
    return page_answer(request, items, encode_key_cursor(after), newest=None)


# ----- notifications ----------------------------------------------------------------------------------


ALL_TYPES = frozenset(entities.NOTIFICATION_TYPES.values())


@router.get("/api/v1/notifications")
async def notifications(request: Request, params: ParamsDep, account_id: MSignedIn, backend: BackendDep) -> Response:
    """favourite, mention (also comments on your posts), follow and follow_request."""
    window, base, me = Window.of(params, default=40, most=80), base_url(request), int(account_id)
    wanted = set(params.many("types")) or set(ALL_TYPES)
    types = frozenset(wanted - set(params.many("exclude_types")))

    def read(view: Any) -> tuple[list[dict[str, Any]], int | None]:
        def source(cursor: int | None, n: int) -> tuple[list[Any], int | None]:
            return entities.notifications_page(view, me, cursor, n, base, types)

        return paginate(source, lambda n: int(n["id"]), window)

    items, next_max = await backend.query(read)
    return page_answer(request, items, next_max)


@router.get("/api/v1/notifications/{notification_id}")
async def show_notification(request: Request, notification_id: str, account_id: MSignedIn, backend: BackendDep) -> Response:
    found = await backend.query(entities.notification, int(account_id), path_id(notification_id, "notification"), base_url(request))
    if found is None:
        raise HttpError(404, "Record not found")
    return JSONResponse(found)


@router.post("/api/v1/notifications/clear")
async def clear_notifications(actor: MActor, backend: BackendDep) -> Response:
    """photostream keeps notifications; clearing marks them all read."""
    done = await message_commands.mark_notifications_read(backend.commands, actor, None)
    return answer({}, await settle(backend, done))


# ----- conversations (direct messages) ------------------------------------------------------------------


@router.get("/api/v1/conversations")
async def conversations(request: Request, params: ParamsDep, account_id: MSignedIn, backend: BackendDep) -> Response:
    window, base, me = Window.of(params), base_url(request), int(account_id)
    items, next_max = await backend.query(entities.conversations_page, me, window.max_id, window.limit, base)
    return page_answer(request, items, next_max, newest=None)


@router.post("/api/v1/conversations/{conversation_id}/read")
async def read_conversation(request: Request, conversation_id: str, actor: MActor, backend: BackendDep) -> Response:
    try:
        done = await message_commands.mark_conversation_read(backend.commands, actor, conversation_id, None)
    except NotFound as exc:
        raise HttpError(404, "Record not found") from exc
    token = await settle(backend, done)
    items, _ = await backend.query(entities.conversations_page, int(actor.account_id or 0), None, 40, base_url(request))
    found = next((c for c in items if c["id"] == conversation_id), None)
    if found is None:
        raise HttpError(404, "Record not found")
    return answer(found, token)


# ----- search --------------------------------------------------------------------------------------------


async def _search_accounts(backend: Backend, q: str, viewer: str | None, limit_: int) -> list[queries.AccountView]:
    if not account_term(q):
        return []
    accounts, _ = await backend.query(search_accounts, q, viewer_id(viewer), None, limit_)
    return accounts


@router.get("/api/v2/search")
async def search(request: Request, params: ParamsDep, viewer: MViewer, backend: BackendDep) -> Response:
    """accounts (username and display-name prefixes), hashtags (prefixes) and statuses
    (captions with every word of q): photostream's search read models."""
    q = (params.text("q", required=True, max_length=100) or "").strip()
    kind = params.one("type")
    if kind not in (None, "", "accounts", "hashtags", "statuses"):
        raise HttpError(422, f"Validation failed: type {kind[:40]!r} is not accounts, hashtags or statuses")
    limit_ = params.integer("limit", 20, 1, 40)
    if params.integer("offset", 0, 0, 10_000):
        raise HttpError(422, "Validation failed: offset is not supported; narrow the query instead")
    base = base_url(request)
    body: dict[str, list[Any]] = {"accounts": [], "statuses": [], "hashtags": []}
    if kind in (None, "", "accounts"):
        body["accounts"] = [entities.account(a, base) for a in await _search_accounts(backend, q, viewer, limit_)]
    if kind in (None, "", "hashtags") and tag_term(q) and tag_term(q).replace("_", "").isalnum():
        tags, _ = await backend.query(search_tags, q, None, limit_)
        body["hashtags"] = [{"name": t.name, "url": f"{base}/tags/{t.name}", "history": []} for t in tags]
    words = words_of(q)
    if kind in (None, "", "statuses") and words and len(words) <= 8:

        def read(view: Any) -> list[dict[str, Any]]:
            posts, _ = search_posts(view, q, viewer_id(viewer), None, limit_)
            return entities.statuses(view, posts, base)

        body["statuses"] = await backend.query(read)
    return JSONResponse(body)
