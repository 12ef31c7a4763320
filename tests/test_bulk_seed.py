"""Bulk seeding (api.seed.bulk_seed, `photostream seed`) leaves the system as the command
handlers would: on both backends, a small follower graph seeded in bulk is checked over
HTTP against what the graph implies (counts, follower lists, posts, every home feed with
pushed and pulled authors), and the write side knows it too (usernames taken, follows
already there, passwords that sign in). Seeding again reuses the accounts."""
from __future__ import annotations

import random
from pathlib import Path
from typing import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.seed import Network, generated_photo_of, run_seed, seed_network
from api.settings import Settings
from streams.event_store import ConsistencyToken
from tests.conftest import BACKEND_PARAMS, settings_on
from tests.support import Api, User

ACCOUNTS = 30
POSTS = 2
PASSWORD = "seeded-password"
# user0 and user1 are followed by most accounts: above the threshold, so their posts
# are pulled at read time; everyone else is pushed.
OVERRIDES = {"celebrity_threshold": 8}


@pytest.fixture(params=BACKEND_PARAMS)
def seed_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    yield from settings_on(request, tmp_path, OVERRIDES)


def follows(seed: int = 5) -> list[tuple[int, int]]:
    """A heavy-tailed little graph: a few random follows each, and two accounts most follow."""
    rng = random.Random(seed)
    pairs: set[tuple[int, int]] = set()
    for a in range(ACCOUNTS):
        pairs.update((a, b) for b in rng.sample(range(ACCOUNTS), rng.randint(1, 5)) if b != a)
        pairs.update((a, c) for c in (0, 1) if c != a and rng.random() < 0.7)
    return sorted(pairs)


def network() -> Network:
    edges = follows()
    return Network(
        usernames=[f"User{i}" for i in range(ACCOUNTS)],  # normalised to user<i>, as sign-up does
        display_names=[f"Seeded {i}" for i in range(ACCOUNTS)],
        follows=edges + edges[:3],  # a follow repeated changes nothing
        posts=[(i, f"photo {n} of user{i} #seed{i % 3}") for n in range(POSTS) for i in range(ACCOUNTS)],
    )


def seed(settings: Settings, plan: Network) -> int:
    """Bulk-seed with real photos (the media store has their bytes); returns the events appended."""
    return seed_network(settings, plan, PASSWORD, generated_photo_of(lambda i: i), chunk=40).events


def at_head(client: TestClient, api: Api, timeout: float = 180) -> None:
    """Make every later read wait for the whole seed (longer than a request waits: the
    worker has the backlog to project)."""
    backend = client.app.state.backend  # type: ignore[attr-defined]
    token = ConsistencyToken.at_head(client.portal.call(backend.events.head))
    assert client.portal.call(backend.wait_for, token, timeout), "the projections did not catch up with the seed"
    api.token = token.encode()


def test_a_graph_seeded_in_bulk_reads_back_over_http_as_the_graph_says(seed_settings: Settings) -> None:
    plan = network()
    edges = follows()
    assert len(edges) > 100 and sum(1 for _, b in edges if b in (0, 1)) > 2 * OVERRIDES["celebrity_threshold"]
    events = seed(seed_settings, plan)
    assert events == ACCOUNTS + len(edges) + 2 * len(plan.posts)  # accounts, follows, photos + posts

    followers = {i: {a for a, b in edges if b == i} for i in range(ACCOUNTS)}
    following = {i: {b for a, b in edges if a == i} for i in range(ACCOUNTS)}
    newest_first = list(reversed(plan.posts))  # created in order: later = newer id
    with TestClient(create_app(seed_settings), raise_server_exceptions=False) as client:
        api = Api(client)
        at_head(client, api)
        users: dict[int, User] = {}
        for i in range(ACCOUNTS):
            body = api.ok("POST", "/v1/sessions", json={"username": f"user{i}", "password": PASSWORD})
            users[i] = User(body["account"]["id"], f"user{i}", body["token"])
            account = api.ok("GET", f"/v1/accounts/user{i}")
            assert (account["display_name"], account["followers_count"], account["following_count"], account["posts_count"]) == (
                f"Seeded {i}", len(followers[i]), len(following[i]), POSTS
            ), f"user{i}"
        for i in range(ACCOUNTS):
            assert {a["username"] for a in api.walk(f"/v1/accounts/user{i}/followers", limit=50)} == {f"user{a}" for a in followers[i]}
            assert {a["username"] for a in api.walk(f"/v1/accounts/user{i}/following", limit=50)} == {f"user{b}" for b in following[i]}
            posts = api.walk(f"/v1/accounts/user{i}/posts", limit=50)
            assert [p["caption"] for p in posts] == [c for a, c in newest_first if a == i]
            assert all(len(p["media"]) == 1 and p["tags"] == [f"seed{i % 3}"] for p in posts)
            feed = api.walk("/v1/feed", users[i], limit=7)
            assert [(p["author"]["username"], p["caption"]) for p in feed] == [
                (f"user{a}", c) for a, c in newest_first if a in following[i]
            ], f"the home feed of user{i}"
        tagged = api.walk("/v1/tags/seed0/posts", limit=50)
        assert len(tagged) == POSTS * len(range(0, ACCOUNTS, 3))
        photo = client.get(tagged[0]["media"][0]["urls"]["small"])  # the bytes are in the media store
        assert photo.status_code == 200 and photo.content[:2] == b"\xff\xd8", photo.status_code

        # The write side holds what the commands would have written.
        taken = api.request("POST", "/v1/accounts", json={"username": "user3", "password": "password123"})
        assert taken.status_code == 409, taken.text
        a, b = edges[0]
        head = client.portal.call(client.app.state.backend.events.head)  # type: ignore[attr-defined]
        api.follow(users[a], f"user{b}")  # already following: nothing appended
        assert client.portal.call(client.app.state.backend.events.head) == head  # type: ignore[attr-defined]
        stranger = next(j for j in range(ACCOUNTS) if j not in following[2] and j != 2)
        api.follow(users[2], f"user{stranger}")
        fresh = api.post(users[stranger], "after the seed")
        assert api.ok("GET", "/v1/feed", users[2], params={"limit": 1})["items"][0]["id"] == fresh["id"]
        assert api.ok("GET", f"/v1/accounts/user{stranger}")["followers_count"] == len(followers[stranger]) + 1


def test_photostream_seed_again_reuses_the_accounts_and_adds_only_posts(seed_settings: Settings, tmp_path: Path) -> None:
    graph = tmp_path / "graph.edges"
    graph.write_text("% a little graph\n1 2\n2 3\n3 1\n3 4\n5 1\n5 5\n")
    first = run_seed(seed_settings, graph, posts_per_account=1)
    assert (first.accounts, first.follows, first.posts, first.events) == (5, 10, 5, 5 + 10 + 2 * 5)
    again = run_seed(seed_settings, graph, posts_per_account=1)
    assert (again.accounts, again.follows, again.posts, again.events) == (5, 10, 5, 2 * 5)  # only new posts
    degree = {1: 3, 2: 2, 3: 3, 4: 1, 5: 1}
    with TestClient(create_app(seed_settings), raise_server_exceptions=False) as client:
        api = Api(client)
        at_head(client, api)
        for node, friends in degree.items():
            account = api.ok("GET", f"/v1/accounts/user{node}")
            assert (account["followers_count"], account["following_count"], account["posts_count"]) == (friends, friends, 2)
        me = api.ok("POST", "/v1/sessions", json={"username": "user4", "password": "photostream"})
        feed = api.walk("/v1/feed", User(me["account"]["id"], "user4", me["token"]), limit=5)
        assert [p["author"]["username"] for p in feed] == ["user3", "user3"]
