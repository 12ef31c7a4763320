"""Notifications: the list, the unread counts, marking them read."""
from __future__ import annotations

from fastapi import APIRouter, Response

from commands import messages as message_commands

from api import live_views, schemas
from api.http import ActorDep, BackendDep, Consistent, JSONResponse, Paging, SignedIn, command_answer, page

router = APIRouter(prefix="/v1", tags=["notifications"])


def window_ms(backend: object) -> int:
    return int(backend.settings.notification_group_hours * 3600 * 1000)  # type: ignore[attr-defined]


@router.get("/notifications", response_model=schemas.Page[schemas.Notification], dependencies=[Consistent])
async def notifications(account_id: SignedIn, paging: Paging, backend: BackendDep) -> Response:
    """What happened to you, newest first; likes of one post within a window are one."""
    items, next_cursor = await backend.query(live_views.notifications_page, int(account_id), paging.cursor, paging.limit)
    return page(items, next_cursor)


@router.get("/notifications/unread", response_model=schemas.UnreadCounts, dependencies=[Consistent])
async def unread(account_id: SignedIn, backend: BackendDep) -> Response:
    """Unread notifications and unread messages (the badges)."""
    return JSONResponse(await backend.query(live_views.unread_counts, int(account_id), window_ms(backend)))


@router.post("/notifications/read", response_model=schemas.ReadState, responses={422: {"model": schemas.Problem}})
async def mark_read(actor: ActorDep, backend: BackendDep, body: schemas.ReadMark | None = None) -> Response:
    """Everything up to `up_to` (default: everything so far) is read."""
    done = await message_commands.mark_notifications_read(backend.commands, actor, body.up_to if body else None)
    return await command_answer(backend, done, {"up_to": done.value})
