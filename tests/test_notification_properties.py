"""Property test of the notifications read model's grouping: for any likes and un-likes
of a few posts, delivered in any order that keeps each like stream's own order, with
events repeated and a suffix of the log redelivered (at-least-once), every like group
has exactly the actors the model says, its newest 8 shown, one notification per group,
and the rows equal those of a fold of the log delivered once in order."""
from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.events import Event, Liked, Unliked, new_event
from domain.ids import SEQUENCE_BITS, WORKER_BITS
from projections import notifications as notif
from projections.notifications import Notifications
from projections.registry import all_projectors, all_tables
from projections.sqlite_store import SqliteReadStore

ALL_TABLES = all_tables(all_projectors())

HOUR_MS = 3600 * 1000
AUTHOR, POSTS, LIKERS = 1, (101, 102), range(10, 22)

# One step: (post index, liker, hour of the like): a like if the liker does not like
# the post at that point, else an un-like.
step = st.tuples(st.integers(0, 1), st.sampled_from(list(LIKERS)), st.integers(0, 5))


def snowflake(ms: int, seq: int) -> int:
    return (ms << (WORKER_BITS + SEQUENCE_BITS)) | seq


def build_log(steps: list[tuple[int, int, int]]) -> tuple[list[Event], dict[tuple[int, int], dict[int, int]]]:
    """The events of the steps in order, and the model: (post, window) -> {liker: like_id}."""
    liked: dict[tuple[int, int], int] = {}  # (post, liker) -> like id
    events = []
    for n, (p, liker, hour) in enumerate(steps):
        post = POSTS[p]
        stream = f"like-{post}-{liker}"
        if (post, liker) in liked:
            del liked[(post, liker)]
            events.append(new_event(Unliked(str(post), str(liker), str(AUTHOR)), stream=stream, actor=str(liker)))
        else:
            like_id = snowflake(hour * HOUR_MS + n + 1, n + 1)  # later steps, later ids within an hour
            liked[(post, liker)] = like_id
            events.append(new_event(Liked(str(post), str(liker), str(AUTHOR), str(like_id)), stream=stream, actor=str(liker)))
    model: dict[tuple[int, int], dict[int, int]] = {}
    for (post, liker), like_id in liked.items():
        model.setdefault((post, (like_id >> (WORKER_BITS + SEQUENCE_BITS)) // (2 * HOUR_MS)), {})[liker] = like_id
    return events, model


def interleave(events: list[Event], choices: list[int]) -> list[Event]:
    """Another order of the log that keeps each stream's events in their order (events
    of different like streams travel through different partitions)."""
    queues: dict[str, list[Event]] = {}
    for e in events:
        queues.setdefault(e.stream, []).append(e)
    out: list[Event] = []
    n = 0
    while queues:
        names = sorted(queues)
        name = names[choices[n % len(choices)] % len(names)] if choices else names[0]
        n += 1
        out.append(queues[name].pop(0))
        if not queues[name]:
            del queues[name]
    return out


def fold(store: SqliteReadStore, projector: Notifications, events: list[Event]) -> None:
    for e in events:
        with store.unit_of_work():
            store.apply(projector.project(e, store))


def dump(store: SqliteReadStore) -> dict[str, list[dict]]:
    return {t.name: store.dump(t) for t in Notifications.tables}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(step, min_size=1, max_size=60),
    choices=st.lists(st.integers(0, 30), max_size=80),
    repeats=st.lists(st.integers(0, 200), max_size=10),
    redeliver_from=st.floats(0, 1),
)
def test_like_groups_are_exact_under_reordering_duplicates_and_replays(
    steps: list, choices: list[int], repeats: list[int], redeliver_from: float
) -> None:
    events, model = build_log(steps)
    delivered = interleave(events, choices)
    for r in sorted(repeats, reverse=True):  # an event delivered twice in a row
        if delivered:
            i = r % len(delivered)
            delivered.insert(i + 1, delivered[i])
    cut = int(len(delivered) * redeliver_from)
    delivered += delivered[cut:]  # a consumer restarted from an older offset

    projector = Notifications(group_hours=2)
    with tempfile.TemporaryDirectory() as folder:
        store = SqliteReadStore(Path(folder) / "views.db")
        store.ensure_tables(ALL_TABLES)  # the silenced() filter reads the block and mute tables
        fold(store, projector, delivered)

        groups = {(g["post_id"], g["bucket"]): g for p in POSTS for g in store.scan(notif.LIKE_GROUPS, {"post_id": p})}
        assert set(groups) == set(model)
        page, _ = notif.notifications_page(store, AUTHOR, None, 100)
        assert len(page) == len(model)  # one notification per group, none for empty groups
        assert notif.unread_count(store, AUTHOR, 2 * HOUR_MS) == len(model)
        for n in page:
            key = (n.row["post_id"], n.row["bucket"])
            likers = model[key]
            assert n.actors_count == len(likers)
            newest = sorted(likers, key=lambda a: likers[a], reverse=True)[: notif.ACTORS_SHOWN]
            assert n.actor_ids == newest
            assert n.row["notification_id"] <= min(likers.values())  # it started with its first like
            assert n.row["activity_id"] >= max(likers.values())
        incremental = dump(store)
        store.close()

        # Delivered once, in log order, the rows are the same except the notification's
        # start, which may be an earlier like taken back since (a replay cannot know it).
        fresh = SqliteReadStore(Path(folder) / "fresh.db")
        fresh.ensure_tables(ALL_TABLES)
        fold(fresh, projector, events)
        once = dump(fresh)
        fresh.close()
    for table in ("notification_like_actors", "notification_like_actor_index", "notification_like_actor_counts"):
        assert incremental[table] == once[table], table
    assert {(r["post_id"], r["bucket"]) for r in incremental["notification_like_groups"]} == {
        (r["post_id"], r["bucket"]) for r in once["notification_like_groups"]
    }
