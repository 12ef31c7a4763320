"""End to end: a real `photostream serve` process on a free port, spoken to over real
HTTP; stopped (SIGTERM, then in a second test SIGKILL) and started again on the same
data dir, after which nothing may be lost.

Both backends: embedded (one process, SQLite and a media folder in the data dir) and
distributed (`photostream serve` on a fresh Kafka topic, Cassandra keyspace and MinIO
bucket, beside a `photostream worker`). On distributed the restart stops the API process
AND the worker with the same signal and starts both again."""
from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from streams.event_store import ConsistencyToken
from tests.conftest import BACKEND_PARAMS
from tests.deployment import Deployment
from tests.support import Api, User, jpeg

pytestmark = pytest.mark.e2e

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
WORKER_STOP_TIMEOUT = 30.0
CATCH_UP_TIMEOUT = 90.0
# Faust's consumer-group timing for the workers these tests start (Faust reads these
# settings from the environment). A worker killed with SIGKILL never leaves its group:
# the broker notices only when its session times out (Faust's default: 60 s), and until
# then no other worker gets its partitions. A shorter session is an ordinary deployment
# choice (the broker's minimum is 6 s) and keeps a crash test from idling a minute.
FAST_GROUP_ENV = {"BROKER_SESSION_TIMEOUT": "8", "BROKER_HEARTBEAT_INTERVAL": "1"}
# Reads with a token wait this long for the projections (distributed: a restarted worker
# first rejoins its group, then catches up).
SERVE_ENV_DISTRIBUTED = {"PHOTOSTREAM_CONSISTENCY_WAIT_SECONDS": "30", "PHOTOSTREAM_LOG_LEVEL": "info"}


def photostream_command() -> list[str]:
    """The `photostream` console script beside this interpreter (`python -m api.cli`
    does nothing: api.cli has no __main__ guard), else the same entry point via -c."""
    script = Path(sys.executable).parent / "photostream"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from api.cli import main; main()"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """One `photostream serve` process; its output goes to a log file. `extra_env` (a
    distributed deployment's PHOTOSTREAM_* settings) is added to a clean environment."""

    def __init__(self, data_dir: Path, log_path: Path, extra_env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOSTREAM_")}
        env.update(extra_env or {})
        env["PYTHONUNBUFFERED"] = "1"
        self._log = open(log_path, "ab")
        self._log.write(f"\n===== starting on port {self.port} =====\n".encode())
        self._log.flush()
        self.process = subprocess.Popen(
            [*photostream_command(), "serve", "--host", "127.0.0.1", "--port", str(self.port), "--data-dir", str(data_dir)],
            cwd=data_dir.parent,  # no stray .env from the repository
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_until_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"photostream serve exited with {self.process.returncode} while starting:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # waiting for a process to listen, not for a projection
        raise AssertionError(f"photostream serve did not answer /healthz within {START_TIMEOUT} s:\n{self.log()}")

    def stop(self, sig: signal.Signals) -> int:
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT)
            raise AssertionError(f"photostream serve did not stop within {STOP_TIMEOUT} s of {sig.name}:\n{self.log()}")
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT)
        if not self._log.closed:
            self._log.close()

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")


def fast_deployment(stack_env: dict[str, str], folder: Path) -> Deployment:
    """A fresh distributed deployment whose workers leave a dead member's partitions to
    the others within seconds (FAST_GROUP_ENV). No worker is started yet."""
    deployed = Deployment.create(stack_env, folder)
    deployed.env.update(FAST_GROUP_ENV)
    return deployed


_DISCARDING: list[tuple[threading.Thread, list[BaseException]]] = []


def discard(deployment: Deployment) -> None:
    """Tear a throwaway deployment down: its workers are killed now (a graceful Faust
    stop takes seconds, and nobody will read this topic again); Deployment.stop drops
    the keyspace in the background (a DROP KEYSPACE takes seconds too), finished by
    `discarded()` at the end of the module."""
    for worker in deployment.workers:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    errors: list[BaseException] = []

    def stop() -> None:
        try:
            deployment.stop()
        except BaseException as exc:  # noqa: BLE001 - raised by discarded()
            errors.append(exc)

    thread = threading.Thread(target=stop, name=f"discard {deployment.settings.read_store}")
    thread.start()
    _DISCARDING.append((thread, errors))


def discarded() -> None:
    """Wait until every discarded deployment is dropped."""
    while _DISCARDING:
        thread, errors = _DISCARDING.pop()
        thread.join()
        if errors:
            raise errors[0]


@pytest.fixture(scope="module", autouse=True)
def _deployments_dropped() -> Iterator[None]:
    yield
    discarded()


def stop_worker(deployment: Deployment, sig: signal.Signals) -> int:
    """Stop the deployment's newest worker with `sig`; its exit status."""
    worker = deployment.workers[-1]
    worker.send_signal(sig)
    try:
        return worker.wait(timeout=WORKER_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
        raise AssertionError(f"the worker did not stop within {WORKER_STOP_TIMEOUT} s of {sig.name}:\n{deployment.worker_logs()}")


class Servers:
    """Starts `photostream serve` processes on one data dir (and, distributed, one
    deployment); restarts the deployment's worker alongside."""

    def __init__(self, folder: Path, deployment: Deployment | None) -> None:
        self.data_dir = folder / "data"
        self.log_path = folder / "serve.log"
        self.deployment = deployment
        self.started: list[Server] = []

    def __call__(self) -> Server:
        extra = {**self.deployment.env, **SERVE_ENV_DISTRIBUTED} if self.deployment else None
        server = Server(self.data_dir, self.log_path, extra)
        self.started.append(server)
        server.wait_until_healthy()
        return server

    def stop_worker(self, sig: signal.Signals) -> None:
        """Distributed: stop the worker with the signal the API process got."""
        if self.deployment is None:
            return
        code = stop_worker(self.deployment, sig)
        if sig == signal.SIGKILL:
            assert code == -signal.SIGKILL
        else:
            assert code in (0, -signal.SIGTERM), f"the worker exited with {code} on SIGTERM:\n{self.deployment.worker_logs()}"

    def start_worker(self) -> None:
        if self.deployment is not None:
            self.deployment.start_worker()

    def wait_for_projections(self, api: Api, token: str | None) -> None:
        """Distributed: wait (with a deadline) until the restarted worker has projected
        everything up to `token`; embedded, serve projects in process and this is a no-op."""
        if self.deployment is None:
            return
        deadline = time.monotonic() + CATCH_UP_TIMEOUT
        while True:
            response = api.request("GET", "/v1/accounts/ana", headers={"X-Consistency-Token": token})
            if response.status_code == 200 and response.headers.get("x-consistency") != "stale":
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the restarted worker did not project {token} within {CATCH_UP_TIMEOUT} s "
                    f"(last answer {response.status_code} {dict(response.headers)}):\n{self.deployment.worker_logs()}"
                )

    def logs(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        if self.deployment is not None:
            text += f"\n----- worker logs -----\n{self.deployment.worker_logs()}"
        return text


@pytest.fixture(params=BACKEND_PARAMS)
def servers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Servers]:
    """A factory of servers on one data dir (distributed: on one fresh deployment, with
    one worker); every server is killed at teardown, and the logs are printed (pytest
    shows them when the test fails)."""
    deployment = None
    if request.param == "distributed":
        deployment = fast_deployment(request.getfixturevalue("stack_env"), tmp_path)
        deployment.start_worker()
    factory = Servers(tmp_path, deployment)
    try:
        yield factory
    finally:
        for server in factory.started:
            server.kill()
        print(f"----- photostream serve log ({factory.log_path}) -----")
        print(factory.logs())
        if deployment is not None:
            discard(deployment)


class SessionApi(Api):
    """The contract's client, remembering the merge of every consistency token it was
    given rather than only the newest. A command's token names the log positions of its
    own events: embedded that is one global position (the newest covers everything
    before it), but on Kafka it names only the partitions its events went to, so the
    newest token alone does not make a read wait for this client's earlier writes."""

    def request(self, method: str, path: str, user: User | None = None, **kwargs: Any) -> httpx.Response:
        before = self.token
        response = super().request(method, path, user, **kwargs)
        if before and self.token and self.token != before:
            self.token = ConsistencyToken.decode(before).merge(ConsistencyToken.decode(self.token)).encode()
        return response


def connect(server: Server) -> Api:
    # Longer than the server's consistency wait (30 s, SERVE_ENV_DISTRIBUTED): a read
    # that waits for a restarting worker must come back "stale", not time out here.
    return SessionApi(httpx.Client(base_url=server.base_url, timeout=60.0))


def photo(seed: int, size: tuple[int, int] = (96, 64)) -> bytes:
    return jpeg(*size, color=((seed * 47) % 256, (seed * 83) % 256, (seed * 29) % 256))


def populate(api: Api) -> dict[str, Any]:
    """Two users, photos, posts (one with two photos), a follow, likes and comments."""
    ana, ben = api.sign_up("ana", "ana-password"), api.sign_up("ben", "ben-password")
    api.ok("PATCH", "/v1/accounts/me", ana, json={"display_name": "Ana Lima", "bio": "light chaser"})
    first = api.upload(ana, photo(1))
    second = api.upload(ana, photo(2, (64, 96)))
    assert (first["width"], first["height"], second["width"], second["height"]) == (96, 64, 64, 96)
    api.follow(ben, "ana")
    duo = api.ok("POST", "/v1/posts", ana, status=201, json={"caption": "two #Photos @ben", "media_ids": [second["id"], first["id"]]})
    assert [m["id"] for m in duo["media"]] == [second["id"], first["id"]]
    posts = [duo]
    for i in range(5):
        media = api.upload(ana, photo(10 + i))
        posts.append(api.ok("POST", "/v1/posts", ana, status=201, json={"caption": f"post {i} #daily", "media_ids": [media["id"]]}))
    assert api.ok("POST", f"/v1/posts/{duo['id']}/like", ben) == {"liked": True}
    assert api.ok("POST", f"/v1/posts/{posts[3]['id']}/like", ben) == {"liked": True}
    assert api.ok("POST", f"/v1/posts/{posts[3]['id']}/like", ana) == {"liked": True}
    api.ok("POST", f"/v1/posts/{duo['id']}/comments", ben, status=201, json={"text": "lovely"})
    api.ok("POST", f"/v1/posts/{duo['id']}/comments", ana, status=201, json={"text": "thank you!"})
    api.ok("POST", f"/v1/posts/{duo['id']}/comments", ben, status=201, json={"text": "where is this?"})

    # Walk the whole feed in small pages: every post once, newest first.
    feed = api.walk("/v1/feed", ben, limit=2)
    expected = [p["id"] for p in reversed(posts)]
    assert [p["id"] for p in feed] == expected
    by_id = {p["id"]: p for p in feed}
    assert (by_id[duo["id"]]["like_count"], by_id[duo["id"]]["comment_count"], by_id[duo["id"]]["liked_by_me"]) == (1, 3, True)
    assert (by_id[posts[3]["id"]]["like_count"], by_id[posts[3]["id"]]["liked_by_me"]) == (2, True)
    assert [m["id"] for m in by_id[duo["id"]]["media"]] == [second["id"], first["id"]]
    assert api.walk("/v1/feed", ana) == []
    return {"ana": ana, "ben": ben, "posts": posts, "duo": duo}


def snapshot(api: Api, world: dict[str, Any]) -> dict[str, Any]:
    """Everything a user could see of the world, media bytes included."""
    ana: User = world["ana"]
    ben: User = world["ben"]
    duo = world["duo"]
    feed = api.walk("/v1/feed", ben, limit=3)
    media_bytes = {}
    for media in duo["media"]:
        for variant, url in media["urls"].items():
            served = api.request("GET", url)
            assert served.status_code == 200, f"{url}: {served.status_code}"
            media_bytes[f"{media['id']}/{variant}"] = (hashlib.sha256(served.content).hexdigest(), served.headers["etag"])
    return {
        "feed": feed,
        "ana": api.ok("GET", "/v1/accounts/ana"),
        "ben": api.ok("GET", "/v1/accounts/ben"),
        "me": api.ok("GET", "/v1/accounts/me", ana),
        "ana_posts": api.walk("/v1/accounts/ana/posts", limit=4),
        "followers": api.walk("/v1/accounts/ana/followers"),
        "comments": api.walk(f"/v1/posts/{duo['id']}/comments"),
        "likes": api.walk(f"/v1/posts/{world['posts'][3]['id']}/likes"),
        "duo_for_ben": api.ok("GET", f"/v1/posts/{duo['id']}", ben),
        "media": media_bytes,
    }


def check_snapshot_values(snap: dict[str, Any], world: dict[str, Any], posts_count: int = 6) -> None:
    assert len(snap["feed"]) == 6
    assert [p["id"] for p in snap["feed"]] == [p["id"] for p in reversed(world["posts"])]
    assert (snap["ana"]["followers_count"], snap["ana"]["posts_count"], snap["ana"]["display_name"]) == (1, posts_count, "Ana Lima")
    assert snap["ben"]["following_count"] == 1
    assert [c["text"] for c in snap["comments"]] == ["lovely", "thank you!", "where is this?"]
    assert [a["username"] for a in snap["likes"]] == ["ana", "ben"]
    assert [a["username"] for a in snap["followers"]] == ["ben"]
    duo = snap["duo_for_ben"]
    assert (duo["like_count"], duo["comment_count"], duo["liked_by_me"], duo["tags"], duo["mentions"]) == (1, 3, True, ["photos"], ["ben"])
    assert len(snap["media"]) == 8


def without(value: Any, key: str) -> Any:
    """The value with `key` removed from every dict inside it."""
    if isinstance(value, dict):
        return {k: without(v, key) for k, v in value.items() if k != key}
    if isinstance(value, list):
        return [without(v, key) for v in value]
    return value


def survives_restart(servers: Servers, sig: signal.Signals) -> None:
    server = servers()
    api = connect(server)
    world = populate(api)
    before = snapshot(api, world)
    check_snapshot_values(before, world)
    last_token = api.token
    assert last_token

    # One more write right before the stop: acknowledged means durable.
    late = api.upload(world["ana"], photo(99))
    late_post = api.ok("POST", "/v1/posts", world["ana"], status=201, json={"caption": "last words", "media_ids": [late["id"]]})
    late_like = api.request("POST", f"/v1/posts/{late_post['id']}/like", world["ben"])
    assert late_like.status_code == 200
    late_token = late_like.headers["x-consistency-token"]
    written = api.token  # covers every acknowledged write (SessionApi merges the tokens)
    api.http.close()

    code = server.stop(sig)
    if sig == signal.SIGTERM:
        # uvicorn shuts down gracefully, then re-raises the signal it caught, so the exit
        # status may be 0 or -SIGTERM; the log says whether the shutdown was clean.
        assert code in (0, -signal.SIGTERM), f"photostream serve exited with {code} on SIGTERM:\n{server.log()}"
        assert "Application shutdown complete" in server.log(), server.log()
    else:
        assert code == -signal.SIGKILL
    servers.stop_worker(sig)  # distributed: the worker goes down the same way

    servers.start_worker()
    again = servers()
    api = connect(again)
    # Consistency tokens from before the restart still mean the same log positions.
    old_read = api.request("GET", "/v1/accounts/ana", headers={"X-Consistency-Token": last_token})
    assert old_read.status_code == 200 and old_read.headers.get("x-consistency") != "stale"
    servers.wait_for_projections(api, written)
    api.token = late_token  # every read below sees the late writes too
    after = snapshot(api, world)
    # The late post is the newest of the feed; the rest is exactly as it was.
    assert after["feed"][0]["id"] == late_post["id"]
    assert after["feed"][0]["like_count"] == 1 and after["feed"][0]["liked_by_me"] is True
    after["feed"] = after["feed"][1:]
    assert after["ana_posts"][0]["id"] == late_post["id"]
    after["ana_posts"] = after["ana_posts"][1:]
    assert after["ana"]["posts_count"] == 7 and after["me"]["posts_count"] == 7
    assert after["feed"][0]["author"]["posts_count"] == 7
    # Ana's post count (also inside every author object) went from 6 to 7 with the late
    # post; everything else must be exactly as before.
    assert without(after, "posts_count") == without(before, "posts_count")
    check_snapshot_values(after, world, posts_count=7)

    # The late write's own token is honoured by the new process.
    read = api.request("GET", f"/v1/posts/{late_post['id']}", world["ben"], headers={"X-Consistency-Token": late_token})
    assert read.status_code == 200 and read.json()["like_count"] == 1
    assert read.headers.get("x-consistency") != "stale"
    assert api.request("GET", late["urls"]["original"]).status_code == 200

    # Tokens issued before the restart still work (the signing secret persisted),
    # and both users can still sign in with their passwords.
    assert api.ok("GET", "/v1/accounts/me", world["ben"])["username"] == "ben"
    for name in ("ana", "ben"):
        session = api.ok("POST", "/v1/sessions", json={"username": name, "password": f"{name}-password"})
        assert session["account"]["id"] == world[name].id
    assert api.request("POST", "/v1/sessions", json={"username": "ana", "password": "ben-password"}).status_code == 401
    # Usernames are still taken.
    assert api.request("POST", "/v1/accounts", json={"username": "ana", "password": "whatever123"}).status_code == 409

    # And the new process keeps working: new writes, exact counts, new ids still newer.
    assert api.ok("POST", f"/v1/posts/{world['duo']['id']}/like", world["ben"]) == {"liked": True}  # already liked
    assert api.ok("POST", f"/v1/posts/{world['duo']['id']}/like", world["ana"]) == {"liked": True}
    assert api.ok("GET", f"/v1/posts/{world['duo']['id']}")["like_count"] == 2
    fresh = api.ok("POST", "/v1/posts", world["ana"], status=201, json={"caption": "after", "media_ids": [api.upload(world["ana"], photo(7))["id"]]})
    assert int(fresh["id"]) > int(late_post["id"])
    assert [p["id"] for p in api.walk("/v1/feed", world["ben"], limit=4)][:2] == [fresh["id"], late_post["id"]]
    cy = api.sign_up("cy")
    api.follow(cy, "ana")
    assert len(api.walk("/v1/feed", cy, limit=5)) == 8
    assert api.ok("GET", "/v1/accounts/ana")["followers_count"] == 2
    api.http.close()
    again.stop(signal.SIGTERM)


def test_nothing_is_lost_across_a_sigterm_restart(servers: Servers) -> None:
    survives_restart(servers, signal.SIGTERM)


def test_nothing_is_lost_across_a_sigkill_restart(servers: Servers) -> None:
    survives_restart(servers, signal.SIGKILL)
