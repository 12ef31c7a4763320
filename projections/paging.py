"""One way to fill a page from an ordered index when some rows are filtered out (by
the discovery filter, by a longer prefix, by a zero count): read in chunks, keep what
passes, stop when the page is full or a read budget is spent, and say where to go on."""
from __future__ import annotations

from typing import Any, Callable, Sequence, TypeVar

from projections.store import Row

T = TypeVar("T")


def filtered_page(
    fetch: Callable[[Any, int], Sequence[Row]],
    keep: Callable[[list[Row]], list[T | None]],
    sort_key: str,
    cursor: Any,
    limit: int,
    budget: int,
) -> tuple[list[T], Any]:
    """fetch(after, n) reads up to n rows strictly after `after` in index order; keep(rows)
    maps each row to an item or None (filtered out). Returns the items and the sort key of
    the last row read when more may follow (None at the end). At most `budget` rows are
    read per page: a page may come back short, with a cursor, but never loses an item."""
    items: list[T] = []
    after = cursor
    read = 0
    while len(items) < limit and read < budget:
        want = min(max(limit - len(items), 8), budget - read)
        rows = list(fetch(after, want))
        read += len(rows)
        for row, item in zip(rows, keep(rows)):
            after = row[sort_key]
            if item is not None:
                items.append(item)
                if len(items) == limit:
                    return items, after
        if len(rows) < want:
            return items, None
    return items, after
