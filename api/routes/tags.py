"""Hashtag feeds."""
from __future__ import annotations

from fastapi import APIRouter, Response

from domain import rules
from projections import queries
from projections.posts_by_tag import tag_page
from projections.store import ReadView

from api import schemas
from api.http import BackendDep, Consistent, HttpError, Paging, Viewer, page
from api.presenters import post_json

router = APIRouter(prefix="/v1", tags=["feeds"])


def _tag_feed(view: ReadView, tag: str, cursor: int | None, limit: int, viewer: int | None) -> queries.Page:
    ids, next_cursor = tag_page(view, tag, cursor, limit)
    return queries.Page(queries.posts_by_id(view, ids, viewer), next_cursor)


@router.get("/tags/{tag}/posts", response_model=schemas.Page[schemas.Post], responses={404: {"model": schemas.Problem}}, dependencies=[Consistent])
async def tag_posts(tag: str, paging: Paging, viewer: Viewer, backend: BackendDep) -> Response:
    """Posts with this hashtag (with or without the '#', any case), newest first."""
    parsed = rules.parse_tags("#" + tag.removeprefix("#"))
    if len(parsed) != 1 or parsed[0] != rules.normalize_tag(tag.removeprefix("#")):
        raise HttpError(404, f"{tag!r} is not a hashtag: letters, digits and '_' only")
    result = await backend.query(_tag_feed, parsed[0], paging.cursor, paging.limit, int(viewer) if viewer else None)
    return page([post_json(p) for p in result.items], result.next_cursor)
