"""Like-command-to-frame latency of /v1/stream, on a real `photostream serve`.

Ana holds a WebSocket; N other accounts like her post one after another; for each like
the time from sending POST /v1/posts/{id}/like to the notification frame that counts it
arriving on Ana's socket. Prints p50, p90, p99 and max.

    python bench/live_latency.py --backend embedded --likes 200
    python bench/live_latency.py --backend distributed --likes 200   # needs the local stack

Distributed starts a throwaway deployment (own topic, keyspace, bucket) with one worker,
and deletes it afterwards (tests/deployment.py)."""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from websockets.sync.client import connect as ws_connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import Api, jpeg  # noqa: E402
import tests.test_e2e_server as e2e  # noqa: E402
from tests.test_e2e_server import SERVE_ENV_DISTRIBUTED, Server  # noqa: E402

e2e.START_TIMEOUT = 180.0  # a busy shared box can take a while to start a distributed API


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def measure(server: Server, likes: int) -> list[float]:
    api = Api(httpx.Client(base_url=server.base_url, timeout=30))
    ana = api.sign_up("ana")
    fans = [api.sign_up(f"fan{i}") for i in range(likes)]
    post = api.ok("POST", "/v1/posts", ana, status=201, json={"caption": "bench", "media_ids": [api.upload(ana, jpeg())["id"]]})
    url = server.base_url.replace("http://", "ws://") + f"/v1/stream?token={ana.token}"
    seconds: list[float] = []
    with ws_connect(url, open_timeout=10) as ws:
        while json.loads(ws.recv(timeout=10))["type"] != "ready":
            pass
        for n, fan in enumerate(fans, start=1):
            started = time.perf_counter()
            response = api.http.post(f"/v1/posts/{post['id']}/like", headers=fan.auth)
            assert response.status_code == 200, response.text
            while True:
                frame = json.loads(ws.recv(timeout=30))
                if frame["type"] == "notification" and frame["notification"]["actors_count"] >= n:
                    seconds.append(time.perf_counter() - started)
                    break
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("embedded", "distributed"), default="embedded")
    parser.add_argument("--likes", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        deployment = None
        extra: dict[str, str] = {}
        if args.backend == "distributed":
            from stack.services import ensure_up
            from tests.deployment import Deployment

            deployment = Deployment.create(ensure_up(("kafka", "cassandra", "minio"), progress=False), tmp)
            deployment.start_worker()
            extra = {**deployment.env, **SERVE_ENV_DISTRIBUTED, "PHOTOSTREAM_LOG_LEVEL": "warning"}
        server = Server(tmp / "data", tmp / "serve.log", extra)
        try:
            server.wait_until_healthy()
            seconds = measure(server, args.likes)
        finally:
            server.kill()
            if deployment is not None:
                deployment.stop()
    ms = [s * 1000 for s in seconds]
    print(
        f"{args.backend}: {len(ms)} likes, like command -> notification frame: "
        f"p50 {statistics.median(ms):.1f} ms, p90 {percentile(ms, 90):.1f} ms, "
        f"p99 {percentile(ms, 99):.1f} ms, max {max(ms):.1f} ms"
    )


if __name__ == "__main__":
    main()
