"""Routes of media: upload, and serving the stored variants."""
from __future__ import annotations

import re

from fastapi import APIRouter, Request, Response, UploadFile

from commands.context import Actor, Done
from commands.media import store_media

from api import schemas
from api.http import ActorDep, BackendDep, HttpError, command_answer
from api.presenters import media_ref_json
from api.ratelimit import LIMITED, limit
from api.wiring import Backend

router = APIRouter(tags=["media"])

# Keys: "<id>/<128-bit capability>/<variant>-<sha256 prefix>.<ext>"; the hash is the ETag.
# Keys written before capabilities existed ("<id>/<variant>-...") are still served.
KEY_RE = re.compile(r"^[0-9]{1,20}/(?:[0-9a-f]{32}/)?[a-z]+-([0-9a-f]{16})\.[a-z]{3,4}$")
CACHE_FOREVER = "public, max-age=31536000, immutable"


@router.post(
    "/v1/media",
    status_code=201,
    response_model=schemas.Media,
    responses={413: {"model": schemas.Problem}, 415: {"model": schemas.Problem}, 422: {"model": schemas.Problem}, **LIMITED},
)
async def upload(file: UploadFile, actor: ActorDep, request: Request, backend: BackendDep) -> Response:
    """Upload one photo (multipart form field `file`): JPEG, PNG, WebP or GIF, at most
    15 MB and 50 megapixels, detected from its bytes. Metadata is stripped."""
    done = await receive_upload(request, file, actor, backend)
    return await command_answer(backend, done, media_ref_json(done.value), 201)


async def receive_upload(request: Request, file: UploadFile, actor: Actor, backend: Backend) -> Done:
    """An upload, whichever API it came through: rate-limited, read no further than the
    size limit, stored (processed and MediaStored appended)."""
    limit(request, "upload", actor.account_id)
    most = backend.settings.max_upload_bytes
    data = await file.read(most + 1)
    if len(data) > most:
        raise HttpError(413, f"the file is larger than {most / 1_000_000:.0f} MB, the most a photo may be")
    return await store_media(backend.commands, actor, data)


@router.get("/media/{key:path}", response_class=Response, responses={200: {"content": {"image/jpeg": {}}}, 304: {}, 404: {"model": schemas.Problem}})
async def media_file(key: str, request: Request, backend: BackendDep) -> Response:
    match = KEY_RE.match(key)
    if match is None:
        raise HttpError(404, "no such media")
    etag = f'"{match.group(1)}"'
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": CACHE_FOREVER})
    stored = await backend.media.get(key)
    if stored is None:
        raise HttpError(404, "no such media")
    return Response(
        stored.data,
        media_type=stored.content_type,
        headers={"ETag": etag, "Cache-Control": CACHE_FOREVER, "X-Content-Type-Options": "nosniff"},
    )
