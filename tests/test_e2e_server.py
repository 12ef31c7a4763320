"""End to end: a real `photostream serve` process on a free port, spoken to over real
HTTP; stopped (SIGTERM, then in a second test SIGKILL) and started again on the same
data dir, after which nothing may be lost."""
from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from tests.support import Api, User, jpeg

pytestmark = pytest.mark.e2e

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


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
    """One `photostream serve` process; its output goes to a log file."""

    def __init__(self, data_dir: Path, log_path: Path) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOSTREAM_")}
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


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Any]:
    """A factory of servers on one data dir; every one is killed at teardown, and the log
    is printed (pytest shows it when the test fails)."""
    data_dir = tmp_path / "data"
    log_path = tmp_path / "serve.log"
    started: list[Server] = []

    def start() -> Server:
        server = Server(data_dir, log_path)
        started.append(server)
        server.wait_until_healthy()
        return server

    try:
        yield start
    finally:
        for server in started:
            server.kill()
        if log_path.exists():
            print(f"----- photostream serve log ({log_path}) -----")
            print(log_path.read_text(errors="replace"))


def connect(server: Server) -> Api:
    return Api(httpx.Client(base_url=server.base_url, timeout=30.0))


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


def survives_restart(servers: Any, sig: signal.Signals) -> None:
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
    api.http.close()

    code = server.stop(sig)
    if sig == signal.SIGTERM:
        # uvicorn shuts down gracefully, then re-raises the signal it caught, so the exit
        # status may be 0 or -SIGTERM; the log says whether the shutdown was clean.
        assert code in (0, -signal.SIGTERM), f"photostream serve exited with {code} on SIGTERM:\n{server.log()}"
        assert "Application shutdown complete" in server.log(), server.log()
    else:
        assert code == -signal.SIGKILL

    again = servers()
    api = connect(again)
    # Consistency tokens from before the restart still mean the same log positions.
    old_read = api.request("GET", "/v1/accounts/ana", headers={"X-Consistency-Token": last_token})
    assert old_read.status_code == 200 and old_read.headers.get("x-consistency") != "stale"
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


def test_nothing_is_lost_across_a_sigterm_restart(servers: Any) -> None:
    survives_restart(servers, signal.SIGTERM)


def test_nothing_is_lost_across_a_sigkill_restart(servers: Any) -> None:
    survives_restart(servers, signal.SIGKILL)
