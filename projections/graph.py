"""Questions about the follow graph, answered from the `following` and `followers` read
models at query time: who to follow, and the shortest follow path between two people.

Both read follow lists a bounded number of times, so a request costs at most a known
number of reads however large the graph; an answer that hit a bound says so.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from projections import queries
from projections import discovery_filter
from projections.followers import FOLLOWERS
from projections.following import FOLLOWING
from projections.store import ReadView

SUGGESTION_SOURCES = 100  # followed accounts (the most recent) whose follow lists are read
SUGGESTION_LIST_MAX = 500  # entries read of each of those lists
LIST_MAX = 2000  # entries read of any one follow list
PATH_DEPTH_MAX = 6
PATH_VISIT_MAX = 20_000  # accounts a path search may reach before it gives up


def _following(view: ReadView, account_id: int, limit: int | None = LIST_MAX) -> list[int]:
    return [r["followee_id"] for r in view.scan(FOLLOWING.index, {"account_id": account_id}, limit=limit)]


def _followers(view: ReadView, account_id: int, limit: int = LIST_MAX) -> list[int]:
    return [r["follower_id"] for r in view.scan(FOLLOWERS.index, {"account_id": account_id}, limit=limit)]


@dataclass(frozen=True)
class Suggestion:
    account: queries.AccountView
    followed_by_count: int  # how many of the accounts you follow follow them


def suggestions(view: ReadView, account_id: int, viewer: int | None, offset: int, limit: int) -> tuple[list[Suggestion], int | None]:
    """Accounts followed by the accounts `account_id` follows (the most recent
    SUGGESTION_SOURCES of them), ranked by how many, then oldest account first; never
    the account itself nor anyone it already follows."""
    follows = [r["followee_id"] for r in FOLLOWING.page(view, account_id, None, SUGGESTION_SOURCES)]
    already = set(_following(view, account_id, limit=None))  # one's own list: bounded by use
    counts: Counter[int] = Counter()
    for followee in follows:
        counts.update(_following(view, followee, SUGGESTION_LIST_MAX))
    ranked = [a for a, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if a != account_id and a not in already]
    hidden = discovery_filter.hidden_from_discovery(view, viewer, ranked)
    ranked = [a for a in ranked if a not in hidden]
    chosen = ranked[offset : offset + limit]
    found = queries.accounts_by_id(view, chosen)
    items = [Suggestion(a, counts[a.id]) for a in found if a is not None]
    return items, (offset + limit if offset + limit < len(ranked) else None)


@dataclass(frozen=True)
class FollowPath:
    path: list[int]  # account ids from the start to the end; [] when none was found
    complete: bool  # False: a bound (visits, list length) was hit, so a path may exist


def shortest_path(view: ReadView, start: int, end: int, max_depth: int, viewer: int | None = None) -> FollowPath:
    """The shortest chain start -> a -> b -> ... -> end where each arrow is a follow, of
    at most max_depth follows: breadth first from both ends at once (following lists
    forward from start, follower lists backward from end), one whole level at a time,
    always growing the smaller side. Accounts hidden from the viewer are not walked."""
    if start == end:
        return FollowPath([start], True)
    parents_f: dict[int, int | None] = {start: None}  # node -> the node that reached it
    parents_b: dict[int, int | None] = {end: None}
    frontier_f, frontier_b = [start], [end]
    depth_f = depth_b = 0
    complete = True
    while frontier_f and frontier_b and depth_f + depth_b < max_depth:
        forward = len(frontier_f) <= len(frontier_b)
        frontier, parents, others = (frontier_f, parents_f, parents_b) if forward else (frontier_b, parents_b, parents_f)
        meetings: list[int] = []
        grown: list[int] = []
        for node in frontier:
            neighbours = _following(view, node) if forward else _followers(view, node)
            complete = complete and len(neighbours) < LIST_MAX
            hidden = discovery_filter.hidden_from_discovery(view, viewer, neighbours)
            for other in neighbours:
                if other in hidden:
                    continue
                if other in parents:
                    continue
                parents[other] = node
                grown.append(other)
                if other in others:
                    meetings.append(other)
        if forward:
            frontier_f, depth_f = grown, depth_f + 1
        else:
            frontier_b, depth_b = grown, depth_b + 1
        if meetings:
            # Every meeting found in this level closes a path of depth_f + depth_b
            # follows or fewer; the one nearest the far end is the shortest.
            best = min(meetings, key=lambda m: _depth(parents_b if forward else parents_f, m))
            return FollowPath(_join(parents_f, parents_b, best), complete)
        if len(parents_f) + len(parents_b) > PATH_VISIT_MAX:
            return FollowPath([], False)
    return FollowPath([], complete)


def _depth(parents: dict[int, int | None], node: int) -> int:
    depth = 0
    while parents[node] is not None:
        node = parents[node]  # type: ignore[assignment]
        depth += 1
    return depth


def _join(parents_f: dict[int, int | None], parents_b: dict[int, int | None], meet: int) -> list[int]:
    head: list[int] = []
    node: int | None = meet
    while node is not None:
        head.append(node)
        node = parents_f[node]
    tail: list[int] = []
    node = parents_b[meet]
    while node is not None:
        tail.append(node)
        node = parents_b[node]
    return head[::-1] + tail
