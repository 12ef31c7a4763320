"""Direct messages: send, list conversations, read one, mark it read."""
from __future__ import annotations

from fastapi import APIRouter, Request, Response

from commands import messages as message_commands
from domain.errors import NotFound
from domain.events import MessageSent, format_time

from api import live_views, schemas
from api.ratelimit import limit
from api.http import ActorDep, BackendDep, Consistent, JSONResponse, Paging, SignedIn, command_answer, page
from api.presenters import media_ref_json

router = APIRouter(prefix="/v1", tags=["messages"])
NOT_FOUND = {404: {"model": schemas.Problem}}


@router.post("/messages", status_code=201, response_model=schemas.Message, responses={**NOT_FOUND, 422: {"model": schemas.Problem}})
async def send(body: schemas.NewMessage, actor: ActorDep, backend: BackendDep, request: Request) -> Response:
    """Send a message to an account by username: text, photos (ids from POST /v1/media), or both."""
    limit(request, "message", actor.account_id)
    done = await message_commands.send_message(backend.commands, actor, body.to, body.text, body.media_ids)
    sent: MessageSent = done.value
    answer = {
        "id": sent.message_id,
        "conversation_id": sent.conversation_id,
        "sender_id": sent.sender_id,
        "text": sent.text,
        "media": [media_ref_json(m) for m in sent.media],
        "created_at": format_time(done.events[0].occurred_at),
    }
    return await command_answer(backend, done, answer, 201)


@router.get("/conversations", response_model=schemas.Page[schemas.Conversation], dependencies=[Consistent])
async def conversations(account_id: SignedIn, paging: Paging, backend: BackendDep) -> Response:
    """Your conversations, the one with the newest message first, with unread counts."""
    items, next_cursor = await backend.query(live_views.conversations_page, int(account_id), paging.cursor, paging.limit)
    return page(items, next_cursor)


async def _conversation(backend: object, account_id: str, conversation_id: str) -> dict:
    message_commands.participant_of(conversation_id, account_id)  # 404 for anyone else
    found = await backend.query(live_views.conversation, int(account_id), conversation_id)  # type: ignore[attr-defined]
    if found is None:
        raise NotFound(f"conversation {conversation_id} does not exist")
    return found


@router.get("/conversations/{conversation_id}", response_model=schemas.Conversation, responses=NOT_FOUND, dependencies=[Consistent])
async def conversation(conversation_id: str, account_id: SignedIn, backend: BackendDep) -> Response:
    return JSONResponse(await _conversation(backend, account_id, conversation_id))


@router.get(
    "/conversations/{conversation_id}/messages",
    response_model=schemas.Page[schemas.Message],
    responses=NOT_FOUND,
    dependencies=[Consistent],
)
async def messages(conversation_id: str, account_id: SignedIn, paging: Paging, backend: BackendDep) -> Response:
    """The conversation's messages, newest first. Only its two participants may read it."""
    await _conversation(backend, account_id, conversation_id)
    items, next_cursor = await backend.query(live_views.messages_page, conversation_id, paging.cursor, paging.limit)
    return page(items, next_cursor)


@router.post("/conversations/{conversation_id}/read", response_model=schemas.ReadState, responses=NOT_FOUND)
async def mark_read(conversation_id: str, actor: ActorDep, backend: BackendDep, body: schemas.ReadMark | None = None) -> Response:
    """You have read the conversation up to `up_to` (default: everything so far)."""
    done = await message_commands.mark_conversation_read(backend.commands, actor, conversation_id, body.up_to if body else None)
    return await command_answer(backend, done, {"up_to": done.value})
