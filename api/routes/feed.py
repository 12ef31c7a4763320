"""The home feed."""
from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response

from commands.context import Actor
from commands.feed import request_timeline_rebuild
from projections import queries
from projections.home_timeline import feed_page, naive_feed_page
from projections.post_cache import PostCache
from projections.store import ReadView

from api import schemas
from api.http import TOKEN_HEADER, BackendDep, Consistent, Paging, SignedIn, page
from api.presenters import post_json

router = APIRouter(prefix="/v1", tags=["feeds"])
log = logging.getLogger("photostream.feed")


def _feed(
    view: ReadView, reader: int, cursor: int | None, limit: int, cache: PostCache | None, naive: bool
) -> tuple[queries.Page, bool]:
    found = (naive_feed_page if naive else feed_page)(view, reader, cursor, limit)
    return queries.Page(queries.posts_by_id(view, found.ids, reader, cache), found.next_cursor), found.rebuild


@router.get("/feed", response_model=schemas.Page[schemas.Post], dependencies=[Consistent])
async def feed(account_id: SignedIn, paging: Paging, backend: BackendDep, request: Request) -> Response:
    """Posts by the accounts you follow, newest first."""
    # A read-your-writes request reads through the cache: what it waited for is in the store.
    cache = None if request.headers.get(TOKEN_HEADER) else backend.post_cache
    naive = backend.settings.feed_read == "naive"
    result, rebuild = await backend.query(_feed, int(account_id), paging.cursor, paging.limit, cache, naive)
    if rebuild and backend.should_ask_rebuild(int(account_id)):
        # The reader was away and fan-out skipped them: this page was merged from the
        # followed authors; the projection rebuilds the timeline for the next ones.
        try:
            await request_timeline_rebuild(backend.commands, Actor(account_id))
        except Exception:  # the page is right without it; the next read asks again
            log.exception("could not ask for a rebuild of %s's timeline", account_id)
    return page([post_json(p) for p in result.items], result.next_cursor)
