"""The analyst's and the operator's tools on both backends: reading and exporting the
log, replaying it into a separate store, projection status, rebuild under load, verify,
dead letters, metrics and correlation ids."""
from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from api.cli import main
from api.settings import Settings
from domain.events import UPCASTERS, format_time, utc_now
from projections.posts import POSTS
from projections.store import Delete, Upsert
from streams.log_reader import LogReader, read_events
from tests.deployment import photostream_exe
from tests.support import Api, User


def cli_env(settings: Settings) -> dict[str, str]:
    return {
        "PHOTOSTREAM_DATA_DIR": str(settings.data_dir),
        "PHOTOSTREAM_EVENT_STORE": settings.event_store,
        "PHOTOSTREAM_READ_STORE": settings.read_store,
        "PHOTOSTREAM_MEDIA_STORE": settings.media_store,
        "PHOTOSTREAM_SECRET_KEY": "test-secret",
        "PHOTOSTREAM_LOG_LEVEL": "warning",
    }


def cli(settings: Settings, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(main, list(args), env=cli_env(settings), catch_exceptions=False)
    assert result.exit_code == code, f"photostream {' '.join(args)} -> {result.exit_code}\n{result.output}"
    return result.output


def eventually(api: Api, path: str, user: User | None = None, ok: Any = lambda body: True, timeout: float = 300) -> Any:
    """GET until it answers 200 with a body `ok` accepts: on a loaded box the worker may
    lag behind the API's consistency wait, and a stale answer is not the point here."""
    deadline = time.monotonic() + timeout
    while True:
        response = api.request("GET", path, user)
        if response.status_code == 200 and "x-consistency" not in response.headers and ok(response.json()):
            return response.json()
        assert time.monotonic() < deadline, f"GET {path}: {response.status_code} {response.text[:300]}"
        time.sleep(0.5)


def some_activity(api: Api, prefix: str = "") -> tuple[list[User], list[dict[str, Any]]]:
    users = [api.sign_up(f"{prefix}user{i}") for i in range(4)]
    for follower in users[1:]:
        api.follow(follower, users[0].username)
    api.follow(users[0], users[1].username)
    eventually(api, f"/v1/accounts/{users[3].username}")  # the accounts are projected
    posts = [api.post(users[i % 2], f"photo {i} #sunset") for i in range(4)]
    eventually(api, f"/v1/posts/{posts[0]['id']}")  # ...and the posts (comments look them up)
    api.ok("POST", f"/v1/posts/{posts[0]['id']}/like", users[2])
    api.ok("POST", f"/v1/posts/{posts[0]['id']}/comments", users[3], status=201, json={"text": "nice"})
    return users, posts


def wait_projected(api: Api, user: User) -> None:
    """Reads with the newest token wait until every projection has applied it."""
    eventually(api, "/v1/feed", user)


# ----- reading and exporting the log --------------------------------------------------


def test_export_to_jsonl_and_parquet_counts_exactly_what_the_log_holds(api: Api, settings: Settings, tmp_path: Path, log_size) -> None:
    users, posts = some_activity(api)
    everything = list(read_events(settings.event_store))
    assert len(everything) == log_size()
    by_type = Counter(r.event.type for r in everything)
    assert by_type["AccountRegistered"] == 4 and by_type["PostCreated"] == 4 and by_type["Liked"] == 1

    out = cli(settings, "events", "export", "--format", "jsonl", "--output", str(tmp_path / "all.jsonl"))
    rows = [orjson.loads(line) for line in (tmp_path / "all.jsonl").read_bytes().splitlines()]
    assert len(rows) == len(everything) and Counter(r["type"] for r in rows) == by_type
    assert f"exported {len(everything)} events" in out
    assert {r["event_id"] for r in rows} == {r.event.event_id for r in everything}
    registered = [r["data"] for r in rows if r["type"] == "AccountRegistered"]
    assert all(d["password_hash"] == "[redacted]" for d in registered)  # secrets never leave the log

    cli(settings, "events", "export", "--format", "parquet", "--output", str(tmp_path / "all.parquet"))
    table = pq.read_table(tmp_path / "all.parquet")
    assert table.num_rows == len(everything)
    assert Counter(table.column("type").to_pylist()) == by_type
    assert table.schema.field("occurred_at").type.tz == "UTC"
    parquet_rows = {r["event_id"]: r for r in table.to_pylist()}
    for recorded in everything:  # every column as the log has it
        row = parquet_rows[recorded.event.event_id]
        assert (row["stream"], row["partition"], row["position"]) == (recorded.event.stream, recorded.partition, recorded.position)
        assert row["occurred_at"] == recorded.event.occurred_at and row["correlation_id"] == recorded.event.correlation_id
        if recorded.event.type == "PostCreated":
            assert orjson.loads(row["data"])["caption"] == recorded.event.data.caption

    # Filters: a type and a stream; a position range, in every partition.
    post_stream = f"post-{posts[0]['id']}"
    cli(settings, "events", "export", "--format", "jsonl", "--output", str(tmp_path / "one.jsonl"), "--type", "PostCreated", "--stream", post_stream)
    one = [orjson.loads(line) for line in (tmp_path / "one.jsonl").read_bytes().splitlines()]
    assert [(r["type"], r["stream"]) for r in one] == [("PostCreated", post_stream)]
    low, high = 2, 5
    cli(settings, "events", "export", "--format", "parquet", "--output", str(tmp_path / "range.parquet"), "--from-position", str(low), "--to-position", str(high))
    expected = sorted(r.event.event_id for r in everything if low <= r.position <= high)
    assert sorted(pq.read_table(tmp_path / "range.parquet").column("event_id").to_pylist()) == expected
    # Time: everything before the first post was created.
    first_post = min(r.event.occurred_at for r in everything if r.event.type == "PostCreated")
    before = [r for r in read_events(settings.event_store, until=first_post)]
    assert before and all(r.event.occurred_at < first_post for r in before)
    assert len(before) == sum(1 for r in everything if r.event.occurred_at < first_post)


def test_export_refuses_bad_filters_with_a_precise_message(api: Api, settings: Settings, tmp_path: Path) -> None:
    api.sign_up("someone")
    out = cli(settings, "events", "export", "--format", "jsonl", "--output", str(tmp_path / "x"), "--type", "PostMade", code=2)
    assert "unknown event type PostMade" in out
    out = cli(settings, "events", "export", "--format", "jsonl", "--output", str(tmp_path / "x"), "--since", "yesterday", code=2)
    assert "is not an RFC 3339 time" in out
    out = cli(settings, "events", "export", "--format", "jsonl", "--output", str(tmp_path / "x"), "--from-position", "9", "--to-position", "3", code=2)
    assert "from_position must not be greater than to_position" in out
    out = cli(settings, "events", "export", "--format", "parquet", "--output", str(tmp_path / "no" / "x.parquet"), code=2)
    assert "does not exist" in out
    assert not (tmp_path / "x").exists()


def test_tail_prints_new_events_and_the_kafka_reader_joins_no_group(api: Api, settings: Settings) -> None:
    api.sign_up("before")
    lines: list[str] = []
    done = threading.Event()

    def tail() -> None:
        proc = subprocess.run(
            [photostream_exe(), "events", "tail", "--type", "AccountRegistered", "--limit", "2"],
            env={**os.environ, **cli_env(settings)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        lines.extend(proc.stdout.splitlines())
        done.set()

    thread = threading.Thread(target=tail)
    thread.start()
    # tail starts at the head: keep signing up until it has printed two new accounts.
    names = []
    while not done.wait(1.0):
        names.append(f"after{len(names)}")
        api.sign_up(names[-1])
    thread.join()
    printed = [json.loads(line) for line in lines]
    assert len(printed) == 2 and all(p["type"] == "AccountRegistered" for p in printed)
    assert {p["data"]["username"] for p in printed} <= set(names)  # never "before"
    if not settings.embedded:
        from streams.faust_app import KafkaTopology

        groups = asyncio.run(_consumer_groups(settings))
        assert not any("log-reader" in g for g in groups), groups
        assert KafkaTopology.from_url(settings.event_store).partitions >= 1


async def _consumer_groups(settings: Settings) -> list[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    from streams.kafka_event_store import parse_kafka_url

    admin = AIOKafkaAdminClient(bootstrap_servers=parse_kafka_url(settings.event_store).bootstrap_servers)
    await admin.start()
    try:
        return [g[0] for g in await admin.list_consumer_groups()]
    finally:
        await admin.close()


# ----- replay ------------------------------------------------------------------------


def test_replay_up_to_a_time_builds_a_separate_store_as_of_that_time(api: Api, settings: Settings, tmp_path: Path) -> None:
    users, posts = some_activity(api)
    time.sleep(0.01)
    cut = format_time(utc_now())
    time.sleep(0.01)
    later = api.post(users[0], "after the cut")
    out_path = tmp_path / "asof.db"
    out = cli(settings, "events", "replay", "--into", "posts", "--into", "home_timeline", "--until", cut, "--output", str(out_path))
    assert "replayed" in out
    conn = sqlite3.connect(out_path)
    replayed = {row[0] for row in conn.execute("SELECT post_id FROM posts")}
    assert replayed == {int(p["id"]) for p in posts} and int(later["id"]) not in replayed
    # The feed of users[1] (follows users[0]) as of the cut: users[0]'s posts before it.
    feed = {row[0] for row in conn.execute("SELECT post_id FROM home_timeline WHERE owner_id = ?", (int(users[1].id),))}
    assert int(later["id"]) not in feed and {int(p["id"]) for p in posts[0::2]} <= feed
    # The live store is untouched and a second replay into the same file is refused.
    eventually(api, f"/v1/accounts/{users[0].username}/posts", ok=lambda body: any(p["id"] == later["id"] for p in body["items"]))
    out = cli(settings, "events", "replay", "--into", "posts", "--output", str(out_path), code=2)
    assert "exists" in out
    out = cli(settings, "events", "replay", "--into", "posts", "--output", settings.read_store, code=2)
    assert "live read store" in out
    if not settings.embedded:  # into a fresh Cassandra keyspace, too
        from projections.cassandra_store import CassandraReadStore

        keyspace = f"t_replay_{uuid.uuid4().hex[:12]}"
        url = f"{settings.read_store.rsplit('/', 1)[0]}/{keyspace}"
        cli(settings, "events", "replay", "--into", "posts", "--until", cut, "--output", url)
        store = CassandraReadStore.from_url(url)
        try:
            assert {r["post_id"] for r in store.dump(POSTS)} == replayed
        finally:
            store.session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=120)
            store.close()
    out = cli(settings, "events", "replay", "--into", "nope", "--output", str(tmp_path / "b.db"), code=2)
    assert "unknown projector nope" in out


# ----- status, rebuild, verify ---------------------------------------------------------


def test_rebuild_under_load_keeps_every_query_answered_and_equals_a_fresh_fold(api: Api, settings: Settings, tmp_path: Path) -> None:
    users, posts = some_activity(api)
    wait_projected(api, users[1])
    status = json.loads(cli(settings, "projections", "status", "--json"))
    before = {p["name"]: p for p in status["items"]}
    assert before["home_timeline"]["version"] == 1 and before["home_timeline"]["status"] == "live"

    log = open(tmp_path / "rebuild.log", "w")
    rebuild = subprocess.Popen(
        [photostream_exe(), "projections", "rebuild", "home_timeline", "--grace", "2"],
        env={**os.environ, **cli_env(settings)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    answered = commands = 0
    failures: list[str] = []
    i = 0
    try:
        while rebuild.poll() is None or i < 3:
            i += 1
            author = users[i % 4]
            if i % 3 == 0:
                api.ok("POST", "/v1/posts", author, status=201, json={"caption": f"load {i}", "media_ids": [api.upload(author)["id"]]})
            elif i % 3 == 1:
                api.ok("POST", f"/v1/posts/{posts[i % 4]['id']}/like", users[(i + 1) % 4])
            else:
                api.ok("POST", f"/v1/posts/{posts[i % 4]['id']}/comments", author, status=201, json={"text": f"c{i}"})
            commands += 1
            for path, user in (("/v1/feed", users[1]), ("/v1/feed", users[2]), (f"/v1/posts/{posts[0]['id']}", None), ("/v1/projections", None)):
                response = api.http.get(path, headers=user.auth if user else {})  # no token: never waits
                answered += 1
                if response.status_code != 200:
                    failures.append(f"{path}: {response.status_code} {response.text[:200]}")
            if i > 400:
                break
        assert rebuild.wait(timeout=300) == 0, (tmp_path / "rebuild.log").read_text()
    finally:
        if rebuild.poll() is None:
            rebuild.kill()
            rebuild.wait()
    assert not failures, failures[:5]
    assert answered >= 12 and commands >= 3
    output = (tmp_path / "rebuild.log").read_text()
    assert "rebuilt home_timeline: v1 -> v2" in output and "events/s" in output

    wait_projected(api, users[1])
    after = {p["name"]: p for p in api.ok("GET", "/v1/projections")["items"]}
    assert after["home_timeline"]["version"] == 2
    assert after["posts"]["version"] == 1  # the others were not touched
    # The rebuilt projection equals a fresh fold of the log (verify waits for it to settle).
    out = cli(settings, "projections", "verify", "home_timeline")
    assert ": 0 differences" in out
    # The old version's tables are gone; the feed still answers with every post.
    feed_ids = {item["id"] for item in api.walk("/v1/feed", users[1], limit=50)}
    assert {p["id"] for p in posts if p["author"]["id"] == users[0].id} <= feed_ids


def test_verify_reports_every_difference(api: Api, settings: Settings, client) -> None:
    users, posts = some_activity(api)
    wait_projected(api, users[1])
    assert ": 0 differences" in cli(settings, "projections", "verify", "posts")
    views = client.app.state.backend.views
    tampered = dict(views.get(POSTS, {"post_id": int(posts[0]["id"])}), caption="tampered")
    views.inner.apply(
        [
            Upsert(POSTS, tampered),
            Delete(POSTS, {"post_id": int(posts[1]["id"])}),
            Upsert(POSTS, {**tampered, "post_id": 12345}),
        ]
    )
    out = cli(settings, "projections", "verify", "posts", "--json", code=1)
    report = json.loads(out)
    kinds = {(d["kind"], d["key"]["post_id"]) for d in report["differences"]}
    assert kinds == {("differs", int(posts[0]["id"])), ("missing", int(posts[1]["id"])), ("extra", 12345)}
    differs = next(d for d in report["differences"] if d["kind"] == "differs")
    assert differs["live"]["caption"] == "tampered" and differs["fold"]["caption"] == "photo 0 #sunset"
    # A rebuild repairs it.
    cli(settings, "projections", "rebuild", "posts", "--grace", "1")
    assert ": 0 differences" in cli(settings, "projections", "verify", "posts")


# ----- dead letters --------------------------------------------------------------------


def append_raw(settings: Settings, stream: str, body: bytes) -> None:
    """Put bytes into the log behind the event store's back (an event of a version no
    code here can read)."""
    if settings.embedded:
        from streams.sqlite_event_store import connect, sqlite_path

        conn = connect(sqlite_path(settings.event_store))
        conn.execute(
            "INSERT INTO events (event_id, stream, stream_version, type, occurred_at, body)"
            " SELECT ?, ?, COALESCE(MAX(stream_version), 0) + 1, ?, ?, ? FROM events WHERE stream = ?",
            (str(uuid.uuid4()), stream, "PostDeleted", format_time(utc_now()), body, stream),
        )
        conn.close()
        return

    async def produce() -> None:
        from aiokafka import AIOKafkaProducer

        from streams.kafka_event_store import parse_kafka_url

        url = parse_kafka_url(settings.event_store)
        producer = AIOKafkaProducer(bootstrap_servers=url.bootstrap_servers, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(url.topic, body, key=stream.encode())
        finally:
            await producer.stop()

    asyncio.run(produce())


def test_a_poison_event_is_parked_listed_and_retried_after_a_fix(api: Api, settings: Settings, monkeypatch) -> None:
    users, posts = some_activity(api)
    victim = posts[0]
    body = orjson.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "type": "PostDeleted",
            "version": 0,  # an old shape nobody wrote an upcaster for (yet)
            "stream": f"post-{victim['id']}",
            "occurred_at": format_time(utc_now()),
            "actor": users[0].id,
            "correlation_id": "poison",
            "causation_id": None,
            "data": {"id": victim["id"], "author": users[0].id},
        }
    )
    append_raw(settings, f"post-{victim['id']}", body)
    deadline = time.monotonic() + 60
    while True:
        listed = json.loads(cli(settings, "projections", "dead-letters", "--json"))
        if listed:
            break
        assert time.monotonic() < deadline, "the poison event was never parked"
        time.sleep(0.5)
    assert all("no upcaster for PostDeleted v0" in d["error"] for d in listed)
    # Processing goes on.
    later = api.post(users[1], "still going")
    assert eventually(api, f"/v1/posts/{later['id']}")["id"] == later["id"]
    # Every projection that reads post events parks its own copy; the first listing above may
    # have come before the slower lanes (distributed) got there.
    eventually(api, "/v1/projections", ok=lambda body: all(i["lag_events"] == 0 for i in body["items"]))
    listed = json.loads(cli(settings, "projections", "dead-letters", "--json"))
    assert len({(d["projection"], d["partition"], d["position"]) for d in listed}) == len(listed)  # parked once each
    metrics = api.http.get("/metrics").text
    assert any(line.startswith("photostream_dead_letters{") and not line.endswith(" 0") for line in metrics.splitlines())
    # Retried without a fix: still failing, still listed.
    cli(settings, "projections", "dead-letters", "retry", code=1)
    # The fix: an upcaster from v0 (data {"id", "author"}) to v1.
    monkeypatch.setitem(UPCASTERS, ("PostDeleted", 0), lambda d: {"post_id": d["id"], "author_id": d["author"]})
    out = cli(settings, "projections", "dead-letters", "retry")
    assert f"{len(listed)} applied, 0 still failing" in out
    assert json.loads(cli(settings, "projections", "dead-letters", "--json")) == []
    assert api.request("GET", f"/v1/posts/{victim['id']}").status_code == 404  # the delete applied


# ----- observability -----------------------------------------------------------------


def test_metrics_and_projections_describe_the_pipeline(api: Api, settings: Settings) -> None:
    before = api.metrics()  # the counters belong to the process, which other tests share
    users, _ = some_activity(api)
    wait_projected(api, users[1])
    after = api.metrics()

    def grew(name: str) -> float:
        assert name in after, f"no {name} in /metrics"
        return after[name] - before.get(name, 0.0)

    assert grew('photostream_events_appended_total{type="AccountRegistered"}') == 4
    assert grew('photostream_events_appended_total{type="PostCreated"}') == 4
    assert grew('photostream_http_request_duration_seconds_count{method="POST",route="/v1/posts",status="201"}') == 4
    assert after['photostream_projection_lag_events{partition="0",projection="home_timeline"}'] == 0
    assert after['photostream_projection_version{projection="likes"}'] == 1
    assert after['photostream_dead_letters{projection="likes"}'] == 0
    if settings.embedded:  # the fan-out happens in this process (distributed: in the worker)
        assert grew('photostream_projection_writes_per_event_count{projection="home_timeline"}') >= 4
    items = api.ok("GET", "/v1/projections")["items"]
    assert {i["name"] for i in items} >= {"home_timeline", "likes", "posts"}
    assert all(i["lag_events"] == 0 and i["status"] == "live" and i["partitions"] for i in items)


def test_a_correlation_id_follows_a_command_into_its_events_and_logs(api: Api, settings: Settings, caplog) -> None:
    user = api.sign_up("correlated")
    eventually(api, "/v1/accounts/correlated")  # posting needs the account projected
    caplog.set_level("INFO", logger="photostream.events")
    response = api.request(
        "POST", "/v1/posts", user, headers={"X-Correlation-Id": "req-4711"}, json={"caption": "traced", "media_ids": [api.upload(user)["id"]]}
    )
    assert response.status_code == 201 and response.headers["x-correlation-id"] == "req-4711"
    created = [r for r in read_events(settings.event_store, types=["PostCreated"]) if r.event.data.caption == "traced"]
    assert [r.event.correlation_id for r in created] == ["req-4711"]
    logged = [r for r in caplog.records if getattr(r, "correlation_id", None) == "req-4711"]
    assert logged and "PostCreated" in logged[0].getMessage() and created[0].event.event_id in logged[0].event_ids
    # Without a header the server makes one up and still hands it back.
    other = api.request("POST", f"/v1/accounts/{user.username}/follow", api.sign_up("follower"))
    assert len(other.headers["x-correlation-id"]) == 36


def test_read_events_from_python_matches_the_cli_reader(api: Api, settings: Settings) -> None:
    some_activity(api)
    with LogReader.open(settings.event_store) as reader:
        raw = list(reader.raw())
        assert reader.size() == len(raw)
    decoded = list(read_events(settings.event_store))
    # Each partition in order; Kafka interleaves partitions as its fetches come back.
    assert sorted((r.partition, r.position) for r in decoded) == sorted((r.partition, r.position) for r in raw)
    for partition in {r.partition for r in raw}:
        positions = [r.position for r in decoded if r.partition == partition]
        assert positions == sorted(positions)
    assert list(read_events(settings.event_store, types=["Liked"]))[0].event.type == "Liked"


# ----- the reader's filters -------------------------------------------------------------


SAMPLE_LOG = Path(__file__).parent / "data" / "sample_log" / "01-launch.jsonl"


@pytest.fixture(scope="module")
def sample_log(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The committed sample log (every event type) as an embedded log."""
    from domain.events import decode_event
    from streams.sqlite_event_store import SqliteEventStore

    path = tmp_path_factory.mktemp("sample") / "events.db"
    store = SqliteEventStore(path, durable=False)
    for line in SAMPLE_LOG.read_bytes().splitlines():
        event = decode_event(line)
        store.append_sync(event.stream, [event])
    asyncio.run(store.close())
    return f"sqlite:///{path}"


def _sample_events() -> list[Any]:
    from domain.events import decode_event

    return [decode_event(line) for line in SAMPLE_LOG.read_bytes().splitlines()]


SAMPLE = _sample_events()
SAMPLE_TIMES = sorted({e.occurred_at for e in SAMPLE})


@given(
    types=st.sets(st.sampled_from(sorted({e.type for e in SAMPLE})), max_size=3),
    streams=st.sets(st.sampled_from(sorted({e.stream for e in SAMPLE})), max_size=3),
    since=st.none() | st.sampled_from(SAMPLE_TIMES),
    until=st.none() | st.sampled_from(SAMPLE_TIMES),
    low=st.none() | st.integers(0, len(SAMPLE) + 2),
    high=st.none() | st.integers(0, len(SAMPLE) + 2),
)
@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_filters_in_sql_and_in_export_agree_with_the_filter_itself(sample_log: str, types, streams, since, until, low, high) -> None:
    """SQLite filters in SQL and export_rows filters dicts; both must select exactly what
    EventFilter.matches selects from the whole log, with positions in range."""
    from streams.log_reader import EventFilter, export_rows

    if since and until and since >= until:
        since, until = until, None
    if low is not None and high is not None and low > high:
        low, high = high, low
    where = EventFilter.build(types, streams, since, until, low, high)
    with LogReader.open(sample_log) as reader:
        everything = list(reader.events(EventFilter()))
        expected = [
            r.event.event_id
            for r in everything
            if where.matches(r) and (low is None or r.position >= low) and (high is None or r.position <= high)
        ]
        assert [r.event.event_id for r in reader.events(where)] == expected
        assert [row["event_id"] for row in export_rows(reader, where)] == expected
        assert reader.size(where) == len(expected)
