"""THE hooks through which every discovery answer (search, explore, suggestions, follow
paths) decides what a reader must not be shown. Each discovery query calls one of them
with the candidates it is about to answer and drops the ones returned; the decisions
themselves are projections.visibility's.

- Accounts (account search, suggestions, the accounts a follow path walks through): a
  pair where either blocks the other never finds each other. A private account is still
  found by name (its profile shows the lock), only its posts are hidden.
- Posts (post search, explore): nothing by an author whose posts the reader may not see
  (private and not an approved follower, or a block either way). Hydration
  (queries.posts_by_id) checks the same again.
"""
from __future__ import annotations

from typing import Iterable

from projections.store import ReadView
from projections.visibility import blocked_pairs, hidden_authors


def hidden_from_discovery(view: ReadView, viewer: int | None, account_ids: Iterable[int]) -> set[int]:
    """The subset of account_ids the viewer (None: signed out) must not find as accounts."""
    return blocked_pairs(view, viewer, account_ids)


def hidden_post_authors(view: ReadView, viewer: int | None, author_ids: Iterable[int]) -> set[int]:
    """The subset of author_ids whose posts the viewer must not find."""
    return hidden_authors(view, viewer, author_ids)
