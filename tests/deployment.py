"""A throwaway distributed deployment for one test: its own Kafka topic, Cassandra
keyspace and MinIO bucket on the shared local stack, and real `photostream worker`
processes projecting it."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from api.settings import Settings

PARTITIONS = 4  # enough to share between two workers, quick to assign


def photostream_exe() -> str:
    return str(Path(sys.executable).parent / "photostream")


@dataclass
class Deployment:
    settings: Settings
    env: dict[str, str]
    folder: Path
    workers: list[subprocess.Popen] = field(default_factory=list)

    @staticmethod
    def create(stack: dict[str, str], folder: Path, overrides: dict[str, Any] | None = None) -> Deployment:
        """overrides: more Settings fields (e.g. celebrity_threshold), given to the API's
        settings and, as PHOTOSTREAM_* variables, to the workers."""
        name = uuid.uuid4().hex[:12]
        kafka = stack["PHOTOSTREAM_EVENT_STORE"].split("?")[0]
        cassandra = stack["PHOTOSTREAM_READ_STORE"].rsplit("/", 1)[0]
        s3 = stack["PHOTOSTREAM_MEDIA_STORE"].rsplit("/", 1)[0]
        keyspace = KEYSPACES.acquire(cassandra) or f"t_{name}"
        env = {
            "PHOTOSTREAM_DATA_DIR": str(folder / "data"),
            "PHOTOSTREAM_EVENT_STORE": f"{kafka}?topic=test.{name}&partitions={PARTITIONS}",
            "PHOTOSTREAM_READ_STORE": f"{cassandra}/{keyspace}",
            "PHOTOSTREAM_MEDIA_STORE": f"{s3}/t-{name}",
            "PHOTOSTREAM_SECRET_KEY": "test-secret",
            "PHOTOSTREAM_LOG_LEVEL": "warning",
            **{f"PHOTOSTREAM_{k.upper()}": str(v) for k, v in (overrides or {}).items()},
        }
        settings = Settings(
            data_dir=folder / "data",
            event_store=env["PHOTOSTREAM_EVENT_STORE"],
            read_store=env["PHOTOSTREAM_READ_STORE"],
            media_store=env["PHOTOSTREAM_MEDIA_STORE"],
            secret_key="test-secret",
            consistency_wait_seconds=20,
            **(overrides or {}),
        )
        deployment = Deployment(settings, env, folder)
        deployment.migrate()
        return deployment

    def migrate(self, attempts: int = 3) -> None:
        """Create the topic and tables; schema changes on a busy single node can time
        out, so try again, and say why when it keeps failing."""
        for attempt in range(1, attempts + 1):
            done = subprocess.run(
                [photostream_exe(), "migrate"], env={**os.environ, **self.env}, capture_output=True, text=True, timeout=300
            )
            if done.returncode == 0:
                return
            if attempt == attempts:
                raise RuntimeError(f"photostream migrate failed {attempts} times:\n{done.stderr[-3000:]}")
            time.sleep(2 * attempt)

    def start_worker(self) -> subprocess.Popen:
        n = len(self.workers)
        log = open(self.folder / f"worker-{n}.log", "wb")
        process = subprocess.Popen(
            [photostream_exe(), "worker", "--threads", "8"],
            env={**os.environ, **self.env, "PHOTOSTREAM_DATA_DIR": str(self.folder / f"worker-{n}")},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers.append(process)
        return process

    def worker_logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.folder.glob("worker-*.log")))

    def stop(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in self.workers:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._drop()

    def _drop(self) -> None:
        """Empty the keyspace for the next test, delete the topics (thousands of leftover
        topics slow every client's metadata refresh on the shared broker) and the bucket
        (MinIO's background scanner walks every bucket: a thousand leftovers kept it at
        half a core)."""
        KEYSPACES.release(self.settings.read_store)
        delete_topics(self.settings.event_store.split("?")[0], self.topic)
        delete_bucket(self.settings.media_store)

    @property
    def topic(self) -> str:
        from streams.kafka_event_store import parse_kafka_url

        return parse_kafka_url(self.settings.event_store).topic


class KeyspacePool:
    """Migrated keyspaces on the run's shared Cassandra, handed from one deployment to the
    next and emptied in between.

    Creating a keyspace's ~70 tables takes 40 s on a busy single Cassandra node and
    dropping it 15 s more; truncating the few tables a test wrote takes a second or two
    (the local stack runs with auto_snapshot off). Only deployments whose workers have
    stopped give their keyspace back, so nothing still writes into it. Keyspaces on any
    other node (a fault test's private one, gone after the test) are dropped instead."""

    def __init__(self) -> None:
        self.shared: str | None = None  # cassandra://host:port of the run's stack
        self._free: list[str] = []
        self._connection: tuple[Any, Any] | None = None  # (cluster, session) to the shared node
        self._lock = threading.Lock()  # tests and WarmDeployments' thread both come here

    def acquire(self, cassandra: str) -> str | None:
        with self._lock:
            return self._free.pop() if cassandra == self.shared and self._free else None

    def release(self, read_store: str) -> None:
        cassandra, keyspace = read_store.rsplit("/", 1)
        if cassandra != self.shared:
            cluster, session = _connect(cassandra)
            try:
                session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=120)
            finally:
                cluster.shutdown()
            return
        with self._lock:
            session = self._session()
            try:
                tables = [r.table_name for r in session.execute(
                    "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,)
                )]
                probes = [(t, session.execute_async(f"SELECT * FROM {keyspace}.{t} LIMIT 1")) for t in tables]
                for table, probe in probes:
                    if probe.result().one() is not None:
                        session.execute(f"TRUNCATE {keyspace}.{table}", timeout=60)
            except Exception:
                session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=120)  # never hand on a half-emptied one
                raise
            if tables:
                self._free.append(keyspace)

    def drop_all(self) -> None:
        with self._lock:
            if self._connection is None:
                return
            cluster, session = self._connection
            try:
                for keyspace in self._free:
                    session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=120)
            finally:
                self._free.clear()
                self._connection = None
                cluster.shutdown()

    def _session(self) -> Any:
        if self._connection is None:
            assert self.shared is not None
            self._connection = _connect(self.shared)
        return self._connection[1]


def _connect(cassandra: str) -> tuple[Any, Any]:
    from projections.cassandra_session import open_session, parse_cassandra_url

    return open_session(parse_cassandra_url(f"{cassandra}/system"), create_keyspace=False)


KEYSPACES = KeyspacePool()


class WarmDeployments:
    """Default deployments (no overrides) made one test ahead: while a test runs, the next
    one's topic and keyspace are made and its worker starts, and the finished one's worker
    stops and its keyspace is emptied, in one background thread. Each distributed test
    would otherwise wait ~1.5 s for `migrate`, a few seconds for its worker to join, and
    ~1.5 s for the stop. A deployment is still used by one test only."""

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warm-deployments")
        self._next: Future[Deployment] | None = None

    def take(self, stack: dict[str, str], folder: Callable[[], Path]) -> Deployment:
        """A deployment with its worker started; `folder` makes a new folder for one.
        `stack` is the session's: the same for every call."""
        ready, self._next = self._next, None
        deployed = ready.result() if ready is not None else self._make(stack, folder)
        self._next = self._thread.submit(self._make, stack, folder)
        return deployed

    def give_back(self, deployed: Deployment) -> None:
        self._thread.submit(deployed.stop)

    def close(self) -> None:
        if self._next is not None:
            self._thread.submit(lambda ready=self._next: ready.result().stop())
            self._next = None
        self._thread.shutdown(wait=True)

    @staticmethod
    def _make(stack: dict[str, str], folder: Callable[[], Path]) -> Deployment:
        deployed = Deployment.create(stack, folder())
        deployed.start_worker()
        return deployed


WARM = WarmDeployments()


def delete_bucket(media_url: str) -> None:
    """Delete an s3:// media store's bucket and every object in it, if it exists."""
    from minio import Minio
    from minio.deleteobjects import DeleteObject

    from media.store import parse_s3_url

    settings = parse_s3_url(media_url)
    client = Minio(settings.endpoint, access_key=settings.access_key, secret_key=settings.secret_key, secure=settings.secure)
    if not client.bucket_exists(bucket_name=settings.bucket):
        return
    objects = (DeleteObject(o.object_name) for o in client.list_objects(bucket_name=settings.bucket, recursive=True))
    for error in client.remove_objects(bucket_name=settings.bucket, delete_object_list=objects):
        raise RuntimeError(f"could not delete {error.name} from bucket {settings.bucket}: {error.message}")
    client.remove_bucket(bucket_name=settings.bucket)


def delete_topics(kafka_url: str, containing: str) -> None:
    """Delete every topic whose name contains `containing` (the events topic, its lane
    topics and Faust's own topics for its consumer group)."""
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient

    async def run() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_url.removeprefix("kafka://"))
        await admin.start()
        try:
            doomed = [t for t in await admin.list_topics() if containing in t]
            for start in range(0, len(doomed), 200):
                await admin.delete_topics(doomed[start : start + 200], timeout_ms=60_000)
        finally:
            await admin.close()

    asyncio.run(run())
