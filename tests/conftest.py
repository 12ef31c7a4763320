"""Fixtures shared by the suite. Behaviour tests take `settings` and so run once per
backend: embedded always, distributed when the real stack is available (always in CI)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from tests.deployment import KEYSPACES, WARM, Deployment
from tests.support import Api

# Both backends by default (and always in CI); PHOTOSTREAM_TEST_BACKENDS=embedded for a
# quick local run without the stack.
BACKENDS = [b for b in os.environ.get("PHOTOSTREAM_TEST_BACKENDS", "embedded,distributed").split(",") if b]
# Parameters of a fixture that runs on every backend under test (distributed ones marked).
BACKEND_PARAMS = [pytest.param(b, marks=pytest.mark.distributed) if b == "distributed" else b for b in BACKENDS]
if os.environ.get("CI") and "distributed" not in BACKENDS:
    raise pytest.UsageError("CI runs every backend: do not set PHOTOSTREAM_TEST_BACKENDS there")
# Behaviour tests sign up many accounts from one address; they run with 100 times the
# rate-limit bursts (servers they start inherit this). tests/test_security.py checks the
# limits themselves at scale 1.
os.environ.setdefault("PHOTOSTREAM_RATE_LIMIT_SCALE", "100")


@pytest.fixture(scope="session")
def stack_env() -> dict[str, str]:
    """The local Kafka, Cassandra and MinIO, started if they are not running."""
    from stack.services import ensure_up

    env = ensure_up(("kafka", "cassandra", "minio"), progress=False)
    KEYSPACES.shared = env["PHOTOSTREAM_READ_STORE"].rsplit("/", 1)[0]
    return env


@pytest.fixture
def deployment(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """A fresh distributed deployment (topic, keyspace, bucket) with one worker, made
    while the test before ran (tests.deployment.WarmDeployments)."""
    deployed = WARM.take(stack_env, lambda: tmp_path_factory.mktemp("deployment"))
    try:
        yield deployed
    finally:
        WARM.give_back(deployed)


def embedded_settings(tmp_path: Path, **overrides: object) -> Settings:
    """Embedded stores in tmp_path. The stores are named, not left to defaults: a shell
    that ran `eval "$(photostream stack env)"` must not turn the embedded run distributed."""
    data = tmp_path / "data"
    return Settings(
        data_dir=data,
        event_store=f"sqlite:///{data / 'events.db'}",
        read_store=f"sqlite:///{data / 'views.db'}",
        media_store=f"file://{data / 'media'}",
        secret_key="test-secret",
        consistency_wait_seconds=5,
        **overrides,  # type: ignore[arg-type]
    )


def settings_on(request: pytest.FixtureRequest, tmp_path: Path, overrides: dict[str, object]) -> Iterator[Settings]:
    """For a fixture parametrized by BACKEND_PARAMS: the settings of its backend with
    `overrides`, embedded in tmp_path or a fresh deployment with one worker (stopped after)."""
    if request.param == "embedded":
        yield embedded_settings(tmp_path, **overrides)
        return
    deployed = Deployment.create(request.getfixturevalue("stack_env"), tmp_path, overrides)
    deployed.start_worker()
    try:
        yield deployed.settings
    finally:
        deployed.stop()


@pytest.fixture(params=BACKEND_PARAMS)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "embedded":
        return embedded_settings(tmp_path)
    if request.param == "distributed":
        return request.getfixturevalue("deployment").settings
    raise AssertionError(f"unknown backend {request.param}")


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        yield http


@pytest.fixture
def api(client: TestClient) -> Api:
    return Api(client)


def pytest_sessionfinish() -> None:
    WARM.close()
    KEYSPACES.drop_all()


def pytest_report_header() -> str:
    return f"photostream backends under test: {', '.join(BACKENDS)} (CI={os.environ.get('CI', '')})"


@pytest.fixture
def log_size(client: TestClient):
    """How many events the log holds now (to prove a refused command appended none)."""

    def size() -> int:
        backend = client.app.state.backend
        head = client.portal.call(backend.events.head)  # type: ignore[union-attr]
        return sum(position + 1 for position in head.values() if position >= 0) if not backend.settings.embedded else head[0]

    return size
