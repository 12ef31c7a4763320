"""The home feed."""
from __future__ import annotations

from fastapi import APIRouter, Response

from projections import queries

from api import schemas
from api.http import BackendDep, Consistent, Paging, SignedIn, page
from api.presenters import post_json

router = APIRouter(prefix="/v1", tags=["feeds"])


@router.get("/feed", response_model=schemas.Page[schemas.Post], dependencies=[Consistent])
async def feed(account_id: SignedIn, paging: Paging, backend: BackendDep) -> Response:
    """Posts by the accounts you follow, newest first, without those you muted."""
    result = await backend.query(queries.home_feed, int(account_id), paging.cursor, paging.limit)
    return page([post_json(p) for p in result.items], result.next_cursor)
