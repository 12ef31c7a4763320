"""Mastodon's streaming API over photostream's live hub (api.live): the same connections
and deliveries `/v1/stream` uses, with each frame re-presented as a Mastodon event.

* `GET /api/v1/streaming` (WebSocket): `?stream=user&access_token=...`, or messages
  `{"type": "subscribe", "stream": "user"}`; events are `{"stream": ["user"], "event":
  "update" | "notification", "payload": "<JSON string>"}`.
* `GET /api/v1/streaming/user` and `/user/notification` (server-sent events, what
  Mastodon.py's stream_user reads): `event: notification` / `data: <JSON>` blocks and
  `:thump` heartbeats.

The hub's `notification` frames become Mastodon `notification` events and its `post`
frames (a new post by someone the reader follows) `update` events; messages and unread
counts have no Mastodon stream event and are left out.
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator

import orjson
from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import StreamingResponse
from starlette.responses import PlainTextResponse, Response

from api.auth import InvalidToken
from api.http import HttpError, JSONResponse, account_of_token
from api.live import Connection, LiveHub, until_first_ends
from api.mastodon import entities
from api.mastodon.common import MSignedIn

router = APIRouter(tags=["mastodon"])
STREAMS = ("user", "user:notification")


async def mastodon_events(ws_or_request: Any, account: int, conn: Connection, stream: str) -> AsyncIterator[tuple[str, str] | None]:
    """(event, payload JSON) for each hub frame the stream carries; None on a heartbeat."""
    backend = ws_or_request.app.state.backend
    base = str(ws_or_request.base_url).rstrip("/").replace("ws://", "http://").replace("wss://", "https://")
    heartbeat = backend.settings.stream_heartbeat_seconds
    while not conn.dropped.is_set():
        try:
            data = await asyncio.wait_for(conn.queue.get(), heartbeat)
        except asyncio.TimeoutError:
            yield None
            continue
        frame = orjson.loads(data)
        kind = frame.get("type")
        if kind == "notification":
            notification_id = int(frame["notification"]["id"])
            found = await backend.query(entities.notification, account, notification_id, base)
            if found is not None:
                yield "notification", orjson.dumps(found).decode()
        elif kind == "post" and stream == "user":
            status = await backend.query(entities.status_by_id, int(frame["post"]["id"]), account, base)
            if status is not None:
                yield "update", orjson.dumps(status).decode()


async def _account_of(backend: Any, token: str | None) -> int:
    if not token:
        raise HttpError(401, "Missing access token")
    try:
        return await account_of_token(backend, token)
    except InvalidToken as exc:
        raise HttpError(401, "Invalid access token") from exc


@router.get("/api/v1/streaming/health", response_class=PlainTextResponse)
async def health() -> Response:
    return PlainTextResponse("OK")


async def _sse(request: Request, account: int, stream: str) -> StreamingResponse:
    hub: LiveHub = request.app.state.live

    async def body() -> AsyncIterator[bytes]:
        # Connected inside the body, so that a response never started holds no connection.
        conn = hub.connect(account)
        try:
            yield b":)\n\n"
            async for item in mastodon_events(request, account, conn, stream):
                if await request.is_disconnected():
                    break
                if item is None:
                    yield b":thump\n\n"
                else:
                    yield f"event: {item[0]}\ndata: {item[1]}\n\n".encode()
        finally:
            hub.disconnect(conn)

    return StreamingResponse(body(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


# An endless answer: marked so that request/answer tools (tests/test_fuzz.py) skip it.
ENDLESS = {"x-endless-stream": True}


@router.get("/api/v1/streaming/user", response_class=StreamingResponse, openapi_extra=ENDLESS, responses={200: {"content": {"text/event-stream": {}}}})
async def stream_user(request: Request, account_id: MSignedIn) -> StreamingResponse:
    """The user stream as server-sent events: update (home) and notification."""
    return await _sse(request, int(account_id), "user")


@router.get("/api/v1/streaming/user/notification", response_class=StreamingResponse, openapi_extra=ENDLESS, responses={200: {"content": {"text/event-stream": {}}}})
async def stream_user_notifications(request: Request, account_id: MSignedIn) -> StreamingResponse:
    return await _sse(request, int(account_id), "user:notification")


@router.websocket("/api/v1/streaming")
async def streaming_socket(ws: WebSocket) -> None:
    """One WebSocket, Mastodon-style. The token comes as ?access_token= (or the
    Sec-WebSocket-Protocol header, as browsers send it); the stream as ?stream= or
    a subscribe message."""
    backend = ws.app.state.backend
    protocol = ws.headers.get("sec-websocket-protocol")
    token = ws.query_params.get("access_token") or (protocol.split(",")[0].strip() if protocol else None)
    if not token:
        header = ws.headers.get("authorization", "")
        token = header.partition(" ")[2].strip() or None
    await ws.accept(subprotocol=protocol.split(",")[0].strip() if protocol else None)
    try:
        account = await _account_of(backend, token)
    except HttpError as exc:
        with contextlib.suppress(Exception):
            await ws.send_text(orjson.dumps({"error": exc.detail}).decode())
            await ws.close(4401, exc.detail)
        return
    stream = ws.query_params.get("stream")
    if stream is not None and stream not in STREAMS:
        with contextlib.suppress(Exception):
            await ws.send_text(orjson.dumps({"error": f"Unknown stream type: {stream[:40]} (photostream streams user and user:notification)"}).decode())
            await ws.close(4400, "unknown stream")
        return
    subscribed: set[str] = {stream} if stream else set()
    hub: LiveHub = ws.app.state.live
    conn = hub.connect(account)

    async def writer() -> None:
        async for item in mastodon_events(ws, account, conn, "user"):
            if item is None:
                continue  # the WebSocket's own pings keep it open
            event, payload = item
            for name in sorted(subscribed):
                if event == "update" and name != "user":
                    continue
                await ws.send_text(orjson.dumps({"stream": [name], "event": event, "payload": payload}).decode())
                break

    async def reader() -> None:
        while True:
            text = await ws.receive_text()
            try:
                message = orjson.loads(text) if len(text) <= 4096 else None
            except orjson.JSONDecodeError:
                message = None
            if not isinstance(message, dict) or message.get("stream") not in STREAMS:
                await ws.send_text(orjson.dumps({"error": "send {\"type\": \"subscribe\", \"stream\": \"user\"}"}).decode())
                continue
            if message.get("type") == "subscribe":
                subscribed.add(message["stream"])
            elif message.get("type") == "unsubscribe":
                subscribed.discard(message["stream"])

    try:
        await until_first_ends(writer(), reader(), conn.dropped.wait())
    finally:
        hub.disconnect(conn)
        with contextlib.suppress(Exception):
            await ws.close()


__all__ = ["router", "JSONResponse"]
