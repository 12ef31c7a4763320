"""Schema evolution: the committed sample log (tests/data/sample_log: every event type
and version ever written, plus events of types and versions this code does not know)
still replays to the committed read models, on both read stores.

A new event version must add its samples (a new file, never an edit) and an upcaster;
the coverage test below fails until it does."""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Iterator

import orjson
import pytest

from domain.events import EVENT_TYPES, UnknownEvent, decode_event
from observability.metrics import EVENTS_SKIPPED
from projections.registry import all_projectors
from projections.sqlite_store import SqliteReadStore
from projections.store import ReadStore
from streams.log_reader import RawRecord
from streams.rebuild import Folder, FoldReport

SAMPLES = Path(__file__).parent / "data" / "sample_log"
KNOWN = sorted(SAMPLES.glob("[0-9][0-9]-*.jsonl"))  # what earlier releases wrote, in order
FUTURE = SAMPLES / "future.jsonl"  # what a newer version of photostream might write
BACKENDS = [b for b in os.environ.get("PHOTOSTREAM_TEST_BACKENDS", "embedded,distributed").split(",") if b]


def sample_records() -> list[RawRecord]:
    lines = [line for path in [*KNOWN, FUTURE] for line in path.read_bytes().splitlines() if line.strip()]
    return [RawRecord(0, position, body) for position, body in enumerate(lines, start=1)]


def fold_samples(store: ReadStore | None = None) -> dict[str, list[dict[str, Any]]]:
    """Every table of every projection after folding the samples, as JSON-shaped rows."""
    projectors = all_projectors()
    store = store or SqliteReadStore(Path(os.environ.get("TMPDIR", "/tmp")) / f"samples-{uuid.uuid4().hex}.db")
    store.ensure_tables(t for p in projectors for t in p.tables)
    report = Folder(projectors, store, threads=0).fold(sample_records(), FoldReport())
    assert report.dead_letters == 0, store.dead_letters()
    return {t.name: orjson.loads(orjson.dumps(store.dump(t))) for p in projectors for t in p.tables}


def test_the_samples_hold_every_event_type_and_version_ever_written() -> None:
    written = {(doc["type"], doc["version"]) for path in KNOWN for doc in map(orjson.loads, path.read_bytes().splitlines())}
    wanted = {(name, version) for name, cls in EVENT_TYPES.items() for version in range(1, cls.VERSION + 1)}
    assert wanted <= written, f"add samples (tests/data/sample_log/make_sample_log.py) of {sorted(wanted - written)}"


def test_every_known_sample_decodes_and_unknown_ones_are_marked_unknown() -> None:
    for record in sample_records():
        event = decode_event(record.body)
        is_future = event.correlation_id.startswith("future-")
        assert isinstance(event.data, UnknownEvent) == is_future, event


@pytest.fixture(params=[b for b in ("embedded", "distributed") if b in BACKENDS])
def fresh_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReadStore]:
    if request.param == "embedded":
        store: Any = SqliteReadStore(tmp_path / "samples.db")
        yield store
        store.close()
        return
    stack_env = request.getfixturevalue("stack_env")
    from projections.cassandra_store import CassandraReadStore

    base = stack_env["PHOTOSTREAM_READ_STORE"].rsplit("/", 1)[0]
    keyspace = f"t_samples_{uuid.uuid4().hex[:12]}"
    store = CassandraReadStore.from_url(f"{base}/{keyspace}")
    try:
        yield store
    finally:
        store.session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=120)
        store.close()


def test_the_sample_log_replays_to_the_committed_read_models(fresh_store: ReadStore) -> None:
    skipped = {t: EVENTS_SKIPPED.value(type=t) for t in ("StoryPosted", "PostCreated")}
    models = fold_samples(fresh_store)
    expected = orjson.loads((SAMPLES / "read_models.json").read_bytes())
    assert set(models) == set(expected)
    for table, rows in expected.items():
        assert models[table] == rows, f"read model {table} no longer replays from the sample log"
    # The two events from the future were skipped, counted, and changed nothing.
    assert EVENTS_SKIPPED.value(type="StoryPosted") == skipped["StoryPosted"] + 1
    assert EVENTS_SKIPPED.value(type="PostCreated") == skipped["PostCreated"] + 1
