"""GET /v1/stream: the live WebSocket (notifications, messages, new feed posts).

Authenticate with `?token=` or a first frame `{"type": "auth", "token": "..."}`; resume
with `last_id` (query or that frame): the id of the newest frame seen. Frames are JSON
objects with `type` (notification | message | post | unread | heartbeat | ready |
error) and `id` (time-sortable; keep the largest to resume with). A heartbeat comes
every PHOTOSTREAM_STREAM_HEARTBEAT_SECONDS; a client may send `{"type": "ping"}`.
"""
from __future__ import annotations

import asyncio
import contextlib
import time

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from api.auth import InvalidToken
from api.http import account_of_token
from api.live import Connection, LiveHub, frame, now_id, until_first_ends

router = APIRouter(prefix="/v1", tags=["live"])

AUTH_TIMEOUT = 10.0
CLOSE_UNAUTHORIZED = 4401  # 4000 + the HTTP status it stands for
CLOSE_BAD_REQUEST = 4400
CLOSE_SLOW = 4408  # dropped: did not read fast enough (reconnect with last_id)
CLIENT_FRAME_MAX = 4096


class StreamError(Exception):
    def __init__(self, code: int, detail: str) -> None:
        super().__init__(detail)
        self.code, self.detail = code, detail


def _parse_last_id(raw: object) -> int:
    if raw is None or raw == "":
        return 0
    if isinstance(raw, int) and not isinstance(raw, bool):
        text = str(raw)
    elif isinstance(raw, str):
        text = raw
    else:
        raise StreamError(CLOSE_BAD_REQUEST, "last_id must be an id string")
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        raise StreamError(CLOSE_BAD_REQUEST, f"last_id {text!r} is not an id")
    return int(text)


async def _authenticate(ws: WebSocket) -> tuple[str, int]:
    """(account id, last id) from the query, or else from the first frame."""
    backend = ws.app.state.backend
    token = ws.query_params.get("token")
    last_raw: object = ws.query_params.get("last_id")
    if not token:
        try:
            text = await asyncio.wait_for(ws.receive_text(), AUTH_TIMEOUT)
        except asyncio.TimeoutError as exc:
            raise StreamError(CLOSE_UNAUTHORIZED, "send ?token= or a first frame {\"type\": \"auth\", \"token\": ...}") from exc
        if len(text) > CLIENT_FRAME_MAX:
            raise StreamError(CLOSE_BAD_REQUEST, "the auth frame is too long")
        try:
            first = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise StreamError(CLOSE_BAD_REQUEST, "the first frame must be JSON: {\"type\": \"auth\", \"token\": ...}") from exc
        if not isinstance(first, dict) or first.get("type") != "auth" or not isinstance(first.get("token"), str):
            raise StreamError(CLOSE_UNAUTHORIZED, "the first frame must be {\"type\": \"auth\", \"token\": \"...\"}")
        token = first["token"]
        last_raw = first.get("last_id", last_raw)
    try:
        account = await account_of_token(backend, token)
    except InvalidToken as exc:
        raise StreamError(CLOSE_UNAUTHORIZED, f"the token is not valid ({exc}); sign in again") from exc
    return str(account), _parse_last_id(last_raw)


@router.websocket("/stream")
async def stream(ws: WebSocket) -> None:
    await ws.accept()
    hub: LiveHub = ws.app.state.live
    backend = ws.app.state.backend
    try:
        account, last_id = await _authenticate(ws)
    except StreamError as exc:
        with contextlib.suppress(Exception):
            await ws.send_text(frame("error", None, status=exc.code - 4000, detail=exc.detail).decode())
            await ws.close(exc.code, exc.detail[:120])
        return
    except WebSocketDisconnect:
        return
    conn = hub.connect(int(account))  # before the resume: nothing falls in between
    try:
        backlog = await backend.query(hub.resume_frames, int(account), last_id) if last_id else await backend.query(
            lambda view: [hub._unread_frame(view, int(account))]
        )
        await ws.send_text(frame("ready", None, account_id=account, resumed_from=str(last_id) if last_id else None).decode())
        for data in backlog:
            await ws.send_text(data.decode())
        await _pump(ws, conn, backend.settings.stream_heartbeat_seconds)
    except WebSocketDisconnect:
        pass
    finally:
        hub.disconnect(conn)


async def _pump(ws: WebSocket, conn: Connection, heartbeat: float) -> None:
    """Write queued frames and heartbeats; read client pings; end on either side's close
    or when the connection was dropped for being slow."""

    async def writer() -> None:
        while True:
            try:
                data = await asyncio.wait_for(conn.queue.get(), heartbeat)
            except asyncio.TimeoutError:
                data = frame("heartbeat", None, at=str(now_id()), time=round(time.time(), 3))
            await ws.send_text(data.decode())

    async def reader() -> None:
        while True:
            text = await ws.receive_text()
            if len(text) <= CLIENT_FRAME_MAX and '"ping"' in text:
                conn.offer(frame("pong", None))

    await until_first_ends(writer(), reader(), conn.dropped.wait())
    if conn.dropped.is_set():
        # Its socket may be full: say why if it can still take it, close regardless.
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(ws.close(CLOSE_SLOW, "slow consumer: reconnect with last_id"), 2)
