"""Pure ASGI middleware: request body limits, security headers, the X-Consistency
header, session consistency tokens, request metrics, the correlation id
(X-Correlation-Id in, or a new one; echoed on the response).

A command answers with the token of its own events. When the request carried a token
too, the answer's token is the merge of both (per partition, the later position), so a
client that sends its token with every request and keeps the one it gets back holds a
session token covering all its writes, not only its newest one: a follow then a post
then a feed read waits for the follow as well.

Body limits are enforced while the body streams in, so a huge upload is refused with 413
before it is read into memory or spooled to disk.
"""
from __future__ import annotations

import time
import uuid
from typing import Any, Awaitable, Callable

import orjson

from observability.context import CORRELATION_ID
from streams.event_store import ConsistencyToken

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON_BODY_LIMIT = 64 * 1024
MAX_TOKEN_LENGTH = 512  # a token names each partition once: far below this

# The web app's policy: its own scripts, styles and API only; photos may come from the
# media store's own origin (S3/MinIO URLs) too; never framed (clickjacking); no plugins.
# index.html carries the same policy in a <meta> tag, which cannot say frame-ancestors.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data: http: https:; "
    "connect-src 'self'; font-src 'self'; media-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
]
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
# API answers may be private (a feed, a private account's posts): no shared cache keeps them.
NO_STORE = (b"cache-control", b"no-store")


def _with_security_headers(scope: Scope, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    present = {name.lower() for name, _ in headers}
    added = [h for h in SECURITY_HEADERS if h[0] not in present]
    if scope.get("scheme") == "https" and HSTS[0] not in present:
        added.append(HSTS)
    if scope["path"].startswith("/v1/") and NO_STORE[0] not in present:
        added.append(NO_STORE)
    return [*headers, *added]


class BodyTooLarge(Exception):
    pass


class PhotostreamMiddleware:
    def __init__(self, app: ASGIApp, *, upload_limit: int, observe: Callable[[str, str, int, float], None] | None = None) -> None:
        self.app = app
        # Multipart framing adds a little around the file itself.
        self.upload_limit = upload_limit + 64 * 1024
        self.observe = observe

    def _limit(self, scope: Scope) -> int:
        return self.upload_limit if scope["path"] == "/v1/media" else JSON_BODY_LIMIT

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(send, limit)
            return
        sent_header = headers.get(b"x-consistency-token")
        sent: ConsistencyToken | None = None
        if sent_header:
            sent, problem = _parse_token(sent_header)
            if problem:
                await _answer(send, 400, problem)
                return
            # Reads wait on it (api.http.consistent) without parsing it again.
            scope.setdefault("state", {})["consistency_token"] = sent
        received = 0
        started = time.perf_counter()
        status_seen = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal status_seen, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status_seen = message["status"]
                headers = _with_security_headers(scope, list(message.get("headers", [])))
                state = scope.get("state") or {}
                extra = [(b"x-correlation-id", correlation.encode("latin-1"))]
                if state.get("consistency_stale"):
                    extra.append((b"x-consistency", b"stale"))
                headers += extra
                if sent:
                    headers = _merge_token(headers, sent)
                message = {**message, "headers": headers}
            await send(message)

        # The correlation id follows the request into its log lines and its events.
        given = headers.get(b"x-correlation-id", b"").decode("latin-1").strip()
        correlation = given if given and len(given) <= 128 and given.isprintable() else str(uuid.uuid4())
        reset = CORRELATION_ID.set(correlation)
        try:
            await self.app(scope, limited_receive, send_with_headers)
        except BodyTooLarge:
            if not response_started:
                await _too_large(send, limit)
                status_seen = 413
        finally:
            CORRELATION_ID.reset(reset)
            if self.observe is not None:
                route = scope.get("route")
                path = getattr(route, "path", None) or "unmatched"
                self.observe(scope["method"], path, status_seen, time.perf_counter() - started)


def _parse_token(sent: bytes) -> tuple[ConsistencyToken | None, str | None]:
    """The request's token, or why it is refused (checked once, here, for every route)."""
    if len(sent) > MAX_TOKEN_LENGTH:
        return None, "X-Consistency-Token is longer than any token this server issues"
    try:
        return ConsistencyToken.decode(sent.decode("ascii")), None
    except (ValueError, UnicodeError):
        return None, "X-Consistency-Token is not a token this server issued; send back the one an answer carried"


def _merge_token(headers: list[tuple[bytes, bytes]], theirs: ConsistencyToken) -> list[tuple[bytes, bytes]]:
    """The answer's token merged with the request's."""
    merged = []
    for name, value in headers:
        if name.lower() == b"x-consistency-token":
            try:
                value = ConsistencyToken.decode(value.decode("ascii")).merge(theirs).encode().encode()
            except (ValueError, UnicodeError):
                pass
        merged.append((name, value))
    return merged


async def _too_large(send: Send, limit: int) -> None:
    await _answer(send, 413, f"the request body is larger than {limit // 1024} KiB, the most this route accepts")


async def _answer(send: Send, status: int, detail: str) -> None:
    body = orjson.dumps({"detail": detail})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*SECURITY_HEADERS, (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})
