"""The live stream end to end: real WebSocket clients against a real `photostream serve`
process, on both backends (distributed: beside a real worker; the API process tails the
Kafka topic itself)."""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect_async
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect as ws_connect

from tests.conftest import BACKEND_PARAMS
from tests.support import Api, User
from tests.test_e2e_server import (  # noqa: F401  (_deployments_dropped is an autouse fixture)
    SERVE_ENV_DISTRIBUTED,
    Server,
    _deployments_dropped,
    connect,
    discard,
    fast_deployment,
)

pytestmark = pytest.mark.e2e
FRAME_WAIT = 10.0


START_TIMEOUT = 120.0  # a distributed API on a busy shared box (Cassandra timing out) starts slowly


def wait_until_healthy(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"photostream serve exited with {server.process.returncode} while starting:\n{server.log()}")
        try:
            if httpx.get(f"{server.base_url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # waiting for a process to listen, not for a projection
    raise AssertionError(f"photostream serve did not answer /healthz within {START_TIMEOUT} s:\n{server.log()}")


class Live:
    """A server process (and its deployment) with settings of the test's choosing."""

    def __init__(self, folder: Path, deployment: Any, env: dict[str, str]) -> None:
        extra = {**deployment.env, **SERVE_ENV_DISTRIBUTED, **env} if deployment else env
        self.server = Server(folder / "data", folder / "serve.log", extra)
        wait_until_healthy(self.server)
        self.api = connect(self.server)
        self.ws_url = self.server.base_url.replace("http://", "ws://") + "/v1/stream"

    def open(self, user: User, last_id: str | None = None, *, in_query: bool = True) -> ClientConnection:
        if in_query:
            url = f"{self.ws_url}?token={user.token}" + (f"&last_id={last_id}" if last_id else "")
            ws = ws_connect(url, open_timeout=10)
        else:
            ws = ws_connect(self.ws_url, open_timeout=10)
            ws.send(json.dumps({"type": "auth", "token": user.token, "last_id": last_id}))
        ready = next_frame(ws, "ready")
        assert ready["account_id"] == user.id
        return ws


def frames(ws: ClientConnection, timeout: float = FRAME_WAIT) -> Iterator[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no awaited frame within {timeout} s")
        try:
            yield json.loads(ws.recv(timeout=left))
        except TimeoutError as exc:
            raise AssertionError(f"no awaited frame within {timeout} s") from exc


def next_frame(ws: ClientConnection, kind: str, timeout: float = FRAME_WAIT) -> dict[str, Any]:
    for item in frames(ws, timeout):
        if item["type"] == kind:
            return item
    raise AssertionError("unreachable")


@pytest.fixture(params=BACKEND_PARAMS)
def live_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    deployment = None
    if request.param == "distributed":
        deployment = fast_deployment(request.getfixturevalue("stack_env"), tmp_path)
        deployment.start_worker()
    started: list[Live] = []

    def make(env: dict[str, str] | None = None) -> Live:
        live = Live(tmp_path, deployment, env or {})
        started.append(live)
        return live

    try:
        yield make
    finally:
        for live in started:
            live.server.kill()
            print(live.server.log())
        if deployment is not None:
            print(deployment.worker_logs())
            discard(deployment)


def test_a_like_arrives_live_within_a_second_and_a_message_too(live_factory: Any) -> None:
    live = live_factory()
    api = live.api
    ana, ben = api.sign_up("ana"), api.sign_up("ben")
    post = api.post(ana, "live")
    with live.open(ana) as ana_ws, live.open(ben, in_query=False) as ben_ws:
        started = time.monotonic()
        api.ok("POST", f"/v1/posts/{post['id']}/like", ben)
        got = next_frame(ana_ws, "notification")
        elapsed = time.monotonic() - started
        assert got["notification"]["kind"] == "like"
        assert [a["username"] for a in got["notification"]["actors"]] == ["ben"]
        assert got["notification"]["post"]["id"] == post["id"]
        assert got["id"] == got["notification"]["activity_id"]
        assert elapsed < 1.0, f"the like's frame took {elapsed:.3f} s"
        assert next_frame(ana_ws, "unread")["counts"]["notifications"] == 1

        started = time.monotonic()
        sent = api.ok("POST", "/v1/messages", ana, status=201, json={"to": "ben", "text": "you there?"})
        message = next_frame(ben_ws, "message")
        assert time.monotonic() - started < 1.0
        assert message["message"]["id"] == sent["id"] and message["message"]["text"] == "you there?"
        assert next_frame(ben_ws, "unread")["counts"]["messages"] == 1
        assert next_frame(ana_ws, "message")["id"] == sent["id"]  # the sender's other devices too


def test_reconnect_with_the_last_id_misses_nothing(live_factory: Any) -> None:
    live = live_factory()
    api = live.api
    ana, ben, cy = api.sign_up("ana"), api.sign_up("ben"), api.sign_up("cy")
    api.follow(ana, "cy")
    mine = api.post(ana, "first")
    with live.open(ana) as ws:
        api.ok("POST", f"/v1/posts/{mine['id']}/like", cy)
        last_id = next_frame(ws, "notification")["id"]
    # While ana is away: a like (a new group on another post), a comment, a follow,
    # a mention, a message, and a post by someone she follows.
    other = api.post(ana, "second")
    api.ok("POST", f"/v1/posts/{other['id']}/like", ben)
    comment = api.ok("POST", f"/v1/posts/{mine['id']}/comments", ben, status=201, json={"text": "so good"})
    api.follow(ben, "ana")
    mention = api.post(cy, "hello @ana")
    sent = api.ok("POST", "/v1/messages", ben, status=201, json={"to": "ana", "text": "missed me?"})
    api.ok("GET", "/v1/notifications", ana)  # waits (consistency token) until all of it is projected
    api.ok("GET", "/v1/conversations", ana)

    with live.open(ana, last_id) as ws:
        seen: list[dict[str, Any]] = []
        for item in frames(ws):
            if item["type"] == "unread":
                break  # the resume ends with the badge counts
            seen.append(item)
    kinds = {(f["type"], (f.get("notification") or {}).get("kind")) for f in seen}
    notes = {f["notification"]["id"]: f["notification"] for f in seen if f["type"] == "notification"}
    assert ("notification", "like") in kinds and ("notification", "comment") in kinds
    assert ("notification", "follow") in kinds and ("notification", "mention") in kinds
    assert any(n["kind"] == "like" and n["post"]["id"] == other["id"] for n in notes.values())
    assert any(n["kind"] == "comment" and n["comment"]["id"] == comment["id"] for n in notes.values())
    assert any(n["kind"] == "mention" and n["post"]["id"] == mention["id"] for n in notes.values())
    assert [f["message"]["id"] for f in seen if f["type"] == "message"] == [sent["id"]]
    assert mention["id"] in [f["post"]["id"] for f in seen if f["type"] == "post"]
    ids = [int(f["id"]) for f in seen]
    assert ids == sorted(ids)  # oldest first, so the newest id is the one to resume with


def test_a_new_post_reaches_connected_followers_only(live_factory: Any) -> None:
    live = live_factory()
    api = live.api
    ana, ben, cy = api.sign_up("ana"), api.sign_up("ben"), api.sign_up("cy")
    api.follow(ben, "ana")
    with live.open(ben) as ben_ws, live.open(cy) as cy_ws:
        post = api.post(ana, "for my followers")
        assert next_frame(ben_ws, "post")["post"]["id"] == post["id"]
        with pytest.raises(AssertionError, match="no awaited frame"):
            next_frame(cy_ws, "post", timeout=2.0)


def test_bad_stream_credentials_are_refused_with_a_reason(live_factory: Any) -> None:
    live = live_factory()
    ana = live.api.sign_up("ana")
    for url, first in (
        (f"{live.ws_url}?token=forged", None),
        (live.ws_url, "not json"),
        (live.ws_url, json.dumps({"type": "hello"})),
        (f"{live.ws_url}?token={ana.token}&last_id=12x", None),
    ):
        with ws_connect(url, open_timeout=10) as ws:
            if first is not None:
                ws.send(first)
            error = next_frame(ws, "error")
            assert error["status"] in (400, 401), error
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=FRAME_WAIT)
            assert closed.value.rcvd is not None and closed.value.rcvd.code in (4400, 4401)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_one_api_process_holds_a_thousand_idle_connections(live_factory: Any) -> None:
    live = live_factory({"PHOTOSTREAM_STREAM_HEARTBEAT_SECONDS": "3"})
    api = live.api
    ana, ben = api.sign_up("ana"), api.sign_up("ben")
    post = api.post(ana, "popular")
    pid = live.server.process.pid
    before = _rss_kib(pid)

    async def crowd() -> tuple[int, int, float]:
        sockets = []
        try:
            for n in range(1000):
                ws = await ws_connect_async(f"{live.ws_url}?token={ana.token if n == 0 else ben.token}", open_timeout=30)
                sockets.append(ws)
            for ws in sockets:
                assert json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] == "ready"
            held = _rss_kib(pid)
            # Every idle connection gets its heartbeat...
            beats = await asyncio.gather(*(_next_of(ws, "heartbeat", 20) for ws in sockets))
            # ...and a like still reaches its one recipient at once.
            started = time.monotonic()
            await asyncio.to_thread(api.ok, "POST", f"/v1/posts/{post['id']}/like", ben)
            await _next_of(sockets[0], "notification", 10)
            return held, sum(1 for b in beats if b), time.monotonic() - started
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)

    held, beating, like_seconds = asyncio.run(crowd())
    grown_mib = (held - before) / 1024
    print(f"1000 idle connections: RSS {before / 1024:.1f} MiB -> {held / 1024:.1f} MiB (+{grown_mib:.1f} MiB); like frame in {like_seconds:.3f} s")
    assert beating == 1000
    assert grown_mib < 200, f"1000 idle connections grew the API process by {grown_mib:.1f} MiB"
    assert like_seconds < 2.0
    assert live.server.process.poll() is None


async def _next_of(ws: Any, kind: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        item = json.loads(await asyncio.wait_for(ws.recv(), max(deadline - time.monotonic(), 0.01)))
        if item["type"] == kind:
            return True

