"""Hashtag feeds."""
from __future__ import annotations

from fastapi import APIRouter, Response

from domain import rules
from projections import queries

from api import schemas
from api.http import BackendDep, Consistent, HttpError, Paging, Viewer, page
from api.presenters import post_json

router = APIRouter(prefix="/v1", tags=["feeds"])


@router.get("/tags/{tag}/posts", response_model=schemas.Page[schemas.Post], responses={404: {"model": schemas.Problem}}, dependencies=[Consistent])
async def tag_posts(tag: str, paging: Paging, viewer: Viewer, backend: BackendDep) -> Response:
    """Posts with this hashtag (with or without the '#', any case), newest first."""
    parsed = rules.parse_tags("#" + tag.removeprefix("#"))
    if len(parsed) != 1 or parsed[0] != rules.normalize_tag(tag.removeprefix("#")):
        raise HttpError(404, f"{tag!r} is not a hashtag: letters, digits and '_' only")
    result = await backend.query(queries.tag_feed, parsed[0], paging.cursor, paging.limit, int(viewer) if viewer else None)
    return page([post_json(p) for p in result.items], result.next_cursor)
