"""The event-store port, one suite for every adapter.

Every contract test runs against the embedded SQLite log and against Kafka with its
Cassandra stream index (`distributed`). The Kafka run uses a topic and a keyspace of its
own, dropped at the end, so it never sees or disturbs anyone else's events. The tests at
the bottom are Kafka-only: the outbox after a crash, and Kafka going away.

Positions are compared relative to `head()` taken before a write, so the same assertions
hold for SQLite (one global sequence starting at 1) and Kafka (offsets from 0).
"""
from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Awaitable, Iterator, TypeVar

import pytest

from domain.events import AccountRegistered, DomainEvent, Event, ProfileUpdated, new_event
from streams.event_store import (
    ANY_VERSION,
    Append,
    AppendResult,
    ConcurrencyError,
    ConsistencyToken,
    EventStoreError,
    EventStoreUnavailable,
    UniqueClaim,
    UniqueViolation,
)
from streams.sqlite_event_store import SqliteEventStore

T = TypeVar("T")
USERNAME = "username"


# ----- fixtures ------------------------------------------------------------------------


@dataclass
class Harness:
    kind: str
    store: Any
    runner: asyncio.Runner

    def run(self, coroutine: Awaitable[T]) -> T:
        return self.runner.run(coroutine)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    """One event loop per module: the Kafka clients are bound to the loop they start on."""
    with asyncio.Runner() as loop_runner:
        yield loop_runner


@pytest.fixture(scope="module")
def kafka_store(runner: asyncio.Runner) -> Iterator[Any]:
    """A KafkaEventStore on a fresh topic and a fresh keyspace, both dropped at the end."""
    from aiokafka.admin import AIOKafkaAdminClient

    from stack import services
    from streams.kafka_event_store import KafkaEventStore, parse_kafka_url

    env = services.ensure_up(("kafka", "cassandra"), progress=False)
    kafka_base = env["PHOTOSTREAM_EVENT_STORE"].split("?")[0]
    cassandra_base = env["PHOTOSTREAM_READ_STORE"].rsplit("/", 1)[0]
    suffix = uuid.uuid4().hex[:10]
    topic, keyspace = f"photostream.test.{suffix}", f"ps_test_{suffix}"
    kafka_url = f"{kafka_base}?topic={topic}&partitions=6"
    index_url = f"{cassandra_base}/{keyspace}"
    store = KafkaEventStore.from_urls(kafka_url, index_url, sweep_seconds=None, produce_timeout=45)
    runner.run(store.start())
    store.test_urls = (kafka_url, index_url)  # for tests that open a second store
    try:
        yield store
    finally:

        async def drop() -> None:
            cql = await store._index()
            # DDL on a busy single node can take longer than a query's default timeout.
            await asyncio.to_thread(cql.session.execute, f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=120)
            await store.close()
            admin = AIOKafkaAdminClient(bootstrap_servers=parse_kafka_url(kafka_url).bootstrap_servers)
            await admin.start()
            try:
                await admin.delete_topics([topic])
            finally:
                await admin.close()

        runner.run(drop())


@pytest.fixture(scope="module", params=["sqlite", pytest.param("kafka", marks=pytest.mark.distributed)])
def harness(request: pytest.FixtureRequest, runner: asyncio.Runner, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    if request.param == "kafka":
        yield Harness("kafka", request.getfixturevalue("kafka_store"), runner)
        return
    store = SqliteEventStore(tmp_path_factory.mktemp("events") / "events.db")
    yield Harness("sqlite", store, runner)
    runner.run(store.close())


# ----- events ---------------------------------------------------------------------------


def now_ms() -> datetime:
    """The wire keeps milliseconds: events built this way read back equal."""
    moment = datetime.now(timezone.utc)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def new_id() -> str:
    return uuid.uuid4().hex[:16]


def stream_of(account_id: str) -> str:
    return f"account-{account_id}"


def make(stream: str, data: DomainEvent) -> Event:
    return new_event(data, stream=stream, actor=None, occurred_at=now_ms())


def registered(account_id: str, username: str | None = None) -> Event:
    name = username or f"u{account_id}"
    return make(stream_of(account_id), AccountRegistered(account_id, name, name, "hash"))


def updated(account_id: str, bio: str = "bio") -> Event:
    return make(stream_of(account_id), ProfileUpdated(account_id, "Name", bio, None, False))


def history(account_id: str, n: int) -> list[Event]:
    return [registered(account_id)] + [updated(account_id, f"bio {i}") for i in range(1, n)]


def claim(username: str, owner: str) -> UniqueClaim:
    return UniqueClaim(USERNAME, username, owner)


def count_by_partition(result: AppendResult) -> dict[int, int]:
    counts: dict[int, int] = defaultdict(int)
    for partition, _ in result.positions:
        counts[partition] += 1
    return counts


# ----- append and read_stream -----------------------------------------------------------


def test_append_then_read_stream_gives_the_events_back_in_order(harness: Harness) -> None:
    account = new_id()
    events = history(account, 3)
    result = harness.run(harness.store.append(stream_of(account), events, expected_version=0))
    recorded = harness.run(harness.store.read_stream(stream_of(account)))
    assert [r.event for r in recorded] == events
    assert [r.stream_version for r in recorded] == [1, 2, 3]
    assert [(r.partition, r.position) for r in recorded] == list(result.positions)
    assert len({p for p, _ in result.positions}) == 1, "one stream lives in one partition"
    offsets = [o for _, o in result.positions]
    assert offsets == sorted(offsets) and len(set(offsets)) == 3


def test_an_unknown_stream_is_empty(harness: Harness) -> None:
    assert harness.run(harness.store.read_stream(stream_of(new_id()))) == []


def test_versions_continue_across_appends(harness: Harness) -> None:
    account = new_id()
    stream = stream_of(account)
    first = harness.run(harness.store.append(stream, [registered(account)], expected_version=0))
    second = harness.run(harness.store.append(stream, [updated(account), updated(account, "b")], expected_version=1))
    recorded = harness.run(harness.store.read_stream(stream))
    assert [r.stream_version for r in recorded] == [1, 2, 3]
    assert first.positions[0][1] < second.positions[0][1] < second.positions[1][1]


def test_a_stale_expected_version_is_refused_and_appends_nothing(harness: Harness) -> None:
    account = new_id()
    stream = stream_of(account)
    harness.run(harness.store.append(stream, [registered(account)], expected_version=0))
    before = harness.run(harness.store.head())
    for expected in (0, 2, 7):
        with pytest.raises(ConcurrencyError) as info:
            harness.run(harness.store.append(stream, [updated(account)], expected_version=expected))
        assert (info.value.stream, info.value.expected, info.value.actual) == (stream, expected, 1)
    assert len(harness.run(harness.store.read_stream(stream))) == 1
    assert harness.run(harness.store.head()) == before


def test_any_version_appends_at_the_end(harness: Harness) -> None:
    account = new_id()
    stream = stream_of(account)
    harness.run(harness.store.append(stream, [registered(account)]))
    harness.run(harness.store.append(stream, [updated(account)], expected_version=ANY_VERSION))
    harness.run(harness.store.append(stream, [updated(account, "x"), updated(account, "y")]))
    assert [r.stream_version for r in harness.run(harness.store.read_stream(stream))] == [1, 2, 3, 4]


def test_concurrent_any_version_appends_all_land_without_gaps(harness: Harness) -> None:
    account = new_id()
    stream = stream_of(account)

    async def race() -> list[AppendResult]:
        return await asyncio.gather(*(harness.store.append(stream, [updated(account, str(i))]) for i in range(10)))

    results = harness.run(race())
    recorded = harness.run(harness.store.read_stream(stream))
    assert [r.stream_version for r in recorded] == list(range(1, 11))
    assert sorted(r.positions[0] for r in results) == [(r.partition, r.position) for r in recorded]


def test_two_writers_with_the_same_expected_version_one_wins(harness: Harness) -> None:
    account = new_id()
    stream = stream_of(account)
    harness.run(harness.store.append(stream, [registered(account)], expected_version=0))

    async def race() -> list[Any]:
        return await asyncio.gather(
            *(harness.store.append(stream, [updated(account, str(i))], expected_version=1) for i in range(2)),
            return_exceptions=True,
        )

    outcomes = harness.run(race())
    assert sum(isinstance(o, AppendResult) for o in outcomes) == 1
    assert sum(isinstance(o, ConcurrencyError) for o in outcomes) == 1
    assert len(harness.run(harness.store.read_stream(stream))) == 2


def test_nothing_or_a_foreign_event_is_refused(harness: Harness) -> None:
    account = new_id()
    with pytest.raises(EventStoreError):
        harness.run(harness.store.append(stream_of(account), []))
    with pytest.raises(EventStoreError):
        harness.run(harness.store.append(stream_of(account), [registered(new_id())]))
    assert harness.run(harness.store.read_stream(stream_of(account))) == []


# ----- idempotence -------------------------------------------------------------------------


def test_appending_the_same_events_again_answers_their_positions_and_appends_nothing(harness: Harness) -> None:
    account = new_id()
    stream = stream_of(account)
    events = history(account, 2)
    before = harness.run(harness.store.head())
    first = harness.run(harness.store.append(stream, events, expected_version=0))
    after = harness.run(harness.store.head())
    # The same expected version again, now stale: a retry is still answered, not refused.
    again = harness.run(harness.store.append(stream, events, expected_version=0))
    also = harness.run(harness.store.append(stream, events))
    assert again == first == also
    assert harness.run(harness.store.head()) == after
    assert len(harness.run(harness.store.read_stream(stream))) == 2
    (partition,) = {p for p, _ in first.positions}
    in_log = harness.run(harness.store.read(partition, before[partition], 1000))
    assert [r.event.event_id for r in in_log] == [e.event_id for e in events], "each event is in the log once"


def test_a_mix_of_old_and_new_events_is_refused(harness: Harness) -> None:
    account = new_id()
    stream = stream_of(account)
    old = registered(account)
    harness.run(harness.store.append(stream, [old], expected_version=0))
    with pytest.raises(EventStoreError):
        harness.run(harness.store.append(stream, [old, updated(account)]))
    assert len(harness.run(harness.store.read_stream(stream))) == 1


# ----- unique claims ----------------------------------------------------------------------


def test_a_claim_belongs_to_its_owner_and_refuses_everyone_else(harness: Harness) -> None:
    name = f"name{new_id()}"
    alice, bob = new_id(), new_id()
    assert harness.run(harness.store.lookup_unique(USERNAME, name)) is None
    harness.run(harness.store.append(stream_of(alice), [registered(alice, name)], expected_version=0, claims=[claim(name, alice)]))
    assert harness.run(harness.store.lookup_unique(USERNAME, name)) == alice
    # The same owner claiming it again is fine.
    harness.run(harness.store.append(stream_of(alice), [updated(alice)], expected_version=1, claims=[claim(name, alice)]))
    before = harness.run(harness.store.head())
    with pytest.raises(UniqueViolation) as info:
        harness.run(harness.store.append(stream_of(bob), [registered(bob, name)], expected_version=0, claims=[claim(name, bob)]))
    assert (info.value.namespace, info.value.value, info.value.owner) == (USERNAME, name, alice)
    assert harness.run(harness.store.read_stream(stream_of(bob))) == []
    assert harness.run(harness.store.head()) == before
    assert harness.run(harness.store.lookup_unique(USERNAME, name)) == alice
    assert len(harness.run(harness.store.read_stream(stream_of(alice)))) == 2


def test_claims_of_a_refused_append_are_given_back(harness: Harness) -> None:
    taken, free, other = f"t{new_id()}", f"f{new_id()}", f"o{new_id()}"
    alice, bob = new_id(), new_id()
    harness.run(harness.store.append(stream_of(alice), [registered(alice, taken)], expected_version=0, claims=[claim(taken, alice)]))
    # One claim collides: the other one, already reserved by this append, is released.
    with pytest.raises(UniqueViolation):
        harness.run(
            harness.store.append(
                stream_of(bob), [registered(bob, free)], expected_version=0, claims=[claim(free, bob), claim(taken, bob)]
            )
        )
    assert harness.run(harness.store.lookup_unique(USERNAME, free)) is None
    # A stale expected version refuses the append and its claims with it.
    with pytest.raises(ConcurrencyError):
        harness.run(harness.store.append(stream_of(alice), [updated(alice)], expected_version=0, claims=[claim(other, alice)]))
    assert harness.run(harness.store.lookup_unique(USERNAME, other)) is None
    harness.run(harness.store.append(stream_of(bob), [registered(bob, free)], expected_version=0, claims=[claim(free, bob)]))
    assert harness.run(harness.store.lookup_unique(USERNAME, free)) == bob


@pytest.mark.parametrize("round_", range(20))
def test_two_sign_ups_racing_for_one_username_exactly_one_wins(harness: Harness, round_: int) -> None:
    name = f"race{round_}{new_id()}"
    accounts = [new_id(), new_id()]

    async def sign_up(account: str) -> AppendResult:
        return await harness.store.append(
            stream_of(account), [registered(account, name)], expected_version=0, claims=[claim(name, account)]
        )

    async def race() -> list[Any]:
        return await asyncio.gather(*(sign_up(a) for a in accounts), return_exceptions=True)

    outcomes = harness.run(race())
    won = [a for a, o in zip(accounts, outcomes) if isinstance(o, AppendResult)]
    lost = [a for a, o in zip(accounts, outcomes) if isinstance(o, UniqueViolation)]
    assert len(won) == 1 and len(lost) == 1, outcomes
    assert harness.run(harness.store.lookup_unique(USERNAME, name)) == won[0]
    assert harness.run(harness.store.read_stream(stream_of(lost[0]))) == []
    assert len(harness.run(harness.store.read_stream(stream_of(won[0])))) == 1


# ----- the log: read, head, tokens, ping -----------------------------------------------------


def test_read_returns_exactly_what_was_appended_in_order_per_partition(harness: Harness) -> None:
    store = harness.store
    before = harness.run(store.head())
    assert sorted(before) == list(range(store.partitions))
    expected: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for _ in range(12):
        account = new_id()
        events = history(account, 2)
        result = harness.run(store.append(stream_of(account), events, expected_version=0))
        for (partition, position), event in zip(result.positions, events):
            expected[partition].append((position, event.event_id))
    after = harness.run(store.head())
    for partition in range(store.partitions):
        got = harness.run(store.read(partition, before[partition], 1000))
        assert [(r.position, r.event.event_id) for r in got] == expected[partition]
        assert all(r.partition == partition for r in got)
        assert after[partition] == before[partition] + len(expected[partition])
        if expected[partition]:
            first = harness.run(store.read(partition, before[partition], 1))
            assert [(r.position, r.event.event_id) for r in first] == expected[partition][:1]
            rest = harness.run(store.read(partition, expected[partition][0][0], 1000))
            assert [(r.position, r.event.event_id) for r in rest] == expected[partition][1:]
        assert harness.run(store.read(partition, after[partition], 10)) == []


def test_read_gives_back_whole_events_with_their_stream_version(harness: Harness) -> None:
    account = new_id()
    events = history(account, 2)
    before = harness.run(harness.store.head())
    result = harness.run(harness.store.append(stream_of(account), events, expected_version=0))
    (partition,) = {p for p, _ in result.positions}
    got = harness.run(harness.store.read(partition, before[partition], 10))
    assert [r.event for r in got] == events
    assert [r.stream_version for r in got] == [1, 2]


# ----- append_many (bulk loads) ---------------------------------------------------------


def test_append_many_writes_what_the_single_appends_would(harness: Harness) -> None:
    store = harness.store
    accounts = [new_id() for _ in range(20)]
    names = {a: f"bulk{a}" for a in accounts}
    before = harness.run(store.head())
    appends = [Append(stream_of(a), (registered(a, names[a]),), 0, (claim(names[a], a),)) for a in accounts]
    # A second append to some of the same streams in the same call continues their versions.
    appends += [Append(stream_of(a), (updated(a), updated(a, "again")), 1) for a in accounts[:5]]
    # One stream with many events, more bytes than one index batch is given (32 KiB).
    appends.append(Append(stream_of(accounts[5]), tuple(updated(accounts[5], f"{i} " + "x" * 1500) for i in range(40)), 1))
    harness.run(store.append_many(appends))
    for a in accounts:
        recorded = harness.run(store.read_stream(stream_of(a)))
        wanted = [e for x in appends if x.stream == stream_of(a) for e in x.events]
        assert [r.event for r in recorded] == wanted
        assert [r.stream_version for r in recorded] == list(range(1, len(wanted) + 1))
        assert harness.run(store.lookup_unique(USERNAME, names[a])) == a
    after = harness.run(store.head())
    logged = [r for p in range(store.partitions) for r in harness.run(store.read(p, before[p], 1000))]
    assert sorted(r.event.event_id for r in logged) == sorted(e.event_id for x in appends for e in x.events)
    assert sum(after.values()) - sum(before.values()) == 20 + 10 + 40
    # The single append sees the bulk's versions and claims.
    with pytest.raises(ConcurrencyError):
        harness.run(store.append(stream_of(accounts[0]), [updated(accounts[0])], expected_version=1))
    harness.run(store.append(stream_of(accounts[0]), [updated(accounts[0])], expected_version=3))
    other = new_id()
    with pytest.raises(UniqueViolation):
        harness.run(store.append(stream_of(other), [registered(other)], expected_version=0, claims=[claim(names[accounts[1]], other)]))


@pytest.mark.parametrize("refusal", ["stale version", "claim taken", "claimed twice in the call"])
def test_append_many_refused_by_a_check_writes_nothing(harness: Harness, refusal: str) -> None:
    store = harness.store
    alice, bob, carol = new_id(), new_id(), new_id()
    name = f"taken{alice}"
    harness.run(store.append(stream_of(alice), [registered(alice, name)], expected_version=0, claims=[claim(name, alice)]))
    fine = Append(stream_of(bob), (registered(bob, f"free{bob}"),), 0, (claim(f"free{bob}", bob),))
    bad = {
        "stale version": Append(stream_of(alice), (updated(alice),), 0),
        "claim taken": Append(stream_of(carol), (registered(carol, name),), 0, (claim(name, carol),)),
        "claimed twice in the call": Append(stream_of(carol), (registered(carol, f"free{bob}"),), 0, (claim(f"free{bob}", carol),)),
    }[refusal]
    before = harness.run(store.head())
    with pytest.raises(ConcurrencyError if refusal == "stale version" else UniqueViolation):
        harness.run(store.append_many([fine, bad]))
    assert harness.run(store.head()) == before
    assert harness.run(store.read_stream(stream_of(bob))) == []
    assert harness.run(store.lookup_unique(USERNAME, f"free{bob}")) is None
    assert len(harness.run(store.read_stream(stream_of(alice)))) == 1


def test_the_token_names_the_last_position_per_partition(harness: Harness) -> None:
    account = new_id()
    result = harness.run(harness.store.append(stream_of(account), history(account, 3), expected_version=0))
    (partition, last) = result.positions[-1]
    assert result.token.positions == {partition: last}
    assert ConsistencyToken.decode(result.token.encode()) == result.token
    assert harness.run(harness.store.head())[partition] == last
    assert count_by_partition(result) == {partition: 3}


def test_ping_answers_when_the_log_is_up(harness: Harness) -> None:
    harness.run(harness.store.ping())


# ----- Kafka only: URLs ---------------------------------------------------------------------


def test_kafka_urls_parse_with_defaults_and_options() -> None:
    from streams.kafka_event_store import parse_kafka_url

    plain = parse_kafka_url("kafka://127.0.0.1:9092")
    assert (plain.bootstrap_servers, plain.topic, plain.partitions, plain.replication) == (
        "127.0.0.1:9092",
        "photostream.events",
        12,
        1,
    )
    full = parse_kafka_url("kafka://a:1,b?topic=t.x&partitions=3&replication=3")
    assert (full.bootstrap_servers, full.topic, full.partitions, full.replication) == ("a:1,b:9092", "t.x", 3, 3)
    for bad in ("sqlite:///x.db", "kafka://", "kafka://h:0", "kafka://h?partitions=0", "kafka://h?topic=a/b", "kafka://h?x=1"):
        with pytest.raises(ValueError):
            parse_kafka_url(bad)


# ----- Kafka only: the outbox and outages ----------------------------------------------------


@pytest.mark.distributed
def test_topic_keeps_events_forever(kafka_store: Any, runner: asyncio.Runner) -> None:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    async def configs() -> dict[str, str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_store.kafka.bootstrap_servers)
        await admin.start()
        try:
            (answer,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, kafka_store.topic)])
            resources = answer.to_object()["resources"]
            return {c["config_names"]: c["config_value"] for c in resources[0]["config_entries"]}
        finally:
            await admin.close()

    found = runner.run(configs())
    assert (found["retention.ms"], found["retention.bytes"]) == ("-1", "-1")


@pytest.mark.distributed
def test_the_background_sweep_publishes_what_a_writer_left_behind(kafka_store: Any, runner: asyncio.Runner) -> None:
    """No one calls republish_unpublished: a running store's sweep finds the rows once
    they are older than its produce_timeout (their writer's wait) and publishes them."""
    from streams.kafka_event_store import KafkaEventStore

    account = new_id()
    stream = stream_of(account)
    events = history(account, 2)

    async def crash_after_the_index() -> None:
        cql = await kafka_store._index()
        await kafka_store._reserve(cql, stream, tuple(events), 0, ())

    runner.run(crash_after_the_index())
    sweeping = KafkaEventStore.from_urls(*kafka_store.test_urls, sweep_seconds=0.5, produce_timeout=2)
    started = time.monotonic()
    runner.run(sweeping.start())
    try:
        while runner.run(sweeping.outbox_size()) and time.monotonic() < started + 30:
            runner.run(asyncio.sleep(0.2))
        took = time.monotonic() - started
        assert runner.run(sweeping.outbox_size()) == 0, "the sweep did not publish the rows within 30 s"
        assert took >= 1.5, f"published after {took:.1f} s: younger than the writer's produce_timeout (2 s)"
        recorded = runner.run(sweeping.read_stream(stream))
        assert [r.event for r in recorded] == events and all(r.position != -1 for r in recorded)
    finally:
        runner.run(sweeping.close())


@pytest.mark.distributed
def test_an_append_left_unpublished_by_a_crash_is_republished(kafka_store: Any, runner: asyncio.Runner) -> None:
    store = kafka_store
    account = new_id()
    stream = stream_of(account)
    events = history(account, 2)
    before = runner.run(store.head())

    async def crash_after_the_index() -> None:
        cql = await store._index()
        await store._reserve(cql, stream, tuple(events), 0, ())  # ... and the process dies here

    runner.run(crash_after_the_index())
    pending = runner.run(store.read_stream(stream))
    assert [r.event for r in pending] == events, "the write side knows the events at once"
    assert {r.position for r in pending} == {-1}, "not in Kafka yet"
    assert runner.run(store.head()) == before
    assert runner.run(store.republish_unpublished(older_than_seconds=30)) == 0, "too young: maybe in flight"
    assert runner.run(store.republish_unpublished(older_than_seconds=0)) == 2
    assert runner.run(store.republish_unpublished(older_than_seconds=0)) == 0
    recorded = runner.run(store.read_stream(stream))
    (partition,) = {r.partition for r in recorded}
    in_log = runner.run(store.read(partition, before[partition], 100))
    assert [(r.position, r.event) for r in in_log] == [(r.position, r.event) for r in recorded]
    assert [r.stream_version for r in in_log] == [1, 2]
    again = runner.run(store.append(stream, events, expected_version=0))
    assert list(again.positions) == [(r.partition, r.position) for r in recorded]


@pytest.mark.distributed
def test_an_append_kafka_never_received_is_withdrawn(
    kafka_store: Any, runner: asyncio.Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiokafka.errors import KafkaConnectionError

    store = kafka_store
    account, name = new_id(), f"w{new_id()}"
    stream = stream_of(account)
    before = runner.run(store.head())

    async def refuse(*args: Any, **kwargs: Any) -> Any:
        raise KafkaConnectionError("broker gone")

    monkeypatch.setattr(store._producer, "send_batch", refuse)
    with pytest.raises(EventStoreUnavailable):
        runner.run(store.append(stream, [registered(account, name)], expected_version=0, claims=[claim(name, account)]))
    assert runner.run(store.read_stream(stream)) == []
    assert runner.run(store.lookup_unique(USERNAME, name)) is None
    assert runner.run(store.republish_unpublished(older_than_seconds=0)) == 0
    monkeypatch.undo()
    assert runner.run(store.head()) == before
    # Nothing half-applied: the stream and the name are free for the next attempt.
    runner.run(store.append(stream, [registered(account, name)], expected_version=0, claims=[claim(name, account)]))
    assert [r.stream_version for r in runner.run(store.read_stream(stream))] == [1]


@pytest.mark.distributed
def test_an_unreachable_leader_refuses_before_anything_is_written(
    kafka_store: Any, runner: asyncio.Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = kafka_store
    account, name = new_id(), f"l{new_id()}"
    stream = stream_of(account)

    async def not_ready(*args: Any, **kwargs: Any) -> bool:
        return False

    monkeypatch.setattr(store._producer.client, "ready", not_ready)
    with pytest.raises(EventStoreUnavailable, match="not reachable"):
        runner.run(store.append(stream, [registered(account, name)], expected_version=0, claims=[claim(name, account)]))
    monkeypatch.undo()
    assert runner.run(store.read_stream(stream)) == []
    assert runner.run(store.lookup_unique(USERNAME, name)) is None
    assert runner.run(store.republish_unpublished(older_than_seconds=0)) == 0


@pytest.mark.distributed
def test_an_unacknowledged_append_stays_in_the_outbox(
    kafka_store: Any, runner: asyncio.Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiokafka.errors import KafkaConnectionError

    store = kafka_store
    account, name = new_id(), f"u{new_id()}"
    stream = stream_of(account)
    before = runner.run(store.head())
    silent: list[asyncio.Future[Any]] = []

    async def never_acknowledged(*args: Any, **kwargs: Any) -> Any:
        silent.append(asyncio.get_running_loop().create_future())
        return silent[-1]

    monkeypatch.setattr(store._producer, "send_batch", never_acknowledged)
    monkeypatch.setattr(store, "produce_timeout", 0.3)
    event = registered(account, name)
    with pytest.raises(EventStoreUnavailable, match="outbox"):
        runner.run(store.append(stream, [event], expected_version=0, claims=[claim(name, account)]))
    monkeypatch.undo()
    # The outcome is unknown, so the write side keeps the event and the name...
    assert [r.event for r in runner.run(store.read_stream(stream))] == [event]
    assert runner.run(store.lookup_unique(USERNAME, name)) == account
    # ...and the outbox publishes it once Kafka answers.
    assert runner.run(store.republish_unpublished(older_than_seconds=0)) == 1
    (recorded,) = runner.run(store.read_stream(stream))
    assert runner.run(store.read(recorded.partition, before[recorded.partition], 10))[0].event == event
    silent[0].set_exception(KafkaConnectionError("gave up"))  # the first attempt finally fails
    runner.run(asyncio.sleep(0.05))


@pytest.mark.distributed
def test_a_broker_that_does_not_answer_makes_the_store_unavailable(kafka_store: Any, runner: asyncio.Runner) -> None:
    from streams.kafka_event_store import KafkaEventStore

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    _, index_url = kafka_store.test_urls
    down = KafkaEventStore.from_urls(
        f"kafka://127.0.0.1:{closed_port}?topic={kafka_store.topic}", index_url, sweep_seconds=None
    )
    account, name = new_id(), f"d{new_id()}"
    try:
        runner.run(down.start())  # starts anyway: the API must serve 503s, not die
        loop_time = runner.get_loop().time
        t0 = loop_time()
        with pytest.raises(EventStoreUnavailable):
            runner.run(
                down.append(stream_of(account), [registered(account, name)], expected_version=0, claims=[claim(name, account)])
            )
        assert loop_time() - t0 < 20, "an append must not hang on a dead broker"
        with pytest.raises(EventStoreUnavailable):
            runner.run(down.ping())
    finally:
        runner.run(down.close())
    assert runner.run(kafka_store.read_stream(stream_of(account))) == []
    assert runner.run(kafka_store.lookup_unique(USERNAME, name)) is None


@pytest.mark.distributed
def test_a_claim_abandoned_by_a_dead_writer_is_taken_over_once_stale(
    kafka_store: Any, runner: asyncio.Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = kafka_store
    name, ghost, bob = f"g{new_id()}", new_id(), new_id()

    async def die_after_claiming() -> None:
        cql = await store._index()
        await store._take_claims(cql, (claim(name, ghost),), stream_of(ghost), str(uuid.uuid4()))

    runner.run(die_after_claiming())
    assert runner.run(store.lookup_unique(USERNAME, name)) == ghost, "fresh: maybe a sign-up in flight"
    with pytest.raises(UniqueViolation):
        runner.run(store.append(stream_of(bob), [registered(bob, name)], expected_version=0, claims=[claim(name, bob)]))
    monkeypatch.setattr(store, "claim_stale_seconds", 0)
    assert runner.run(store.lookup_unique(USERNAME, name)) is None, "stale and its event never came"
    runner.run(store.append(stream_of(bob), [registered(bob, name)], expected_version=0, claims=[claim(name, bob)]))
    assert runner.run(store.lookup_unique(USERNAME, name)) == bob
    # A confirmed claim is never taken over, however old.
    carol = new_id()
    with pytest.raises(UniqueViolation):
        runner.run(store.append(stream_of(carol), [registered(carol, name)], expected_version=0, claims=[claim(name, carol)]))
