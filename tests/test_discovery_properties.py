"""Property tests of the discovery read models, against oracles computed from the events:

- every account is found by its exact username, first; any prefix gives exactly the
  accounts an oracle derives from the names, exact match first then most followed;
- explore ranks exactly as the decayed engagement score computed from the events, in
  whatever order the streams are delivered, and a repeated event changes nothing;
- follow paths have the length a plain BFS finds, and suggestions the counts it finds;
- search answers are the same on SQLite and on Cassandra (distributed).
"""
from __future__ import annotations

import random
import re
import tempfile
import uuid
from collections import Counter, deque
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.events import (
    AccountRegistered,
    CommentAdded,
    CommentDeleted,
    DomainEvent,
    Event,
    Followed,
    ImageVariant,
    Liked,
    MediaRef,
    PostCreated,
    PostDeleted,
    PostEdited,
    ProfileUpdated,
    Unfollowed,
    Unliked,
    new_event,
)
from domain.ids import EPOCH_MS, SEQUENCE_BITS, WORKER_BITS
from domain.rules import parse_tags
from projections import explore as ex
from projections.graph import shortest_path, suggestions
from projections.registry import all_projectors, all_tables
from projections.search import NAME_WORDS_MAX, account_term, fold, search_accounts, search_posts, search_tags
from projections.sqlite_store import SqliteReadStore
from projections.store import ReadStore

PROJECTORS = all_projectors()
NOW = datetime(2026, 6, 10, 12, 0, tzinfo=timezone.utc)
_seq = iter(range(1, 10**9))


def id_at(moment: datetime) -> str:
    """A snowflake id made at the given moment."""
    ms = int(moment.timestamp() * 1000)
    return str(((ms - EPOCH_MS) << (WORKER_BITS + SEQUENCE_BITS)) | (next(_seq) % 4096))


def fold_into(store: ReadStore, events: list[Event], twice: bool = False) -> None:
    for event in events:
        for projector in PROJECTORS:
            if projector.handles(event):
                for _ in range(2 if twice else 1):
                    store.apply(projector.project(event, store))


def sqlite_store(folder: str) -> SqliteReadStore:
    store = SqliteReadStore(Path(folder) / f"views-{uuid.uuid4().hex[:6]}.db")
    store.ensure_tables(all_tables(PROJECTORS))
    return store


def ev(data: DomainEvent, stream: str, at: datetime = NOW) -> Event:
    return new_event(data, stream=stream, actor=None, occurred_at=at)


def media() -> MediaRef:
    variant = ImageVariant("m/thumb-0.jpg", "image/jpeg", 1, 1)
    return MediaRef("1", "image/jpeg", 1, 1, {"thumb": variant, "small": variant, "large": variant, "original": variant})


# ----- accounts: found by exact username, ranked as the oracle says -------------------

username = st.from_regex(r"[a-z0-9._]{1,30}", fullmatch=True)
display_name = st.text(st.characters(codec="utf-8", categories=("L", "M", "N", "Zs")), max_size=24)


def oracle_names(user: str, display: str) -> list[str]:
    folded = fold(display)
    words = list(dict.fromkeys(re.findall(r"\w+", folded)))[:NAME_WORDS_MAX]
    return [user, *words, " ".join(folded.split())]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    people=st.lists(st.tuples(username, display_name), min_size=1, max_size=8, unique_by=lambda p: p[0]),
    follows=st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7), st.booleans()), max_size=25),
    page=st.integers(1, 4),
)
def test_every_account_is_found_by_its_exact_username_and_prefixes_rank_as_the_oracle(people: list, follows: list, page: int) -> None:
    ids = [id_at(NOW) for _ in people]
    events = [ev(AccountRegistered(i, u, d, "h"), f"account-{i}") for i, (u, d) in zip(ids, people)]
    edges: set[tuple[int, int]] = set()
    for a, b, unfollow in follows:
        a, b = a % len(people), b % len(people)
        if a == b:
            continue
        if unfollow and (a, b) in edges:
            edges.discard((a, b))
            events.append(ev(Unfollowed(ids[a], ids[b]), f"follow-{a}-{b}"))
        elif not unfollow and (a, b) not in edges:
            edges.add((a, b))
            events.append(ev(Followed(ids[a], ids[b], id_at(NOW)), f"follow-{a}-{b}"))
    followers = Counter(b for _, b in edges)
    with tempfile.TemporaryDirectory() as tmp:
        view = sqlite_store(tmp)
        fold_into(view, events)

        def walk(q: str) -> list[str]:
            out, cursor = [], None
            while True:
                found, cursor = search_accounts(view, q, None, cursor, page)
                out += [a.username for a in found]
                if cursor is None:
                    return out

        for n, (user, display) in enumerate(people):
            found, _ = search_accounts(view, user, None, None, 1)
            assert [a.username for a in found] == [user]
            assert found[0].followers_count == followers[n]
            for q in {user, user[:1], user[:3], *(w[:2] for w in oracle_names(user, display)[1:2])}:
                term = account_term(q)
                if not term:
                    continue
                exact = [u for u, _ in people if u == term]
                others = sorted(
                    (m for m, (u, d) in enumerate(people) if u != term and any(x.startswith(term) for x in oracle_names(u, d))),
                    key=lambda m: (-followers[m], people[m][0]),
                )
                assert walk(q) == exact + [people[m][0] for m in others], q


def test_a_crowded_prefix_ranks_its_oldest_candidates_and_the_exact_username_comes_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bound on the accounts one query ranks (ACCOUNT_CANDIDATES): past it, newer
    accounts are not ranked for the prefix however followed they are, but the exact
    username is always found, first; a follow writes nothing in search."""
    from projections import search as search_module

    monkeypatch.setattr(search_module, "ACCOUNT_CANDIDATES", 3)
    ids = [id_at(NOW) for _ in range(5)]
    events = [ev(AccountRegistered(i, f"al{n}", "", "h"), f"account-{i}") for n, i in enumerate(ids)]
    follows = [ev(Followed(ids[a], ids[b], id_at(NOW)), f"follow-{a}-{b}") for a, b in ((0, 4), (1, 4), (2, 4), (0, 2))]
    assert not any(search_module.Search().handles(e) for e in follows), "a follow must cost search nothing"
    with tempfile.TemporaryDirectory() as tmp:
        view = sqlite_store(tmp)
        fold_into(view, events + follows)
        assert [a.username for a in search_accounts(view, "al", None, None, 10)[0]] == ["al2", "al0", "al1"]
        assert [a.username for a in search_accounts(view, "al4", None, None, 10)[0]] == ["al4"]
        first, cursor = search_accounts(view, "al1", None, None, 1)
        assert [a.username for a in first] == ["al1"] and cursor == ""
        assert search_accounts(view, "al1", None, cursor, 5) == ([], None)


# ----- explore: the decayed engagement score, computed from the events ---------------


@st.composite
def engagement_history(draw: st.DrawFn) -> list[list[Event]]:
    """Streams of events (each a list in its own order) over the days before NOW."""
    users = [id_at(NOW - timedelta(days=30)) for _ in range(4)]
    streams: list[list[Event]] = [[ev(AccountRegistered(u, f"u{n}", "", "h"), f"account-{u}", NOW - timedelta(days=30))] for n, u in enumerate(users)]
    for _ in range(draw(st.integers(1, 7))):
        author = draw(st.sampled_from(users))
        born = NOW - timedelta(minutes=draw(st.integers(0, 8 * 24 * 60)))
        post = id_at(born)
        post_stream = [ev(PostCreated(post, author, "p", (media(),), (), ()), f"post-{post}", born)]
        liked: set[str] = set()
        for _ in range(draw(st.integers(0, 6))):
            who = draw(st.sampled_from(users))
            kind = draw(st.sampled_from(["like", "like", "comment"]))
            if kind == "like" and who in liked:
                continue  # one stream per (post, account), as the command side has
            liked.add(who)
            at = born + timedelta(minutes=draw(st.integers(0, int((NOW - born).total_seconds() // 60))))
            if kind == "like":
                stream = [ev(Liked(post, who, author, id_at(at)), f"like-{post}-{who}", at)]
                if draw(st.booleans()):
                    later = at + (NOW - at) * draw(st.floats(0, 1))
                    stream.append(ev(Unliked(post, who, author), f"like-{post}-{who}", later))
                    if draw(st.booleans()):
                        stream.append(ev(Liked(post, who, author, id_at(NOW)), f"like-{post}-{who}", NOW))
            else:
                comment = id_at(at)
                stream = [ev(CommentAdded(comment, post, who, author, "c"), f"comment-{comment}", at)]
                if draw(st.booleans()):
                    stream.append(ev(CommentDeleted(comment, post, who), f"comment-{comment}", NOW))
            streams.append(stream)
        if draw(st.integers(0, 5)) == 0:
            post_stream.append(ev(PostDeleted(post, author), f"post-{post}", NOW))
        streams.append(post_stream)
    return streams


def by_time(streams: list[list[Event]]) -> list[Event]:
    return sorted((e for s in streams for e in s), key=lambda e: e.occurred_at)


def interleaved(streams: list[list[Event]], rng: random.Random) -> list[Event]:
    """Any delivery that keeps each stream's order (as Kafka partitions do)."""
    queues = [deque(s) for s in streams]
    out: list[Event] = []
    while any(queues):
        out.append(rng.choice([q for q in queues if q]).popleft())
    return out


def oracle_scores(events: list[Event]) -> dict[int, tuple[int, float]]:
    """post -> (author, score at NOW) for every live post younger than the window."""
    posts: dict[str, tuple[str, datetime]] = {}
    deleted: set[str] = set()
    likes: dict[tuple[str, str], datetime | None] = {}
    comments: dict[str, tuple[str, str, datetime] | None] = {}
    for e in events:  # in time order: the last word on each like or comment stands
        d = e.data
        if isinstance(d, PostCreated):
            posts[d.post_id] = (d.author_id, e.occurred_at)
        elif isinstance(d, PostDeleted):
            deleted.add(d.post_id)
        elif isinstance(d, Liked):
            likes[(d.post_id, d.account_id)] = e.occurred_at
        elif isinstance(d, Unliked):
            likes[(d.post_id, d.account_id)] = None
        elif isinstance(d, CommentAdded):
            comments[d.comment_id] = (d.post_id, d.author_id, e.occurred_at)
        elif isinstance(d, CommentDeleted):
            comments[d.comment_id] = None
    window, half_life = timedelta(milliseconds=ex.WINDOW_MS), timedelta(milliseconds=ex.HALF_LIFE_MS)
    engagement: list[tuple[str, str, datetime, int]] = [(p, a, t, 1) for (p, a), t in likes.items() if t is not None]
    engagement += [(p, a, t, 2) for c in comments.values() if c is not None for (p, a, t) in [c]]
    scores: dict[int, tuple[int, float]] = {}
    for post, (author, born) in posts.items():
        if post in deleted or born < NOW - window:
            continue
        score = 2 ** -((NOW - born) / half_life)
        for p, who, at, weight in engagement:
            if p == post and who != author and at - born <= window:
                score += weight * 2 ** -((NOW - at) / half_life)
        scores[int(post)] = (int(author), score)
    return scores


def explore_ids(view: ReadStore, viewer: int | None, page: int) -> list[int]:
    out, cursor = [], None
    while True:
        found, cursor = ex.explore_page(view, viewer, NOW, cursor, page)
        out += [p.id for p in found]
        if cursor is None:
            return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams=engagement_history(), seed=st.integers(0, 2**32), page=st.integers(1, 4))
def test_explore_ranks_as_the_decayed_score_from_the_events(streams: list[list[Event]], seed: int, page: int) -> None:
    in_time = by_time(streams)
    oracle = oracle_scores(in_time)
    users = [int(s[0].data.account_id) for s in streams if isinstance(s[0].data, AccountRegistered)]
    with tempfile.TemporaryDirectory() as tmp:
        live = sqlite_store(tmp)
        fold_into(live, in_time)
        for viewer in [None, *users]:
            got = explore_ids(live, viewer, page)
            expected = {p for p, (author, _) in oracle.items() if author != viewer}
            assert sorted(got) == sorted(expected)
            scores = [oracle[p][1] for p in got]
            assert all(a >= b * (1 - 1e-5) for a, b in zip(scores, scores[1:])), scores

        # Storage stays bounded: nothing is kept of days long out of the window.
        newest_day = max(ex.day_of(p) for p in map(int, (e.data.post_id for e in in_time if isinstance(e.data, PostCreated))))
        assert all(r["day"] >= newest_day - ex.WINDOW_DAYS - 2 for r in live.dump(ex.EXPLORE_DAYS))

        # Any delivery order that keeps each stream's order ranks the same, and an
        # event applied twice in a row changes no row.
        shuffled = sqlite_store(tmp)
        fold_into(shuffled, interleaved(streams, random.Random(seed)))
        assert explore_ids(shuffled, None, page) == explore_ids(live, None, page)
        twice = sqlite_store(tmp)
        fold_into(twice, in_time, twice=True)
        for table in ex.Explore.tables:
            assert twice.dump(table) == live.dump(table), table.name


# ----- the follow graph: paths and suggestions against a plain BFS ---------------------


def bfs_distance(edges: set[tuple[int, int]], start: int, end: int) -> int | None:
    seen, queue = {start: 0}, deque([start])
    while queue:
        node = queue.popleft()
        if node == end:
            return seen[node]
        for a, b in edges:
            if a == node and b not in seen:
                seen[b] = seen[node] + 1
                queue.append(b)
    return None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(2, 10),
    pairs=st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)), max_size=30),
    depth=st.integers(1, 6),
)
def test_follow_paths_and_suggestions_match_a_plain_bfs(n: int, pairs: list, depth: int) -> None:
    ids = [int(id_at(NOW)) for _ in range(n)]
    edges = {(a % n, b % n) for a, b in pairs if a % n != b % n}
    events = [ev(AccountRegistered(str(i), f"u{k}", "", "h"), f"account-{i}") for k, i in enumerate(ids)]
    events += [ev(Followed(str(ids[a]), str(ids[b]), id_at(NOW)), f"follow-{a}-{b}") for a, b in sorted(edges)]
    with tempfile.TemporaryDirectory() as tmp:
        view = sqlite_store(tmp)
        fold_into(view, events)
        index = {i: k for k, i in enumerate(ids)}
        for s in range(n):
            for t in range(n):
                found = shortest_path(view, ids[s], ids[t], depth)
                distance = bfs_distance(edges, s, t)
                assert found.complete
                if distance is None or distance > depth:
                    assert found.path == [], (s, t, depth)
                    continue
                path = [index[i] for i in found.path]
                assert len(path) - 1 == distance and path[0] == s and path[-1] == t
                assert all((a, b) in edges for a, b in zip(path, path[1:]))

            follows = {b for a, b in edges if a == s}
            counts = Counter(c for b in follows for a, c in edges if a == b and c != s and c not in follows)
            expected = sorted(counts, key=lambda c: (-counts[c], ids[c]))
            got, _ = suggestions(view, ids[s], None, 0, 100)
            assert [(index[g.account.id], g.followed_by_count) for g in got] == [(c, counts[c]) for c in expected]


# ----- the same search answers on SQLite and Cassandra --------------------------------

VOCABULARY = ["Été", "ete", "Zoë", "zoe", "Ána", "ana", "anabel", "Łódź", "lodz", "straße", "STRASSE", "sun", "sunset", "über", "naïve"]


@st.composite
def search_world(draw: st.DrawFn) -> list[Event]:
    names = draw(st.lists(st.from_regex(r"[a-z][a-z0-9._]{0,6}", fullmatch=True), min_size=2, max_size=6, unique=True))
    ids = [id_at(NOW) for _ in names]
    words = st.lists(st.sampled_from(VOCABULARY), max_size=4).map(" ".join)
    events = [ev(AccountRegistered(i, u, draw(words), "h"), f"account-{i}") for i, u in zip(ids, names)]
    posts: list[tuple[str, str]] = []
    for _ in range(draw(st.integers(0, 25))):
        roll = draw(st.integers(0, 9))
        a, b = draw(st.sampled_from(ids)), draw(st.sampled_from(ids))
        if roll < 3 and a != b:
            events.append(ev(Followed(a, b, id_at(NOW)), f"follow-{a}-{b}"))
        elif roll == 3 and a != b:
            events.append(ev(Unfollowed(a, b), f"follow-{a}-{b}"))
        elif roll == 4:
            events.append(ev(ProfileUpdated(a, draw(words), "", None, False), f"account-{a}"))
        elif roll < 8:
            caption = draw(words) + " " + " ".join("#" + fold(w) if draw(st.booleans()) else "#" + w for w in draw(st.lists(st.sampled_from(VOCABULARY), max_size=3)))
            post = id_at(NOW)
            posts.append((post, a))
            events.append(ev(PostCreated(post, a, caption, (media(),), parse_tags(caption), ()), f"post-{post}"))
        elif posts:
            post, author = draw(st.sampled_from(posts))
            if roll == 8:
                caption = draw(words) + " #" + draw(st.sampled_from(VOCABULARY))
                events.append(ev(PostEdited(post, author, caption, parse_tags(caption), ()), f"post-{post}"))
            else:
                events.append(ev(PostDeleted(post, author), f"post-{post}"))
    return events


def search_answers(view: ReadStore, events: list[Event], page: int) -> dict[tuple[str, str], list[Any]]:
    """Every search the world's names and words suggest, walked page by page."""
    terms = {"a", "an", "z", "e", "s", "st", "lo", "u", "na"}
    for e in events:
        if isinstance(e.data, AccountRegistered):
            terms |= {e.data.username, e.data.username[:2]}
        if isinstance(e.data, (AccountRegistered, ProfileUpdated, PostCreated, PostEdited)):
            text = getattr(e.data, "display_name", None) or getattr(e.data, "caption", "")
            terms |= {w for w in text.replace("#", " ").split()}
    answers: dict[tuple[str, str], list[Any]] = {}
    for q in sorted(terms):
        for kind, run in (
            ("accounts", lambda c: search_accounts(view, q, None, c, page)),
            ("tags", lambda c: search_tags(view, q, c, page)),
            ("posts", lambda c: search_posts(view, q, None, c, page)),
        ):
            out: list[Any] = []
            cursor = None
            while True:
                found, cursor = run(cursor)
                out += [getattr(x, "username", None) or getattr(x, "id", None) or (x.name, x.post_count) for x in found]
                if cursor is None:
                    break
            answers[(kind, q)] = out
    return answers


@pytest.fixture(scope="module")
def cassandra_views() -> Iterator[Any]:
    from projections.cassandra_store import CassandraReadStore
    from tests.test_read_store_contract import _cassandra_url

    keyspace = f"ps_test_{uuid.uuid4().hex[:12]}"
    store = CassandraReadStore.from_url(_cassandra_url(keyspace))
    store.ensure_tables(all_tables(PROJECTORS))
    try:
        yield store
    finally:
        store.session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=120)
        store.close()


@pytest.mark.distributed
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(events=search_world(), page=st.integers(1, 3))
def test_search_answers_the_same_on_sqlite_and_cassandra(cassandra_views: Any, events: list[Event], page: int) -> None:
    from tests.test_read_store_contract import _wipe

    _wipe(cassandra_views, all_tables(PROJECTORS))
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = sqlite_store(tmp)
        fold_into(sqlite, events)
        fold_into(cassandra_views, events)
        expected = search_answers(sqlite, events, page)
        assert search_answers(cassandra_views, events, page) == expected
        assert any(expected.values()), "the world must find something"


# ----- the one visibility hook is honoured by every discovery query --------------------


def test_every_discovery_query_drops_what_the_visibility_hook_hides(monkeypatch: pytest.MonkeyPatch) -> None:
    """Privacy and blocking reach discovery through discovery_filter's two hooks alone:
    every discovery answer must go through them, for the reader asking."""
    from projections import discovery_filter

    ana, ben, cat = (id_at(NOW) for _ in range(3))
    post_ben, post_cat = id_at(NOW), id_at(NOW)
    events = [ev(AccountRegistered(i, n, n.title(), "h"), f"account-{i}") for i, n in ((ana, "ana"), (ben, "bea"), (cat, "bec"))]
    events += [ev(Followed(ana, ben, id_at(NOW)), "f1"), ev(Followed(ben, cat, id_at(NOW)), "f2"), ev(Followed(ana, cat, id_at(NOW)), "f3")]
    events += [ev(Followed(cat, ana, id_at(NOW)), "f4"), ev(Followed(ben, ana, id_at(NOW)), "f5")]
    events += [ev(PostCreated(p, a, "sunny #day", (media(),), ("day",), ()), f"post-{p}") for p, a in ((post_ben, ben), (post_cat, cat))]
    with tempfile.TemporaryDirectory() as tmp:
        view = sqlite_store(tmp)
        fold_into(view, events)
        reader = int(ana)
        before = (
            [a.username for a in search_accounts(view, "be", reader, None, 10)[0]],
            [p.id for p in search_posts(view, "sunny", reader, None, 10)[0]],
            [p.id for p in ex.explore_page(view, reader, NOW, None, 10)[0]],
            [s.account.username for s in suggestions(view, int(cat), reader, 0, 10)[0]],
            shortest_path(view, int(cat), int(ben), 6, reader).path,
        )
        assert before == (["bec", "bea"], [int(post_cat), int(post_ben)], [int(post_cat), int(post_ben)], ["bea"], [int(cat), int(ana), int(ben)])

        asked: list[int | None] = []

        def hide_ben(view: Any, viewer: int | None, account_ids: Any) -> set[int]:
            asked.append(viewer)
            return {a for a in account_ids if a == int(ben)}

        monkeypatch.setattr(discovery_filter, "hidden_from_discovery", hide_ben)
        monkeypatch.setattr(discovery_filter, "hidden_post_authors", hide_ben)
        assert [a.username for a in search_accounts(view, "be", reader, None, 10)[0]] == ["bec"]
        assert [a.username for a in search_accounts(view, "bea", reader, None, 10)[0]] == []
        assert [p.id for p in search_posts(view, "sunny", reader, None, 10)[0]] == [int(post_cat)]
        assert [p.id for p in ex.explore_page(view, reader, NOW, None, 10)[0]] == [int(post_cat)]
        assert suggestions(view, int(cat), reader, 0, 10)[0] == []
        assert shortest_path(view, int(cat), int(ben), 6, reader).path == []
        assert set(asked) == {reader}
