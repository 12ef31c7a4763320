"""The invariants of test_properties.py on the distributed backend: commands through the
Kafka event store, projected by a real `photostream worker` into Cassandra.

For any sequence of commands (each example has its own accounts in one shared
deployment): (c) counts are exact and (d) every feed equals the model, read from the
live Cassandra read models; and (a) a fresh fold of the Kafka log into a separate read
store gives the same answers. Rows are compared by the answers the queries give, since
the home timeline's floor bookkeeping may differ with the order the lanes ran in."""
from __future__ import annotations

import asyncio
import heapq
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commands.context import CommandContext
from domain.events import Recorded
from domain.ids import IdGenerator
from projections.cassandra_store import CassandraReadStore
from projections.registry import all_projectors
from streams.event_store import ConsistencyToken
from streams.kafka_event_store import KafkaEventStore
from streams.lanes import lane_name
from tests.deployment import PARTITIONS, Deployment
from tests.test_distributed import fold
from tests.test_properties import HASHER, Actors, Model, check_against_model, play, script

pytestmark = pytest.mark.distributed
PROJECTORS = all_projectors()  # for the projection names only
# The worker runs thresholds small enough to reach with three accounts: promoted at two
# followers, demoted at none, one pulled celebrity per reader, away after a day (the
# script's clock moves by days), and the smallest timeline the settings allow.
SMALL = {"celebrity_threshold": 2, "celebrity_hysteresis": 0.5, "celebrity_sources": 1, "inactive_days": 1, "timeline_max": 10}


@pytest.fixture(scope="module")
def live(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    deployed = Deployment.create(stack_env, tmp_path_factory.mktemp("live"), SMALL)
    deployed.start_worker()
    try:
        yield deployed
    finally:
        deployed.stop()


def wait_until_projected(views: CassandraReadStore, token: ConsistencyToken, deployment: Deployment, timeout: float = 60) -> None:
    names = [lane_name(p.name, lane) for p in PROJECTORS for lane in range(PARTITIONS)]
    deadline = time.monotonic() + timeout
    while True:
        done = {(c.projection, c.partition): c.position for c in views.load_checkpoints()}
        if all(done.get((n, p), -1) >= o for n in names for p, o in token.positions.items()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the worker did not project {token} within {timeout}s:\n{deployment.worker_logs()}")
        time.sleep(0.05)


async def read_log(events: KafkaEventStore) -> list[Recorded]:
    """The whole log, partitions interleaved by time; each partition keeps its order."""
    runs = []
    for partition in range(events.partitions):
        run: list[Recorded] = []
        while batch := await events.read(partition, run[-1].position if run else -1, 1000):
            run += batch
        runs.append(run)
    return list(heapq.merge(*runs, key=lambda r: r.event.occurred_at))


async def run_example(deployment: Deployment, steps: list, folder: Path) -> None:
    s = deployment.settings
    events = KafkaEventStore.from_urls(s.event_store, s.read_store)
    await events.start()
    try:
        world = Actors(CommandContext(events, IdGenerator(11), HASHER), prefix=f"p{uuid.uuid4().hex[:8]}_")
        await world.setup()
        model = Model()
        await play(world, model, steps)
        token = ConsistencyToken.at_head(await events.head())
        views = CassandraReadStore.from_url(s.read_store)
        try:
            await asyncio.to_thread(wait_until_projected, views, token, deployment)
            check_against_model(world, model, views, page_size=3)  # (c), (d) on Cassandra
        finally:
            views.close()
        rebuilt = fold(await read_log(events), folder)
        check_against_model(world, model, rebuilt, page_size=2)  # (a) a fresh fold answers the same
    finally:
        await events.close()


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(steps=script)
def test_distributed_read_models_obey_the_invariants(live: Deployment, tmp_path: Path, steps: list) -> None:
    asyncio.run(run_example(live, steps, tmp_path))
