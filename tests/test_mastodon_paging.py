"""Mastodon's page windows (max_id, since_id, min_id, limit) over photostream's
newest-first cursors (api.mastodon.common.paginate), against the definition."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from api.mastodon.common import Window, paginate

ids_strategy = st.lists(st.integers(1, 10_000), max_size=200, unique=True).map(lambda ids: sorted(ids, reverse=True))


def source_of(ids: list[int]):
    """A read model's index: ids newest first, `cursor` = start after this id."""

    def source(cursor: int | None, n: int) -> tuple[list[int], int | None]:
        after = [i for i in ids if cursor is None or i < cursor][:n]
        return after, (after[-1] if len(after) == n else None)

    return source


optional_id = st.none() | st.integers(0, 10_001)


@settings(max_examples=300, deadline=None)
@given(ids=ids_strategy, max_id=optional_id, since_id=optional_id, min_id=optional_id, limit=st.integers(1, 40))
def test_a_window_holds_what_mastodon_defines(ids: list[int], max_id: int | None, since_id: int | None, min_id: int | None, limit: int) -> None:
    window = Window(max_id, since_id, min_id, limit)
    items, next_max = paginate(source_of(ids), lambda i: i, window)
    below = [i for i in ids if max_id is None or i < max_id]
    if min_id is not None:  # the oldest just above min_id, newest first
        expected = [i for i in below if i > min_id][-limit:]
    elif since_id is not None:  # the newest above since_id
        expected = [i for i in below if i > since_id][:limit]
    else:
        expected = below[:limit]
    assert items == expected
    assert next_max is None or (items and next_max == items[-1])


@settings(max_examples=200, deadline=None)
@given(ids=ids_strategy, limit=st.integers(1, 40))
def test_following_next_links_returns_every_item_once(ids: list[int], limit: int) -> None:
    seen: list[int] = []
    max_id: int | None = None
    while True:
        items, max_id = paginate(source_of(ids), lambda i: i, Window(max_id, None, None, limit))
        seen += items
        if max_id is None:
            break
    assert seen == ids
