"""Read model `visibility`: who blocks whom and who mutes whom, and THE functions every
query path uses to decide what a reader may see.

Who may see an author's posts (feeds, profile grids, single posts and their likes and
comments, tag feeds, and search and explore):
  - the author themself, always;
  - nobody of a pair where either has blocked the other;
  - of a private account, only its approved followers (the `followers` read model:
    an approval is a Followed event); signed-out readers never;
  - of a public account, everyone else.
Mutes hide nothing here: a mute only filters the muter's home feed (`muted_reads`).

The decision is made when reading, from the current state, so a post made while its
author was public disappears for non-followers the moment the author goes private.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from domain.events import Blocked, Event, Muted, Unblocked, Unmuted
from projections.accounts import ACCOUNTS
from projections.following import FOLLOWING
from projections.projector import Projector, on
from projections.store import Delete, Get, Read, ReadView, Table, Upsert, Write, fetch_named, held

BLOCKS = Table("blocks", {"blocker_id": "int", "blocked_id": "int"}, ("blocker_id",), "blocked_id")
BLOCKED_BY = Table("blocked_by", {"blocked_id": "int", "blocker_id": "int"}, ("blocked_id",), "blocker_id")
MUTES = Table("mutes", {"muter_id": "int", "muted_id": "int"}, ("muter_id",), "muted_id")

# Why a reader may or may not see an author's posts (post_access).
ALLOWED = "allowed"
PRIVATE = "private"  # the author is private and the reader is no approved follower
BLOCKING = "blocking"  # the reader has blocked the author
BLOCKED_BY_AUTHOR = "blocked_by"  # the author has blocked the reader
MISSING = "missing"  # no such account (yet, in this read model)


class Visibility(Projector):
    name = "visibility"
    tables = (BLOCKS, BLOCKED_BY, MUTES)

    @on(Blocked, key=lambda e: e.blocker_id)
    def blocked(self, e: Blocked, event: Event, view: ReadView) -> list[Write]:
        a, b = int(e.blocker_id), int(e.blocked_id)
        return [
            Upsert(BLOCKS, {"blocker_id": a, "blocked_id": b}),
            Upsert(BLOCKED_BY, {"blocked_id": b, "blocker_id": a}),
        ]

    @on(Unblocked, key=lambda e: e.blocker_id)
    def unblocked(self, e: Unblocked, event: Event, view: ReadView) -> list[Write]:
        a, b = int(e.blocker_id), int(e.blocked_id)
        return [
            Delete(BLOCKS, {"blocker_id": a, "blocked_id": b}),
            Delete(BLOCKED_BY, {"blocked_id": b, "blocker_id": a}),
        ]

    @on(Muted, key=lambda e: e.muter_id)
    def muted(self, e: Muted, event: Event, view: ReadView) -> list[Write]:
        return [Upsert(MUTES, {"muter_id": int(e.muter_id), "muted_id": int(e.muted_id)})]

    @on(Unmuted, key=lambda e: e.muter_id)
    def unmuted(self, e: Unmuted, event: Event, view: ReadView) -> list[Write]:
        return [Delete(MUTES, {"muter_id": int(e.muter_id), "muted_id": int(e.muted_id)})]


def post_access(
    view: ReadView, viewer: int | None, authors: Iterable[int], private: Mapping[int, bool] | None = None
) -> dict[int, str]:
    """For each author, whether the viewer (None: signed out) may see their posts, and if
    not, why: ALLOWED, PRIVATE, BLOCKING, BLOCKED_BY_AUTHOR or MISSING. `private`: whether
    each author is private, where the caller has read their accounts already (the others
    are read here). One round trip however many authors: the viewer's blocks both ways
    and follows are one partition each, read with the accounts."""
    distinct = list(dict.fromkeys(authors))
    known = dict(private or {})
    unread = [a for a in distinct if a != viewer and a not in known]
    reads = {"accounts": [Get.of(ACCOUNTS, {"account_id": a}) for a in unread], **access_reads(viewer, distinct, known)}
    answers = fetch_named(view, reads)
    for a, row in zip(unread, answers["accounts"]):
        if row is not None:
            known[a] = bool(row["private"])
    return access_from(viewer, distinct, known, answers)


def access_reads(viewer: int | None, authors: Iterable[int], private: Mapping[int, bool] | None = None) -> dict[str, list[Read]]:
    """What access_from decides by, for a query to read together with the rest of a
    page (fetch_named): the viewer's blocks both ways among the authors, and whether
    the viewer follows those that are private (`private`: those known; the viewer's
    follows of the unknown ones are read too, so their accounts can be read at once)."""
    others = [a for a in dict.fromkeys(authors) if a != viewer]
    known = private or {}
    locked = [a for a in others if known.get(a, True)]
    return {
        **_block_reads(viewer, others),
        "approved": [Get.of(FOLLOWING.index, {"account_id": viewer, "followee_id": a}) for a in locked] if viewer is not None else [],
    }


def access_from(
    viewer: int | None, authors: Iterable[int], private: Mapping[int, bool], answers: Mapping[str, list[Any]]
) -> dict[int, str]:
    """post_access's answer from the answers to access_reads(viewer, authors) and whether
    each author is private (an author not in `private` has no account: MISSING)."""
    distinct = list(dict.fromkeys(authors))
    others = [a for a in distinct if a != viewer]
    blocking, blocked_by = held(others, answers["blocking"]), held(others, answers["blocked_by"])
    approved = {row["followee_id"] for row in answers["approved"] if row is not None}
    access = {a: ALLOWED for a in distinct if a == viewer}
    for author in others:
        if author not in private:
            access[author] = MISSING
        elif author in blocked_by:
            access[author] = BLOCKED_BY_AUTHOR
        elif author in blocking:
            access[author] = BLOCKING
        elif private[author] and author not in approved:
            access[author] = PRIVATE
        else:
            access[author] = ALLOWED
    return access


def _block_reads(viewer: int | None, others: list[int]) -> dict[str, list[Read]]:
    """Whether the viewer blocks each of `others` (BLOCKS of the viewer) and whether each
    blocks the viewer (BLOCKED_BY of the viewer): one partition each."""
    if viewer is None:
        return {"blocking": [], "blocked_by": []}
    return {
        "blocking": [Get.of(BLOCKS, {"blocker_id": viewer, "blocked_id": a}) for a in others],
        "blocked_by": [Get.of(BLOCKED_BY, {"blocked_id": viewer, "blocker_id": a}) for a in others],
    }


def hidden_authors(
    view: ReadView, viewer: int | None, authors: Iterable[int], private: Mapping[int, bool] | None = None
) -> set[int]:
    """The authors among `authors` whose posts the viewer may not see (`private`: as
    post_access takes it)."""
    return {a for a, why in post_access(view, viewer, authors, private).items() if why != ALLOWED}


def can_see(view: ReadView, viewer: int | None, author: int) -> bool:
    """Whether the viewer may see this author's posts."""
    return not hidden_authors(view, viewer, [author])


def blocked_pairs(view: ReadView, viewer: int | None, accounts: Iterable[int]) -> set[int]:
    """The accounts among `accounts` that the viewer blocks or is blocked by: hidden from
    the viewer's lists (followers, likers, comments, search results)."""
    others = [a for a in dict.fromkeys(accounts) if a != viewer]
    answers = fetch_named(view, _block_reads(viewer, others))
    return held(others, answers["blocking"]) | held(others, answers["blocked_by"])


def blocked_either_way(view: ReadView, viewer: int | None) -> set[int]:
    """Everyone the viewer blocks or is blocked by (two partition reads): for filters
    over many candidates, such as explore and search."""
    if viewer is None:
        return set()
    blocks = {r["blocked_id"] for r in view.scan(BLOCKS, {"blocker_id": viewer})}
    return blocks | {r["blocker_id"] for r in view.scan(BLOCKED_BY, {"blocked_id": viewer})}


def muted_reads(viewer: int, authors: Iterable[int]) -> list[Read]:
    """Whether the viewer muted each author (in held(), with the authors): mutes filter
    the viewer's home feed only. One partition, one query."""
    return [Get.of(MUTES, {"muter_id": viewer, "muted_id": a}) for a in authors]


def is_blocking(view: ReadView, blocker: int, blocked: int) -> bool:
    return view.get(BLOCKS, {"blocker_id": blocker, "blocked_id": blocked}) is not None


def is_muting(view: ReadView, muter: int, muted: int) -> bool:
    return view.get(MUTES, {"muter_id": muter, "muted_id": muted}) is not None
