"""The Faust worker's lane applier on both read stores, without Kafka: lane messages in,
read models, dead letters and checkpoints out.

A lane batch must apply its good events, park each bad one (undecodable, a projector
that fails on it, a write the store refuses) without losing the others, and record the
watermarks it reached."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from domain.events import MediaRef, PostCreated, encode_event, new_event
from projections.posts_by_tag import POSTS_BY_TAG, PostsByTag, tag_page
from streams.faust_app import LaneApplier, encode_bundles, encode_watermark, lane_of
from streams.lanes import lane_name
from tests.test_read_store_contract import cassandra_store, store  # noqa: F401 - fixtures

LANES = 4


@dataclass
class Message:
    value: bytes
    partition: int
    offset: int
    key: bytes | None = None


def created(post_id: str, tags: tuple[str, ...]) -> bytes:
    data = PostCreated(post_id, "1", "caption", (MediaRef("m", "image/jpeg", 1, 1, {}),), tags, ())
    return encode_event(new_event(data, stream=f"post-{post_id}", actor="1"))


def test_a_lane_batch_parks_what_is_bad_and_applies_the_rest(store: Any) -> None:
    projector = PostsByTag()
    store.ensure_tables(projector.tables)
    entries = [
        (b"101", 0, 10, created("101", ("sun",)), True),
        (b"", 0, 11, b"{not json", False),  # the router could not decode it
        (b"bad", 1, 12, created("not-a-number", ("sun",)), True),  # the projector's int() fails
        (b"103", 1, 13, created("103", ("x" * 70_000,)), True),  # Cassandra refuses a 70 KB key
        (b"104", 0, 14, created("104", ("sun", "sea")), True),
    ]
    bundles = encode_bundles(entries, {0: (14, "2026-11-21T00:00:00.000Z"), 1: (13, None)})
    lane = 2
    messages = [Message(b, lane, i) for i, b in enumerate(bundles)]
    # a message of the format earlier versions wrote: one event, keyed, and a bare watermark
    messages.append(Message(created("105", ("sun",)), lane, 50, b"105"))
    messages.append(Message(encode_watermark({0: (20, None)}), lane, 51))

    applier = LaneApplier(projector, store, ThreadPoolExecutor(2))
    assert asyncio.run(applier.apply_batch(messages)) == 6

    assert tag_page(store, "sun", None, 10)[0] == [105, 104, 101]
    assert tag_page(store, "sea", None, 10)[0] == [104]
    parked = {(d.partition, d.position): d for d in store.dead_letters()}
    assert set(parked) == {(0, 11), (1, 12)} | ({(1, 13)} if _refuses_long_keys(store) else set())
    assert parked[(0, 11)].event_type == "?" and parked[(0, 11)].body == b"{not json"
    assert "ValueError" in parked[(1, 12)].error and parked[(1, 12)].event_type == "PostCreated"
    reached = {(c.projection, c.partition): c.position for c in store.load_checkpoints()}
    assert reached[(lane_name("posts_by_tag", lane), 0)] == 20
    assert reached[(lane_name("posts_by_tag", lane), 1)] == 13
    assert all(len(r["tag"]) < 100 for r in store.dump(POSTS_BY_TAG)) or not _refuses_long_keys(store)


def _refuses_long_keys(store: Any) -> bool:
    return type(store).__name__ == "CassandraReadStore"  # SQLite takes any key


def test_lanes_are_kafkas_default_partitioner() -> None:
    """Keys keep the lanes that keyed sends by earlier versions gave them (murmur2)."""
    from aiokafka.partitioner import murmur2

    for key in (b"1", b"249907416456241152", b"", "ü".encode()):
        assert lane_of(key, 12) == (murmur2(key) & 0x7FFFFFFF) % 12


def test_a_big_router_batch_is_split_into_bundles_under_the_limit() -> None:
    body = created("1", ("t",))
    entries = [(b"k", 0, i, body, True) for i in range(3000)]
    bundles = encode_bundles(entries, {0: (2999, None)})
    assert len(bundles) > 1 and all(len(b) < 300 * 1024 for b in bundles)
    from streams.faust_app import decode_lane_message

    decoded = [decode_lane_message(b, 0, i, None) for i, b in enumerate(bundles)]
    assert [e.offset for entries_, _ in decoded for e in entries_] == list(range(3000))
    assert [marks for _, marks in decoded][-1] == {0: (2999, None)}
    assert all(marks == {} for _, marks in decoded[:-1])
