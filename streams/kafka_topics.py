"""Creating Kafka topics and waiting until they can be used: the one way the event store
(its events topic) and the worker (its lane topics) do it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

TOPIC_ALREADY_EXISTS = 36


class TopicSetupError(RuntimeError):
    """A topic could not be created, or has no partition leaders in time."""


async def ensure_topics(
    bootstrap_servers: str,
    topics: Sequence[NewTopic],
    *,
    client_id: str,
    timeout: float,
) -> Mapping[str, int]:
    """Create the topics that do not exist yet (existing ones are left as they are) and wait
    until every partition has a leader: producing to or assigning a topic before that
    only earns NotLeaderForPartition retries, or a consumer group that leaves the topic
    out until its next metadata refresh. Answers each topic's actual partition count."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id=client_id, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout)
        answer = (await admin.create_topics(list(topics))).to_object()
        for error in answer["topic_errors"]:
            if error["error_code"] not in (0, TOPIC_ALREADY_EXISTS):
                raise TopicSetupError(f"cannot create topic {error['topic']}: {error['error_message']}")
        names = [t.name for t in topics]
        deadline = time.monotonic() + timeout
        while True:
            described = await admin.describe_topics(names)
            if all(d["partitions"] and all(p["leader"] >= 0 for p in d["partitions"]) for d in described):
                return {d["topic"]: len(d["partitions"]) for d in described}
            if time.monotonic() > deadline:
                raise TopicSetupError(f"topics {', '.join(names)} have no partition leaders after {timeout:.0f} s")
            await asyncio.sleep(0.1)
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
