"""The home feed."""
from __future__ import annotations

from fastapi import APIRouter, Response

from projections import queries
from projections.home_timeline import feed_page
from projections.store import ReadView

from api import schemas
from api.http import BackendDep, Consistent, Paging, SignedIn, page
from api.presenters import post_json

router = APIRouter(prefix="/v1", tags=["feeds"])


def _feed(view: ReadView, reader: int, cursor: int | None, limit: int) -> queries.Page:
    ids, next_cursor = feed_page(view, reader, cursor, limit)
    return queries.Page(queries.posts_by_id(view, ids, reader), next_cursor)


@router.get("/feed", response_model=schemas.Page[schemas.Post], dependencies=[Consistent])
async def feed(account_id: SignedIn, paging: Paging, backend: BackendDep) -> Response:
    """Posts by the accounts you follow, newest first."""
    result = await backend.query(_feed, int(account_id), paging.cursor, paging.limit)
    return page([post_json(p) for p in result.items], result.next_cursor)
