"""The distributed deployment under stress: Kafka log, Faust workers, Cassandra read
models, MinIO media, driven through the HTTP API.

* Two workers share the partitions; a realistic load (accounts, follows, posts, likes,
  comments, unfollows, deletes) converges to exactly what a model kept by the test says,
  and to exactly what a fresh fold of the whole Kafka log answers.
* A worker killed with SIGKILL while it projects loses nothing and parks nothing: a new
  worker takes over, and every answer equals the fresh fold of the log.
* Two concurrent sign-ups with one username (through two API processes): one 201, one 409.
* Kafka unreachable: the API says so (503 with Retry-After, /readyz names the event
  store) and appends nothing.
* MinIO: an upload lands in the bucket, is served with ETag / Cache-Control / 304, and an
  unreachable media store answers 503 and appends nothing.
* The event store port closes after a tool has read the log with it.

The module shares one deployment (each test has its own accounts and hashtags).

The oracle of "converged": every event of the topic, read back through the event store
port partition by partition, folded through every projector into a fresh SQLite read
store (partitions interleaved by occurred_at; each keeps its order). The ANSWERS of the
query functions are compared with the live Cassandra store, not raw rows: the home
timeline's floor bookkeeping may legitimately differ with the order the lanes ran in.
"""
from __future__ import annotations

import asyncio
import heapq
import random
import signal
import threading
import time
import uuid
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from api.wiring import open_backend
from domain.aggregates import follow_stream
from domain.events import Recorded
from media.store import parse_s3_url
from projections import queries
from projections.cassandra_store import CassandraReadStore
from projections.home_timeline import FeedPage, feed_page
from projections.posts_by_tag import tag_page
from projections.registry import all_projectors
from projections.sqlite_store import SqliteReadStore
from projections.store import ReadView
from streams.event_store import ConsistencyToken
from streams.kafka_event_store import KafkaEventStore
from streams.lanes import lane_name
from tests.deployment import PARTITIONS, Deployment
from tests.support import Api, User, jpeg
from tests.test_e2e_server import Server, SessionApi, discard, discarded, fast_deployment, free_port

pytestmark = pytest.mark.distributed

PROJECTORS = all_projectors()  # what the workers run (production settings)
CATCH_UP_TIMEOUT = 90.0
GROUP_TIMEOUT = 60.0
CLOSE_TIMEOUT = 5.0


# ----- the deployment and its log ----------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _deployments_dropped() -> Iterator[None]:
    yield
    discarded()  # the keyspaces of the deployments discarded in the background


@pytest.fixture(scope="module")
def cluster(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """The module's deployment (each test has its own accounts). The two tests that
    compare the whole log with the read models come first: two workers share it, then
    one of them is killed. Its group notices a dead member within seconds
    (FAST_GROUP_ENV)."""
    deployed = fast_deployment(stack_env, tmp_path_factory.mktemp("cluster"))
    deployed.start_worker()
    try:
        yield deployed
    finally:
        discard(deployed)


@pytest.fixture
def shared(cluster: Deployment) -> Deployment:
    """The module's deployment for the tests that need only some worker projecting."""
    if not any(w.poll() is None for w in cluster.workers):
        cluster.start_worker()
    return cluster


class EventStoreCloseHung(UserWarning):
    """KafkaEventStore.close() did not return after read(): see close_store."""


async def close_store(events: KafkaEventStore) -> None:
    """Close a store, bounded. KafkaEventStore.close() can hang forever after read():
    read() ends with consumer.unsubscribe(), after which aiokafka's fetcher cancels and
    awaits its in-flight requests inside `contextlib.suppress(CancelledError)`; a close
    (consumer.stop() cancelling that fetcher task) landing in that window is swallowed,
    and the task then waits for an assignment that never comes. close() does not bound
    `self._reader.stop()` (it does bound the producer's stop). The last test of this
    module shows it failing; here it is bounded so that the convergence tests test what
    they are about, and reported as a warning."""
    started = time.monotonic()
    try:
        await asyncio.wait_for(events.close(), CLOSE_TIMEOUT)
    except asyncio.TimeoutError:
        pass
    if time.monotonic() - started >= CLOSE_TIMEOUT:
        warnings.warn(EventStoreCloseHung(f"KafkaEventStore.close() did not return within {CLOSE_TIMEOUT} s after read()"))


def run(coroutine_fn: Callable[[KafkaEventStore], Any], settings: Settings) -> Any:
    """Run fn(store) on a fresh event store of the deployment (its own event loop)."""

    async def go() -> Any:
        events = KafkaEventStore.from_urls(settings.event_store, settings.read_store, sweep_seconds=None)
        try:
            return await coroutine_fn(events)
        finally:
            await close_store(events)

    return asyncio.run(go())


def head_token(settings: Settings) -> ConsistencyToken:
    async def head(events: KafkaEventStore) -> dict[int, int]:
        return await events.head()

    return ConsistencyToken.at_head(run(head, settings))


def app_log_size(http: TestClient) -> int:
    """How many events the log of an app's backend holds now."""
    head = http.portal.call(http.app.state.backend.events.head)  # type: ignore[union-attr]
    return sum(position + 1 for position in head.values() if position >= 0)


def read_log(settings: Settings) -> list[Recorded]:
    """The whole topic through the event store port: each partition in order, the
    partitions interleaved by occurred_at."""

    async def read_all(events: KafkaEventStore) -> list[Recorded]:
        runs = []
        for partition in range(events.partitions):
            records: list[Recorded] = []
            while batch := await events.read(partition, records[-1].position if records else -1, 500):
                records += batch
            runs.append(records)
        return list(heapq.merge(*runs, key=lambda r: r.event.occurred_at))

    return run(read_all, settings)


def fold(recorded: list[Recorded], folder: Path) -> SqliteReadStore:
    """A fresh read store holding every event folded through every projector."""
    views = SqliteReadStore(folder / f"fold-{uuid.uuid4().hex[:8]}.db")
    projectors = all_projectors()
    views.ensure_tables(t for p in projectors for t in p.tables)
    with views.unit_of_work():
        for r in recorded:
            for projector in projectors:
                if projector.handles(r.event):
                    views.apply(projector.project(r.event, views))
    return views


def checkpoints_reached(views: CassandraReadStore, token: ConsistencyToken) -> bool:
    done = {(c.projection, c.partition): c.position for c in views.load_checkpoints()}
    names = [lane_name(p.name, lane) for p in PROJECTORS for lane in range(PARTITIONS)]
    return all(done.get((n, p), -1) >= o for n in names for p, o in token.positions.items())


def wait_until_projected(views: CassandraReadStore, token: ConsistencyToken, deployment: Deployment) -> None:
    """Poll the checkpoints (not a sleep: a deadline) until every lane of every
    projection has reached the token; fail with the worker logs."""
    deadline = time.monotonic() + CATCH_UP_TIMEOUT
    while not checkpoints_reached(views, token):
        if time.monotonic() > deadline:
            raise AssertionError(f"the workers did not project {token} within {CATCH_UP_TIMEOUT} s:\n{deployment.worker_logs()}")
        time.sleep(0.05)


def group_members(deployment: Deployment) -> tuple[str, list[list[int]]]:
    """The workers' consumer group: its state and, per member, the partitions of the
    events topic it was assigned."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.protocol.group import MemberAssignment

    from streams.faust_app import KafkaTopology

    topology = KafkaTopology.from_url(deployment.settings.event_store)

    async def describe() -> tuple[str, list[list[int]]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=topology.brokers.removeprefix("kafka://").replace(";", ","))
        await admin.start()
        try:
            (answer,) = await admin.describe_consumer_groups([f"photostream-projections-{topology.topic}"])
        finally:
            await admin.close()
        group = answer.to_object()["groups"][0]
        members = []
        for member in group["members"]:
            raw = member["member_assignment"]
            assigned = MemberAssignment.decode(raw).assignment if raw else []
            members.append(sorted(p for topic, partitions in assigned if topic == topology.topic for p in partitions))
        return group["state"], members

    return asyncio.run(describe())


def wait_for_workers_sharing(deployment: Deployment, count: int) -> list[list[int]]:
    deadline = time.monotonic() + GROUP_TIMEOUT
    while True:
        state, members = group_members(deployment)
        if state == "Stable" and len(members) == count and all(members):
            return members
        if time.monotonic() > deadline:
            raise AssertionError(f"{count} workers never shared the partitions (group {state}: {members}):\n{deployment.worker_logs()}")
        time.sleep(0.2)


# ----- comparing answers ---------------------------------------------------------------------


def walk(fetch: Callable[[Any, int], Any], limit: int = 4) -> list[Any]:
    """Every item of a paged query, following its cursor to the end."""
    items: list[Any] = []
    cursor = None
    while True:
        result = fetch(cursor, limit)
        if isinstance(result, queries.Page):
            page, cursor = result.items, result.next_cursor
        elif isinstance(result, FeedPage):
            page, cursor = result.ids, result.next_cursor
        else:
            page, cursor = result
        items += page
        if cursor is None:
            return items


def answers(
    view: ReadView, account_ids: list[int], usernames: list[str], post_ids: list[int], tags: tuple[str, ...]
) -> dict[tuple[Any, ...], Any]:
    """What every query the API asks answers, for every account and post ever made."""
    out: dict[tuple[Any, ...], Any] = {}
    for name in usernames:
        out[("account_by_username", name)] = queries.account_by_username(view, name)
    for viewer in [None, *account_ids[:5]]:
        out[("posts_by_id", viewer)] = queries.posts_by_id(view, post_ids, viewer)
    for a in account_ids:
        out[("account", a)] = queries.account_by_id(view, a)
        out[("posts_of", a)] = walk(lambda c, n, a=a: queries.posts_of_author(view, a, c, n, a))
        out[("followers", a)] = walk(lambda c, n, a=a: queries.followers_of(view, a, c, n))
        out[("following", a)] = walk(lambda c, n, a=a: queries.following_of(view, a, c, n))
        feed = walk(lambda c, n, a=a: feed_page(view, a, c, n), limit=5)
        out[("feed", a)] = feed
        out[("feed_posts", a)] = queries.posts_by_id(view, feed, a)
    for tag in tags:
        out[("tag", tag)] = walk(lambda c, n, tag=tag: tag_page(view, tag, c, n), limit=5)
    for p in post_ids:
        out[("post", p)] = queries.post_by_id(view, p, None)
        out[("likers", p)] = walk(lambda c, n, p=p: queries.likers_of(view, p, c, n))
        out[("comments", p)] = walk(lambda c, n, p=p: queries.comments_of(view, p, c, n))
    return out


def assert_same_answers(live: dict[tuple[Any, ...], Any], folded: dict[tuple[Any, ...], Any], logs: str) -> None:
    assert live.keys() == folded.keys()
    differ = [k for k in live if live[k] != folded[k]]
    shown = "\n".join(f"{k}:\n  live   {live[k]!r}\n  folded {folded[k]!r}" for k in differ[:5])
    assert not differ, f"{len(differ)} of {len(live)} answers of the live read models differ from a fresh fold of the log:\n{shown}\n{logs}"


def compare_with_fold(deployment: Deployment, model: Model, folder: Path) -> None:
    """The live Cassandra answers == a fresh fold's answers == (for counts, lists and
    feeds) the model; and no projection parked anything."""
    recorded = read_log(deployment.settings)
    assert len(recorded) == app_events(deployment), "the log read back has a different length than the head says"
    folded_views = fold(recorded, folder)
    live_views = CassandraReadStore.from_url(deployment.settings.read_store)
    try:
        account_ids = [int(u.id) for u in model.users]
        usernames = [u.username for u in model.users]
        post_ids = sorted(int(p) for p in model.post_author)
        live = answers(live_views, account_ids, usernames, post_ids, model.tags)
        folded = answers(folded_views, account_ids, usernames, post_ids, model.tags)
        assert_same_answers(live, folded, deployment.worker_logs())
        model.check_answers(live)
        assert live_views.dead_letters() == [], deployment.worker_logs()
    finally:
        live_views.close()
        folded_views.close()


def app_events(deployment: Deployment) -> int:
    async def head(events: KafkaEventStore) -> dict[int, int]:
        return await events.head()

    return sum(o + 1 for o in run(head, deployment.settings).values() if o >= 0)


# ----- a model of the world and a load that keeps it -----------------------------------------


@dataclass
class Model:
    """What must be true, kept by the test beside the system. Orders are kept with a
    sequence number: the API lists follows and likes newest first."""

    users: list[User] = field(default_factory=list)
    tags: tuple[str, ...] = ()  # of this model's posts only (a hashtag feed is global)
    profile: dict[int, dict[str, str]] = field(default_factory=dict)
    follows: dict[tuple[int, int], int] = field(default_factory=dict)  # (follower, followee) -> seq
    post_author: dict[str, int] = field(default_factory=dict)  # every post ever made
    live_posts: set[str] = field(default_factory=set)
    captions: dict[str, str] = field(default_factory=dict)
    likes: dict[tuple[int, str], int] = field(default_factory=dict)  # (account, post) -> seq
    comments: dict[str, tuple[str, int, str]] = field(default_factory=dict)  # id -> (post, author, text)
    live_comments: set[str] = field(default_factory=set)
    seq: int = 0

    def next(self) -> int:
        self.seq += 1
        return self.seq

    def followers(self, b: int) -> list[int]:
        return [a for (a, x), _ in sorted(self.follows.items(), key=lambda kv: -kv[1]) if x == b]

    def following(self, a: int) -> list[int]:
        return [b for (x, b), _ in sorted(self.follows.items(), key=lambda kv: -kv[1]) if x == a]

    def posts_of(self, a: int) -> list[str]:
        return sorted((p for p in self.live_posts if self.post_author[p] == a), key=int, reverse=True)

    def feed(self, a: int) -> list[str]:
        return sorted((p for p in self.live_posts if (a, self.post_author[p]) in self.follows), key=int, reverse=True)

    def likers(self, p: str) -> list[int]:
        return [u for (u, q), _ in sorted(self.likes.items(), key=lambda kv: -kv[1]) if q == p]

    def tagged(self, tag: str) -> list[str]:
        return sorted((p for p in self.live_posts if self.captions[p].endswith(f"#{tag}")), key=int, reverse=True)

    def post_comments(self, p: str) -> list[str]:
        return [self.comments[c][2] for c in sorted(self.live_comments, key=int) if self.comments[c][0] == p]

    def check_api(self, api: Api) -> None:
        """Every count, list and feed the HTTP API answers equals the model."""
        names = [u.username for u in self.users]
        for n, user in enumerate(self.users):
            account = api.ok("GET", f"/v1/accounts/{user.username}")
            expected = (len(self.followers(n)), len(self.following(n)), len(self.posts_of(n)))
            assert (account["followers_count"], account["following_count"], account["posts_count"]) == expected, user.username
            assert {k: account[k] for k in self.profile.get(n, {})} == self.profile.get(n, {}), user.username
            assert [a["username"] for a in api.walk(f"/v1/accounts/{user.username}/followers", limit=7)] == [names[a] for a in self.followers(n)]
            assert [a["username"] for a in api.walk(f"/v1/accounts/{user.username}/following", limit=7)] == [names[b] for b in self.following(n)]
            assert [p["id"] for p in api.walk(f"/v1/accounts/{user.username}/posts", limit=7)] == self.posts_of(n)
            feed = api.walk("/v1/feed", user, limit=7)
            assert [p["id"] for p in feed] == self.feed(n), f"feed of {user.username}"
            for post in feed:
                assert post["liked_by_me"] == ((n, post["id"]) in self.likes)
        for tag in self.tags:
            assert [p["id"] for p in api.walk(f"/v1/tags/{tag}/posts", limit=7)] == self.tagged(tag), f"#{tag}"
        for p in self.post_author:
            response = api.request("GET", f"/v1/posts/{p}")
            if p not in self.live_posts:
                assert response.status_code == 404, f"deleted post {p}: {response.status_code}"
                continue
            assert response.status_code == 200, response.text
            post = response.json()
            assert (post["like_count"], post["comment_count"], post["caption"]) == (
                len(self.likers(p)),
                len(self.post_comments(p)),
                self.captions[p],
            ), f"post {p}"
            assert [a["username"] for a in api.walk(f"/v1/posts/{p}/likes", limit=7)] == [names[u] for u in self.likers(p)]
            assert [c["text"] for c in api.walk(f"/v1/posts/{p}/comments", limit=7)] == self.post_comments(p)

    def check_answers(self, live: dict[tuple[Any, ...], Any]) -> None:
        """The query functions' answers (on the live store) against the model too."""
        for n, user in enumerate(self.users):
            a = int(user.id)
            account = live[("account", a)]
            assert (account.followers_count, account.following_count, account.posts_count) == (
                len(self.followers(n)),
                len(self.following(n)),
                len(self.posts_of(n)),
            )
            assert [str(i) for i in live[("feed", a)]] == self.feed(n)
            assert [str(v.id) for v in live[("posts_of", a)]] == self.posts_of(n)
        for tag in self.tags:
            assert [str(i) for i in live[("tag", tag)]] == self.tagged(tag)
        for p in self.post_author:
            view = live[("post", int(p))]
            assert (view is not None) == (p in self.live_posts)
            if view is not None:
                assert (view.like_count, view.comment_count) == (len(self.likers(p)), len(self.post_comments(p)))


class Load:
    """Drives a deterministic, realistic mix of commands through the API and keeps the
    model. Only commands (no reads), so that it never waits for the projections."""

    def __init__(self, api: Api, model: Model, seed: int, prefix: str) -> None:
        self.api = api
        self.model = model
        self.rng = random.Random(seed)
        self.prefix = prefix
        model.tags = tuple(f"{name}{prefix}" for name in ("sea", "city", "food", "edit"))
        self.commands = 0
        self.last_token: ConsistencyToken | None = None
        self.lock = threading.Lock()

    def _done(self, response: httpx.Response) -> None:
        token = response.headers.get("x-consistency-token")
        with self.lock:
            self.commands += 1
            if token:
                self.last_token = ConsistencyToken.decode(token)

    def expect(self, status: int, method: str, path: str, user: User | None = None, **kwargs: Any) -> Any:
        response = self.api.request(method, path, user, **kwargs)
        assert response.status_code == status, f"{method} {path}: {response.status_code} {response.text}"
        self._done(response)
        return response.json() if response.content else None

    def sign_ups(self, count: int) -> None:
        """Concurrently (argon2 is slow by design); the model keeps the names' order."""

        def sign_up(n: int) -> User:
            name = f"{self.prefix}{n}"
            body = self.expect(201, "POST", "/v1/accounts", json={"username": name, "password": "password123"})
            return User(body["account"]["id"], name, body["token"])

        with ThreadPoolExecutor(4) as pool:
            self.model.users += list(pool.map(sign_up, range(count)))

    def user(self) -> int:
        return self.rng.randrange(len(self.model.users))

    def follow(self, a: int | None = None, b: int | None = None) -> None:
        a = self.user() if a is None else a
        b = self.user() if b is None else b
        if a == b:
            return
        assert self.expect(200, "POST", f"/v1/accounts/{self.model.users[b].username}/follow", self.model.users[a]) == {"following": True}
        self.model.follows.setdefault((a, b), self.model.next())

    def unfollow(self) -> None:
        if not self.model.follows:
            return
        a, b = self.rng.choice(sorted(self.model.follows))
        assert self.expect(200, "DELETE", f"/v1/accounts/{self.model.users[b].username}/follow", self.model.users[a]) == {"following": False}
        del self.model.follows[(a, b)]

    def post(self) -> None:
        a = self.user()
        user = self.model.users[a]
        color = (self.rng.randrange(256), self.rng.randrange(256), self.rng.randrange(256))
        media = self.expect(201, "POST", "/v1/media", user, files={"file": ("p.jpg", jpeg(24, 16, color), "image/jpeg")})
        caption = f"moment {self.model.seq} #{self.rng.choice(self.model.tags[:3])}"
        post = self.expect(201, "POST", "/v1/posts", user, json={"caption": caption, "media_ids": [media["id"]]})
        self.model.post_author[post["id"]] = a
        self.model.live_posts.add(post["id"])
        self.model.captions[post["id"]] = caption
        self.model.next()

    def live_post(self) -> str | None:
        return self.rng.choice(sorted(self.model.live_posts)) if self.model.live_posts else None

    def like(self) -> None:
        p, u = self.live_post(), self.user()
        if p is None:
            return
        assert self.expect(200, "POST", f"/v1/posts/{p}/like", self.model.users[u]) == {"liked": True}
        self.model.likes.setdefault((u, p), self.model.next())

    def unlike(self) -> None:
        mine = sorted(k for k in self.model.likes if k[1] in self.model.live_posts)
        if not mine:
            return
        u, p = self.rng.choice(mine)
        assert self.expect(200, "DELETE", f"/v1/posts/{p}/like", self.model.users[u]) == {"liked": False}
        del self.model.likes[(u, p)]

    def comment(self) -> None:
        p, u = self.live_post(), self.user()
        if p is None:
            return
        text = f"comment {self.model.next()}"
        body = self.expect(201, "POST", f"/v1/posts/{p}/comments", self.model.users[u], json={"text": text})
        self.model.comments[body["id"]] = (p, u, text)
        self.model.live_comments.add(body["id"])

    def delete_comment(self) -> None:
        live = sorted(c for c in self.model.live_comments if self.model.comments[c][0] in self.model.live_posts)
        if not live:
            return
        c = self.rng.choice(live)
        self.expect(204, "DELETE", f"/v1/comments/{c}", self.model.users[self.model.comments[c][1]])
        self.model.live_comments.discard(c)

    def delete_post(self) -> None:
        p = self.live_post()
        if p is None:
            return
        self.expect(204, "DELETE", f"/v1/posts/{p}", self.model.users[self.model.post_author[p]])
        self.model.live_posts.discard(p)

    def edit_post(self) -> None:
        p = self.live_post()
        if p is None:
            return
        caption = f"edited {self.model.next()} #{self.model.tags[3]}"
        self.expect(200, "PATCH", f"/v1/posts/{p}", self.model.users[self.model.post_author[p]], json={"caption": caption})
        self.model.captions[p] = caption

    def edit_profile(self) -> None:
        a = self.user()
        changes = {"display_name": f"Name {self.model.next()}", "bio": f"bio {self.model.seq}"}
        self.expect(200, "PATCH", "/v1/accounts/me", self.model.users[a], json=changes)
        self.model.profile[a] = changes

    MIX = {
        "post": 10,
        "follow": 8,
        "like": 10,
        "comment": 6,
        "unlike": 2,
        "unfollow": 2,
        "delete_comment": 1,
        "delete_post": 1,
        "edit_post": 1,
        "edit_profile": 1,
    }

    def steps(self, count: int, posts: int, marks: dict[int, threading.Event] | None = None) -> None:
        """`count` steps of the mix, `posts` of them posts (uploads included); sets
        marks[i] once step i is done."""
        others = [k for k in self.MIX if k != "post"]
        weights = [self.MIX[k] for k in others]
        post_at = set(self.rng.sample(range(count), posts))
        for i in range(count):
            getattr(self, "post" if i in post_at else self.rng.choices(others, weights)[0])()
            if marks and i in marks:
                marks[i].set()

    def counts(self) -> Counter[str]:
        return Counter(
            posts=len(self.model.post_author),
            deleted_posts=len(self.model.post_author) - len(self.model.live_posts),
            follows=len(self.model.follows),
            likes=len(self.model.likes),
            comments=len(self.model.live_comments),
        )


def final_check(http: TestClient, deployment: Deployment, model: Model, folder: Path) -> None:
    token = head_token(deployment.settings)
    views = CassandraReadStore.from_url(deployment.settings.read_store)
    try:
        wait_until_projected(views, token, deployment)
    finally:
        views.close()
    reader = SessionApi(http)
    reader.token = token.encode()  # every read sees everything in the log
    model.check_api(reader)
    compare_with_fold(deployment, model, folder)


# ----- the tests ---------------------------------------------------------------------------


def test_two_workers_share_the_partitions_and_the_read_models_converge(cluster: Deployment, tmp_path: Path) -> None:
    deployment = cluster
    deployment.start_worker()
    shares = wait_for_workers_sharing(deployment, 2)
    assert sorted(p for share in shares for p in share) == list(range(PARTITIONS)), shares

    with TestClient(create_app(deployment.settings), raise_server_exceptions=False) as http:
        model = Model()
        load = Load(SessionApi(http), model, seed=7, prefix=f"w{uuid.uuid4().hex[:6]}_")
        load.sign_ups(20)
        for _ in range(25):
            load.follow()
        load.steps(170, posts=60)
        done = load.counts()
        assert done["posts"] == 60 and done["deleted_posts"] >= 1 and done["likes"] >= 15 and done["comments"] >= 5, done
        # Both workers are still there, and still share the partitions.
        assert all(w.poll() is None for w in deployment.workers), deployment.worker_logs()
        final_check(http, deployment, model, tmp_path)
    assert len(group_members(deployment)[1]) == 2


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_worker_stopped_mid_batch_loses_nothing(cluster: Deployment, tmp_path: Path, sig: signal.Signals) -> None:
    """On the deployment of the test above (its log included): one of the workers is
    stopped while the load goes on. SIGKILL: the other takes its partitions once its
    session expires. SIGTERM: it leaves its group at once, and Faust commits what it
    counts as done on the way out, so a batch cut short by the shutdown must not count.
    Then a new worker joins."""
    deployment = cluster
    alive = [w for w in deployment.workers if w.poll() is None]
    if not alive:
        deployment.start_worker()
    with TestClient(create_app(deployment.settings), raise_server_exceptions=False) as http:
        model = Model()
        load = Load(SessionApi(http), model, seed=11, prefix=f"k{uuid.uuid4().hex[:6]}_")
        load.sign_ups(12)
        for _ in range(20):
            load.follow()
        wait_for_workers_sharing(deployment, len([w for w in deployment.workers if w.poll() is None]))

        failure: list[BaseException] = []
        kill_point = threading.Event()  # a third through the load; it goes on meanwhile

        def drive() -> None:
            try:
                load.steps(130, posts=32, marks={45: kill_point})
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                failure.append(exc)
                kill_point.set()

        # Connected before the load starts: connecting takes seconds on a busy box, long
        # enough for the rest of the load to finish before the kill.
        views = CassandraReadStore.from_url(deployment.settings.read_store)
        thread = threading.Thread(target=drive, name="load")
        thread.start()
        try:
            assert kill_point.wait(timeout=300), "the load never reached the kill point"
            assert not failure, failure
            # The load has been writing for a while and goes on: the worker is projecting.
            token = load.last_token
            behind = token is not None and not checkpoints_reached(views, token)
            victim = next(w for w in deployment.workers if w.poll() is None)
            victim.send_signal(sig)
            commands_at_kill = load.commands
            assert victim.wait(timeout=30) in (-sig, 0), deployment.worker_logs()
            deployment.start_worker()
        finally:
            views.close()
        thread.join(timeout=300)
        assert not thread.is_alive(), "the load did not finish"
        if failure:
            raise failure[0]
        assert load.commands > commands_at_kill, "the kill came after the load: nothing was left to take over"
        print(f"killed at {commands_at_kill} of {load.commands} commands; worker behind its newest write at the kill: {behind}")
        final_check(http, deployment, model, tmp_path)


def test_concurrent_sign_ups_with_one_username_give_one_201_and_one_409(shared: Deployment, tmp_path: Path) -> None:
    """Two API processes, one request each, released together; ten names."""
    log = tmp_path / "serve.log"
    extra = {**shared.env, "PHOTOSTREAM_LOG_LEVEL": "warning"}
    servers = [Server(tmp_path / f"data-{n}", log, extra) for n in range(2)]
    clients: list[httpx.Client] = []
    try:
        for server in servers:
            server.wait_until_healthy()
        clients = [httpx.Client(base_url=s.base_url, timeout=60.0) for s in servers]
        prefix = f"c{uuid.uuid4().hex[:6]}_"
        winners: dict[str, tuple[int, str]] = {}
        for n in range(10):
            name = f"{prefix}{n}"
            barrier = threading.Barrier(2)
            replies: dict[int, httpx.Response] = {}

            def sign_up(side: int) -> None:
                barrier.wait()
                replies[side] = clients[side].post("/v1/accounts", json={"username": name, "password": f"password-{side}"})

            threads = [threading.Thread(target=sign_up, args=(side,)) for side in (0, 1)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            statuses = sorted(r.status_code for r in replies.values())
            assert statuses == [201, 409], f"{name}: {[(side, r.status_code, r.text) for side, r in replies.items()]}"
            (winner,) = [side for side, r in replies.items() if r.status_code == 201]
            assert "detail" in replies[1 - winner].json()
            winners[name] = (winner, replies[winner].json()["account"]["id"])

        # Each username belongs to its winner, on both API processes: the winner's
        # password signs in as the winner's account, the loser's does not.
        def check(n: int, name: str) -> None:
            winner, account_id = winners[name]
            right = clients[n % 2].post("/v1/sessions", json={"username": name, "password": f"password-{winner}"})
            assert right.status_code == 200 and right.json()["account"]["id"] == account_id, right.text
            wrong = clients[1 - n % 2].post("/v1/sessions", json={"username": name, "password": f"password-{1 - winner}"})
            assert wrong.status_code == 401, wrong.text

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(check, range(len(winners)), winners))
    finally:
        for client in clients:
            client.close()
        for server in servers:
            server.kill()
        print(log.read_text(errors="replace") if log.exists() else "")


def kafka_down_settings(shared: Deployment, folder: Path) -> Settings:
    """The shared deployment's Cassandra and MinIO, but Kafka at a closed local port."""
    return Settings(
        data_dir=folder / "kafka-down",
        event_store=f"kafka://127.0.0.1:{free_port()}?topic=test.down.{uuid.uuid4().hex[:8]}&partitions={PARTITIONS}",
        read_store=shared.settings.read_store,
        media_store=shared.settings.media_store,
        secret_key="test-secret",
        consistency_wait_seconds=5,
    )


def test_the_api_starts_while_kafka_is_unreachable_and_answers_503(shared: Deployment, tmp_path: Path) -> None:
    """An API process started during a Kafka outage serves: /readyz says what is down,
    commands answer 503 with Retry-After (the design: "503 a backing service is down"),
    and it recovers by itself when Kafka answers (KafkaEventStore._kafka is lazy for that)."""
    settings = kafka_down_settings(shared, tmp_path)
    try:
        http = TestClient(create_app(settings), raise_server_exceptions=False).__enter__()
    except Exception as exc:  # noqa: BLE001
        pytest.fail(
            "the API does not start while Kafka is unreachable (so it cannot answer /readyz or 503 at all; "
            f"`photostream serve` exits): {type(exc).__name__}: {exc}"
        )
    try:
        ready = http.get("/readyz")
        assert ready.status_code == 503 and "retry-after" in ready.headers, ready.text
        checks = ready.json()["checks"]
        assert checks["event_store"].startswith("down"), checks
        assert checks["read_store"] == "ok" and checks["media_store"] == "ok", checks
        response = http.post("/v1/accounts", json={"username": f"d{uuid.uuid4().hex[:8]}", "password": "password123"})
        assert response.status_code == 503 and "retry-after" in response.headers, response.text
    finally:
        http.__exit__(None, None, None)


def test_a_command_while_kafka_is_unreachable_answers_503_and_appends_nothing(shared: Deployment, tmp_path: Path) -> None:
    """An API process whose Kafka becomes unreachable after it started. (Its start is
    skipped: see the test above for starting during an outage.) The stream index in
    Cassandra is the shared deployment's, so "nothing appended" is checked there and in
    the shared deployment's log, which a healthy API reads."""
    with TestClient(create_app(shared.settings), raise_server_exceptions=False) as healthy:
        api = SessionApi(healthy)
        prefix = f"u{uuid.uuid4().hex[:6]}_"
        ana, ben = api.sign_up(f"{prefix}ana"), api.sign_up(f"{prefix}ben")
        before = app_log_size(healthy)

        settings = kafka_down_settings(shared, tmp_path)
        backend = open_backend(settings)
        backend._started = True  # the process started while Kafka answered; now it does not
        with TestClient(create_app(settings, backend=backend), raise_server_exceptions=False) as down:
            try:
                ready = down.get("/readyz")
                assert ready.status_code == 503 and "retry-after" in ready.headers, ready.text
                assert ready.json()["checks"]["event_store"].startswith("down"), ready.text
                taken = f"{prefix}cy"
                refused = [
                    down.post("/v1/accounts", json={"username": taken, "password": "password123"}),
                    down.post(f"/v1/accounts/{ana.username}/follow", headers=ben.auth),
                    down.patch("/v1/accounts/me", headers=ana.auth, json={"bio": "offline"}),
                ]
                for response in refused:
                    assert response.status_code == 503, f"{response.request.method} {response.request.url}: {response.status_code} {response.text}"
                    assert response.headers.get("retry-after"), response.headers
                    assert "detail" in response.json()
            finally:
                down.portal.call(backend.close)

        # Nothing reached the stream index or the log: no claim on the name, no follow.
        async def index(events: KafkaEventStore) -> tuple[str | None, list[Recorded]]:
            return await events.lookup_unique("username", taken), await events.read_stream(follow_stream(ben.id, ana.id))

        assert run(index, shared.settings) == (None, [])
        assert app_log_size(healthy) == before
        api.sign_up(taken)  # the name was not left claimed
        assert api.ok("GET", f"/v1/accounts/{ana.username}")["followers_count"] == 0
        assert api.ok("GET", "/v1/accounts/me", ana)["bio"] == ""


def test_media_lands_in_minio_is_served_with_cache_headers_and_an_outage_answers_503(shared: Deployment) -> None:
    from minio import Minio

    s3 = parse_s3_url(shared.settings.media_store)
    bucket = Minio(s3.endpoint, access_key=s3.access_key, secret_key=s3.secret_key, secure=s3.secure)
    with TestClient(create_app(shared.settings), raise_server_exceptions=False) as http:
        api = SessionApi(http)
        ana = api.sign_up(f"m{uuid.uuid4().hex[:8]}")
        before = app_log_size(http)
        media = api.upload(ana, jpeg(300, 200, (30, 140, 220)))
        assert app_log_size(http) == before + 1  # one MediaStored
        assert set(media["urls"]) == {"thumb", "small", "large", "original"}
        for variant, url in media["urls"].items():
            assert url.startswith("/media/"), url
            key = url.removeprefix("/media/")
            stat = bucket.stat_object(bucket_name=s3.bucket, object_name=key)
            stored = bucket.get_object(bucket_name=s3.bucket, object_name=key)
            try:
                stored_bytes = stored.read()
            finally:
                stored.close()
                stored.release_conn()
            served = http.get(url)
            assert served.status_code == 200, f"{variant}: {served.status_code}"
            assert stat.size == len(served.content) == len(stored_bytes) and served.content == stored_bytes, variant
            assert served.headers["content-type"].startswith("image/"), served.headers
            etag = served.headers["etag"]
            assert etag == f'"{key.rsplit("-", 1)[1].split(".")[0]}"', (etag, key)
            assert served.headers["cache-control"] == "public, max-age=31536000, immutable"
            again = http.get(url, headers={"If-None-Match": etag})
            assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
        assert http.get("/media/" + media["urls"]["thumb"].removeprefix("/media/").replace(media["id"], "1")).status_code == 404

    # The same deployment with MinIO at a closed port: 503, Retry-After, no event.
    broken = shared.settings.model_copy(
        update={"media_store": f"s3://{s3.access_key}:{s3.secret_key}@127.0.0.1:{free_port()}/{s3.bucket}"}
    )
    with TestClient(create_app(broken), raise_server_exceptions=False) as http:
        before = app_log_size(http)
        response = http.post("/v1/media", headers=ana.auth, files={"file": ("p.jpg", jpeg(), "image/jpeg")})
        assert response.status_code == 503, response.text
        assert response.headers.get("retry-after") and "detail" in response.json()
        assert app_log_size(http) == before
        ready = http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["media_store"].startswith("down"), ready.text


def test_the_event_store_closes_after_reading_the_log(shared: Deployment) -> None:
    """A tool reading the log through the port (replay, export, this module's fold) must
    be able to close the store afterwards. Seen failing: close() never returns; see
    close_store for the mechanism."""
    from api.seed import PrecomputedHasher
    from commands.context import Actor, CommandContext
    from domain.aggregates import media_stream
    from domain.events import ImageVariant, MediaRef, MediaStored
    from domain.ids import IdGenerator

    async def fill(events: KafkaEventStore) -> None:
        """A few hundred events of no read model's interest (photos nobody posted)."""
        ctx = CommandContext(events, IdGenerator(5), PrecomputedHasher("password123"))

        async def one() -> None:
            media_id = ctx.new_id()
            variant = ImageVariant(f"{media_id}/thumb-0000000000000000.jpg", "image/jpeg", 1, 1)
            ref = MediaRef(media_id, "image/jpeg", 1, 1, dict.fromkeys(("thumb", "small", "large", "original"), variant))
            await ctx.append(media_stream(media_id), [MediaStored(media_id, "1", ref)], Actor("1"))

        for _ in range(6):
            await asyncio.gather(*(one() for _ in range(50)))

    run(fill, shared.settings)

    async def read_then_close() -> tuple[float, list[str]]:
        events = KafkaEventStore.from_urls(shared.settings.event_store, shared.settings.read_store, sweep_seconds=None)
        for partition in range(events.partitions):
            records: list[Recorded] = []
            while batch := await events.read(partition, records[-1].position if records else -1, 500):
                records += batch
        stuck: list[str] = []

        def look() -> None:  # what the close waits on, just before giving up
            for task in asyncio.all_tasks():
                frames = task.get_stack()
                if frames:
                    where = frames[-1]
                    stuck.append(f"{task.get_coro().__qualname__} at {where.f_code.co_filename.rsplit('/', 2)[-1]}:{where.f_lineno} ({task._state}{', cancelling' if task.cancelling() else ''})")

        asyncio.get_running_loop().call_later(CLOSE_TIMEOUT - 0.5, look)
        started = time.monotonic()
        try:
            await asyncio.wait_for(events.close(), CLOSE_TIMEOUT)
        except asyncio.TimeoutError:
            pass
        return time.monotonic() - started, stuck

    for attempt in range(3):
        took, stuck = asyncio.run(read_then_close())
        assert took < CLOSE_TIMEOUT, (
            f"KafkaEventStore.close() after read() had not returned after {took:.1f} s (attempt {attempt + 1}); "
            "tasks then: " + "; ".join(stuck)
        )
