"""THE hook through which every discovery answer (search, explore, suggestions, follow
paths) decides which accounts a reader must not be shown.

Search and explore must leave out private accounts (unless the reader follows them) and
accounts that block the reader or that the reader blocks. Those read models belong to
the privacy work; when it lands, this one function reads them. Every discovery query
calls it with the accounts it is about to answer and drops the ones returned, so
nothing else needs to change.
"""
from __future__ import annotations

from typing import Iterable

from projections.store import ReadView


def hidden_from_discovery(view: ReadView, viewer: int | None, account_ids: Iterable[int]) -> set[int]:
    """The subset of account_ids whose accounts and posts the viewer (None: signed out)
    must not find through search, explore, suggestions or follow paths."""
    return set()
