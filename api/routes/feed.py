"""The home feed."""
from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response

from commands.context import Actor
from commands.feed import request_timeline_rebuild
from projections import queries

from api import schemas
from api.http import TOKEN_HEADER, BackendDep, Consistent, Paging, SignedIn, page
from api.presenters import post_json

router = APIRouter(prefix="/v1", tags=["feeds"])
log = logging.getLogger("photostream.feed")


@router.get("/feed", response_model=schemas.Page[schemas.Post], dependencies=[Consistent])
async def feed(account_id: SignedIn, paging: Paging, backend: BackendDep, request: Request) -> Response:
    """Posts by the accounts you follow, newest first, without those you muted."""
    # A read-your-writes request reads through the cache: what it waited for is in the store.
    cache = None if request.headers.get(TOKEN_HEADER) else backend.post_cache
    naive = backend.settings.feed_read == "naive"
    result = await backend.query(queries.home_feed, int(account_id), paging.cursor, paging.limit, cache, naive)
    if result.rebuild and backend.should_ask_rebuild(int(account_id)):
        # The reader was away and fan-out skipped them: this page was merged from the
        # followed authors; the projection rebuilds the timeline for the next ones.
        try:
            await request_timeline_rebuild(backend.commands, Actor(account_id))
        except Exception:  # the page is right without it; the next read asks again
            log.exception("could not ask for a rebuild of %s's timeline", account_id)
    return page([post_json(p) for p in result.items], result.next_cursor)
