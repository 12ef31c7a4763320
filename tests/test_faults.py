"""Fault tests on the real stack (issue 9, item 1): a service stopped and restarted while
commands arrive. The services stopped here are PRIVATE instances (their own stack folder
and ports, `PHOTOSTREAM_STACK_PORT_OFFSET`), started by the fixture; the shared stack the
other tests use is never touched.

* Kafka stopped and restarted while follows and likes arrive: commands answer 503 with
  Retry-After while it is down; a client retrying gets every command acknowledged; after,
  every acknowledged command is in the log and the read models equal the model and a
  fresh fold of the log.
* MinIO stopped and restarted during uploads: an upload answers 201 or 503 with
  Retry-After, never anything else; no event points at a photo that is not in the
  bucket; the read models equal a fresh fold of the log.
* Cassandra (read models and the stream index) stopped and restarted while workers
  run and commands arrive: commands answer 503 while it is down, the workers pause
  and resume without skipping or parking an event, the read models equal the model and
  a fresh fold of the log.
* A worker killed with SIGKILL mid-batch: tests/test_distributed.py
  (test_a_worker_killed_mid_batch_loses_nothing).

Marked `fault` and `distributed`: `pytest -m fault` runs them (about 8 minutes on a
busy 2-core box, most of it Cassandra starting twice).
"""
from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from domain.events import MediaStored
from media.store import parse_s3_url
from stack.config import PORT_OFFSET_ENV
from stack.layout import default_root
from tests.deployment import Deployment, photostream_exe
from tests.support import User
from tests.test_distributed import Load, Model, final_check, read_log, run
from tests.test_e2e_server import SessionApi

pytestmark = [pytest.mark.fault, pytest.mark.distributed]

OUTAGE_SECONDS = 8.0
RETRY_FOR = 240.0  # a client gives up on one command after this long
# The API sweeps its outbox every 5 s for rows older than the 12 s an append waits for
# Kafka; a sweep that meets Kafka still recovering waits up to 12 s itself.
OUTBOX_SWEPT_WITHIN = 45.0


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


class PrivateStack:
    """`photostream stack` in its own folder and on shifted ports; downloads are linked
    from the usual stack folder, so nothing is fetched again."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        shared = default_root()
        folder.mkdir(parents=True, exist_ok=True)
        for artifact in shared.iterdir():
            if artifact.name not in ("run", ".lock"):
                (folder / artifact.name).symlink_to(artifact)
        self.offset = next(
            o for o in range(20_000, 40_000, 137)
            if all(_port_free(p + o) for p in (9092, 9093, 9000, 9001, 9042, 7000, 7199))
        )

    def _run(self, *args: str) -> str:
        env = {**os.environ, PORT_OFFSET_ENV: str(self.offset)}
        done = subprocess.run(
            [photostream_exe(), "stack", "--dir", str(self.folder), *args], env=env, capture_output=True, text=True, timeout=400
        )
        if done.returncode != 0:
            raise RuntimeError(f"photostream stack {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
        return done.stdout

    def up(self, service: str) -> None:
        self._run("up", "--only", service)

    def down(self, service: str) -> None:
        self._run("down", "--only", service)

    def env(self, service: str) -> dict[str, str]:
        lines = self._run("env", "--only", service).splitlines()
        return dict(line.removeprefix("export ").split("=", 1) for line in lines if line.startswith("export "))

    def wipe(self) -> None:
        self._run("down", "--wipe")


@pytest.fixture(scope="module")
def private_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateStack]:
    stack = PrivateStack(tmp_path_factory.mktemp("private-stack"))
    try:
        yield stack
    finally:
        stack.wipe()


class RetryingLoad(Load):
    """The load of tests/test_distributed.py, sent by a client that retries a command
    answered 503 (after Retry-After) until it is acknowledged: what a client is told to
    do. Only commands that are safe to repeat run while a service is down."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unavailable: list[httpx.Response] = []

    def expect(self, status: int, method: str, path: str, user: User | None = None, **kwargs: Any) -> Any:
        deadline = time.monotonic() + RETRY_FOR
        while True:
            response = self.api.request(method, path, user, **kwargs)
            if response.status_code != 503:
                break
            assert response.headers.get("retry-after"), f"503 without Retry-After: {method} {path}"
            assert "detail" in response.json()
            with self.lock:
                self.unavailable.append(response)
            assert time.monotonic() < deadline, f"{method} {path}: still 503 after {RETRY_FOR} s"
            time.sleep(0.5)
        assert response.status_code == status, f"{method} {path}: {response.status_code} {response.text}"
        self._done(response)
        return response.json() if response.content else None


def _deployment(shared: dict[str, str], private: dict[str, str], folder: Path) -> Deployment:
    deployment = Deployment.create({**shared, **private}, folder)
    deployment.start_worker()
    return deployment


def _outage(stack: PrivateStack, service: str, load: RetryingLoad) -> None:
    """Stop the service for OUTAGE_SECONDS (longer if no command has met the outage
    yet, up to 30 s more), then start it again."""
    stack.down(service)
    time.sleep(OUTAGE_SECONDS)
    deadline = time.monotonic() + 30
    while not load.unavailable and time.monotonic() < deadline:
        time.sleep(0.2)
    stack.up(service)


def _drive(load: RetryingLoad, step: Any, stop: threading.Event, failure: list[BaseException]) -> None:
    try:
        while not stop.is_set():
            step()
    except BaseException as exc:  # noqa: BLE001 - reported by the main thread
        failure.append(exc)


def test_kafka_stopped_and_restarted_while_commands_arrive(private_stack: PrivateStack, stack_env: dict[str, str], tmp_path: Path) -> None:
    private_stack.up("kafka")
    deployment = _deployment(stack_env, private_stack.env("kafka"), tmp_path)
    try:
        with TestClient(create_app(deployment.settings), raise_server_exceptions=False) as http:
            model = Model()
            load = RetryingLoad(SessionApi(http), model, seed=5, prefix=f"f{uuid.uuid4().hex[:6]}_")
            load.sign_ups(8)
            load.steps(20, posts=4)
            stop, failure = threading.Event(), []

            def step() -> None:  # follows and likes: safe to repeat after an unknown outcome
                load.follow() if load.rng.random() < 0.5 else load.like()

            driver = threading.Thread(target=_drive, args=(load, step, stop, failure), name="load")
            driver.start()
            time.sleep(2)
            acknowledged_before = load.commands
            _outage(private_stack, "kafka", load)
            after = load.commands
            deadline = time.monotonic() + RETRY_FOR
            while load.commands < after + 15 and driver.is_alive() and time.monotonic() < deadline:
                time.sleep(0.2)
            stop.set()
            driver.join(timeout=RETRY_FOR)
            assert not failure, failure
            assert load.commands >= after + 15, "commands did not succeed again after Kafka came back"
            assert len(load.unavailable) >= 1, "no command met the outage: the test proved nothing"
            # An append whose ack was lost in the outage stays in the outbox (a retry then
            # answers "already following"): the API's sweep must publish it, within
            # seconds of Kafka's return, with no help from the test.
            back = time.monotonic()
            left = [run(lambda events: events.outbox_size(), deployment.settings)]
            while left[-1] and time.monotonic() < back + OUTBOX_SWEPT_WITHIN:
                time.sleep(1)
                left.append(run(lambda events: events.outbox_size(), deployment.settings))
            assert left[-1] == 0, f"the outbox still holds {left[-1]} event(s) {OUTBOX_SWEPT_WITHIN} s after the load ended"
            print(f"kafka outage: {acknowledged_before} acknowledged before, {len(load.unavailable)} answers 503, "
                  f"{load.commands} acknowledged in all, outbox {left[0]} when the load ended, empty after "
                  f"{time.monotonic() - back:.1f} s")
            final_check(http, deployment, model, tmp_path)
    finally:
        deployment.stop()
        private_stack.down("kafka")


def test_minio_stopped_and_restarted_during_uploads(private_stack: PrivateStack, stack_env: dict[str, str], tmp_path: Path) -> None:
    from minio import Minio

    private_stack.up("minio")
    deployment = _deployment(stack_env, private_stack.env("minio"), tmp_path)
    try:
        with TestClient(create_app(deployment.settings), raise_server_exceptions=False) as http:
            model = Model()
            load = RetryingLoad(SessionApi(http), model, seed=7, prefix=f"m{uuid.uuid4().hex[:6]}_")
            load.sign_ups(4)
            load.steps(6, posts=3)
            stop, failure = threading.Event(), []
            # Uploads (and the posts using them): a refused upload stored nothing, so
            # repeating it is safe.
            driver = threading.Thread(target=_drive, args=(load, load.post, stop, failure), name="uploads")
            driver.start()
            time.sleep(1)
            _outage(private_stack, "minio", load)
            after = load.commands
            deadline = time.monotonic() + RETRY_FOR
            while load.commands < after + 6 and driver.is_alive() and time.monotonic() < deadline:
                time.sleep(0.2)
            stop.set()
            driver.join(timeout=RETRY_FOR)
            assert not failure, failure
            assert load.commands >= after + 6, "uploads did not succeed again after MinIO came back"
            assert any(r.request.url.path == "/v1/media" for r in load.unavailable), "no upload met the outage"
            final_check(http, deployment, model, tmp_path)

        # No event points at a photo that is not there.
        s3 = parse_s3_url(deployment.settings.media_store)
        bucket = Minio(s3.endpoint, access_key=s3.access_key, secret_key=s3.secret_key, secure=s3.secure)
        stored = [r.event.data for r in read_log(deployment.settings) if isinstance(r.event.data, MediaStored)]
        assert len(stored) == len(model.post_author)  # one upload per post, none from a refused one
        for media in stored:
            for variant in media.media.variants.values():
                assert bucket.stat_object(bucket_name=s3.bucket, object_name=variant.key).size > 0
    finally:
        deployment.stop()
        private_stack.down("minio")


def test_cassandra_stopped_and_restarted_while_workers_run(private_stack: PrivateStack, stack_env: dict[str, str], tmp_path: Path) -> None:
    private_stack.up("cassandra")
    deployment = _deployment(stack_env, private_stack.env("cassandra"), tmp_path)
    try:
        with TestClient(create_app(deployment.settings), raise_server_exceptions=False) as http:
            model = Model()
            load = RetryingLoad(SessionApi(http), model, seed=9, prefix=f"c{uuid.uuid4().hex[:6]}_")
            load.sign_ups(6)
            load.steps(40, posts=8)  # the workers have plenty to project when it stops
            stop, failure = threading.Event(), []

            def step() -> None:
                load.follow() if load.rng.random() < 0.5 else load.like()

            driver = threading.Thread(target=_drive, args=(load, step, stop, failure), name="load")
            driver.start()
            time.sleep(1)
            _outage(private_stack, "cassandra", load)
            after = load.commands
            deadline = time.monotonic() + RETRY_FOR
            while load.commands < after + 10 and driver.is_alive() and time.monotonic() < deadline:
                time.sleep(0.2)
            stop.set()
            driver.join(timeout=RETRY_FOR)
            assert not failure, failure
            assert load.commands >= after + 10, "commands did not succeed again after Cassandra came back"
            assert load.unavailable, "no command met the outage: the test proved nothing"
            assert all(w.poll() is None for w in deployment.workers), f"a worker died:\n{deployment.worker_logs()}"
            final_check(http, deployment, model, tmp_path)  # includes: nothing parked
    finally:
        deployment.stop()
        private_stack.down("cassandra")
